//! `velero restore describe`.

use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use velero_api::labels;
use velero_api::v1::{DownloadTargetKind, PodVolumeRestore, Restore, RestorePhase};

use crate::client::GlobalArgs;
use crate::describe::restore::{Extras, Fetched, describe_restore};
use crate::download::{self, TlsOptions};
use crate::select;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    names: Vec<String>,
    /// Only show items matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Display additional detail in the command output.
    #[arg(long, action = ArgAction::SetTrue)]
    details: bool,
    /// For a dry run: show, for each item the restore would update or that exists and differs,
    /// the fields that differ between the cluster and the backup (implies --details). velero-rs.
    #[arg(long, action = ArgAction::SetTrue)]
    diff: bool,
    /// Print the Restore and, for a dry run, its plan as one document ('json' or 'yaml')
    /// instead of the description. velero-rs.
    #[arg(short = 'o', long, value_enum)]
    output: Option<DocumentFormat>,
    #[command(flatten)]
    tls: TlsOptions,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DocumentFormat {
    Json,
    Yaml,
}

/// Velero's wait for a describe download.
const DESCRIBE_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

async fn fetch(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    tls: &TlsOptions,
) -> Fetched {
    let got = async {
        let data = download::download(
            client,
            namespace,
            kind,
            name,
            DESCRIBE_DOWNLOAD_TIMEOUT,
            tls,
        )
        .await?;
        let data = download::maybe_gunzip(data)?;
        anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&data).context("decoding")?)
    }
    .await;
    match got {
        Ok(value) => Fetched::Got(value),
        Err(e) if download::is_not_found(&e) => Fetched::Missing,
        Err(e) => Fetched::Failed(format!("{e:#}")),
    }
}

/// Has run far enough to have written its files.
fn has_run(phase: Option<RestorePhase>) -> bool {
    !matches!(
        phase,
        None | Some(RestorePhase::New | RestorePhase::FailedValidation | RestorePhase::InProgress)
    )
}

async fn extras(
    client: &kube::Client,
    namespace: &str,
    restore: &Restore,
    details: bool,
    tls: &TlsOptions,
) -> Extras {
    let name = restore.name_any();
    let status = restore.status.clone().unwrap_or_default();
    let mut extras = Extras::default();
    let pvrs: Api<PodVolumeRestore> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!(
        "{}={}",
        labels::RESTORE_NAME,
        labels::valid_label_value(&name)
    ));
    match pvrs.list(&params).await {
        Ok(list) => extras.pod_volume_restores = list.items,
        Err(e) => eprintln!("error getting PodVolumeRestores for restore {name}: {e}"),
    }
    if status.warnings.unwrap_or(0) > 0 || status.errors.unwrap_or(0) > 0 {
        let kind = DownloadTargetKind::RestoreResults;
        extras.results = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    // Velero asks for the volume info of every restore; one that has not run has none, and
    // asking would only wait out the timeout when no server is running.
    if has_run(status.phase) {
        let kind = DownloadTargetKind::RestoreVolumeInfo;
        extras.volume_info = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    if details && status.restore_item_operations_attempted.unwrap_or(0) > 0 {
        let kind = DownloadTargetKind::RestoreItemOperations;
        extras.item_operations = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    if details {
        let kind = DownloadTargetKind::RestoreResourceList;
        extras.resource_list = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    if status.phase == Some(RestorePhase::DryRunCompleted) {
        let kind = DownloadTargetKind::RestorePlan;
        extras.plan = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    extras
}

pub(super) async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let restores =
        select::in_namespace::<Restore>(global, &args.names, args.selector.as_deref(), "restore")
            .await?;
    let client = global.client().await?;
    let namespace = global.namespace();
    let details = args.details || args.diff;
    if let Some(format) = args.output {
        let mut documents = Vec::new();
        for restore in &restores {
            let extras = extras(&client, &namespace, restore, false, &args.tls).await;
            let plan = match extras.plan {
                Some(Fetched::Got(plan)) => plan,
                Some(Fetched::Failed(e)) => {
                    anyhow::bail!("getting the plan of restore {}: {e}", restore.name_any())
                }
                Some(Fetched::Missing) | None => serde_json::Value::Null,
            };
            documents.push(serde_json::json!({ "restore": restore, "plan": plan }));
        }
        let document = match documents.len() {
            1 => documents.remove(0),
            _ => serde_json::Value::Array(documents),
        };
        let format = match format {
            DocumentFormat::Json => crate::output::Format::Json,
            DocumentFormat::Yaml => crate::output::Format::Yaml,
        };
        return crate::output::print(&document, format, &mut std::io::stdout());
    }
    let mut first = true;
    for restore in &restores {
        let mut extras = extras(&client, &namespace, restore, details, &args.tls).await;
        extras.plan_changes = args.diff;
        let text = describe_restore(restore, &extras, details);
        if first {
            first = false;
            print!("{text}");
        } else {
            print!("\n\n{text}");
        }
    }
    Ok(())
}
