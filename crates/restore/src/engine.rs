//! The restore run: spool the tarball, restore CRDs and wait for them, then every other type in
//! Velero's priority order, each type's items concurrently through one adaptive window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::{OnceCell, RwLock};
use velero_api::v1::RestoreSpec;
use velero_cluster::discovery::{Discovery, discover};
use velero_cluster::write::{ApiWriter, WriteError};
use velero_filters::IncludesExcludes;
use velero_report::{Level, OperationLog, OperationResults, locked};

use crate::actions::{ActionContext, Verdict, apply_builtin};
use crate::modifiers::ResourceModifiers;
use crate::priorities::{Priorities, restore_order};
use crate::selection::{NAMESPACES, RestoreFilter};
use crate::spool::{ItemKey, Spool, SpoolError, SpooledItem};
use crate::volumes::{VolumeVerdict, Volumes};
use velero_api::kuberesource::{self, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES};

const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
use velero_api::labels::RESTORE_STATUS_ANNOTATION;

/// Everything a run needs besides the cluster and the tarball.
pub struct RestoreParams {
    pub velero_namespace: String,
    pub restore_name: String,
    pub backup_name: String,
    pub spec: RestoreSpec,
    pub priorities: Priorities,
    /// Most requests in flight at once (the window narrows when the server pushes back).
    pub max_in_flight: usize,
    /// How long to wait for a restored CRD to be ready (Velero's `--resource-timeout`).
    pub resource_timeout: Duration,
    /// How long to wait for a terminating namespace to go (`--terminating-resource-timeout`).
    pub terminating_timeout: Duration,
    pub modifiers: Option<ResourceModifiers>,
    /// The change-storage-class ConfigMap's data, if one exists.
    pub storage_classes: Option<BTreeMap<String, String>>,
    /// The change-image-name ConfigMap's rules.
    pub image_rules: Vec<(String, String)>,
    /// Where scratch files go; the system temp dir by default.
    pub scratch_dir: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub total_items: u64,
    pub items_restored: u64,
}

/// What happened to one item, as Velero's resource list names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Skipped,
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        }
    }
}

pub struct RestoreOutcome {
    pub items_restored: u64,
    pub total_items: u64,
    /// `"<apiVersion>/<Kind>"` → sorted `ns/name(action)` (`restore-<R>-resource-list.json.gz`).
    pub resource_list: BTreeMap<String, Vec<String>>,
    pub log_gz: Vec<u8>,
    pub results: OperationResults,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading the backup tarball: {0}")]
    Spool(#[from] SpoolError),
    #[error("discovering the cluster's resource types: {0}")]
    Discovery(#[source] kube::Error),
    #[error("{0}")]
    Spec(String),
    #[error("the restore's background work failed: {0}")]
    Task(String),
}

/// A restore that stopped part-way, with the log it had written so far.
pub type RestoreFailure = velero_report::Failed<RestoreError>;

/// The key Velero dedups restored items by: (`<apiVersion>/<Kind>`, target namespace, name).
type RestoredKey = (String, String, String);

struct Restored {
    action: Action,
    created_name: Option<String>,
}

/// Whether a target namespace is there to restore into, decided once per restore.
type NamespaceReady = Arc<OnceCell<Result<(), String>>>;

struct Ctx {
    writer: ApiWriter,
    discovery: RwLock<Discovery>,
    filter: RestoreFilter,
    params: RestoreParams,
    policy: Policy,
    status_filter: Option<IncludesExcludes>,
    /// Shared with [`run`], which takes it out whether the restore ends well or not.
    log: Arc<Mutex<OperationLog>>,
    restored: Mutex<HashMap<RestoredKey, Restored>>,
    namespaces: Mutex<HashMap<String, NamespaceReady>>,
    service_accounts: Mutex<HashMap<String, Arc<OnceCell<BTreeSet<String>>>>>,
    backup_namespaces: BTreeMap<String, Value>,
    additional: HashMap<ItemKey, Value>,
    volumes: Volumes,
    total: AtomicU64,
    done: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Unset,
    None,
    Update,
}

/// An item's fate, with the messages for the results.
#[derive(Default)]
struct Report {
    warnings: Vec<String>,
    errors: Vec<String>,
}

impl Ctx {
    fn record(&self, level: Level, scope: Option<&str>, message: &str) {
        locked(&self.log).record(level, scope, message);
    }

    fn info(&self, message: &str) {
        self.record(Level::Info, None, message);
    }

    /// Claims `key` for this task; `false` when another task restored or is restoring it.
    fn claim(&self, key: &RestoredKey) -> bool {
        let mut restored = locked(&self.restored);
        if restored.contains_key(key) {
            return false;
        }
        restored.insert(
            key.clone(),
            Restored {
                action: Action::Skipped,
                created_name: None,
            },
        );
        true
    }

    fn set_action(&self, key: &RestoredKey, action: Action, created_name: Option<String>) {
        locked(&self.restored).insert(
            key.clone(),
            Restored {
                action,
                created_name,
            },
        );
    }

    fn api_path(
        &self,
        discovery: &Discovery,
        group_resource: &str,
        api_version: &str,
        namespace: Option<&str>,
    ) -> Option<String> {
        let resource = discovery.by_group_resource(group_resource)?;
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        let base = if resource.group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{}/{version}", resource.group)
        };
        Some(match namespace.filter(|_| resource.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", resource.resource),
            None => format!("{base}/{}", resource.resource),
        })
    }

    /// Velero's `EnsureNamespaceExistsAndIsReady`, once per target namespace for the whole run.
    async fn ensure_namespace(&self, original: &str, target: &str) -> Result<(), String> {
        let cell = locked(&self.namespaces)
            .entry(target.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| self.create_namespace(original, target))
            .await
            .clone()
    }

    async fn create_namespace(&self, original: &str, target: &str) -> Result<(), String> {
        let path = format!("/api/v1/namespaces/{target}");
        let deadline = tokio::time::Instant::now() + self.params.terminating_timeout;
        loop {
            match self.writer.get_opt(&path).await {
                Ok(Some(ns)) => {
                    let terminating = ns.pointer("/status/phase").and_then(Value::as_str)
                        == Some("Terminating")
                        || ns.pointer("/metadata/deletionTimestamp").is_some();
                    if !terminating {
                        return Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(format!(
                            "namespace {target} is still terminating after {:?}; restore it again once it is gone",
                            self.params.terminating_timeout
                        ));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(None) => break,
                Err(e) => return Err(format!("error getting namespace {target}: {e}")),
            }
        }
        // From the backup when it has the Namespace object (labels, annotations, spec kept).
        let mut ns = self
            .backup_namespaces
            .get(original)
            .cloned()
            .unwrap_or_else(|| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}));
        reset_metadata(&mut ns);
        if let Some(obj) = ns.as_object_mut() {
            obj.remove("status");
        }
        ns["metadata"]["name"] = Value::String(target.to_string());
        match self.writer.create("/api/v1/namespaces", &ns).await {
            Ok(_) => {
                self.set_action(
                    &("v1/Namespace".into(), String::new(), target.to_string()),
                    Action::Created,
                    None,
                );
                self.done.fetch_add(1, Ordering::Relaxed);
                self.info(&format!("Created namespace {target}"));
                Ok(())
            }
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(format!("error creating namespace {target}: {e}")),
        }
    }

    async fn service_accounts(&self, namespace: &str) -> BTreeSet<String> {
        let cell = locked(&self.service_accounts)
            .entry(namespace.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts");
            match self.writer.get(&path).await {
                Ok(list) => list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|sa| sa.pointer("/metadata/name")?.as_str().map(str::to_string))
                    .collect(),
                Err(_) => BTreeSet::new(),
            }
        })
        .await
        .clone()
    }
}

/// Velero's `resetMetadata`: what the API server owns goes; labels, annotations, finalizers and
/// managedFields stay.
pub fn reset_metadata(item: &mut Value) {
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "generateName",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            meta.remove(key);
        }
    }
}

fn str_at<'a>(item: &'a Value, pointer: &str) -> Option<&'a str> {
    item.pointer(pointer).and_then(Value::as_str)
}

fn add_restore_labels(item: &mut Value, backup: &str, restore: &str) {
    let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    labels[velero_api::labels::BACKUP_NAME] =
        Value::String(velero_api::labels::valid_label_value(backup));
    labels[velero_api::labels::RESTORE_NAME] =
        Value::String(velero_api::labels::valid_label_value(restore));
}

/// For comparing an existing object with the backed-up one: server bookkeeping removed.
fn comparable(item: &Value) -> Value {
    let mut item = item.clone();
    reset_metadata(&mut item);
    if let Some(obj) = item.as_object_mut() {
        obj.remove("status");
    }
    // Field ownership records timestamps, so it always differs; Velero compares it anyway and warns
    // about every existing object. We leave it out of the comparison.
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    item
}

/// Completed pods and jobs are not restored; neither are mirror pods (the kubelet owns them).
fn skip_reason(group_resource: &str, item: &Value) -> Option<&'static str> {
    match group_resource {
        "pods" => {
            if matches!(str_at(item, "/status/phase"), Some("Succeeded" | "Failed")) {
                return Some("the pod has completed");
            }
            if item
                .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                .is_some()
            {
                return Some("it is a mirror pod");
            }
            None
        }
        "jobs.batch" if item.pointer("/status/completionTime").is_some() => {
            Some("the job has completed")
        }
        _ => None,
    }
}

/// An RFC 7386 merge patch turning `from` into `to` (Velero's `generatePatch`); `None` if equal.
fn merge_patch(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (k, v) in b {
                match a.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => {
                        if let Some(p) = merge_patch(old, v) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (a, b) if a == b => None,
        (_, b) => Some(b.clone()),
    }
}

/// Velero's `mergeServiceAccounts`: the in-cluster account plus the backup's secrets, pull secrets,
/// labels and annotations.
fn merge_service_accounts(cluster: &Value, backup: &Value) -> Value {
    let mut desired = cluster.clone();
    for list in ["secrets", "imagePullSecrets"] {
        let mut merged: Vec<Value> = cluster[list].as_array().cloned().unwrap_or_default();
        for entry in backup[list].as_array().into_iter().flatten() {
            if !merged.iter().any(|e| e["name"] == entry["name"]) {
                merged.push(entry.clone());
            }
        }
        if !merged.is_empty() {
            desired[list] = Value::Array(merged);
        }
    }
    for map in ["labels", "annotations"] {
        if let Some(from_backup) = backup["metadata"][map].as_object() {
            let target = desired["metadata"]
                .as_object_mut()
                .map(|m| m.entry(map).or_insert_with(|| Value::Object(Map::new())));
            if let Some(Value::Object(target)) = target {
                for (k, v) in from_backup {
                    target.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    desired
}

/// Restores the backup read from `tarball` (a blocking reader, consumed off the runtime). A failure
/// comes with the log written up to it.
pub async fn run(
    client: kube::Client,
    tarball: impl std::io::Read + Send + 'static,
    params: RestoreParams,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RestoreOutcome, RestoreFailure> {
    let (namespace, restore_name) = (params.velero_namespace.clone(), params.restore_name.clone());
    let fresh = || OperationLog::restore(&namespace, &restore_name);
    let log = Arc::new(Mutex::new(fresh()));
    match run_logged(client, tarball, params, progress, log.clone()).await {
        Ok(outcome) => Ok(outcome),
        Err(error) => Err(RestoreFailure {
            error,
            log: std::mem::replace(&mut *locked(&log), fresh()),
        }),
    }
}

async fn run_logged(
    client: kube::Client,
    tarball: impl std::io::Read + Send + 'static,
    params: RestoreParams,
    progress: &(dyn Fn(Progress) + Sync),
    log: Arc<Mutex<OperationLog>>,
) -> Result<RestoreOutcome, RestoreError> {
    locked(&log).record(
        Level::Info,
        None,
        &format!("starting restore of backup {}", params.backup_name),
    );
    let discovery = discover(&client).await.map_err(RestoreError::Discovery)?;
    let resolve = |entry: &str| discovery.resolve(entry).map(|r| r.group_resource());
    let filter = RestoreFilter::new(&params.spec, resolve).map_err(RestoreError::Spec)?;

    let mut spool = {
        let filter = filter.clone();
        let scratch = params.scratch_dir.clone();
        tokio::task::spawn_blocking(move || Spool::read(tarball, &filter, scratch.as_deref()))
            .await
            .map_err(|e| RestoreError::Task(e.to_string()))??
    };
    {
        let mut log = locked(&log);
        log.record(
            Level::Info,
            None,
            &format!(
                "read backup format {} with {} selected items",
                spool.format_version,
                spool.total()
            ),
        );
        for (namespace, message) in &spool.decode_errors {
            let scope = namespace
                .as_deref()
                .map(|ns| filter.target_namespace(ns).to_string())
                .unwrap_or_default();
            log.record(Level::Error, Some(&scope), message);
        }
    }

    let status_filter = params.spec.restore_status.as_ref().and_then(|s| {
        s.included_resources.as_ref().map(|inc| {
            IncludesExcludes::new(
                inc.clone(),
                s.excluded_resources.clone().unwrap_or_default(),
            )
        })
    });
    let policy = match params.spec.existing_resource_policy.as_deref() {
        Some("none") => Policy::None,
        Some("update") => Policy::Update,
        _ => Policy::Unset,
    };
    let ctx = Arc::new(Ctx {
        writer: ApiWriter::new(client.clone(), params.max_in_flight),
        discovery: RwLock::new(discovery),
        filter,
        policy,
        status_filter,
        log,
        restored: Mutex::new(HashMap::new()),
        namespaces: Mutex::new(HashMap::new()),
        service_accounts: Mutex::new(HashMap::new()),
        backup_namespaces: std::mem::take(&mut spool.namespaces),
        additional: std::mem::take(&mut spool.additional),
        volumes: Volumes::default(),
        total: AtomicU64::new(spool.total()),
        done: AtomicU64::new(0),
        params,
    });
    let report = || {
        let done = ctx.done.load(Ordering::Relaxed);
        progress(Progress {
            total_items: ctx.total.load(Ordering::Relaxed).max(done),
            items_restored: done,
        });
    };
    report();

    // CRDs first, then discovery again so the types they define resolve.
    if spool.count(CRDS) > 0 && ctx.filter.include_type(CRDS) {
        restore_type(&ctx, &spool, CRDS, &report).await?;
        match discover(&client).await {
            Ok(d) => *ctx.discovery.write().await = d,
            Err(e) => ctx.record(
                Level::Warning,
                Some(""),
                &format!("refresh discovery after restoring CRDs: {e}"),
            ),
        }
    }
    let order = {
        let discovery = ctx.discovery.read().await;
        restore_order(&ctx.params.priorities, &spool.types_in_backup, |entry| {
            discovery.resolve(entry).map(|r| r.group_resource())
        })
    };
    for group_resource in order.iter().filter(|gr| gr.as_str() != CRDS) {
        if spool.count(group_resource) == 0 {
            continue;
        }
        restore_type(&ctx, &spool, group_resource, &report).await?;
    }
    report();
    drop(spool);

    let ctx = Arc::try_unwrap(ctx)
        .map_err(|_| RestoreError::Task("restore tasks outlived the run".into()))?;
    let restored = ctx
        .restored
        .into_inner()
        .map_err(|e| RestoreError::Task(e.to_string()))?;
    let mut resource_list: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut items_restored = 0;
    for ((resource, namespace, name), status) in restored {
        let name = status.created_name.unwrap_or(name);
        let entry = if namespace.is_empty() {
            name
        } else {
            format!("{namespace}/{name}")
        };
        if matches!(
            status.action,
            Action::Created | Action::Updated | Action::Skipped
        ) {
            items_restored += 1;
        }
        resource_list
            .entry(resource)
            .or_default()
            .push(format!("{entry}({})", status.action.as_str()));
    }
    for entries in resource_list.values_mut() {
        entries.sort();
    }
    let mut log = std::mem::replace(
        &mut *locked(&ctx.log),
        OperationLog::restore(&ctx.params.velero_namespace, &ctx.params.restore_name),
    );
    if resource_list.is_empty() {
        log.record(
            Level::Warning,
            None,
            "zero items to be restored: check the restore's filters and the backup's contents",
        );
    }
    let total_items = ctx.total.load(Ordering::Relaxed).max(items_restored);
    let (log_gz, results) = log.finish();
    Ok(RestoreOutcome {
        items_restored,
        total_items,
        resource_list,
        log_gz,
        results,
    })
}

/// Restores every selected item of one type, concurrently.
async fn restore_type(
    ctx: &Arc<Ctx>,
    spool: &Spool,
    group_resource: &str,
    report: &(dyn Fn() + Sync),
) -> Result<(), RestoreError> {
    ctx.info(&format!(
        "Restoring resource '{group_resource}' ({} items)",
        spool.count(group_resource)
    ));
    let items = spool.items(group_resource)?;
    let mut last_report = std::time::Instant::now();
    let mut stream = futures::stream::iter(items)
        .map(|record| {
            let ctx = ctx.clone();
            let gr = group_resource.to_string();
            tokio::spawn(async move {
                match record {
                    Ok(item) => restore_selected(&ctx, &gr, item).await,
                    Err(e) => ctx.record(
                        Level::Error,
                        None,
                        &format!("reading the restore's scratch file for {gr}: {e}"),
                    ),
                }
            })
        })
        .buffer_unordered(ctx.params.max_in_flight.max(1));
    while let Some(joined) = stream.next().await {
        joined.map_err(|e| RestoreError::Task(e.to_string()))?;
        if last_report.elapsed() >= Duration::from_secs(1) {
            report();
            last_report = std::time::Instant::now();
        }
    }
    Ok(())
}

/// One item from the spool: namespaces are only ensured; everything else is restored.
async fn restore_selected(ctx: &Ctx, group_resource: &str, record: SpooledItem) {
    if group_resource == NAMESPACES && record.namespace.is_none() {
        if !ctx.filter.include_namespace(&record.name) {
            return;
        }
        let target = ctx.filter.target_namespace(&record.name).to_string();
        if let Err(e) = ctx.ensure_namespace(&record.name, &target).await {
            ctx.record(Level::Error, None, &e);
        }
        return;
    }
    restore_item(
        ctx,
        group_resource,
        record.namespace.as_deref(),
        record.item,
    )
    .await;
}

/// Velero's `restoreItem`, boxed because claims pull in volumes and pods pull in claims.
fn restore_item<'a>(
    ctx: &'a Ctx,
    group_resource: &'a str,
    original_namespace: Option<&'a str>,
    item: Value,
) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let target = original_namespace.map(|ns| ctx.filter.target_namespace(ns).to_string());
        let scope = target.clone().unwrap_or_default();
        let name = str_at(&item, "/metadata/name")
            .unwrap_or_default()
            .to_string();
        let api_version = str_at(&item, "/apiVersion").unwrap_or_default().to_string();
        let kind = str_at(&item, "/kind").unwrap_or_default().to_string();
        let key: RestoredKey = (format!("{api_version}/{kind}"), scope.clone(), name.clone());

        // Additional items arrive here unfiltered; the type, namespace and cluster-scope checks
        // apply to them too.
        if !ctx.filter.include_type(group_resource) {
            return;
        }
        if let (Some(ns), Some(target)) = (original_namespace, target.as_deref()) {
            if !ctx.filter.include_namespace(ns) && !RestoreFilter::must_have(group_resource) {
                return;
            }
            if let Err(e) = ctx.ensure_namespace(ns, target).await {
                ctx.record(Level::Error, None, &e);
                return;
            }
        } else if !ctx.filter.cluster_scoped_allowed() {
            return;
        }
        if let Some(reason) = skip_reason(group_resource, &item) {
            ctx.info(&format!("{scope}/{name} is not restored: {reason}"));
            return;
        }
        if !ctx.claim(&key) {
            return;
        }
        let mut report = Report::default();
        let action = restore_claimed(
            ctx,
            group_resource,
            original_namespace,
            target.as_deref(),
            item,
            &mut report,
        )
        .await;
        for w in &report.warnings {
            ctx.record(Level::Warning, Some(&scope), w);
        }
        for e in &report.errors {
            ctx.record(Level::Error, Some(&scope), e);
        }
        let (action, created_name) = match action {
            Some((action, created)) => (action, created),
            None if report.warnings.is_empty() && report.errors.is_empty() => {
                (Action::Skipped, None)
            }
            None => (Action::Failed, None),
        };
        ctx.set_action(&key, action, created_name);
        ctx.done.fetch_add(1, Ordering::Relaxed);
    })
}

/// The body of [`restore_item`] once the item is ours; `Some` when an explicit action was taken.
async fn restore_claimed(
    ctx: &Ctx,
    group_resource: &str,
    original_namespace: Option<&str>,
    target: Option<&str>,
    mut item: Value,
    report: &mut Report,
) -> Option<(Action, Option<String>)> {
    let params = &ctx.params;
    let name = str_at(&item, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let id = match target {
        Some(ns) => format!("{group_resource}/{ns}/{name}"),
        None => format!("{group_resource}/{name}"),
    };

    if group_resource == PERSISTENT_VOLUMES {
        match ctx
            .volumes
            .prepare_volume(&ctx.writer, &ctx.filter, &name, item)
            .await
        {
            VolumeVerdict::Restore(prepared) => item = prepared,
            VolumeVerdict::LeaveToProvisioning(reason) => {
                ctx.info(&reason);
                return None;
            }
        }
    }

    let saved_status = item.as_object_mut().and_then(|obj| obj.remove("status"));
    reset_metadata(&mut item);

    // Items this one brings along, restored before it (a claim's volume, a pod's claims and
    // priority class). They are read from the spec, which the reset above does not touch.
    for (gr, ns, extra) in additional_items(group_resource, original_namespace, &item) {
        let key = (gr.to_string(), ns.clone().unwrap_or_default(), extra);
        if let Some(extra_item) = ctx.additional.get(&key) {
            restore_item(ctx, gr, ns.as_deref(), extra_item.clone()).await;
        }
    }

    let service_accounts = match (group_resource, target) {
        ("secrets", Some(ns)) => Some(ctx.service_accounts(ns).await),
        _ => None,
    };
    let action_ctx = ActionContext {
        namespace_mapping: Some(ctx.filter.mapping()),
        preserve_node_ports: params.spec.preserve_node_ports == Some(true),
        storage_classes: params.storage_classes.as_ref(),
        image_rules: &params.image_rules,
        service_accounts: service_accounts.as_ref(),
    };
    if let Verdict::Skip(reason) = apply_builtin(group_resource, &mut item, &action_ctx) {
        ctx.info(&format!("Skipping restore of {id}: {reason}"));
        return None;
    }
    if group_resource == PERSISTENT_VOLUME_CLAIMS {
        ctx.volumes.prepare_claim(&mut item);
    }

    // A rule that fails is an error for the item, which is still restored with the rules that
    // applied, as Velero does.
    if let Some(modifiers) = &params.modifiers {
        let outcome = modifiers.apply_rules(&mut item, group_resource);
        report.errors.extend(outcome.errors);
    }

    if let (Some(ns), Some(meta)) = (
        target,
        item.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
    add_restore_labels(&mut item, &params.backup_name, &params.restore_name);

    let api_version = str_at(&item, "/apiVersion").unwrap_or_default().to_string();
    let kind = str_at(&item, "/kind").unwrap_or_default().to_string();
    let resolved = {
        let discovery = ctx.discovery.read().await;
        ctx.api_path(&discovery, group_resource, &api_version, target)
    };
    let Some(collection) = resolved else {
        report.warnings.push(format!(
            "could not restore {id}: the cluster does not serve {group_resource} (restore its CustomResourceDefinition or API service first)"
        ));
        return None;
    };
    let object_name = str_at(&item, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let object_path = format!("{collection}/{object_name}");

    let created = match ctx.writer.create(&collection, &item).await {
        Ok(created) => created,
        Err(e) if e.is_already_exists() || port_taken(group_resource, &e) => {
            return existing(ctx, group_resource, &object_path, &kind, &item, &id, report).await;
        }
        Err(e) => {
            report.errors.push(format!("error restoring {id}: {e}"));
            return None;
        }
    };
    let created_name = str_at(&created, "/metadata/name").map(str::to_string);

    if let Some(status) = saved_status.filter(|_| restore_status(ctx, group_resource, &item)) {
        let mut with_status = created.clone();
        with_status["status"] = status;
        if let Err(e) = ctx
            .writer
            .replace(&format!("{object_path}/status"), &with_status)
            .await
        {
            report
                .warnings
                .push(format!("could not restore the status of {id}: {e}"));
        }
    }
    restore_field_ownership(ctx, &object_path, &item, &id, report).await;

    if group_resource == CRDS {
        wait_for_crd(ctx, &object_name, report).await;
    }
    Some((Action::Created, created_name))
}

/// A Service whose node port is taken may exist already: Velero treats it as existing.
fn port_taken(group_resource: &str, e: &WriteError) -> bool {
    group_resource == "services" && e.to_string().contains("provided port is already allocated")
}

/// Server-side apply ownership is the one part of managedFields worth a second request: without
/// it, the next `kubectl apply --server-side` conflicts. Update-only ownership is left to the
/// server (Velero patches it back every time, doubling the requests of a restore).
async fn restore_field_ownership(
    ctx: &Ctx,
    object_path: &str,
    item: &Value,
    id: &str,
    report: &mut Report,
) {
    let Some(managed) = item
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return;
    };
    if !managed.iter().any(|m| m["operation"] == "Apply") {
        return;
    }
    let patch = json!({"metadata": {"managedFields": managed}});
    if let Err(e) = ctx.writer.merge_patch(object_path, &patch).await
        && !e.is_not_found()
    {
        report
            .errors
            .push(format!("error restoring the field ownership of {id}: {e}"));
    }
}

/// Velero's `determineRestoreStatus`: the Restore's `restoreStatus` lists, overridden per object
/// by the `velero.io/restore-status` annotation.
fn restore_status(ctx: &Ctx, group_resource: &str, item: &Value) -> bool {
    let by_spec = ctx
        .status_filter
        .as_ref()
        .is_some_and(|f| f.should_include(group_resource));
    match item
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RESTORE_STATUS_ANNOTATION))
        .and_then(Value::as_str)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("true") => true,
        Some("false") => false,
        _ => by_spec,
    }
}

async fn wait_for_crd(ctx: &Ctx, name: &str, report: &mut Report) {
    let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
    let deadline = tokio::time::Instant::now() + ctx.params.resource_timeout;
    loop {
        if let Ok(crd) = ctx.writer.get(&path).await {
            let ready = |t: &str| {
                crd.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            if ready("Established") && ready("NamesAccepted") {
                return;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            report.errors.push(format!(
                "the CRD {name} is not available to use for custom resources"
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Velero's handling of an item that already exists: compare, then warn, merge or update.
async fn existing(
    ctx: &Ctx,
    group_resource: &str,
    object_path: &str,
    kind: &str,
    item: &Value,
    id: &str,
    report: &mut Report,
) -> Option<(Action, Option<String>)> {
    let from_cluster = match ctx.writer.get(object_path).await {
        Ok(v) => v,
        Err(e) => {
            report.warnings.push(format!(
                "could not get the in-cluster version of {id}, which already exists: {e}"
            ));
            return None;
        }
    };
    let name = str_at(item, "/metadata/name").unwrap_or_default();
    let as_is = comparable(&from_cluster);
    let labels = &item["metadata"]["labels"];
    // Only the labels that say which backup and restore last touched the object.
    let restore_labels = json!({"metadata": {"labels": {
        velero_api::labels::BACKUP_NAME: labels[velero_api::labels::BACKUP_NAME],
        velero_api::labels::RESTORE_NAME: labels[velero_api::labels::RESTORE_NAME],
    }}});
    // The in-cluster object cannot carry this restore's labels yet; compare it as if it did.
    let mut cluster = as_is.clone();
    json_patch::merge(&mut cluster, &restore_labels);
    let wanted = comparable(item);
    if cluster == wanted {
        if ctx.policy == Policy::Update
            && let Err(e) = ctx.writer.merge_patch(object_path, &restore_labels).await
        {
            report.errors.push(e.to_string());
        }
        ctx.info(&format!(
            "Restore of {id} skipped: it already exists in the cluster and is the same as the backed up version"
        ));
        return None;
    }
    if group_resource == "serviceaccounts" {
        let desired = merge_service_accounts(&cluster, &wanted);
        let patch = merge_patch(&cluster, &desired)?;
        return match ctx.writer.merge_patch(object_path, &patch).await {
            Ok(_) => Some((Action::Updated, None)),
            Err(e) => {
                report.warnings.push(e.to_string());
                None
            }
        };
    }
    match ctx.policy {
        Policy::Unset => {
            report.warnings.push(format!(
                "could not restore, {kind}:{name} already exists. Warning: the in-cluster version is different than the backed-up version"
            ));
            None
        }
        Policy::None => {
            report.warnings.push(format!(
                "could not restore, {kind} {name:?} already exists. Warning: the in-cluster version is different than the backed-up version"
            ));
            None
        }
        Policy::Update => {
            // From the object as it is, so the patch also moves the restore labels to this restore.
            let patch = merge_patch(&as_is, &wanted)?;
            match ctx.writer.merge_patch(object_path, &patch).await {
                Ok(_) => Some((Action::Updated, None)),
                Err(e) => {
                    report.warnings.push(e.to_string());
                    // At least record which restore last saw it.
                    if let Err(e) = ctx.writer.merge_patch(object_path, &restore_labels).await {
                        report.errors.push(e.to_string());
                    }
                    None
                }
            }
        }
    }
}

/// (type, backed-up namespace, name) of the items an item brings with it.
/// What a backed-up item brings along (Velero's restore of additional items): a claim its volume,
/// a pod its claims and priority class, by the relations in `velero_api::kuberesource`.
fn additional_items(
    group_resource: &str,
    namespace: Option<&str>,
    item: &Value,
) -> Vec<(&'static str, Option<String>, String)> {
    let mut out = Vec::new();
    match group_resource {
        PERSISTENT_VOLUME_CLAIMS => {
            if let Some(volume) = kuberesource::claim_volume(item) {
                out.push((PERSISTENT_VOLUMES, None, volume.to_string()));
            }
        }
        kuberesource::PODS => {
            out.extend(kuberesource::pod_claims(item).map(|claim| {
                (
                    PERSISTENT_VOLUME_CLAIMS,
                    namespace.map(str::to_string),
                    claim.to_string(),
                )
            }));
            if let Some(class) = str_at(item, "/spec/priorityClassName").filter(|c| !c.is_empty()) {
                out.push((kuberesource::PRIORITY_CLASSES, None, class.to_string()));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_reset_keeps_what_velero_keeps() {
        let mut item = json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "1", "generation": 2,
            "creationTimestamp": "t", "selfLink": "s", "ownerReferences": [], "generateName": "a-",
            "labels": {"k": "v"}, "annotations": {"x": "y"}, "finalizers": ["f"], "managedFields": []}});
        reset_metadata(&mut item);
        assert_eq!(
            item,
            json!({"metadata": {"name": "a", "labels": {"k": "v"}, "annotations": {"x": "y"}, "finalizers": ["f"], "managedFields": []}})
        );
    }

    #[test]
    fn merge_patches_turn_one_object_into_the_other() {
        let a = json!({"spec": {"replicas": 1, "keep": true, "gone": 1}, "x": [1]});
        let b = json!({"spec": {"replicas": 3, "keep": true, "new": "n"}, "x": [2]});
        let patch = merge_patch(&a, &b).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"replicas": 3, "new": "n", "gone": null}, "x": [2]})
        );
        let mut applied = a.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, b);
        assert_eq!(merge_patch(&a, &a), None);
    }

    #[test]
    fn service_accounts_merge_secrets_and_labels() {
        let cluster =
            json!({"metadata": {"name": "sa", "labels": {"a": "1"}}, "secrets": [{"name": "s1"}]});
        let backup = json!({"metadata": {"name": "sa", "labels": {"a": "2", "b": "2"}}, "secrets": [{"name": "s1"}, {"name": "s2"}], "imagePullSecrets": [{"name": "p"}]});
        let merged = merge_service_accounts(&cluster, &backup);
        assert_eq!(merged["secrets"], json!([{"name": "s1"}, {"name": "s2"}]));
        assert_eq!(merged["imagePullSecrets"], json!([{"name": "p"}]));
        assert_eq!(merged["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn completed_and_mirror_pods_and_finished_jobs_are_skipped() {
        assert!(skip_reason("pods", &json!({"status": {"phase": "Succeeded"}})).is_some());
        assert!(skip_reason("pods", &json!({"status": {"phase": "Running"}})).is_none());
        assert!(
            skip_reason(
                "pods",
                &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})
            )
            .is_some()
        );
        assert!(skip_reason("jobs.batch", &json!({"status": {"completionTime": "t"}})).is_some());
        assert!(
            skip_reason(
                "deployments.apps",
                &json!({"status": {"phase": "Succeeded"}})
            )
            .is_none()
        );
    }

    #[test]
    fn pods_bring_claims_and_priority_classes_and_claims_bring_volumes() {
        let pod = json!({"spec": {"priorityClassName": "high", "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "e", "emptyDir": {}}]}});
        assert_eq!(
            additional_items("pods", Some("a"), &pod),
            vec![
                (
                    "persistentvolumeclaims",
                    Some("a".to_string()),
                    "data".to_string()
                ),
                (
                    "priorityclasses.scheduling.k8s.io",
                    None,
                    "high".to_string()
                )
            ]
        );
        let claim = json!({"spec": {"volumeName": "pv-1"}});
        assert_eq!(
            additional_items("persistentvolumeclaims", Some("a"), &claim),
            vec![("persistentvolumes", None, "pv-1".to_string())]
        );
    }

    #[test]
    fn comparison_ignores_server_bookkeeping() {
        let a = json!({"metadata": {"name": "x", "uid": "1", "managedFields": [{"time": "t1"}]}, "spec": {"a": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {"name": "x", "uid": "2", "managedFields": [{"time": "t2"}]}, "spec": {"a": 1}});
        assert_eq!(comparable(&a), comparable(&b));
    }
}
