//! `velero uninstall`: remove what `velero install` created.

use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args};

use crate::client::GlobalArgs;

#[derive(Args, Debug)]
#[command(
    long_about = "Uninstall Velero along with the CRDs and associated resources.\n\nThe '--namespace' flag can be used to specify the namespace where velero is installed (default: velero).\nUse '--force' to skip the prompt confirming if you want to uninstall Velero."
)]
pub struct UninstallArgs {
    /// Forces the Velero uninstall without the confirmation prompt
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    force: bool,
    /// Wait for the Velero namespace to be deleted (deprecated in Velero: it always waits)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = true)]
    wait: bool,
    /// How long to wait for the namespace to be deleted
    #[arg(long, default_value = "10m", value_parser = crate::flags::parse_duration)]
    timeout: velero_api::Duration,
}

pub async fn run(global: &GlobalArgs, args: UninstallArgs) -> anyhow::Result<()> {
    if !args.force
        && !crate::confirm(
            "You are about to uninstall Velero.\nAre you sure you want to continue (Y/N)? ",
        )?
    {
        println!("Aborting uninstall.");
        return Ok(());
    }
    let client = global.client().await?;
    let namespace = global.namespace();
    let wait = args
        .wait
        .then(|| args.timeout.to_std().unwrap_or(Duration::from_secs(600)));
    velero_install::uninstall(&client, &namespace, wait, &mut std::io::stdout())
        .await
        .context("error uninstalling Velero")?;
    Ok(())
}
