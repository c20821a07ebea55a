//! `velero backup describe`.

use std::time::Duration;

use anyhow::bail;
use clap::{ArgAction, Args};
use kube::ResourceExt;
use velero_api::v1::{Backup, BackupPhase, DownloadTargetKind};

use crate::client::GlobalArgs;
use crate::describe::backup::{Extras, describe_backup};
use crate::download::{self, TlsOptions};
use crate::output::{self, Format};
use crate::select;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    names: Vec<String>,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Display additional detail in the command output
    #[arg(long, action = ArgAction::SetTrue)]
    details: bool,
    #[command(flatten)]
    tls: TlsOptions,
    /// Output display format: plaintext or json
    #[arg(short = 'o', long, default_value = "plaintext")]
    output: String,
}

/// One of a backup's files, or the error that kept describe from getting it.
async fn fetch(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    tls: &TlsOptions,
) -> Result<serde_json::Value, String> {
    let got = async {
        let timeout = Duration::from_secs(60);
        let data = download::download(client, namespace, kind, name, timeout, tls).await?;
        let data = download::maybe_gunzip(data)?;
        anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&data)?)
    }
    .await;
    got.map_err(|e| format!("{e:#}"))
}

/// The files `describe --details` shows of a finished backup.
async fn extras(client: &kube::Client, namespace: &str, name: &str, tls: &TlsOptions) -> Extras {
    let kind = DownloadTargetKind::BackupResourceList;
    let resource_list = Some(fetch(client, namespace, kind, name, tls).await);
    let kind = DownloadTargetKind::BackupResults;
    let results = Some(fetch(client, namespace, kind, name, tls).await);
    Extras {
        resource_list,
        results,
        pod_volume_backups: Vec::new(),
    }
}

/// The backup's PodVolumeBackups; none when they cannot be listed (describe shows the rest).
async fn pod_volume_backups(
    client: &kube::Client,
    namespace: &str,
    backup: &str,
) -> Vec<velero_api::v1::PodVolumeBackup> {
    let api: kube::Api<velero_api::v1::PodVolumeBackup> =
        kube::Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "{}={}",
        velero_api::labels::BACKUP_NAME,
        velero_api::labels::valid_label_value(backup)
    );
    api.list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

pub(super) async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let backups =
        select::in_namespace::<Backup>(global, &args.names, args.selector.as_deref(), "backup")
            .await?;
    if args.output == "json" {
        if backups.len() != 1 {
            bail!("JSON output is only available for a single backup");
        }
        return output::print(
            &serde_json::to_value(&backups[0])?,
            Format::Json,
            &mut std::io::stdout(),
        );
    }
    let mut first = true;
    for backup in &backups {
        let done = backup.phase().is_some_and(|p| {
            matches!(
                p,
                BackupPhase::Completed | BackupPhase::PartiallyFailed | BackupPhase::Failed
            )
        });
        let client = global.client().await?;
        let namespace = global.namespace();
        let mut extras = if args.details && done {
            extras(&client, &namespace, &backup.name_any(), &args.tls).await
        } else {
            Extras::default()
        };
        extras.pod_volume_backups =
            pod_volume_backups(&client, &namespace, &backup.name_any()).await;
        let out = describe_backup(backup, &extras, args.details);
        if !first {
            println!("\n");
        }
        first = false;
        print!("{out}");
    }
    Ok(())
}
