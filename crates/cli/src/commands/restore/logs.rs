//! `velero restore logs`.

use anyhow::{Context, bail};
use clap::Args;
use kube::api::Api;
use velero_api::v1::{DownloadTargetKind, Restore, RestorePhase};

use crate::client::GlobalArgs;
use crate::download::{self, TlsOptions};
use crate::flags::parse_duration;

#[derive(Args, Debug)]
pub struct LogsArgs {
    name: String,
    /// How long to wait to receive logs.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: velero_api::Duration,
    #[command(flatten)]
    tls: TlsOptions,
}

/// Phases in which a restore's log has been uploaded.
fn logs_available(phase: Option<RestorePhase>) -> bool {
    matches!(
        phase,
        Some(
            RestorePhase::Completed
                | RestorePhase::Failed
                | RestorePhase::PartiallyFailed
                | RestorePhase::WaitingForPluginOperations
                | RestorePhase::WaitingForPluginOperationsPartiallyFailed
        )
    )
}

pub(super) async fn logs(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<Restore> = Api::namespaced(client.clone(), &namespace);
    let restore = api
        .get_opt(&args.name)
        .await
        .with_context(|| format!("Error checking for restore {:?}", args.name))?
        .with_context(|| format!("Restore {:?} does not exist.", args.name))?;
    if !logs_available(restore.phase()) {
        bail!(
            "Logs for restore {:?} are not available until it's finished processing. Please wait until the restore has a phase of Completed or Failed and try again.",
            args.name
        );
    }
    let kind = DownloadTargetKind::RestoreLog;
    download::print_log(
        &client,
        &namespace,
        kind,
        &args.name,
        args.timeout,
        &args.tls,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_only_once_the_restore_ran() {
        assert!(!logs_available(None));
        assert!(!logs_available(Some(RestorePhase::InProgress)));
        assert!(!logs_available(Some(RestorePhase::FailedValidation)));
        assert!(logs_available(Some(RestorePhase::PartiallyFailed)));
        assert!(logs_available(Some(
            RestorePhase::WaitingForPluginOperations
        )));
    }
}
