//! `velero backup logs`.

use anyhow::{Context, bail};
use clap::Args;
use kube::api::Api;
use velero_api::v1::{Backup, BackupPhase, DownloadTargetKind};

use crate::client::GlobalArgs;
use crate::download::{self, TlsOptions};
use crate::flags::parse_duration;

#[derive(Args, Debug)]
pub struct LogsArgs {
    name: String,
    /// How long to wait to receive logs
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: velero_api::Duration,
    #[command(flatten)]
    tls: TlsOptions,
}

pub(super) async fn logs(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    let backup = api
        .get_opt(&args.name)
        .await?
        .with_context(|| format!("backup {:?} does not exist", args.name))?;
    let phase = backup.phase().unwrap_or(BackupPhase::New);
    if !matches!(
        phase,
        BackupPhase::Completed
            | BackupPhase::PartiallyFailed
            | BackupPhase::Failed
            | BackupPhase::WaitingForPluginOperations
            | BackupPhase::WaitingForPluginOperationsPartiallyFailed
    ) {
        bail!(
            "logs for backup {:?} are not available until it's finished processing, please wait until the backup has a phase of Completed or Failed and try again",
            args.name
        );
    }
    let kind = DownloadTargetKind::BackupLog;
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
