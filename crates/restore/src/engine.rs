//! The restore run: spool the tarball, restore CRDs and wait for them, then every other type in
//! Velero's priority order, each type's items concurrently through one adaptive window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, RwLock};
use velero_api::item::str_at;
use velero_cluster::discovery::{Discovery, discover};
use velero_cluster::write::ApiWriter;
use velero_filters::IncludesExcludes;
use velero_report::{Level, OperationLog, locked};

use crate::actions::{ActionContext, Verdict, apply_builtin};
use crate::existing::{ExistingItem, Policy, existing};
use crate::item::{add_restore_labels, additional_items, port_taken, reset_metadata, skip_reason};
use crate::namespaces::TargetNamespaces;
use crate::outcome::{
    Action, Ended, Progress, Report, RestoreError, RestoreFailure, RestoreOutcome, RestoreParams,
};
use crate::priorities::restore_order;
use crate::selection::RestoreFilter;
use crate::spool::{ItemKey, Spool, SpooledItem};
use crate::volumes::{VolumeVerdict, Volumes};
use velero_api::kuberesource::NAMESPACES;
use velero_api::kuberesource::{self, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES};
use velero_hooks::HookTracker;
use velero_hooks::restore::{ExecContext, run_exec_hooks};

use crate::plan::{PlanNote, PlannedAction, RestorePlan};
use velero_api::labels::RESTORE_STATUS_ANNOTATION;

/// The key Velero dedups restored items by: (`<apiVersion>/<Kind>`, target namespace, name).
type RestoredKey = (String, String, String);

struct Restored {
    action: Action,
    created_name: Option<String>,
}

struct Ctx {
    client: kube::Client,
    writer: ApiWriter,
    discovery: RwLock<Discovery>,
    filter: RestoreFilter,
    params: RestoreParams,
    policy: Policy,
    status_filter: Option<IncludesExcludes>,
    /// Shared with [`run`], which takes it out whether the restore ends well or not.
    log: Arc<Mutex<OperationLog>>,
    restored: Mutex<HashMap<RestoredKey, Restored>>,
    namespaces: TargetNamespaces,
    service_accounts: Mutex<HashMap<String, Arc<OnceCell<BTreeSet<String>>>>>,
    additional: HashMap<ItemKey, Value>,
    volumes: Volumes,
    total: AtomicU64,
    done: AtomicU64,
    /// Work that outlives the items: restored pods' volume restores and exec hooks.
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    hook_tracker: Arc<HookTracker>,
    /// The places restored pods' exec hooks run in.
    hook_window: Arc<velero_cluster::window::Window>,
    /// A dry run's plan so far, by (resource, target namespace, name).
    plan: Mutex<BTreeMap<(String, String, String), PlanNote>>,
}

impl Ctx {
    fn record(&self, level: Level, scope: Option<&str>, message: &str) {
        locked(&self.log).record(level, scope, message);
    }

    fn info(&self, message: &str) {
        self.record(Level::Info, None, message);
    }

    fn dry_run(&self) -> bool {
        self.params.dry_run
    }

    /// Adds an item to a dry run's plan (the first word on an item stands).
    fn plan(&self, group_resource: &str, namespace: Option<&str>, name: &str, note: PlanNote) {
        if !self.dry_run() {
            return;
        }
        let key = (
            group_resource.to_string(),
            namespace.unwrap_or_default().to_string(),
            name.to_string(),
        );
        locked(&self.plan).entry(key).or_insert(note);
    }

    /// Whether a dry run would create `namespace` (so the API server, which does not have it,
    /// cannot check what goes into it).
    fn namespace_planned(&self, namespace: &str) -> bool {
        self.dry_run()
            && locked(&self.restored)
                .get(&(
                    "v1/Namespace".to_string(),
                    String::new(),
                    namespace.to_string(),
                ))
                .is_some_and(|r| r.action == Action::Created)
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

    /// The target namespace, created if it is not there; counted and logged when this restore
    /// created it.
    async fn ensure_namespace(&self, original: &str, target: &str) -> Result<(), String> {
        let created = || {
            self.set_action(
                &("v1/Namespace".into(), String::new(), target.to_string()),
                Action::Created,
                None,
            );
            self.done.fetch_add(1, Ordering::Relaxed);
            self.info(&format!("Created namespace {target}"));
            self.plan(
                NAMESPACES,
                None,
                target,
                PlanNote::new(PlannedAction::Create),
            );
        };
        self.namespaces
            .ensure(&self.writer, original, target, &created)
            .await
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

/// Restores the backup read from `tarball` (a blocking reader, consumed off the runtime) with the
/// types `discovery` found and the items `filter` selects, as the backup engine takes its
/// discovery and selection. A failure comes with the log written up to it.
pub async fn run(
    client: kube::Client,
    discovery: Discovery,
    filter: RestoreFilter,
    params: RestoreParams,
    tarball: impl std::io::Read + Send + 'static,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RestoreOutcome, RestoreFailure> {
    let (namespace, restore_name) = (params.velero_namespace.clone(), params.restore_name.clone());
    let fresh = || OperationLog::restore(&namespace, &restore_name);
    let log = Arc::new(Mutex::new(fresh()));
    let input = Input {
        client,
        discovery,
        filter,
        params,
    };
    match run_logged(input, tarball, progress, log.clone()).await {
        Ok(outcome) => Ok(outcome),
        Err(error) => Err(RestoreFailure {
            error,
            log: std::mem::replace(&mut *locked(&log), fresh()),
        }),
    }
}

struct Input {
    client: kube::Client,
    discovery: Discovery,
    filter: RestoreFilter,
    params: RestoreParams,
}

async fn run_logged(
    input: Input,
    tarball: impl std::io::Read + Send + 'static,
    progress: &(dyn Fn(Progress) + Sync),
    log: Arc<Mutex<OperationLog>>,
) -> Result<RestoreOutcome, RestoreError> {
    let Input {
        client,
        discovery,
        filter,
        params,
    } = input;
    locked(&log).record(
        Level::Info,
        None,
        &format!("starting restore of backup {}", params.backup_name),
    );
    let warnings = params.modifiers.iter().flat_map(|m| m.warnings());
    let image_warnings = params
        .image_rules
        .iter()
        .flat_map(|r| r.warnings().iter().cloned());
    for warning in warnings.chain(image_warnings) {
        locked(&log).record(Level::Warning, None, &warning);
    }

    let mut spool = {
        let filter = filter.clone();
        let scratch = params.scratch_dir.clone();
        tokio::task::spawn_blocking(move || Spool::read(tarball, &filter, scratch.as_deref()))
            .await
            .map_err(RestoreError::Task)??
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
    let policy = Policy::from_spec(params.spec.existing_resource_policy.as_deref());
    let writer = ApiWriter::new(client.clone(), params.max_in_flight);
    let writer = if params.dry_run {
        locked(&log).record(
            Level::Info,
            None,
            "dry run: every create and update is sent with dryRun=All, nothing is written to the cluster",
        );
        writer.dry_run()
    } else {
        writer
    };
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        writer,
        discovery: RwLock::new(discovery),
        filter,
        policy,
        status_filter,
        log,
        restored: Mutex::new(HashMap::new()),
        namespaces: TargetNamespaces::new(
            std::mem::take(&mut spool.namespaces),
            params.terminating_timeout,
        ),
        service_accounts: Mutex::new(HashMap::new()),
        additional: std::mem::take(&mut spool.additional),
        volumes: Volumes::default(),
        total: AtomicU64::new(spool.total()),
        done: AtomicU64::new(0),
        pending: Mutex::new(Vec::new()),
        hook_tracker: Arc::new(HookTracker::default()),
        hook_window: velero_cluster::window::Window::new(velero_hooks::MAX_CONCURRENT_EXECS),
        plan: Mutex::new(BTreeMap::new()),
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
    if spool.count(kuberesource::CUSTOM_RESOURCE_DEFINITIONS) > 0
        && ctx
            .filter
            .include_type(kuberesource::CUSTOM_RESOURCE_DEFINITIONS)
    {
        restore_type(
            &ctx,
            &spool,
            kuberesource::CUSTOM_RESOURCE_DEFINITIONS,
            &report,
        )
        .await?;
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
    for group_resource in order
        .iter()
        .filter(|gr| gr.as_str() != kuberesource::CUSTOM_RESOURCE_DEFINITIONS)
    {
        if spool.count(group_resource) == 0 {
            continue;
        }
        restore_type(&ctx, &spool, group_resource, &report).await?;
    }
    report();
    drop(spool);

    let ctx = Arc::try_unwrap(ctx).map_err(|_| RestoreError::Outlived)?;
    let restored = ctx
        .restored
        .into_inner()
        .map_err(|_| RestoreError::Poisoned)?;
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
    if resource_list.is_empty() {
        locked(&ctx.log).record(
            Level::Warning,
            None,
            "zero items to be restored: check the restore's filters and the backup's contents",
        );
    }
    let total_items = ctx.total.load(Ordering::Relaxed).max(items_restored);
    let pending = std::mem::take(&mut *locked(&ctx.pending));
    let plan = ctx
        .params
        .dry_run
        .then(|| RestorePlan::from_entries(std::mem::take(&mut *locked(&ctx.plan))));
    Ok(RestoreOutcome {
        items_restored,
        total_items,
        resource_list,
        plan,
        log: ctx.log.clone(),
        pending,
        hook_tracker: ctx.hook_tracker.clone(),
        fresh_log: OperationLog::restore(&ctx.params.velero_namespace, &ctx.params.restore_name),
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
        joined.map_err(RestoreError::Task)?;
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
            let note = PlanNote::new(PlannedAction::Skip).because(reason);
            ctx.plan(group_resource, target.as_deref(), &name, note);
            return;
        }
        if !ctx.claim(&key) {
            return;
        }
        let mut report = Report::default();
        let ended = restore_claimed(
            ctx,
            group_resource,
            original_namespace,
            target.as_deref(),
            item,
            &mut report,
        )
        .await;
        for i in &report.infos {
            ctx.info(i);
        }
        for w in &report.warnings {
            ctx.record(Level::Warning, Some(&scope), w);
        }
        for e in &report.errors {
            ctx.record(Level::Error, Some(&scope), e);
        }
        let (action, created_name) = match ended.action {
            Some((action, created)) => (action, created),
            None if report.warnings.is_empty() && report.errors.is_empty() => {
                (Action::Skipped, None)
            }
            None => (Action::Failed, None),
        };
        if ctx.dry_run() {
            let note = ended.plan.unwrap_or_else(|| match action {
                Action::Created => PlanNote::new(PlannedAction::Create),
                Action::Updated => PlanNote::new(PlannedAction::Update),
                Action::Skipped => PlanNote::new(PlannedAction::Skip)
                    .because(report.infos.last().cloned().unwrap_or_default()),
                Action::Failed => PlanNote::new(PlannedAction::Fail).because(
                    report
                        .errors
                        .iter()
                        .chain(&report.warnings)
                        .next()
                        .cloned()
                        .unwrap_or_default(),
                ),
            });
            ctx.plan(group_resource, target.as_deref(), &name, note);
        }
        ctx.set_action(&key, action, created_name);
        ctx.done.fetch_add(1, Ordering::Relaxed);
    })
}

/// The body of [`restore_item`] once the item is ours: how it ended, in one value.
async fn restore_claimed(
    ctx: &Ctx,
    group_resource: &str,
    original_namespace: Option<&str>,
    target: Option<&str>,
    mut item: Value,
    report: &mut Report,
) -> Ended {
    let params = &ctx.params;
    let name = str_at(&item, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let id = match target {
        Some(ns) => format!("{group_resource}/{ns}/{name}"),
        None => format!("{group_resource}/{name}"),
    };

    if group_resource == PERSISTENT_VOLUMES {
        let from_pod_volume_backup = match (
            str_at(&item, "/spec/claimRef/namespace"),
            str_at(&item, "/spec/claimRef/name"),
        ) {
            (Some(ns), Some(claim)) => params.pod_volumes.backed_up_claim(ns, claim),
            _ => false,
        };
        match ctx
            .volumes
            .prepare_volume(&ctx.filter, &name, from_pod_volume_backup, item)
        {
            VolumeVerdict::Restore(prepared) => item = prepared,
            VolumeVerdict::LeaveToProvisioning(reason) => {
                ctx.info(&reason);
                return Ended::not_restored()
                    .noted(PlanNote::new(PlannedAction::Skip).because(reason));
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
        image_rules: params.image_rules.as_ref(),
        service_accounts: service_accounts.as_ref(),
        restore_hooks: Some(&params.hooks),
        target_namespace: target,
        pod_volumes: Some(&params.pod_volumes),
        source_namespace: original_namespace,
    };
    match apply_builtin(group_resource, &mut item, &action_ctx) {
        Verdict::Restore => {}
        Verdict::Skip(reason) => {
            ctx.info(&format!("Skipping restore of {id}: {reason}"));
            return Ended::not_restored().noted(PlanNote::new(PlannedAction::Skip).because(reason));
        }
        Verdict::Fail(reason) => {
            report
                .errors
                .push(format!("error preparing {id}: {reason}"));
            return Ended::not_restored();
        }
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
        let ended = Ended::not_restored();
        if ctx.dry_run() && group_resource.contains('.') {
            // Its CustomResourceDefinition may be in this very restore, planned but not created.
            return ended.noted(PlanNote::new(PlannedAction::Create).because(format!(
                "not checked by the API server: the cluster does not serve {group_resource} yet (its CustomResourceDefinition would have to be restored first)"
            )));
        }
        return ended;
    };
    let object_name = str_at(&item, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let object_path = format!("{collection}/{object_name}");

    let created = match ctx.writer.create(&collection, &item).await {
        Ok(created) => created,
        Err(e) if e.is_already_exists() || port_taken(group_resource, &e) => {
            let found = ExistingItem {
                group_resource,
                object_path: &object_path,
                kind: &kind,
                item: &item,
                id: &id,
            };
            return existing(&ctx.writer, ctx.policy, found, report).await;
        }
        Err(e) if e.is_not_found() && target.is_some_and(|ns| ctx.namespace_planned(ns)) => {
            return Ended::restored(Action::Created, None).noted(
                PlanNote::new(PlannedAction::Create).because(format!(
                    "not checked by the API server: namespace {} would be created by this restore",
                    target.unwrap_or_default()
                )),
            );
        }
        Err(e) => {
            report.errors.push(format!("error restoring {id}: {e}"));
            return Ended::not_restored()
                .noted(PlanNote::new(PlannedAction::Create).refused(e.to_string()));
        }
    };
    let created_name = str_at(&created, "/metadata/name").map(str::to_string);
    if ctx.dry_run() {
        // What follows a create (status, field ownership, waiting for a CRD, volume data, hooks)
        // needs the object to exist.
        return Ended::restored(Action::Created, created_name);
    }

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

    if group_resource == kuberesource::CUSTOM_RESOURCE_DEFINITIONS {
        wait_for_crd(ctx, &object_name, report).await;
    }
    if group_resource == kuberesource::PODS {
        start_pod_volume_restores(ctx, original_namespace, &created);
        start_exec_hooks(ctx, &created);
    }
    Ended::restored(Action::Created, created_name)
}

/// The pod's PodVolumeRestores, created and awaited on a task of their own; the restore waits for
/// them before it ends (Velero's `WaitForPodVolumeRestores` in the restore's `Finalizing`).
fn start_pod_volume_restores(ctx: &Ctx, original_namespace: Option<&str>, pod: &Value) {
    let (Some(restorer), Some(source)) = (&ctx.params.pod_volume_restorer, original_namespace)
    else {
        return;
    };
    let snapshots = ctx.params.pod_volumes.for_pod(source, pod);
    if snapshots.is_empty() {
        return;
    }
    let task =
        tokio::spawn(restorer.restore(pod.clone(), source.to_string(), snapshots, ctx.log.clone()));
    locked(&ctx.pending).push(task);
}

/// Velero's post-restore exec hooks: a task per restored pod with hooks, watching it until its
/// containers are up; the restore is Finalizing until they end.
fn start_exec_hooks(ctx: &Ctx, pod: &Value) {
    let planned = ctx.params.hooks.exec_hooks(pod);
    if planned.is_empty() {
        return;
    }
    let exec = ExecContext {
        client: ctx.client.clone(),
        window: ctx.hook_window.clone(),
        log: ctx.log.clone(),
        tracker: ctx.hook_tracker.clone(),
        default_wait: ctx.params.hook_wait_limit,
    };
    let namespace = str_at(pod, "/metadata/namespace")
        .unwrap_or_default()
        .to_string();
    let name = str_at(pod, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let task = tokio::spawn(run_exec_hooks(exec, namespace, name, planned));
    locked(&ctx.pending).push(task);
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
