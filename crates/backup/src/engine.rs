//! Runs one backup: lists every selected type concurrently, page by page, and streams each item
//! into the tarball as soon as it arrives, so memory stays bounded by a few pages however large the
//! cluster is.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use velero_api::item::str_at;

use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use velero_archive::{ItemPath, TarballWriter};
use velero_cluster::api::ApiReader;
use velero_cluster::discovery::{DiscoveredResource, Discovery};
use velero_report::{Context, OperationLog, OperationResults, locked};

use crate::actions;
use velero_hooks::Phase;
use velero_hooks::backup::BackupHooks;

/// What the backup selects; `selection::BackupSelection` builds it from a Backup's spec.
pub trait Selection: Send + Sync {
    /// Whether items of this type are listed at all.
    fn include_type(&self, resource: &DiscoveredResource) -> bool;
    /// Namespaces to list namespaced types in; `None` means all namespaces in one list call.
    fn namespace_scopes(&self) -> Vec<Option<String>>;
    /// Whether a namespaced item in `namespace` belongs to the backup.
    fn include_namespace(&self, namespace: &str) -> bool;
    /// Label selectors to list with, as query strings; one list per entry (OR-selectors).
    /// `[None]` lists without a selector.
    fn label_selectors(&self) -> Vec<Option<String>>;
    /// Whether an additional item of this type must be left out.
    fn exclude_additional(&self, resource: &DiscoveredResource) -> bool;
    /// Whether the Namespace object itself is backed up (Velero's namespace tracker).
    fn keep_namespace(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        active: bool,
        has_items: bool,
    ) -> bool;
    /// The `orderedResources` entry for this type (`ns/name,ns/name` or `name,name`), if any.
    fn item_order(&self, resource: &DiscoveredResource) -> Option<String>;
    /// Included namespace names that do not exist (each is an error, as in Velero).
    fn missing_namespaces(&self) -> Vec<String>;
    /// The filters as resolved, for the log.
    fn summary(&self) -> Vec<String> {
        Vec::new()
    }
    /// Resource names that resolve to no type (each a warning: a typo backs up nothing).
    fn unresolved_resources(&self) -> Vec<String> {
        Vec::new()
    }
}

/// List streams one backup runs at once. The API server, not this process, sets the pace (a
/// 100,000-object backup spends about 2 s of our CPU); more streams than this gain nothing there.
pub const LIST_CONCURRENCY: usize = 8;

pub struct BackupParams {
    /// Namespace and name of the Backup object (for the log).
    pub backup_namespace: String,
    pub backup_name: String,
    /// How many list streams run at once.
    pub concurrency: usize,
    /// The backup's hooks; `None` runs none (not even pods' annotation hooks).
    pub hooks: Option<Arc<BackupHooks>>,
    /// File-system backup of pod volumes; `None` backs up no volume data.
    pub pod_volumes: Option<Arc<dyn PodVolumes>>,
}

/// File-system backup of a pod's volumes. The engine calls it once the pod and its additional
/// items are written and awaits it before the pod's post hooks, so that a freeze/unfreeze pair
/// of hooks brackets the data (Velero's `waitUntilPVBsProcessed`).
pub trait PodVolumes: Send + Sync {
    fn back_up<'a>(
        &'a self,
        pod: &'a Value,
        log: &'a Mutex<OperationLog>,
    ) -> futures::future::BoxFuture<'a, ()>;
}

/// Pods of one list page backed up at once when they have hooks or volume data. The hooks' own
/// window ([`velero_hooks::MAX_CONCURRENT_EXECS`]) bounds the commands running and narrows when
/// the API server turns execs away; each pod's own hooks still run in order, its pre hooks before
/// its items and its post hooks after. Velero backs pods up one after another.
const POD_CONCURRENCY: usize = velero_hooks::MAX_CONCURRENT_EXECS;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub total_items: u64,
    pub items_backed_up: u64,
}

pub struct BackupOutcome {
    pub items_backed_up: u64,
    /// `"<apiVersion>/<Kind>"` → sorted `ns/name` or `name` (`<backup>-resource-list.json.gz`).
    pub resource_list: BTreeMap<String, Vec<String>>,
    pub log_gz: Vec<u8>,
    pub results: OperationResults,
}

/// A backup that could not finish, with its log so far.
pub type BackupFailure = velero_report::Failed<BackupError>;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("writing the backup tarball: {0}")]
    Write(#[source] std::io::Error),
    #[error("listing namespaces: {0}")]
    Namespaces(#[source] kube::Error),
}

/// One object on its way into the tarball.
struct Item {
    group_resource: String,
    version: String,
    namespace: Option<String>,
    name: String,
    type_key: String,
    json: Vec<u8>,
}

type Key = (String, String, String);

struct Shared<'a> {
    reader: &'a ApiReader,
    discovery: &'a Discovery,
    selection: &'a dyn Selection,
    seen: Mutex<HashSet<Key>>,
    namespaces_with_items: Mutex<BTreeSet<String>>,
    log: Mutex<OperationLog>,
    // Taken when collection ends, which closes the channel and lets the writer finish.
    tx: Mutex<Option<mpsc::Sender<Item>>>,
    listed: std::sync::atomic::AtomicU64,
    // ClusterRoleBindings, listed once on the first ServiceAccount.
    bindings: tokio::sync::OnceCell<Vec<Value>>,
    hooks: Option<&'a BackupHooks>,
    pod_volumes: Option<&'a dyn PodVolumes>,
    backup_name: &'a str,
}

/// A listed object as raw JSON, or one fetched on its own as a parsed value.
enum Payload {
    Raw(Box<serde_json::value::RawValue>),
    Value(Value),
}

/// The metadata the engine decides on.
struct ItemMeta {
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    deleting: bool,
}

#[derive(serde::Deserialize)]
struct MetaOnly {
    metadata: MetaFields,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaFields {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

impl Payload {
    fn meta(&self) -> Option<ItemMeta> {
        let fields = match self {
            Payload::Raw(raw) => serde_json::from_str::<MetaOnly>(raw.get()).ok()?.metadata,
            Payload::Value(v) => {
                serde_json::from_value::<MetaOnly>(
                    serde_json::json!({ "metadata": v.get("metadata")? }),
                )
                .ok()?
                .metadata
            }
        };
        Some(ItemMeta {
            name: fields.name?,
            namespace: fields.namespace,
            labels: fields.labels,
            deleting: fields.deletion_timestamp.is_some(),
        })
    }

    fn to_value(&self) -> Option<Value> {
        match self {
            Payload::Raw(raw) => serde_json::from_str(raw.get()).ok(),
            Payload::Value(v) => Some(v.clone()),
        }
    }

    /// The item as written into the tarball. List responses leave out each item's apiVersion and
    /// kind; Velero's files carry them, so they are put in front.
    fn into_bytes(self, resource: &DiscoveredResource) -> Vec<u8> {
        match self {
            Payload::Raw(raw) => {
                let body = raw.get().trim_start();
                let rest = body.strip_prefix('{').unwrap_or(body).trim_start();
                let head = serde_json::json!({ "apiVersion": resource.api_version(), "kind": resource.kind.clone() }).to_string();
                let mut out = String::with_capacity(head.len() + body.len());
                out.push_str(&head[..head.len() - 1]);
                if !rest.starts_with('}') {
                    out.push(',');
                }
                out.push_str(rest);
                out.into_bytes()
            }
            Payload::Value(mut v) => {
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("apiVersion".into(), Value::String(resource.api_version()));
                    obj.insert("kind".into(), Value::String(resource.kind.clone()));
                }
                serde_json::to_vec(&v).unwrap_or_default()
            }
        }
    }
}

impl Shared<'_> {
    fn log_info(&self, msg: &str, ctx: Context<'_>) {
        locked(&self.log).info(msg, ctx);
    }
    fn log_warn(&self, msg: &str, ctx: Context<'_>) {
        locked(&self.log).warn(msg, ctx);
    }
    fn log_error(&self, msg: &str, err: &str, ctx: Context<'_>) {
        locked(&self.log).error(msg, err, ctx);
    }

    /// Backs up one object (and what it brings along). `additional` items skip the label selector
    /// but not the namespace filter or the exclude label, as in Velero.
    async fn back_up(&self, resource: &DiscoveredResource, item: Value) -> Result<(), BackupError> {
        self.back_up_payload(resource, Payload::Value(item)).await
    }

    /// Backs up one object (and what it brings along). Listed items arrive as raw JSON and are
    /// written without being rebuilt, which keeps the per-item cost to a scan of its metadata.
    async fn back_up_payload(
        &self,
        resource: &DiscoveredResource,
        mut item: Payload,
    ) -> Result<(), BackupError> {
        let Some(meta) = item.meta() else {
            return Ok(());
        };
        let name = meta.name;
        let namespace = if resource.namespaced {
            meta.namespace
        } else {
            None
        };
        let gr = resource.group_resource();
        let ctx = Context {
            namespace: namespace.as_deref(),
            resource: Some(&gr),
            name: Some(&name),
        };
        if meta
            .labels
            .get(velero_api::labels::EXCLUDE_FROM_BACKUP)
            .map(String::as_str)
            == Some("true")
        {
            self.log_info(
                "Skipping item because it has the velero.io/exclude-from-backup=true label",
                ctx,
            );
            return Ok(());
        }
        if namespace
            .as_deref()
            .is_some_and(|ns| !self.selection.include_namespace(ns))
        {
            return Ok(());
        }
        if meta.deleting {
            self.log_info("Skipping item because it's being deleted.", ctx);
            return Ok(());
        }
        let key = (
            gr.clone(),
            namespace.clone().unwrap_or_default(),
            name.clone(),
        );
        if !locked(&self.seen).insert(key) {
            return Ok(());
        }
        if let Some(ns) = &namespace {
            let mut with_items = locked(&self.namespaces_with_items);
            if !with_items.contains(ns) {
                with_items.insert(ns.clone());
            }
        }
        let is_pod =
            resource.group.is_empty() && resource.resource == velero_api::kuberesource::PODS;
        let hooks = self.hooks.filter(|_| is_pod);
        let pod_volumes = self.pod_volumes.filter(|_| is_pod);
        let needs_value = hooks.is_some()
            || pod_volumes.is_some()
            || actions::brings_additional_items(&resource.group, &resource.resource);
        let mut value = if needs_value { item.to_value() } else { None };
        if resource.group.is_empty()
            && resource.resource == velero_api::kuberesource::PERSISTENT_VOLUME_CLAIMS
            && let Some(claim) = value.as_mut()
            && actions::prepare_claim(claim, self.backup_name)
        {
            item = Payload::Value(claim.clone());
        }
        if let (Some(hooks), Some(pod)) = (hooks, &value)
            && let Err(e) = hooks.run(pod, Phase::Pre, &self.log).await
        {
            // Velero leaves the pod out (it counts as backed up) and goes on with the rest.
            self.log_error("Error running pre hooks for pod", &e, ctx);
            return Ok(());
        }
        let additional = match &value {
            Some(v) if actions::brings_additional_items(&resource.group, &resource.resource) => {
                self.additional_items(resource, v).await
            }
            _ => Vec::new(),
        };
        let json = item.into_bytes(resource);
        let type_key = format!("{}/{}", resource.api_version(), resource.kind);
        self.log_info("Backing up item", ctx);
        let Some(tx) = locked(&self.tx).clone() else {
            return Ok(());
        };
        let sent = tx
            .send(Item {
                group_resource: gr.clone(),
                version: resource.version.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                type_key,
                json,
            })
            .await;
        if sent.is_err() {
            // The writer stopped; its error is reported when it is joined.
            return Ok(());
        }
        for (dr, ns, name) in additional {
            Box::pin(self.back_up_additional(&dr, ns.as_deref(), &name)).await?;
        }
        if let (Some(volumes), Some(pod)) = (pod_volumes, &value) {
            volumes.back_up(pod, &self.log).await;
        }
        if let (Some(hooks), Some(pod)) = (hooks, &value)
            && let Err(e) = hooks.run(pod, Phase::Post, &self.log).await
        {
            let ctx = Context {
                namespace: namespace.as_deref(),
                resource: Some(&gr),
                name: Some(&name),
            };
            self.log_error("Error running post hooks for pod", &e, ctx);
        }
        Ok(())
    }

    async fn back_up_additional(
        &self,
        resource: &DiscoveredResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), BackupError> {
        let gr = resource.group_resource();
        if self.selection.exclude_additional(resource) {
            return Ok(());
        }
        if namespace.is_some_and(|ns| !self.selection.include_namespace(ns)) {
            return Ok(());
        }
        let key = (
            gr.clone(),
            namespace.unwrap_or_default().to_string(),
            name.to_string(),
        );
        if locked(&self.seen).contains(&key) {
            return Ok(());
        }
        let ctx = Context {
            namespace,
            resource: Some(&gr),
            name: Some(name),
        };
        match self
            .reader
            .get_opt(&resource.object_path(namespace, name))
            .await
        {
            Ok(Some(item)) => self.back_up(resource, item).await,
            Ok(None) => {
                self.log_warn(
                    "Additional item was not found in Kubernetes API, can't back it up",
                    ctx,
                );
                Ok(())
            }
            Err(e) => {
                self.log_error("Error getting additional item", &e.to_string(), ctx);
                Ok(())
            }
        }
    }

    /// Velero's built-in item actions: a pod brings its claims and PriorityClass, a claim its
    /// volume, a ServiceAccount the ClusterRoleBindings naming it and their ClusterRoles.
    /// The items `item` brings along ([`actions::additional_items`]), as the types discovery
    /// serves.
    async fn additional_items(
        &self,
        resource: &DiscoveredResource,
        item: &Value,
    ) -> Vec<(DiscoveredResource, Option<String>, String)> {
        let bindings: &[Value] =
            if actions::needs_cluster_role_bindings(&resource.group, &resource.resource) {
                self.cluster_role_bindings().await
            } else {
                &[]
            };
        actions::additional_items(&resource.resource, item, bindings)
            .into_iter()
            .filter_map(|related| {
                let served = self.discovery.by_group_resource(related.group_resource)?;
                Some((served.clone(), related.namespace, related.name))
            })
            .collect()
    }

    async fn cluster_role_bindings(&self) -> &Vec<Value> {
        self.bindings
            .get_or_init(|| async {
                let Some(dr) = self
                    .discovery
                    .by_group_resource(velero_api::kuberesource::CLUSTER_ROLE_BINDINGS)
                else {
                    return Vec::new();
                };
                match self.reader.list_all(&dr.list_path(None)).await {
                    Ok(all) => all,
                    Err(e) => {
                        self.log_error(
                            "Error listing ClusterRoleBindings for ServiceAccounts",
                            &e.to_string(),
                            Context::default(),
                        );
                        Vec::new()
                    }
                }
            })
            .await
    }

    /// Lists one type in one scope with one selector and backs every item up.
    async fn list_and_back_up(
        &self,
        resource: &DiscoveredResource,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<(), BackupError> {
        let gr = resource.group_resource();
        let order = self.selection.item_order(resource);
        let mut buffered: Vec<Value> = Vec::new();
        let path = resource.list_path(namespace);
        let mut pager = self.reader.pages(&path, selector);
        loop {
            let page = match pager.next_raw_page().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    let ctx = Context {
                        namespace,
                        resource: Some(&gr),
                        name: None,
                    };
                    self.log_error("Error listing items", &e.to_string(), ctx);
                    return Ok(());
                }
            };
            self.listed
                .fetch_add(page.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if order.is_some() {
                buffered.extend(
                    page.iter()
                        .filter_map(|r| serde_json::from_str::<Value>(r.get()).ok()),
                );
                continue;
            }
            let pod_work = self.hooks.is_some() || self.pod_volumes.is_some();
            if pod_work && resource.group.is_empty() && resource.resource == "pods" {
                let results: Vec<Result<(), BackupError>> = futures::stream::iter(page)
                    .map(|item| self.back_up_payload(resource, Payload::Raw(item)))
                    .buffer_unordered(POD_CONCURRENCY)
                    .collect()
                    .await;
                results.into_iter().collect::<Result<(), _>>()?;
                continue;
            }
            for item in page {
                self.back_up_payload(resource, Payload::Raw(item)).await?;
            }
        }
        if let Some(order) = order {
            let ordered = order_items(buffered, &order, resource.namespaced);
            for missing in &ordered.missing {
                let ctx = Context {
                    resource: Some(&gr),
                    name: Some(missing),
                    ..Default::default()
                };
                self.log_warn("Cannot find resource named in orderedResources", ctx);
            }
            for item in ordered.items {
                self.back_up(resource, item).await?;
            }
        }
        Ok(())
    }
}

/// `--ordered-resources`: the named items first, in the given order, then the rest as listed.
fn order_items(
    items: Vec<Value>,
    order: &str,
    namespaced: bool,
) -> velero_filters::OrderedItems<Value> {
    velero_filters::sort_by_order(items, order, |item| {
        let name = str_at(item, "/metadata/name").unwrap_or_default();
        if namespaced {
            format!(
                "{}/{name}",
                str_at(item, "/metadata/namespace").unwrap_or_default()
            )
        } else {
            name.to_string()
        }
    })
}

/// Writes items into the tarball as they come; returns the resource list.
async fn write_items<W: AsyncWrite + Unpin>(
    mut writer: TarballWriter<W>,
    mut rx: mpsc::Receiver<Item>,
    progress: &(dyn Fn(u64) + Sync),
) -> std::io::Result<(TarballWriter<W>, BTreeMap<String, BTreeSet<String>>, u64)> {
    let mut resource_list: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut count = 0u64;
    while let Some(item) = rx.recv().await {
        let path = ItemPath {
            group_resource: &item.group_resource,
            namespace: item.namespace.as_deref(),
            name: &item.name,
        };
        // Every type is listed at its preferred version, so both copies are written.
        for entry in path.entries(&item.version, true) {
            writer.append(&entry, &item.json).await?;
        }
        let listed = match &item.namespace {
            Some(ns) => format!("{ns}/{}", item.name),
            None => item.name.clone(),
        };
        resource_list
            .entry(item.type_key)
            .or_default()
            .insert(listed);
        count += 1;
        progress(count);
    }
    Ok((writer, resource_list, count))
}

/// Runs the backup, streaming the tarball into `sink`; returns the outcome and the sink (its
/// upload completed by [`TarballWriter::finish`]), or the failure with the log up to it.
pub async fn run<W: AsyncWrite + Unpin + Send>(
    reader: &ApiReader,
    discovery: &Discovery,
    selection: &dyn Selection,
    params: &BackupParams,
    sink: W,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(BackupOutcome, W), BackupFailure> {
    let started = std::time::Instant::now();
    let mut log = OperationLog::backup(&params.backup_namespace, &params.backup_name);
    let writer = match TarballWriter::new(sink).await {
        Ok(w) => w,
        Err(e) => {
            return Err(BackupFailure {
                error: BackupError::Write(e),
                log,
            });
        }
    };
    let (tx, rx) = mpsc::channel::<Item>(256);
    for line in selection.summary() {
        log.info(&line, Context::default());
    }
    for unresolved in selection.unresolved_resources() {
        log.warn(&unresolved, Context::default());
    }
    for (group, error) in &discovery.failed_groups {
        log.warn(
            &format!("Error discovering resources of {group}: {error}"),
            Context::default(),
        );
    }
    let shared = Arc::new(Shared {
        reader,
        discovery,
        selection,
        seen: Mutex::new(HashSet::new()),
        namespaces_with_items: Mutex::new(BTreeSet::new()),
        log: Mutex::new(log),
        tx: Mutex::new(Some(tx)),
        listed: std::sync::atomic::AtomicU64::new(0),
        bindings: tokio::sync::OnceCell::new(),
        hooks: params.hooks.as_deref(),
        pod_volumes: params.pod_volumes.as_deref(),
        backup_name: &params.backup_name,
    });

    let report = |done: u64| {
        let total = shared
            .listed
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(done);
        progress(Progress {
            total_items: total,
            items_backed_up: done,
        });
    };
    let writing = write_items(writer, rx, &report);

    let collecting = {
        let shared = shared.clone();
        async move {
            let types: Vec<&DiscoveredResource> = discovery
                .resources
                .iter()
                .filter(|r| !(r.group.is_empty() && r.resource == "namespaces"))
                .filter(|r| selection.include_type(r))
                .collect();
            let scopes = selection.namespace_scopes();
            let selectors = selection.label_selectors();
            let mut jobs = Vec::new();
            for r in &types {
                let namespaces: Vec<Option<String>> = if r.namespaced {
                    scopes.clone()
                } else {
                    vec![None]
                };
                for ns in namespaces {
                    for sel in &selectors {
                        jobs.push((*r, ns.clone(), sel.clone()));
                    }
                }
            }
            // Boxed one by one: a closure returning a borrowing future defeats the compiler's Send
            // proof once the whole backup runs on a spawned task.
            let tasks: Vec<futures::future::BoxFuture<'_, Result<(), BackupError>>> = jobs
                .into_iter()
                .map(|(r, ns, sel)| {
                    let shared = shared.clone();
                    async move {
                        shared
                            .list_and_back_up(r, ns.as_deref(), sel.as_deref())
                            .await
                    }
                    .boxed()
                })
                .collect();
            let results: Vec<Result<(), BackupError>> = futures::stream::iter(tasks)
                .buffer_unordered(params.concurrency.max(1))
                .collect()
                .await;
            for r in results {
                r?;
            }
            tracing::debug!(elapsed = ?started.elapsed(), "lists done");
            finish_collection(&shared).await?;
            tracing::debug!(elapsed = ?started.elapsed(), "namespaces and CRDs done");
            Ok::<(), BackupError>(())
        }
    };

    let (collected, written) = tokio::join!(
        async {
            let r = collecting.await;
            locked(&shared.tx).take();
            r
        },
        writing
    );
    let finished = async {
        collected?;
        let (writer, resource_list, count) = written.map_err(BackupError::Write)?;
        tracing::debug!(elapsed = ?started.elapsed(), "items written");
        let sink = writer.finish().await.map_err(BackupError::Write)?;
        tracing::debug!(elapsed = ?started.elapsed(), "tarball finished");
        Ok::<_, BackupError>((resource_list, count, sink))
    }
    .await;
    // Every task is done with the log by now; take it out whatever happened.
    let log = std::mem::replace(
        &mut *locked(&shared.log),
        OperationLog::backup(&params.backup_namespace, &params.backup_name),
    );
    let (resource_list, count, sink) = match finished {
        Ok(done) => done,
        Err(error) => return Err(BackupFailure { error, log }),
    };
    let (log_gz, results) = log.finish();
    Ok((
        BackupOutcome {
            items_backed_up: count,
            resource_list: resource_list
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            log_gz,
            results,
        },
        sink,
    ))
}

/// After the lists: the CRDs of backed-up custom resources, the Namespace objects, and the errors
/// for included namespaces that do not exist.
async fn finish_collection(shared: &Shared<'_>) -> Result<(), BackupError> {
    // Velero adds the CRD of every backed-up custom resource type unless CRDs are excluded.
    let crd_type = shared
        .discovery
        .by_group_resource("customresourcedefinitions.apiextensions.k8s.io")
        .filter(|crd_type| !shared.selection.exclude_additional(crd_type));
    if let Some(crd_type) = crd_type {
        let backed_up: BTreeSet<String> = locked(&shared.seen)
            .iter()
            .map(|(gr, _, _)| gr.clone())
            .collect();
        for gr in backed_up.iter().filter(|gr| gr.contains('.')) {
            match shared.reader.get_opt(&crd_type.object_path(None, gr)).await {
                Ok(Some(crd)) => shared.back_up(crd_type, crd).await?,
                Ok(None) => {}
                Err(e) => {
                    let ctx = Context {
                        resource: Some(gr),
                        ..Default::default()
                    };
                    shared.log_error("Error getting CRD", &e.to_string(), ctx);
                }
            }
        }
    }

    // Namespace objects go through the namespace tracker, but only when the type itself is
    // selected (`includeClusterResources: false` leaves them out, as in Velero, which then does not
    // check the included namespaces' existence either).
    let Some(ns_type) = shared
        .discovery
        .by_group_resource("namespaces")
        .filter(|ns_type| shared.selection.include_type(ns_type))
    else {
        return Ok(());
    };
    let with_items = locked(&shared.namespaces_with_items).clone();
    let mut keep = Vec::new();
    let namespaces = shared
        .reader
        .list_all(&ns_type.list_path(None))
        .await
        .map_err(BackupError::Namespaces)?;
    for ns in namespaces {
        let name = str_at(&ns, "/metadata/name")
            .unwrap_or_default()
            .to_string();
        let active = ns
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .is_none_or(|p| p == "Active");
        if shared.selection.keep_namespace(
            &name,
            &velero_api::item::labels(&ns),
            active,
            with_items.contains(&name),
        ) {
            keep.push(ns);
        }
    }
    for ns in keep {
        shared.back_up(ns_type, ns).await?;
    }
    for missing in shared.selection.missing_namespaces() {
        // Velero logs this without a namespace field, so it lands in the results' `velero` list.
        let message = format!(
            "fail to get the namespace {missing} specified in backup.Spec.IncludedNamespaces"
        );
        shared.log_error(&message, "", Context::default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listed_items_get_api_version_and_kind_in_front() {
        let resource = DiscoveredResource {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            singular: "deployment".into(),
            kind: "Deployment".into(),
            short_names: vec![],
            namespaced: true,
        };
        let raw = |s: &str| {
            Payload::Raw(serde_json::value::RawValue::from_string(s.to_string()).unwrap())
        };
        let bytes = raw(r#" { "metadata": {"name": "web"}, "spec": {"replicas": 2} }"#)
            .into_bytes(&resource);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}})
        );
        let empty: Value = serde_json::from_slice(&raw("{}").into_bytes(&resource)).unwrap();
        assert_eq!(
            empty,
            json!({"apiVersion": "apps/v1", "kind": "Deployment"})
        );
        let meta = raw(r#"{"metadata":{"name":"a","namespace":"n","labels":{"x":"y"},"deletionTimestamp":"2026-01-01T00:00:00Z"}}"#).meta().unwrap();
        assert_eq!(
            (meta.name.as_str(), meta.namespace.as_deref(), meta.deleting),
            ("a", Some("n"), true)
        );
        assert_eq!(meta.labels["x"], "y");
    }

    #[test]
    fn ordered_items_come_first_in_the_given_order() {
        let item = |ns: &str, n: &str| json!({"metadata": {"namespace": ns, "name": n}});
        let items = vec![
            item("a", "p1"),
            item("a", "p2"),
            item("b", "p3"),
            item("a", "p4"),
        ];
        let ordered = order_items(items, "b/p3,a/p2,a/missing", true);
        let names: Vec<_> = ordered
            .items
            .iter()
            .map(|i| str_at(i, "/metadata/name").unwrap().to_string())
            .collect();
        assert_eq!(names, ["p3", "p2", "p1", "p4"]);
        assert_eq!(ordered.missing, ["a/missing"]);
    }
}
