//! The restore controller: New → InProgress → (Finalizing while exec hooks run) → Completed |
//! PartiallyFailed | Failed, or
//! FailedValidation with Velero's messages; a finalizer removes `restores/<name>/` from storage
//! when a Restore is deleted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use velero_api::v1::{Backup, Restore, RestorePhase, RestoreProgress, RestoreStatus};
use velero_restore::request::Prepared;
use velero_restore::{Priorities, Progress, RestoreParams};
use velero_storage::{BackupStore, RestoreFiles};

use crate::locations;
use crate::operation::{self, OperationError, ProgressReporter, patch};

pub const FINALIZER: &str = "restores.velero.io/external-resources-finalizer";

/// The failure reason Velero records for a restore a restarted server finds InProgress.
pub const RESTART_FAILURE: &str =
    "found a restore with status \"InProgress\" during the server starting, mark it as \"Failed\"";

#[derive(Clone)]
pub struct RestoreControllerConfig {
    pub namespace: String,
    pub priorities: Priorities,
    /// Requests in flight at once per restore (the window narrows under back-pressure).
    pub max_in_flight: usize,
    pub resource_timeout: Duration,
    pub terminating_timeout: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How long a restore waits for one pod volume's restore.
    pub fs_backup_timeout: Duration,
}

struct Ctx {
    client: Client,
    config: RestoreControllerConfig,
}

/// Marks the restores a server left InProgress as Failed with `reason`: nothing resumes them.
pub async fn fail_interrupted_restores(
    client: &Client,
    namespace: &str,
    reason: &str,
) -> Result<(), kube::Error> {
    let api: Api<Restore> = Api::namespaced(client.clone(), namespace);
    crate::fail_interrupted(
        &api,
        // A Finalizing restore's exec hooks were tasks of the server that stopped: nothing waits
        // for them any more.
        |r| {
            matches!(
                r.phase(),
                Some(
                    RestorePhase::InProgress
                        | RestorePhase::Finalizing
                        | RestorePhase::FinalizingPartiallyFailed
                )
            )
        },
        reason,
    )
    .await
}

pub async fn run_restore_controller(client: Client, config: RestoreControllerConfig) {
    let api: Api<Restore> = Api::namespaced(client.clone(), &config.namespace);
    let ctx = Arc::new(Ctx { client, config });
    crate::run_controller("restore", crate::controller(api), ctx, reconcile).await;
}

/// kube-runtime's `finalizer` adds and removes our finalizer with JSON patches that test the list
/// first, so another writer's finalizer is never dropped; deleting a Restore removes its files.
async fn reconcile(
    restore: Arc<Restore>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::runtime::finalizer::Error<OperationError>> {
    use kube::runtime::finalizer::{Event, finalizer};
    let api: Api<Restore> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    finalizer(&api, FINALIZER, restore, |event| async {
        match event {
            Event::Apply(restore) => start(restore, ctx.clone(), api.clone()).await,
            Event::Cleanup(restore) => {
                if let Err(e) = delete_restore_files(&ctx, &restore).await {
                    tracing::warn!(restore = %restore.name_any(), "could not remove the restore's files: {e}");
                }
                Ok(Action::await_change())
            }
        }
    })
    .await
}

/// Runs a New restore; any other phase is left as it is.
async fn start(
    restore: Arc<Restore>,
    ctx: Arc<Ctx>,
    api: Api<Restore>,
) -> Result<Action, OperationError> {
    let phase = restore.phase();
    if !matches!(phase, None | Some(RestorePhase::New)) {
        return Ok(Action::await_change());
    }
    let task = {
        let (ctx, api, restore) = (ctx.clone(), api.clone(), restore.clone());
        tokio::spawn(async move { process(&ctx, &api, &restore).await })
    };
    operation::joined::<Restore, _>(task.await)??;
    Ok(Action::await_change())
}

/// The store the backup a restore read lives in, to remove the restore's files from.
async fn find_store(ctx: &Ctx, backup_name: &str) -> Result<BackupStore, String> {
    let ns = &ctx.config.namespace;
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), ns);
    let backup = backups
        .get(backup_name)
        .await
        .map_err(|e| format!("Error retrieving backup: {}", crate::kube_message(&e)))?;
    let location_name = backup.spec.storage_location.clone().unwrap_or_default();
    let location = locations::get_location(&ctx.client, ns, &location_name)
        .await
        .map_err(|e| format!("Error retrieving backup: {e}"))?;
    let available = location.is_available();
    if !available {
        return Err(format!(
            "The BSL {location_name} is unavailable, cannot retrieve the backup"
        ));
    }
    let store = locations::open_store(&ctx.client, ns, &location)
        .await
        .map_err(|e| format!("The BSL {location_name} cannot be opened: {e}"))?;
    Ok(store)
}

async fn delete_restore_files(ctx: &Ctx, restore: &Restore) -> Result<(), String> {
    let Some(backup) = restore
        .spec
        .backup_name
        .as_deref()
        .filter(|b| !b.is_empty())
    else {
        return Ok(());
    };
    // Read-only protects backups; a restore's own files are written to the location whatever its
    // mode (Velero's behaviour, which migrations rely on to read restore logs), so they are
    // removed with the restore too rather than left behind forever.
    match find_store(ctx, backup).await {
        Ok(store) => store
            .delete_restore(&restore.name_any())
            .await
            .map_err(|e| e.to_string()),
        // Velero skips the clean-up when the backup or its location is gone.
        Err(e) => {
            tracing::info!(restore = %restore.name_any(), "not removing restore files: {e}");
            Ok(())
        }
    }
}

async fn process(ctx: &Ctx, api: &Api<Restore>, restore: &Restore) -> Result<(), OperationError> {
    let name = restore.name_any();
    let ns = &ctx.config.namespace;
    let mut prepared = Prepared::new(&ctx.client, ns, restore).await;
    let mut store = None;
    if let (true, Some(location)) = (prepared.errors.is_empty(), &prepared.location) {
        match locations::open_store(&ctx.client, ns, location).await {
            Ok(s) => store = Some(s),
            Err(e) => prepared.errors.push(format!(
                "The BSL {} cannot be opened: {e}",
                location.name_any()
            )),
        }
    }
    let metrics = &ctx.config.metrics;
    let mut spec = prepared.restore.spec.clone();
    let schedule = crate::metrics::Metrics::schedule(spec.schedule_name.as_deref());
    let (true, Some(store)) = (prepared.errors.is_empty(), store) else {
        let errors = &prepared.errors;
        metrics
            .restore_validation_failed
            .get_or_create(&schedule)
            .inc();
        let fields = json!({ "spec": spec, "status": { "completionTimestamp": crate::now() } });
        return operation::validation_failed(api, &name, errors, fields).await;
    };
    velero_api::Duration::default_if_zero(
        &mut spec.item_operation_timeout,
        velero_api::Duration::from_hours(4),
    );
    patch(
        api,
        &name,
        json!({
            "spec": spec,
            "status": { "phase": RestorePhase::InProgress, "startTimestamp": crate::now() },
        }),
    )
    .await?;
    let backup_name = spec.backup_name.clone().unwrap_or_default();
    tracing::info!(restore = %name, backup = %backup_name, "restore started");
    metrics.restore_attempt.get_or_create(&schedule).inc();

    prepared.restore.spec = spec;
    let status = match run(ctx, api, prepared, &store).await {
        Ok(status) => status,
        Err(reason) => {
            tracing::warn!(restore = %name, "restore failed: {reason}");
            RestoreStatus {
                phase: Some(RestorePhase::Failed),
                failure_reason: Some(reason),
                completion_timestamp: Some(crate::now()),
                ..RestoreStatus::default()
            }
        }
    };
    // A dry run restored nothing: it counts as neither a success nor a failure of a restore.
    let counter = match status.phase {
        Some(RestorePhase::Completed) => Some(&metrics.restore_success),
        Some(RestorePhase::PartiallyFailed) => Some(&metrics.restore_partial_failure),
        Some(RestorePhase::DryRunCompleted) => None,
        _ => Some(&metrics.restore_failed),
    };
    if let Some(counter) = counter {
        counter.get_or_create(&schedule).inc();
    }
    patch(api, &name, json!({ "status": status })).await?;
    Ok(())
}

async fn run(
    ctx: &Ctx,
    api: &Api<Restore>,
    prepared: Prepared,
    store: &BackupStore,
) -> Result<RestoreStatus, String> {
    let name = prepared.restore.name_any();
    let name = name.as_str();
    let dry_run = prepared.restore.spec.dry_run == Some(true);
    let backup_name = prepared
        .restore
        .spec
        .backup_name
        .clone()
        .unwrap_or_default();
    let key = store.layout().backup_contents(&backup_name);
    let reader = store
        .get_object(&key)
        .await
        .map_err(|e| format!("error downloading the backup tarball {key}: {e}"))?;
    let tarball = tokio_util::io::SyncIoBridge::new(reader);
    let fresh_log = || velero_report::OperationLog::restore(&ctx.config.namespace, name);
    let request = match prepared.resolve(&ctx.client, &ctx.config.namespace).await {
        Ok(request) => request,
        Err(e) => return Err(upload_failure(store, name, fresh_log(), e.to_string()).await),
    };
    let restore = &request.restore;
    let spec = restore.spec.clone();
    let hook_wait_limit = spec
        .item_operation_timeout
        .and_then(|t| t.to_std())
        .unwrap_or(Duration::from_secs(4 * 3600));
    let params = RestoreParams {
        velero_namespace: ctx.config.namespace.clone(),
        restore_name: name.to_string(),
        backup_name: backup_name.clone(),
        spec,
        priorities: ctx.config.priorities.clone(),
        max_in_flight: ctx.config.max_in_flight,
        resource_timeout: ctx.config.resource_timeout,
        terminating_timeout: ctx.config.terminating_timeout,
        modifiers: request.modifiers,
        storage_classes: request.storage_classes,
        image_rules: request.image_rules,
        scratch_dir: None,
        hooks: request.hooks,
        hook_wait_limit,
        pod_volumes: pod_volume_data(ctx, store, &backup_name, restore).await?,
        pod_volume_restorer: (!dry_run).then(|| {
            Arc::new(crate::pod_volume::restore::Restorer::new(
                ctx.client.clone(),
                &ctx.config.namespace,
                restore,
                ctx.config.fs_backup_timeout,
            )) as Arc<dyn velero_restore::pod_volumes::PodVolumeRestorer>
        }),
        dry_run,
    };

    let reporter = ProgressReporter::start(
        api.clone(),
        name.to_string(),
        |p: Progress| json!({ "progress": { "totalItems": p.total_items, "itemsRestored": p.items_restored } }),
    );
    let result = velero_restore::run(
        ctx.client.clone(),
        request.discovery,
        request.filter,
        params,
        tarball,
        &|p| reporter.report(p),
    )
    .await;
    reporter.stop();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(failure) => {
            let reason = failure.error.to_string();
            return Err(upload_failure(store, name, failure.log, reason).await);
        }
    };
    // Velero's restore stays Finalizing while post-restore exec hooks wait for their containers.
    if outcome.work_pending() {
        let phase = if outcome.errors_so_far() > 0 {
            RestorePhase::FinalizingPartiallyFailed
        } else {
            RestorePhase::Finalizing
        };
        let count = crate::operation::status_count;
        let body = json!({ "status": { "phase": phase, "progress": {
            "totalItems": count(outcome.total_items), "itemsRestored": count(outcome.items_restored) } } });
        if let Err(e) = patch(api, name, body).await {
            tracing::warn!(restore = %name, "marking the restore Finalizing: {e}");
        }
        tracing::info!(restore = %name, "waiting for post-restore exec hooks");
    }
    let items_restored = outcome.items_restored;
    let total_items = outcome.total_items;
    let resource_list = crate::gzip_json(&outcome.resource_list);
    let plan = outcome.plan.as_ref().map(crate::gzip_json);
    let finished = outcome.finish().await;

    let none = crate::gzip_json(&Value::Array(vec![]));
    let files = RestoreFiles {
        log: Some(Bytes::from(finished.log_gz)),
        results: Some(crate::gzip_json(&finished.results)),
        resource_list: Some(resource_list),
        item_operations: Some(none.clone()),
        volume_info: Some(none),
        plan,
    };
    store
        .put_restore(name, files)
        .await
        .map_err(|e| format!("error uploading the restore's files: {e}"))?;
    let tally = operation::Tally::of(&finished.results);
    tracing::info!(restore = %name, items = items_restored, warnings = ?tally.warnings, errors = ?tally.errors, "restore completed");
    let count = |n: u64| Some(crate::operation::status_count(n));
    Ok(RestoreStatus {
        phase: Some(if dry_run {
            RestorePhase::DryRunCompleted
        } else if tally.partially_failed {
            RestorePhase::PartiallyFailed
        } else {
            RestorePhase::Completed
        }),
        completion_timestamp: Some(crate::now()),
        warnings: tally.warnings,
        errors: tally.errors,
        progress: Some(RestoreProgress {
            total_items: count(total_items),
            items_restored: count(items_restored),
        }),
        hook_status: crate::operation::hook_status(finished.hooks),
        ..RestoreStatus::default()
    })
}

/// As for a failed backup: the log and results say why, for `velero restore logs`. Returns the
/// reason for the Restore's status.
async fn upload_failure(
    store: &velero_storage::BackupStore,
    name: &str,
    log: velero_report::OperationLog,
    reason: String,
) -> String {
    let ended = operation::FailureFiles::new(log, "restore", &reason);
    let files = RestoreFiles {
        log: Some(ended.log),
        results: Some(ended.results),
        ..RestoreFiles::default()
    };
    if let Err(e) = store.put_restore(name, files).await {
        tracing::warn!(restore = %name, "uploading the log of a failed restore: {e}");
    }
    reason
}
/// The backup's completed pod volume backups (`<backup>-podvolumebackups.json.gz`, so a backup
/// synced from another cluster restores its volumes too) and the restore helper's image: the
/// `velero.io/pod-volume-restore` plugin ConfigMap's, else the server's own.
async fn pod_volume_data(
    ctx: &Ctx,
    store: &BackupStore,
    backup: &str,
    restore: &Restore,
) -> Result<velero_restore::pod_volumes::PodVolumeData, String> {
    use tokio::io::AsyncReadExt as _;
    let key = store
        .layout()
        .backup_file(backup, velero_storage::BackupFile::PodVolumeBackups);
    let pvbs: Vec<Value> = match store.get_object(&key).await {
        Ok(mut reader) => {
            let mut gz = Vec::new();
            reader
                .read_to_end(&mut gz)
                .await
                .map_err(|e| format!("reading {key}: {e}"))?;
            let decoder = flate2::read::GzDecoder::new(&gz[..]);
            serde_json::from_reader::<_, Option<Vec<Value>>>(decoder)
                .map_err(|e| format!("reading {key}: {e}"))?
                .unwrap_or_default()
        }
        Err(velero_storage::StorageError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(format!("reading {key}: {e}")),
    };
    let config = velero_restore::request::plugin_config(
        &ctx.client,
        &ctx.config.namespace,
        "velero.io/pod-volume-restore",
    )
    .await
    .unwrap_or_default();
    let image = match config.get("image").filter(|i| !i.is_empty()) {
        Some(image) => Some(image.clone()),
        None => server_image(ctx).await,
    };
    let helper = velero_restore::pod_volumes::RestoreHelper {
        image,
        command: config.get("command").filter(|c| !c.is_empty()).cloned(),
    };
    let uid = restore.metadata.uid.clone().unwrap_or_default();
    Ok(velero_restore::pod_volumes::PodVolumeData::new(
        &pvbs, helper, &uid,
    ))
}

/// The image of the server's Deployment `velero` (Velero's `GetVeleroServerImage`).
async fn server_image(ctx: &Ctx) -> Option<String> {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let deployment = deployments.get_opt("velero").await.ok().flatten()?;
    deployment
        .spec?
        .template
        .spec?
        .containers
        .into_iter()
        .find(|c| c.name == "velero")
        .and_then(|c| c.image)
}
