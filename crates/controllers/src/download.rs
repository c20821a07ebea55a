//! DownloadRequests: a URL from which the CLI fetches a backup's or restore's files.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{Backup, DownloadRequest, DownloadRequestPhase, DownloadTargetKind, Restore};
use velero_storage::Layout;

use crate::locations;

/// How long a download URL stays valid (Velero's `DownloadURLTTL`).
pub const URL_TTL: Duration = Duration::from_secs(600);

struct Ctx {
    client: Client,
    namespace: String,
}

pub async fn run_download_controller(client: Client, namespace: String) {
    let api: Api<DownloadRequest> = Api::namespaced(client.clone(), &namespace);
    let ctx = Arc::new(Ctx { client, namespace });
    Controller::new(api, watcher::Config::default())
        .run(
            reconcile,
            |_, e: &DownloadError, _| {
                tracing::warn!("download request: {e}");
                Action::requeue(Duration::from_secs(5))
            },
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Target(String),
}

/// The object key of a download target under a location's layout.
pub fn target_key(layout: &Layout, kind: DownloadTargetKind, name: &str) -> String {
    use DownloadTargetKind::*;
    match kind {
        BackupLog => layout.backup_log(name),
        BackupContents => layout.backup_contents(name),
        BackupVolumeSnapshots => layout.backup_file(name, "volumesnapshots.json"),
        BackupItemOperations => layout.backup_file(name, "itemoperations.json"),
        BackupResourceList => layout.backup_file(name, "resource-list.json"),
        BackupResults => layout.backup_file(name, "results"),
        BackupVolumeInfos => layout.backup_file(name, "volumeinfo.json"),
        CsiBackupVolumeSnapshots => layout.backup_file(name, "csi-volumesnapshots.json"),
        CsiBackupVolumeSnapshotContents => {
            layout.backup_file(name, "csi-volumesnapshotcontents.json")
        }
        RestoreLog => layout.restore_file(name, "logs"),
        RestoreResults => layout.restore_file(name, "results"),
        RestoreResourceList => layout.restore_file(name, "resource-list.json"),
        RestoreItemOperations => layout.restore_file(name, "itemoperations.json"),
        RestoreVolumeInfo => layout.restore_volume_info(name),
    }
}

fn is_restore_target(kind: DownloadTargetKind) -> bool {
    use DownloadTargetKind::*;
    matches!(
        kind,
        RestoreLog
            | RestoreResults
            | RestoreResourceList
            | RestoreItemOperations
            | RestoreVolumeInfo
    )
}

async fn reconcile(request: Arc<DownloadRequest>, ctx: Arc<Ctx>) -> Result<Action, DownloadError> {
    let api: Api<DownloadRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    if status.phase == Some(DownloadRequestPhase::Processed) {
        let expired = status
            .expiration
            .is_none_or(|t| t.0 <= jiff::Timestamp::now());
        if expired {
            api.delete(&name, &DeleteParams::default()).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(URL_TTL));
    }
    let target = &request.spec.target;
    // A restore's files live in the location of the backup it restored.
    let backup_name = if is_restore_target(target.kind) {
        let restores: Api<Restore> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        let restore = restores
            .get_opt(&target.name)
            .await?
            .ok_or_else(|| DownloadError::Target(format!("restore {} not found", target.name)))?;
        restore.spec.backup_name.unwrap_or_default()
    } else {
        target.name.clone()
    };
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let backup = backups
        .get_opt(&backup_name)
        .await?
        .ok_or_else(|| DownloadError::Target(format!("backup {backup_name} not found")))?;
    let location_name = backup.spec.storage_location.unwrap_or_default();
    let location = locations::get_location(&ctx.client, &ctx.namespace, &location_name)
        .await
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let config = locations::location_config(&ctx.client, &ctx.namespace, &location)
        .await
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let store = velero_storage::BackupStore::open(&config)
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let key = target_key(store.layout(), target.kind, &target.name);
    let url = match store
        .download_url(&key, URL_TTL)
        .await
        .map_err(|e| DownloadError::Target(e.to_string()))?
    {
        Some(url) => url,
        // The local provider has no signed URLs; its files are on a path the CLI can read when it
        // runs on the same machine as the server (the quickstart's setup).
        None => format!(
            "file://{}",
            std::path::Path::new(&config.bucket).join(&key).display()
        ),
    };
    let expiration = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(URL_TTL.as_secs() as i64))
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
        .ok();
    let body = json!({ "status": { "phase": DownloadRequestPhase::Processed, "downloadURL": url, "expiration": expiration } });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(Action::requeue(URL_TTL))
}
