//! Repository maintenance (Velero's pkg/controller/backup_repository_controller.go): each ready
//! BackupRepository is pruned every `maintenanceFrequency`, removing the data no snapshot references
//! since backups were deleted. Each repository is its own reconcile, so a long prune never holds up
//! another namespace's backups or maintenance.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{BackupRepository, BackupRepositoryPhase, MaintenanceResult, UploaderType};

/// Velero keeps the three latest maintenance results (before v1.15).
const HISTORY: usize = 3;

pub(crate) struct Ctx {
    client: Client,
    namespace: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MaintenanceError(String);

pub async fn run_maintenance_controller(client: Client, namespace: String) {
    let api: Api<BackupRepository> = Api::namespaced(client.clone(), &namespace);
    let ctx = Arc::new(Ctx { client, namespace });
    crate::run_controller(
        "repository maintenance",
        crate::controller(api),
        ctx,
        reconcile,
    )
    .await;
}

async fn reconcile(repo: Arc<BackupRepository>, ctx: Arc<Ctx>) -> Result<Action, MaintenanceError> {
    let status = repo.status.clone().unwrap_or_default();
    if repo.spec.repository_type == UploaderType::Unset
        || status.phase != Some(BackupRepositoryPhase::Ready)
    {
        return Ok(Action::await_change());
    }
    let name = repo.name_any();
    let api: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let frequency = repo
        .spec
        .maintenance_frequency
        .to_std()
        .filter(|f| !f.is_zero())
        .unwrap_or(match repo.spec.repository_type {
            UploaderType::Kopia => Duration::from_secs(3600),
            _ => Duration::from_secs(7 * 24 * 3600),
        });
    let now = jiff::Timestamp::now();
    // A new repository's first maintenance is one period after it became ready, as in Velero.
    let Some(last) = status.last_maintenance_time.as_ref().map(|t| t.0) else {
        let body = json!({ "status": { "lastMaintenanceTime": crate::now() } });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| MaintenanceError(format!("updating BackupRepository {name}: {e}")))?;
        return Ok(Action::requeue(frequency));
    };
    let since = Duration::try_from(now.duration_since(last)).unwrap_or_default();
    if since < frequency {
        return Ok(Action::requeue(frequency - since));
    }
    let started = crate::now();
    let result = prune(&ctx, &repo).await;
    let (outcome, message) = match &result {
        Ok(()) => (MaintenanceResult::Succeeded, None),
        Err(e) => (MaintenanceResult::Failed, Some(e.to_string())),
    };
    match &result {
        Ok(()) => tracing::info!(repository = %name, "repository maintenance done"),
        Err(e) => tracing::warn!(repository = %name, "repository maintenance failed: {e}"),
    }
    let mut history = status.recent_maintenance.clone().unwrap_or_default();
    history.push(velero_api::v1::BackupRepositoryMaintenanceStatus {
        result: Some(outcome),
        start_timestamp: Some(started),
        complete_timestamp: Some(crate::now()),
        message,
    });
    let keep_from = history.len().saturating_sub(HISTORY);
    let body = json!({ "status": {
        "lastMaintenanceTime": crate::now(),
        "recentMaintenance": history[keep_from..],
    } });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| MaintenanceError(format!("updating BackupRepository {name}: {e}")))?;
    Ok(Action::requeue(frequency))
}

#[derive(Debug, thiserror::Error)]
enum PruneError {
    #[error(transparent)]
    Access(#[from] crate::pod_volume::repositories::AccessError),
    #[error(transparent)]
    Repository(#[from] velero_repository::RepositoryError),
}

async fn prune(ctx: &Ctx, repo: &BackupRepository) -> Result<(), PruneError> {
    let format = velero_podvolume::format_of(repo.spec.repository_type);
    let (location, password) = crate::pod_volume::repositories::find(
        &ctx.client,
        &ctx.namespace,
        &repo.spec.backup_storage_location,
        &repo.spec.volume_namespace,
        format,
    )
    .await?;
    crate::pod_volume::repositories::with_repository(
        format,
        location,
        password,
        crate::pod_volume::repositories::Open::Existing,
        |mut r| r.maintain(),
    )
    .await?;
    Ok(())
}
