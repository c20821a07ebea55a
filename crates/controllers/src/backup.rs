//! The backup controller: New → InProgress → Completed | PartiallyFailed | Failed, or
//! FailedValidation, as Velero's; several backups run at once when their namespaces do not overlap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use velero_api::labels;
use velero_api::v1::{Backup, BackupPhase};
use velero_backup::engine::{self, BackupParams, Progress};
use velero_backup::request::Prepared;
use velero_cluster::api::ApiReader;
use velero_storage::{BackupFiles, BackupStore};

use crate::operation::{self, OperationError, ProgressReporter, patch};

use crate::locations;

/// The failure reason Velero records for a backup a restarted server finds InProgress.
pub const RESTART_FAILURE: &str =
    "found a backup with status \"InProgress\" during the server starting, mark it as \"Failed\"";

#[derive(Clone)]
pub struct BackupControllerConfig {
    pub namespace: String,
    pub default_backup_ttl: velero_api::Duration,
    pub default_location: String,
    pub concurrency: usize,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub fs_backup_timeout: Duration,
    /// `--uploader-type`: the format pod volume data is written in.
    pub uploader_type: velero_api::v1::UploaderType,
}

struct Ctx {
    client: Client,
    config: BackupControllerConfig,
    admission: Mutex<Admission>,
    /// Wakes the queued backups (by name) when a running one ends.
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Backup>>,
}

/// The backups running, and those queued behind them; one lock, so a backup that is queued while
/// another ends is always woken.
#[derive(Default)]
struct Admission {
    running: Vec<(String, NamespaceSet)>,
    queued: std::collections::BTreeSet<String>,
}

/// The namespaces a backup may touch, conservatively: an explicit list, or everything.
#[derive(Clone, Debug, PartialEq)]
enum NamespaceSet {
    All,
    Only(Vec<String>),
}

impl NamespaceSet {
    fn of(backup: &Backup) -> NamespaceSet {
        let included = backup.spec.included_namespaces.clone().unwrap_or_default();
        let wild = |n: &String| n.contains(['*', '?', '[']);
        if included.is_empty() || included.iter().any(wild) {
            NamespaceSet::All
        } else {
            NamespaceSet::Only(included)
        }
    }

    fn overlaps(&self, other: &NamespaceSet) -> bool {
        match (self, other) {
            (NamespaceSet::Only(a), NamespaceSet::Only(b)) => a.iter().any(|n| b.contains(n)),
            _ => true,
        }
    }
}

/// Marks the backups a server left InProgress as Failed with `reason`: nothing resumes them.
/// Velero does it at start ([`RESTART_FAILURE`]); we also do it at a clean shutdown.
pub async fn fail_interrupted_backups(
    client: &Client,
    namespace: &str,
    reason: &str,
) -> Result<(), kube::Error> {
    let api: Api<Backup> = Api::namespaced(client.clone(), namespace);
    crate::fail_interrupted(&api, |b| b.phase() == Some(BackupPhase::InProgress), reason).await
}

pub async fn run_backup_controller(client: Client, config: BackupControllerConfig) {
    let api: Api<Backup> = Api::namespaced(client.clone(), &config.namespace);
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let ctx = Arc::new(Ctx {
        client,
        config,
        admission: Mutex::new(Admission::default()),
        wake,
    });
    let controller = crate::controller(api).reconcile_on(woken);
    crate::run_controller("backup", controller, ctx, reconcile).await;
}

async fn reconcile(backup: Arc<Backup>, ctx: Arc<Ctx>) -> Result<Action, OperationError> {
    let phase = backup.phase();
    if !matches!(
        phase,
        None | Some(BackupPhase::New) | Some(BackupPhase::Queued)
    ) {
        return Ok(Action::await_change());
    }
    if backup.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = backup.name_any();
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);

    // Two backups of the same namespaces would race on the same objects: wait for the other.
    let set = NamespaceSet::of(&backup);
    let admitted = {
        let mut admission = velero_report::locked(&ctx.admission);
        let busy = admission.running.len() >= ctx.config.concurrency.max(1)
            || admission.running.iter().any(|(_, s)| s.overlaps(&set));
        if busy {
            admission.queued.insert(name.clone());
        } else {
            admission.queued.remove(&name);
            admission.running.push((name.clone(), set));
        }
        !busy
    };
    if !admitted {
        if phase != Some(BackupPhase::Queued) {
            patch(
                &api,
                &name,
                json!({ "status": { "phase": BackupPhase::Queued } }),
            )
            .await?;
        }
        // Woken when a running backup ends.
        return Ok(Action::await_change());
    }
    // Run on its own task: a backup outlives a watch event, and this keeps the reconciler's future
    // small (and provably Send).
    let task = {
        let (ctx, api, backup) = (ctx.clone(), api.clone(), backup.clone());
        tokio::spawn(async move { process(&ctx, &api, &backup).await })
    };
    let result = operation::joined::<Backup, _>(task.await).and_then(|r| r);
    let queued = {
        let mut admission = velero_report::locked(&ctx.admission);
        admission.running.retain(|(n, _)| n != &name);
        std::mem::take(&mut admission.queued)
    };
    for waiting in queued {
        // The receiver lives as long as the controller that runs this reconcile.
        let _ = ctx
            .wake
            .unbounded_send(ObjectRef::new(&waiting).within(&ctx.config.namespace));
    }
    result?;
    Ok(Action::await_change())
}

/// Defaults, validation, the run and the upload of one backup.
async fn process(ctx: &Ctx, api: &Api<Backup>, backup: &Backup) -> Result<(), OperationError> {
    let name = backup.name_any();
    let client = &ctx.client;
    let ns = &ctx.config.namespace;
    let mut spec = backup.spec.clone();
    use velero_api::Duration as D;
    D::default_if_zero(&mut spec.ttl, ctx.config.default_backup_ttl);
    D::default_if_zero(&mut spec.csi_snapshot_timeout, D::from_secs(600));
    D::default_if_zero(&mut spec.item_operation_timeout, D::from_hours(4));
    if spec.default_volumes_to_restic == Some(true) {
        spec.default_volumes_to_fs_backup = Some(true);
    }
    let location_name = match spec.storage_location.clone().filter(|l| !l.is_empty()) {
        Some(l) => l,
        None => locations::default_location_name(client, ns, &ctx.config.default_location).await,
    };
    spec.storage_location = Some(location_name.clone());

    // Prepared once, before anything else looks at the filters; the prepared spec is what the
    // Backup records (Velero's `prepareBackupRequest`) and what the selection resolves.
    let mut defaulted = backup.clone();
    defaulted.spec = spec;
    let mut prepared = velero_backup::request::Prepared::new(client, ns, &defaulted).await;
    let errors = &mut prepared.errors;
    let location = match locations::get_location(client, ns, &location_name).await {
        Ok(l) => Some(l),
        Err(e) => {
            errors.push(if backup.spec.storage_location.is_none() {
                format!("an existing backup storage location was not specified at backup creation time and the default {location_name} was not found. Please address this issue (see `velero backup-location -h` for options) and create a new backup. Error: {e}")
            } else {
                format!("error getting backup storage location: {e}")
            });
            None
        }
    };
    if let Some(l) = &location {
        if locations::is_read_only(l) {
            errors.push(format!("backup can't be created because backup storage location {location_name} is currently in read-only mode"));
        }
        let available = l.is_available();
        if !available {
            errors.push(format!("backup can't be created because BackupStorageLocation {location_name} is in Unavailable status."));
        }
    }
    let version = client.apiserver_version().await.ok();
    let mut annotations = BTreeMap::new();
    if let Some(v) = &version {
        annotations.insert(
            labels::SOURCE_CLUSTER_GITVERSION_ANNOTATION.to_string(),
            v.git_version.clone(),
        );
        annotations.insert(
            labels::SOURCE_CLUSTER_MAJOR_VERSION_ANNOTATION.to_string(),
            v.major.clone(),
        );
        annotations.insert(
            labels::SOURCE_CLUSTER_MINOR_VERSION_ANNOTATION.to_string(),
            v.minor.clone(),
        );
    }
    // Velero passes its --resource-timeout (10m) to plugins through this annotation.
    annotations.insert(
        labels::RESOURCE_TIMEOUT_ANNOTATION.to_string(),
        "10m0s".to_string(),
    );
    let meta = json!({
        "labels": { labels::STORAGE_LOCATION: labels::valid_label_value(&location_name) },
        "annotations": annotations,
    });
    let schedule = crate::metrics::Metrics::schedule(
        backup
            .labels()
            .get(labels::SCHEDULE_NAME)
            .map(String::as_str),
    );
    let metrics = &ctx.config.metrics;
    let spec = &prepared.backup.spec;
    if !prepared.errors.is_empty() {
        let errors = &prepared.errors;
        metrics
            .backup_validation_failure
            .get_or_create(&schedule)
            .inc();
        let fields = json!({
            "metadata": meta,
            "spec": spec,
            "status": { "version": 1, "formatVersion": velero_api::BACKUP_FORMAT_VERSION },
        });
        return operation::validation_failed(api, &name, errors, fields).await;
    }
    let Some(location) = location else {
        return Ok(());
    };

    let start = crate::now();
    let ttl_secs = spec.ttl.map(|t| t.as_nanos() / 1_000_000_000).unwrap_or(0);
    let expiration =
        jiff::Timestamp::from_second(start.0.as_second().saturating_add(ttl_secs)).ok();
    let running = patch(
        api,
        &name,
        json!({
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": BackupPhase::InProgress,
                "version": 1,
                "formatVersion": velero_api::BACKUP_FORMAT_VERSION,
                "startTimestamp": start,
                "expiration": expiration.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            },
        }),
    )
    .await?;
    tracing::info!(backup = %name, location = %location_name, "backup started");
    metrics.backup_attempt.get_or_create(&schedule).inc();
    let started = std::time::Instant::now();

    // Either way the status is the one written into velero-backup.json, so the two agree.
    prepared.backup = running.clone();
    let status = match run(ctx, api, prepared, &location).await {
        Ok(status) => status,
        Err(failure) => fail(&running, failure).await,
    };
    record_outcome(metrics, &schedule, &status, started.elapsed());
    let status_json = serde_json::to_value(&status).unwrap_or(Value::Null);
    patch(api, &name, json!({ "status": status_json })).await?;
    Ok(())
}

/// Why a backup failed, and whether anything may still be written for it.
enum Failure {
    /// Nothing is written: the store cannot be reached, or the name is already taken there (by
    /// another cluster's backup, which must not be overwritten).
    Early(String),
    /// The run failed after it began writing: its log, results and a `Failed` velero-backup.json
    /// are uploaded, as Velero does, so `velero backup logs` tells why and other clusters syncing
    /// the location see an honest phase. The tarball is not: a partial one was never completed.
    Run {
        reason: String,
        log: Box<velero_report::OperationLog>,
        store: BackupStore,
    },
}

/// The final status of a failed backup, after uploading what Velero uploads for one.
async fn fail(backup: &Backup, failure: Failure) -> velero_api::v1::BackupStatus {
    let name = backup.name_any();
    let mut failed = backup.clone();
    failed.metadata.managed_fields = None;
    let status = failed.status.get_or_insert_with(Default::default);
    status.completion_timestamp = Some(crate::now());
    status.phase = Some(BackupPhase::Failed);
    let (reason, log, store) = match failure {
        Failure::Early(reason) => {
            tracing::warn!(backup = %name, "backup failed: {reason}");
            status.failure_reason = Some(reason);
            return failed.status.unwrap_or_default();
        }
        Failure::Run { reason, log, store } => (reason, log, store),
    };
    let ended = operation::FailureFiles::new(*log, "backup", &reason);
    status.failure_reason = Some(reason);
    status.warnings = ended.tally.warnings;
    status.errors = ended.tally.errors;
    let metadata = serde_json::to_vec_pretty(&failed).unwrap_or_default();
    let files = BackupFiles {
        log: Some(ended.log),
        results: Some(ended.results),
        ..BackupFiles::default()
    };
    if let Err(e) = store.put_backup(&name, files, Bytes::from(metadata)).await {
        tracing::warn!(backup = %name, "uploading the files of a failed backup: {e}");
    }
    failed.status.unwrap_or_default()
}

fn record_outcome(
    metrics: &crate::metrics::Metrics,
    schedule: &crate::metrics::ScheduleLabel,
    status: &velero_api::v1::BackupStatus,
    took: Duration,
) {
    let succeeded = match status.phase {
        Some(BackupPhase::Completed) => {
            metrics.backup_success.get_or_create(schedule).inc();
            true
        }
        Some(BackupPhase::PartiallyFailed) => {
            metrics.backup_partial_failure.get_or_create(schedule).inc();
            false
        }
        _ => {
            metrics.backup_failure.get_or_create(schedule).inc();
            false
        }
    };
    metrics
        .backup_last_status
        .get_or_create(schedule)
        .set(i64::from(succeeded));
    if succeeded {
        metrics
            .backup_last_successful_timestamp
            .get_or_create(schedule)
            .set(jiff::Timestamp::now().as_second() as f64);
    }
    metrics
        .backup_duration_seconds
        .get_or_create(schedule)
        .observe(took.as_secs_f64());
    let progress = status.progress.clone().unwrap_or_default();
    metrics
        .backup_items_total
        .get_or_create(schedule)
        .set(i64::from(progress.items_backed_up.unwrap_or(0)));
    metrics
        .backup_items_errors
        .get_or_create(schedule)
        .set(i64::from(status.errors.unwrap_or(0)));
    if status.warnings.unwrap_or(0) > 0 {
        metrics.backup_warning.get_or_create(schedule).inc();
    }
}

/// Runs the engine into the location and uploads every file, `velero-backup.json` last so that
/// its presence means the backup is complete.
async fn run(
    ctx: &Ctx,
    api: &Api<Backup>,
    prepared: Prepared,
    location: &velero_api::v1::BackupStorageLocation,
) -> Result<velero_api::v1::BackupStatus, Failure> {
    let name = prepared.backup.name_any();
    let store: BackupStore = locations::open_store(&ctx.client, &ctx.config.namespace, location)
        .await
        .map_err(|e| Failure::Early(e.to_string()))?;
    match store.backup_exists(&name).await {
        Ok(true) => {
            return Err(Failure::Early(
                "backup already exists in object storage".into(),
            ));
        }
        Ok(false) => {}
        Err(e) => {
            return Err(Failure::Early(format!(
                "error checking if backup already exists in object storage: {e}"
            )));
        }
    }
    let failed =
        |reason: String, log: velero_report::OperationLog, store: BackupStore| Failure::Run {
            reason,
            log: Box::new(log),
            store,
        };
    let new_log = || velero_report::OperationLog::backup(&ctx.config.namespace, &name);
    let started = std::time::Instant::now();
    let mut request = match prepared.resolve(&ctx.client).await {
        Ok(request) => request,
        Err(e) => return Err(failed(e.to_string(), new_log(), store)),
    };
    let policies = request.policies.take();
    let (backup, hooks) = (&request.backup, request.hooks.clone());
    let pod_volumes = std::sync::Arc::new(crate::pod_volume::backup::PodVolumeBackupper::new(
        ctx.client.clone(),
        &ctx.config.namespace,
        backup,
        &location.name_any(),
        &store,
        crate::pod_volume::backup::Settings {
            timeout: ctx.config.fs_backup_timeout,
            format: velero_podvolume::format_of(ctx.config.uploader_type),
        },
        policies,
    ));

    let reporter = ProgressReporter::start(
        api.clone(),
        name.clone(),
        |p: Progress| json!({ "progress": { "totalItems": p.total_items, "itemsBackedUp": p.items_backed_up } }),
    );

    tracing::debug!(backup = %name, elapsed = ?started.elapsed(), "discovery and filters resolved");
    let contents_key = store.layout().backup_contents(&name);
    let mut sink = match store.writer(&contents_key) {
        Ok(sink) => sink,
        Err(e) => return Err(failed(e.to_string(), new_log(), store)),
    };
    let params = BackupParams {
        backup_namespace: ctx.config.namespace.clone(),
        backup_name: name.clone(),
        concurrency: engine::LIST_CONCURRENCY,
        hooks: Some(hooks.clone()),
        pod_volumes: Some(pod_volumes.clone()),
    };
    let reader = ApiReader::new(ctx.client.clone());
    let result = engine::run(
        &reader,
        &request.discovery,
        &request.selection,
        &params,
        &mut sink,
        &|p| reporter.report(p),
    )
    .await;
    reporter.stop();
    let (outcome, _) = match result {
        Ok(done) => done,
        Err(failure) => {
            if let Err(e) = sink.abort().await {
                tracing::warn!(backup = %name, "giving up the partial tarball upload: {e}");
            }
            return Err(failed(failure.error.to_string(), failure.log, store));
        }
    };
    // engine::run finished the tarball, which shut the writer down and completed the upload.

    tracing::debug!(backup = %name, elapsed = ?started.elapsed(), items = outcome.items_backed_up, "tarball written");
    // No native snapshots or item operations: Velero writes those files empty then.
    let none = crate::gzip_json(&Value::Array(vec![]));
    let files = BackupFiles {
        log: Some(Bytes::from(outcome.log_gz.clone())),
        results: Some(crate::gzip_json(&outcome.results)),
        resource_list: Some(crate::gzip_json(&outcome.resource_list)),
        volume_snapshots: Some(none.clone()),
        pod_volume_backups: Some(crate::gzip_json(&pod_volumes.finished())),
        item_operations: Some(none),
        volume_info: Some(crate::gzip_json(&pod_volumes.volume_info().await)),
    };
    let (warnings, errors) = (outcome.results.warnings.len(), outcome.results.errors.len());
    let tally = operation::Tally::of(&outcome.results);
    let mut final_backup = backup.clone();
    let status = final_backup.status.get_or_insert_with(Default::default);
    status.phase = Some(if tally.partially_failed {
        BackupPhase::PartiallyFailed
    } else {
        BackupPhase::Completed
    });
    status.completion_timestamp = Some(crate::now());
    status.warnings = tally.warnings;
    status.errors = tally.errors;
    status.progress = Some(velero_api::v1::BackupProgress {
        total_items: Some(operation::status_count(outcome.items_backed_up)),
        items_backed_up: Some(operation::status_count(outcome.items_backed_up)),
    });
    status.hook_status = crate::operation::hook_status(hooks.stats());
    final_backup.metadata.managed_fields = None;
    let metadata = serde_json::to_vec_pretty(&final_backup).unwrap_or_default();
    // Storage failing under us: put_backup removed what was written rather than add to it.
    store
        .put_backup(&name, files, Bytes::from(metadata))
        .await
        .map_err(|e| Failure::Early(format!("error uploading the backup's files: {e}")))?;
    tracing::info!(backup = %name, items = outcome.items_backed_up, warnings, errors, elapsed = ?started.elapsed(), "backup completed");
    Ok(final_backup.status.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(namespaces: &[&str]) -> Backup {
        let mut b = Backup::new("b", Default::default());
        b.spec.included_namespaces = Some(namespaces.iter().map(|s| s.to_string()).collect());
        b
    }

    #[test]
    fn namespace_overlap_is_conservative() {
        let a = NamespaceSet::of(&backup(&["a", "b"]));
        assert!(a.overlaps(&NamespaceSet::of(&backup(&["b"]))));
        assert!(!a.overlaps(&NamespaceSet::of(&backup(&["c"]))));
        assert!(a.overlaps(&NamespaceSet::of(&backup(&["*"]))));
        assert!(a.overlaps(&NamespaceSet::of(&backup(&["app-*"]))));
        assert!(a.overlaps(&NamespaceSet::of(&backup(&[]))));
    }
}
