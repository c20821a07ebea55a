//! DeleteBackupRequests: remove a backup's objects from its location, then the Backup itself.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;
use velero_repository::RepositoryFormat;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::labels;
use velero_api::v1::{Backup, BackupPhase, DeleteBackupRequest, DeleteBackupRequestPhase};

use crate::locations;

/// Processed requests older than this are removed (Velero's 24 hours).
const REQUEST_TTL: Duration = Duration::from_secs(24 * 3600);

/// The phase a backup had before its deletion began: a deletion that fails, even one a restart
/// interrupted, puts it back rather than leaving the backup Deleting for good.
pub const PHASE_BEFORE_DELETION: &str = "velero-rs.io/phase-before-deletion";

struct Ctx {
    client: Client,
    namespace: String,
    metrics: Arc<crate::metrics::Metrics>,
}

pub async fn run_delete_controller(
    client: Client,
    namespace: String,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let api: Api<DeleteBackupRequest> = Api::namespaced(client.clone(), &namespace);
    let ctx = Arc::new(Ctx {
        client,
        namespace,
        metrics,
    });
    crate::run_controller(
        "delete backup request",
        crate::controller(api),
        ctx,
        reconcile,
    )
    .await;
}

async fn finish(
    api: &Api<DeleteBackupRequest>,
    name: &str,
    errors: Vec<String>,
) -> Result<(), kube::Error> {
    let body = json!({ "status": { "phase": DeleteBackupRequestPhase::Processed, "errors": if errors.is_empty() { None } else { Some(errors) } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(|_| ())
}

async fn reconcile(
    request: Arc<DeleteBackupRequest>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::Error> {
    let api: Api<DeleteBackupRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = request.name_any();
    let phase = request.phase();
    if matches!(
        phase,
        Some(DeleteBackupRequestPhase::Processed) | Some(DeleteBackupRequestPhase::InProgress)
    ) {
        let age = request
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| jiff::Timestamp::now().duration_since(t.0).as_secs())
            .unwrap_or(0);
        if age >= REQUEST_TTL.as_secs() as i64 {
            api.delete(&name, &DeleteParams::default()).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(Duration::from_secs(3600)));
    }
    let backup_name = request.spec.backup_name.clone();
    if backup_name.is_empty() {
        finish(&api, &name, vec!["spec.backupName is required".into()]).await?;
        return Ok(Action::await_change());
    }
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let Some(backup) = backups.get_opt(&backup_name).await? else {
        finish(&api, &name, vec!["backup not found".into()]).await?;
        return Ok(Action::await_change());
    };
    let backup_phase = backup.phase();
    if matches!(backup_phase, Some(BackupPhase::InProgress)) {
        finish(&api, &name, vec!["backup is still in progress".into()]).await?;
        return Ok(Action::await_change());
    }
    let location_name = backup.spec.storage_location.clone().unwrap_or_default();
    let location = match locations::get_location(&ctx.client, &ctx.namespace, &location_name).await
    {
        Ok(l) => Some(l),
        Err(locations::LocationError::NotFound(_)) => None,
        Err(e) => {
            finish(&api, &name, vec![e.to_string()]).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(l) = &location {
        if locations::is_read_only(l) {
            finish(&api, &name, vec![format!("cannot delete backup because backup storage location {location_name} is currently in read-only mode")]).await?;
            return Ok(Action::await_change());
        }
        if !l.is_available() {
            finish(&api, &name, vec![format!("cannot delete backup because backup storage location {location_name} is currently in Unavailable state")]).await?;
            return Ok(Action::await_change());
        }
    } else if !location_name.is_empty() {
        finish(
            &api,
            &name,
            vec![format!("backup storage location {location_name} not found")],
        )
        .await?;
        return Ok(Action::await_change());
    }

    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": { "phase": DeleteBackupRequestPhase::InProgress } })),
    )
    .await?;
    let previous_phase = backup_phase;
    let schedule = crate::metrics::Metrics::schedule(
        backup
            .labels()
            .get(labels::SCHEDULE_NAME)
            .map(String::as_str),
    );
    ctx.metrics
        .backup_deletion_attempt
        .get_or_create(&schedule)
        .inc();
    // Resumed after a restart, the backup is Deleting already and its annotation says from what.
    let restore_phase = match previous_phase {
        Some(BackupPhase::Deleting) => backup
            .annotations()
            .get(PHASE_BEFORE_DELETION)
            .and_then(|p| serde_json::from_value(json!(p)).ok())
            // Deleting without our note (another server's doing): the files are still there, so
            // it is a finished backup; Completed is the phase that lets it be deleted again.
            .unwrap_or(BackupPhase::Completed),
        other => other.unwrap_or(BackupPhase::Completed),
    };
    backups
        .patch(
            &backup_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({
                "metadata": { "annotations": { PHASE_BEFORE_DELETION: restore_phase } },
                "status": { "phase": BackupPhase::Deleting },
            })),
        )
        .await?;

    let mut errors = Vec::new();
    if let Some(l) = &location {
        match locations::open_store(&ctx.client, &ctx.namespace, l).await {
            Ok(store) => {
                // The volume data first (Velero's order): if its repository cannot be reached, the
                // backup stays, to be deleted again, rather than leave snapshots nothing names.
                errors.extend(forget_pod_volume_snapshots(&ctx, &store, &backup_name).await);
                if errors.is_empty()
                    && let Err(e) = store.delete_backup(&backup_name).await
                {
                    errors.push(format!("error deleting backup from backup storage: {e}"));
                }
            }
            Err(e) => errors.push(format!("error getting the backup store: {e}")),
        }
    }
    if errors.is_empty() {
        errors.extend(delete_restores_of(&ctx, &backup_name).await);
    }
    if errors.is_empty() {
        if let Err(e) = backups.delete(&backup_name, &DeleteParams::default()).await {
            errors.push(format!(
                "error deleting backup {}/{backup_name}: {e}",
                ctx.namespace
            ));
        }
    } else {
        // Leave the backup as it was, so the request can be retried once the store is back.
        if let Err(e) = backups
            .patch(
                &backup_name,
                &PatchParams::default(),
                &Patch::Merge(&json!({
                    "metadata": { "annotations": { PHASE_BEFORE_DELETION: null } },
                    "status": { "phase": restore_phase },
                })),
            )
            .await
        {
            tracing::warn!(backup = %backup_name, "putting the backup back in its phase after a failed deletion: {e}");
        }
    }
    let ok = errors.is_empty();
    let outcome = if ok {
        &ctx.metrics.backup_deletion_success
    } else {
        &ctx.metrics.backup_deletion_failure
    };
    outcome.get_or_create(&schedule).inc();
    finish(&api, &name, errors).await?;
    if ok {
        // Everything is gone: earlier requests for the same backup are moot.
        let selector = format!(
            "{}={}",
            labels::BACKUP_NAME,
            labels::valid_label_value(&backup_name)
        );
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            for other in list.items.iter().filter(|r| r.name_any() != name) {
                if let Err(e) = api
                    .delete(&other.name_any(), &DeleteParams::default())
                    .await
                {
                    tracing::warn!(request = %other.name_any(), "deleting an older deletion request: {e}");
                }
            }
        }
    }
    Ok(Action::await_change())
}

/// Forgets the snapshots of the backup's PodVolumeBackups in their namespaces' repositories
/// (Velero's `deletePodVolumeSnapshots`); their data goes at the repository's next maintenance.
async fn forget_pod_volume_snapshots(
    ctx: &Ctx,
    store: &velero_storage::BackupStore,
    backup_name: &str,
) -> Vec<String> {
    let api: Api<velero_api::v1::PodVolumeBackup> =
        Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let selector = format!(
        "{}={}",
        labels::BACKUP_NAME,
        labels::valid_label_value(backup_name)
    );
    let pvbs = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            return vec![format!(
                "error listing the pod volume backups of {backup_name}: {e}"
            )];
        }
    };
    // Per repository: a volume namespace's kopia and restic repositories are two.
    let mut by_repository: BTreeMap<(String, RepositoryFormat), Vec<String>> = BTreeMap::new();
    for pvb in pvbs {
        let format = velero_podvolume::format_of(pvb.spec.uploader_type);
        let snapshot = pvb
            .status
            .and_then(|s| s.snapshot_id)
            .filter(|s| !s.is_empty());
        if let (Some(ns), Some(snapshot)) = (pvb.spec.pod.namespace, snapshot) {
            by_repository
                .entry((ns, format))
                .or_default()
                .push(snapshot);
        }
    }
    if by_repository.is_empty() {
        return Vec::new();
    }
    let password = match velero_podvolume::read_password(&ctx.client, &ctx.namespace).await {
        Ok(p) => p,
        Err(e) => return vec![format!("error deleting pod volume snapshots: {e}")],
    };
    let mut errors = Vec::new();
    for ((namespace, format), snapshots) in by_repository {
        let location = velero_podvolume::repository_location(store, &namespace, format);
        let count = snapshots.len();
        let forgot = crate::pod_volume::repositories::with_repository(
            format,
            location,
            password.clone(),
            crate::pod_volume::repositories::Open::Existing,
            move |mut repo| repo.forget(&snapshots),
        )
        .await;
        match forgot {
            Ok(()) => {
                tracing::info!(backup = %backup_name, %namespace, count, "forgot pod volume snapshots")
            }
            // Gone with its repository already: nothing left to forget.
            Err(velero_repository::RepositoryError::Missing(_)) => {}
            Err(e) => errors.push(format!(
                "error deleting the pod volume snapshots of namespace {namespace}: {e}"
            )),
        }
    }
    errors
}

/// Velero deletes the Restores made from a deleted backup (their finalizer removes their files)
/// and waits up to a minute for them to go.
async fn delete_restores_of(ctx: &Ctx, backup_name: &str) -> Vec<String> {
    let restores: Api<velero_api::v1::Restore> =
        Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let of_backup = |list: &[velero_api::v1::Restore]| -> Vec<(String, String)> {
        list.iter()
            .filter(|r| r.spec.backup_name.as_deref() == Some(backup_name))
            .map(|r| (r.name_any(), r.uid().unwrap_or_default()))
            .collect()
    };
    let names = match restores.list(&ListParams::default()).await {
        Ok(list) => of_backup(&list.items),
        Err(e) => {
            return vec![format!(
                "error listing the restores of backup {backup_name}: {e}"
            )];
        }
    };
    let mut errors = Vec::new();
    for (name, _) in &names {
        if let Err(e) = restores.delete(name, &DeleteParams::default()).await {
            errors.push(format!("error deleting restore {name}: {e}"));
        }
    }
    // Watched, not polled; a restore still there after the minute is left to its finalizer.
    let gone = names.iter().map(|(name, uid)| {
        kube::runtime::wait::await_condition(
            restores.clone(),
            name,
            kube::runtime::wait::conditions::is_deleted(uid),
        )
    });
    let _ = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(gone)).await;
    errors
}

/// Asks for a backup's deletion with a DeleteBackupRequest (`generateName: <backup>-`), unless one
/// for it is already waiting or running. Garbage collection and schedule retention both use it.
pub(crate) async fn request_deletion(
    client: &Client,
    namespace: &str,
    backup_name: &str,
    backup_uid: Option<&str>,
) -> Result<bool, kube::Error> {
    let requests: Api<DeleteBackupRequest> = Api::namespaced(client.clone(), namespace);
    let label = labels::valid_label_value(backup_name);
    let pending = requests
        .list(&ListParams::default().labels(&format!("{}={label}", labels::BACKUP_NAME)))
        .await?
        .items
        .iter()
        .any(|r| r.phase() != Some(DeleteBackupRequestPhase::Processed));
    if pending {
        return Ok(false);
    }
    let mut request_labels = serde_json::Map::new();
    request_labels.insert(labels::BACKUP_NAME.into(), label.into());
    if let Some(uid) = backup_uid {
        request_labels.insert(labels::BACKUP_UID.into(), uid.into());
    }
    let request: DeleteBackupRequest = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": {"generateName": format!("{backup_name}-"), "namespace": namespace, "labels": request_labels},
        "spec": {"backupName": backup_name},
    }))
    .map_err(kube::Error::SerdeError)?;
    requests
        .create(&kube::api::PostParams::default(), &request)
        .await?;
    Ok(true)
}

/// Picks up deletions a previous server left half done: their requests are processed again, and
/// a backup left Deleting without a request gets one. Velero leaves both stuck.
pub async fn resume_interrupted_deletions(
    client: &Client,
    namespace: &str,
) -> Result<(), kube::Error> {
    let requests: Api<DeleteBackupRequest> = Api::namespaced(client.clone(), namespace);
    for request in requests.list(&ListParams::default()).await? {
        if request.phase() == Some(DeleteBackupRequestPhase::InProgress) {
            tracing::info!(request = %request.name_any(), "resuming an interrupted backup deletion");
            let body = json!({ "status": { "phase": DeleteBackupRequestPhase::New } });
            requests
                .patch(
                    &request.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await?;
        }
    }
    let backups: Api<Backup> = Api::namespaced(client.clone(), namespace);
    for backup in backups.list(&ListParams::default()).await? {
        if backup.phase() == Some(BackupPhase::Deleting)
            && request_deletion(
                client,
                namespace,
                &backup.name_any(),
                backup.uid().as_deref(),
            )
            .await?
        {
            tracing::info!(backup = %backup.name_any(), "backup left Deleting: requested its deletion again");
        }
    }
    Ok(())
}
