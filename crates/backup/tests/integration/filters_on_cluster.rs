//! Velero's backup filters (`pkg/backup/item_collector.go`, `pkg/util/collections/includes_excludes.go`) end to end: a realistic fixture in a real control
//! plane, backed up by the real engine with the real [`BackupSelection`], for each filter style.
//!
//! Every case asserts the exact set of items in the tarball, in two ways:
//! - the cluster holds objects the test did not create (default ServiceAccounts and their token
//!   Secrets, `kube-root-ca.crt` ConfigMaps, the Deployment's ReplicaSet, the Service's Endpoints
//!   and EndpointSlice, `kube-system`...), so each case states its rule plainly over a listing of
//!   the whole cluster taken just before and just after the backup, and the backup must match it;
//! - every fixture object is named as in or out of the backup.
//!
//! A failed check does not stop the other cases: all failures are reported together at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use velero_api::v1::BackupSpec;
use velero_backup::engine::{BackupOutcome, BackupParams, run};
use velero_backup::selection::{BackupSelection, prepare_spec};
use velero_cluster::api::ApiReader;
use velero_cluster::discovery::{Discovery, discover};
use velero_test_harness::ControlPlane;
use velero_test_harness::create_object;

/// How the tarball names an item: (group-resource, namespace or `""` if cluster-scoped, name).
type Key = (String, String, String);

const NAMESPACES: &str = "namespaces";
const CONFIGMAPS: &str = "configmaps";
const SECRETS: &str = "secrets";
const SERVICES: &str = "services";
const SERVICE_ACCOUNTS: &str = "serviceaccounts";
const DEPLOYMENTS: &str = "deployments.apps";
const WIDGETS: &str = "widgets.example.com";
const PVCS: &str = "persistentvolumeclaims";
const PVS: &str = "persistentvolumes";
const ROLES: &str = "roles.rbac.authorization.k8s.io";
const CLUSTER_ROLES: &str = "clusterroles.rbac.authorization.k8s.io";
const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings.rbac.authorization.k8s.io";
const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
const STORAGE_CLASSES: &str = "storageclasses.storage.k8s.io";
const EXCLUDE_LABEL: &str = "velero.io/exclude-from-backup";

fn nk(gr: &str, namespace: &str, name: &str) -> Key {
    (gr.into(), namespace.into(), name.into())
}

fn ck(gr: &str, name: &str) -> Key {
    (gr.into(), String::new(), name.into())
}

fn show(key: &Key) -> String {
    if key.1.is_empty() {
        format!("{} {}", key.0, key.2)
    } else {
        format!("{} {}/{}", key.0, key.1, key.2)
    }
}

fn show_all<'a>(keys: impl IntoIterator<Item = &'a Key>) -> String {
    let shown: Vec<String> = keys.into_iter().map(show).collect();
    if shown.is_empty() {
        "(none)".into()
    } else {
        format!("\n      {}", shown.join("\n      "))
    }
}

// The fixture, by name ---------------------------------------------------------------------------

/// The fixture objects in `shop` that any backup of all of `shop` carries (not `private`).
fn shop_items() -> Vec<Key> {
    vec![
        nk(CONFIGMAPS, "shop", "settings"),
        nk(SECRETS, "shop", "token"),
        nk(CONFIGMAPS, "shop", "unlabelled"),
        nk(SERVICES, "shop", "web"),
        nk(DEPLOYMENTS, "shop", "web"),
        nk(SERVICE_ACCOUNTS, "shop", "runner"),
        nk(WIDGETS, "shop", "w1"),
        nk(PVCS, "shop", "data"),
    ]
}

/// What `shop`'s items bring along: the claim's volume, the ServiceAccount's ClusterRoleBinding and
/// its ClusterRole, the Widget's CRD.
fn shop_additional_items() -> Vec<Key> {
    vec![
        ck(PVS, "pv-shop"),
        ck(CLUSTER_ROLE_BINDINGS, "runner-binding"),
        ck(CLUSTER_ROLES, "runner-role"),
        ck(CRDS, "widgets.example.com"),
    ]
}

/// The app=web fixture items of `shop`.
fn shop_web_items() -> Vec<Key> {
    vec![
        nk(CONFIGMAPS, "shop", "settings"),
        nk(SECRETS, "shop", "token"),
        nk(SERVICES, "shop", "web"),
        nk(DEPLOYMENTS, "shop", "web"),
        nk(WIDGETS, "shop", "w1"),
    ]
}

fn blog_items() -> Vec<Key> {
    vec![nk(CONFIGMAPS, "blog", "post"), nk(ROLES, "blog", "editor")]
}

fn private() -> Key {
    nk(CONFIGMAPS, "shop", "private")
}

fn hidden() -> Key {
    nk(CONFIGMAPS, "skip-me", "hidden")
}

fn fast() -> Key {
    ck(STORAGE_CLASSES, "fast")
}

fn unrelated() -> Key {
    ck(CLUSTER_ROLES, "unrelated")
}

fn namespace(name: &str) -> Key {
    ck(NAMESPACES, name)
}

/// Every object the test creates.
fn fixture() -> BTreeSet<Key> {
    let mut all: BTreeSet<Key> = shop_items().into_iter().collect();
    all.extend(shop_additional_items());
    all.extend(blog_items());
    all.extend([
        private(),
        hidden(),
        fast(),
        unrelated(),
        namespace("shop"),
        namespace("blog"),
        namespace("skip-me"),
    ]);
    all
}

fn fixture_objects() -> Vec<Value> {
    let web = json!({"app": "web"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "blog", "labels": {"team": "blog"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "skip-me", "labels": {EXCLUDE_LABEL: "true"}}}),
        // shop
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "labels": web}, "data": {"mode": "fast"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "shop", "labels": web}, "stringData": {"token": "s3cr3t"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unlabelled", "namespace": "shop"}, "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "private", "namespace": "shop", "labels": {EXCLUDE_LABEL: "true", "app": "web"}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "labels": web},
               "spec": {"type": "ClusterIP", "selector": web, "ports": [{"port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": web},
               "spec": {"replicas": 0, "selector": {"matchLabels": web},
                        "template": {"metadata": {"labels": web}, "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "shop"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "runner-role"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "runner-binding"},
               "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "shop"}],
               "roleRef": {"kind": "ClusterRole", "name": "runner-role", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-shop"},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv-shop"}}}),
        // The PV binder is off in this control plane: the claim names its volume itself (and is
        // marked Bound once created).
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                        "volumeName": "pv-shop", "storageClassName": ""}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        // blog
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "post", "namespace": "blog", "labels": {"app": "blog"}}, "data": {"title": "hello"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "editor", "namespace": "blog"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"]}]}),
        // skip-me
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hidden", "namespace": "skip-me"}, "data": {"k": "v"}}),
        // cluster-scoped
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "kubernetes.io/no-provisioner"}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "unrelated"}, "rules": []}),
    ]
}

fn widget() -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
           "metadata": {"name": "w1", "namespace": "shop", "labels": {"app": "web"}},
           "spec": {"color": "blue", "size": 3}})
}

// The whole cluster, listed --------------------------------------------------------------------

fn excluded_by_label(item: &Value) -> bool {
    velero_api::item::labels(item)
        .get(EXCLUDE_LABEL)
        .map(String::as_str)
        == Some("true")
}

/// Every object of every type the engine can back up, as the API server lists them.
struct Inventory(BTreeMap<Key, Value>);

impl Inventory {
    async fn take(reader: &ApiReader, discovery: &Discovery) -> anyhow::Result<Inventory> {
        let lists = futures::future::try_join_all(discovery.resources.iter().map(|r| async move {
            reader
                .list_all(&r.list_path(None))
                .await
                .map(|items| (r, items))
        }))
        .await?;
        let mut all = BTreeMap::new();
        for (r, items) in lists {
            for item in items {
                let field = |f: &str| {
                    item.pointer(&format!("/metadata/{f}"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let namespace = if r.namespaced {
                    field("namespace")
                } else {
                    String::new()
                };
                all.insert((r.group_resource(), namespace, field("name")), item);
            }
        }
        Ok(Inventory(all))
    }

    fn contains(&self, key: &Key) -> bool {
        self.0.contains_key(key)
    }

    /// The objects `keep` accepts, leaving out those labelled velero.io/exclude-from-backup=true
    /// (`pkg/backup/item_backupper.go`: never backed up, whatever brings them in).
    fn select(&self, keep: impl Fn(&Key, &BTreeMap<String, String>) -> bool) -> BTreeSet<Key> {
        self.0
            .iter()
            .filter(|(key, item)| {
                !excluded_by_label(item) && keep(key, &velero_api::item::labels(item))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Every namespaced object in the namespaces `keep` accepts.
    fn in_namespaces(&self, keep: impl Fn(&str) -> bool) -> BTreeSet<Key> {
        self.select(|key, _| !key.1.is_empty() && keep(&key.1))
    }

    /// The Namespace objects `keep` accepts.
    fn namespaces(&self, keep: impl Fn(&str) -> bool) -> BTreeSet<Key> {
        self.select(|key, _| key.0 == NAMESPACES && keep(&key.2))
    }

    /// `items` and what Velero's built-in actions bring along (`pkg/backup/actions/`): a pod's claims and
    /// PriorityClass, a claim's volume, a ServiceAccount's ClusterRoleBindings and their
    /// ClusterRoles, recursively; then the CRD of every custom resource type among them.
    fn with_additional_items(&self, items: BTreeSet<Key>) -> BTreeSet<Key> {
        let mut out = items.clone();
        let mut queue: Vec<Key> = items.into_iter().collect();
        while let Some(key) = queue.pop() {
            let Some(item) = self.0.get(&key) else {
                continue;
            };
            let (gr, ns, name) = (&key.0, &key.1, &key.2);
            let mut related = Vec::new();
            let text = |p: &str| item.pointer(p).and_then(Value::as_str).map(str::to_string);
            match gr.as_str() {
                "pods" => {
                    for volume in item
                        .pointer("/spec/volumes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(claim) = volume
                            .pointer("/persistentVolumeClaim/claimName")
                            .and_then(Value::as_str)
                        {
                            related.push(nk(PVCS, ns, claim));
                        }
                    }
                    if let Some(class) = text("/spec/priorityClassName") {
                        related.push(ck("priorityclasses.scheduling.k8s.io", &class));
                    }
                }
                PVCS => related.extend(text("/spec/volumeName").map(|pv| ck(PVS, &pv))),
                SERVICE_ACCOUNTS => {
                    for (binding_key, binding) in &self.0 {
                        if binding_key.0 != CLUSTER_ROLE_BINDINGS {
                            continue;
                        }
                        let names_sa = binding
                            .get("subjects")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .any(|s| {
                                s["kind"] == "ServiceAccount"
                                    && s["name"] == *name
                                    && s["namespace"] == *ns
                            });
                        if names_sa {
                            related.push(binding_key.clone());
                            if binding.pointer("/roleRef/kind") == Some(&json!("ClusterRole")) {
                                let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
                                related.push(ck(CLUSTER_ROLES, role));
                            }
                        }
                    }
                }
                _ => {}
            }
            for r in related {
                let present = self.0.get(&r).is_some_and(|i| !excluded_by_label(i));
                if present && out.insert(r.clone()) {
                    queue.push(r);
                }
            }
        }
        let crds: Vec<Key> = out
            .iter()
            .filter(|k| k.0.contains('.'))
            .map(|k| ck(CRDS, &k.0))
            .filter(|k| self.contains(k))
            .collect();
        out.extend(crds);
        out
    }

    /// Whether the controllers have made what they make for the fixture (token Secrets, root CA
    /// ConfigMaps, the ReplicaSet, Endpoints and EndpointSlice of `web`).
    fn controllers_done(&self, with_slices: bool) -> Vec<String> {
        let token_for = |ns: &str, sa: &str| {
            self.0.iter().any(|(k, v)| {
                k.0 == SECRETS
                    && k.1 == ns
                    && v.pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                        == Some(&json!(sa))
            })
        };
        let mut waiting = Vec::new();
        for ns in ["shop", "blog", "skip-me"] {
            if !self.contains(&nk(CONFIGMAPS, ns, "kube-root-ca.crt")) {
                waiting.push(format!("kube-root-ca.crt in {ns}"));
            }
            if !token_for(ns, "default") {
                waiting.push(format!("token of {ns}/default"));
            }
        }
        if !token_for("shop", "runner") {
            waiting.push("token of shop/runner".into());
        }
        if !self
            .0
            .keys()
            .any(|k| k.0 == "replicasets.apps" && k.1 == "shop")
        {
            waiting.push("ReplicaSet of shop/web".into());
        }
        if !self.contains(&nk("endpoints", "shop", "web")) {
            waiting.push("Endpoints shop/web".into());
        }
        if with_slices
            && !self
                .0
                .keys()
                .any(|k| k.0.starts_with("endpointslices.") && k.1 == "shop")
        {
            waiting.push("EndpointSlice of shop/web".into());
        }
        waiting
    }
}

// Running a backup and reading it --------------------------------------------------------------

struct Backup {
    /// Every item in the tarball.
    items: BTreeSet<Key>,
    entries: BTreeMap<String, Vec<u8>>,
    outcome: BackupOutcome,
    /// The case's rule over the cluster listed before and after the backup: what it must hold
    /// (both agree) and what it may hold (either has it; objects the controllers made meanwhile).
    must: BTreeSet<Key>,
    may: BTreeSet<Key>,
}

impl Backup {
    /// The Namespace objects in the backup.
    fn namespace_objects(&self) -> BTreeSet<Key> {
        self.items
            .iter()
            .filter(|k| k.0 == NAMESPACES)
            .cloned()
            .collect()
    }

    fn json(&self, path: &str) -> Option<Value> {
        serde_json::from_slice(self.entries.get(path)?).ok()
    }
}

#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push(message());
        }
    }

    /// The backup holds exactly what the case's rule selects from the cluster listing.
    fn matches_cluster(&mut self, case: &str, items: &BTreeSet<Key>, backup: &Backup) {
        let missing: Vec<&Key> = backup.must.difference(items).collect();
        let unexpected: Vec<&Key> = items.difference(&backup.may).collect();
        self.check(missing.is_empty() && unexpected.is_empty(), || {
            format!(
                "{case}: the backup differs from the cluster listing\n    missing: {}\n    unexpected: {}",
                show_all(missing),
                show_all(unexpected)
            )
        });
    }

    /// Exactly the fixture objects in `wanted` are in the backup; every other one is out.
    fn fixture(&mut self, case: &str, items: &BTreeSet<Key>, wanted: &[Key]) {
        let all = fixture();
        for key in wanted {
            assert!(
                all.contains(key),
                "{case}: {} is no fixture object",
                show(key)
            );
        }
        let wanted: BTreeSet<Key> = wanted.iter().cloned().collect();
        let left_out: Vec<&Key> = wanted.difference(items).collect();
        let let_in: Vec<&Key> = all
            .difference(&wanted)
            .filter(|k| items.contains(*k))
            .collect();
        self.check(left_out.is_empty() && let_in.is_empty(), || {
            format!(
                "{case}: fixture objects wrongly in or out\n    should be in: {}\n    should be out: {}",
                show_all(left_out),
                show_all(let_in)
            )
        });
    }

    fn no_errors(&mut self, case: &str, backup: &Backup) {
        let results = &backup.outcome.results;
        self.check(
            results.errors.is_empty() && results.warnings.is_empty(),
            || format!("{case}: unexpected errors or warnings: {results:?}"),
        );
    }

    /// All the checks of a case whose only errors would be bugs.
    fn exact(&mut self, case: &str, backup: &Backup, wanted: &[Key]) {
        self.matches_cluster(case, &backup.items, backup);
        self.fixture(case, &backup.items, wanted);
        self.no_errors(case, backup);
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} check(s) failed:\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

struct Cluster {
    // Kept alive for the test; dropping it stops the control plane.
    _control_plane: ControlPlane,
    client: kube::Client,
    reader: ApiReader,
    discovery: Discovery,
}

impl Cluster {
    /// Starts a control plane, seeds the fixture and waits for the controllers to settle.
    async fn start() -> anyhow::Result<Cluster> {
        let control_plane = ControlPlane::start().await?;
        let client = control_plane.client().await?;
        for object in fixture_objects() {
            create_object(&client, object).await?;
        }
        // A claim brings its volume only when it is Bound; no binder runs here.
        velero_test_harness::bind_claim(&client, "shop", "data").await?;
        velero_install::wait_for_crds_established(
            &client,
            &["widgets.example.com".to_string()],
            Duration::from_secs(30),
        )
        .await?;
        create_object(&client, widget()).await?;
        let reader = ApiReader::new(client.clone());
        let discovery = discover(&client).await?;
        anyhow::ensure!(
            discovery.by_group_resource(WIDGETS).is_some(),
            "widgets.example.com not discovered"
        );
        let cluster = Cluster {
            _control_plane: control_plane,
            client,
            reader,
            discovery,
        };
        cluster.settle().await?;
        Ok(cluster)
    }

    async fn inventory(&self) -> anyhow::Result<Inventory> {
        Inventory::take(&self.reader, &self.discovery).await
    }

    /// Waits until the controllers made their objects and the cluster's list of objects holds
    /// still for a second.
    async fn settle(&self) -> anyhow::Result<()> {
        let with_slices = self
            .discovery
            .resources
            .iter()
            .any(|r| r.resource == "endpointslices");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut previous: Option<BTreeSet<Key>> = None;
        loop {
            let inventory = self.inventory().await?;
            let waiting = inventory.controllers_done(with_slices);
            let keys: BTreeSet<Key> = inventory.0.into_keys().collect();
            if waiting.is_empty() && previous.as_ref() == Some(&keys) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the cluster did not settle; waiting for {waiting:?}"
            );
            previous = waiting.is_empty().then_some(keys);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Backs up with `spec` through the real selection and engine, and reads the tarball back,
    /// recording in `report` anything wrong with its layout.
    async fn backup(
        &self,
        report: &mut Report,
        case: &str,
        spec: Value,
        rule: impl Fn(&Inventory) -> BTreeSet<Key>,
    ) -> anyhow::Result<Backup> {
        let before = rule(&self.inventory().await?);
        let spec: BackupSpec = serde_json::from_value(spec)?;
        let (spec, errors) = prepare_spec(&self.reader, &spec).await;
        anyhow::ensure!(
            errors.is_empty(),
            "{case}: the spec failed validation: {errors:?}"
        );
        let selection = BackupSelection::new(&self.reader, &self.discovery, &spec, None).await?;
        let params = BackupParams {
            backup_namespace: "velero".into(),
            backup_name: "filters".into(),
            concurrency: 4,
            hooks: None,
            pod_volumes: None,
        };
        let (outcome, tarball) = run(
            &self.reader,
            &self.discovery,
            &selection,
            &params,
            Vec::new(),
            &|_| {},
        )
        .await?;
        let after = rule(&self.inventory().await?);
        let entries = velero_archive::read_all(&tarball[..])?;
        let items = self.read_layout(report, case, &entries);
        report.check(outcome.items_backed_up as usize == items.len(), || {
            format!(
                "{case}: items_backed_up is {} but the tarball holds {} items",
                outcome.items_backed_up,
                items.len()
            )
        });
        Ok(Backup {
            items,
            entries,
            outcome,
            must: before.intersection(&after).cloned().collect(),
            may: before.union(&after).cloned().collect(),
        })
    }

    /// The items of a tarball, from its version-less paths; checks that each item also has its
    /// `<version>-preferredversion` copy (same bytes, the discovered version) and nothing else is
    /// there but `metadata/version`.
    fn read_layout(
        &self,
        report: &mut Report,
        case: &str,
        entries: &BTreeMap<String, Vec<u8>>,
    ) -> BTreeSet<Key> {
        let mut plain: BTreeMap<Key, &str> = BTreeMap::new();
        let mut preferred: BTreeMap<Key, (&str, &str)> = BTreeMap::new();
        let mut problems = Vec::new();
        if entries.get("metadata/version").map(Vec::as_slice) != Some(b"1.1.0\n".as_slice()) {
            problems.push("metadata/version missing or not 1.1.0".to_string());
        }
        for path in entries.keys().filter(|p| *p != "metadata/version") {
            let parts: Vec<&str> = path.split('/').collect();
            let (gr, version, rest) = match parts.as_slice() {
                ["resources", gr, v, rest @ ..] if v.ends_with("-preferredversion") => {
                    (*gr, v.strip_suffix("-preferredversion"), rest)
                }
                ["resources", gr, rest @ ..] => (*gr, None, rest),
                _ => {
                    problems.push(format!("unexpected entry {path}"));
                    continue;
                }
            };
            let key = match rest {
                ["namespaces", ns, file] => file.strip_suffix(".json").map(|n| nk(gr, ns, n)),
                ["cluster", file] => file.strip_suffix(".json").map(|n| ck(gr, n)),
                _ => None,
            };
            let Some(key) = key else {
                problems.push(format!("unexpected entry {path}"));
                continue;
            };
            match version {
                Some(v) => {
                    preferred.insert(key, (v, path.as_str()));
                }
                None => {
                    plain.insert(key, path.as_str());
                }
            }
        }
        for (key, path) in &plain {
            match preferred.get(key) {
                None => problems.push(format!("{path} has no -preferredversion copy")),
                Some((version, copy)) => {
                    let discovered = self.discovery.by_group_resource(&key.0);
                    if discovered.map(|r| r.version.as_str()) != Some(*version) {
                        problems.push(format!("{copy}: not the preferred version of {}", key.0));
                    }
                    if entries[*path] != entries[*copy] {
                        problems.push(format!("{path} and {copy} differ"));
                    }
                }
            }
        }
        for (key, (_, copy)) in &preferred {
            if !plain.contains_key(key) {
                problems.push(format!("{copy} has no version-less copy"));
            }
        }
        report.check(problems.is_empty(), || {
            format!("{case}: tarball layout: {}", problems.join("; "))
        });
        plain.into_keys().collect()
    }
}

fn keys(parts: &[Vec<Key>]) -> Vec<Key> {
    parts.iter().flatten().cloned().collect()
}

/// Everything of `shop` and what it brings along, and the Namespace `shop`; nothing else.
fn shop_only(inv: &Inventory) -> BTreeSet<Key> {
    let mut want = inv.with_additional_items(inv.in_namespaces(|ns| ns == "shop"));
    want.extend(inv.namespaces(|ns| ns == "shop"));
    want
}

/// Cases 1 (+9), 7, 8 and 2: which namespaces a backup covers, and what comes along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_filters_select_namespaces_and_their_additional_items() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut report = Report::default();
    let shop_backup = keys(&[
        shop_items(),
        shop_additional_items(),
        vec![namespace("shop")],
    ]);

    // 1. One namespace: all of it (the Widget and the claim too), its additional items (the
    // volume, the ServiceAccount's binding and role, the Widget's CRD) and its Namespace object.
    // Restricted namespaces are no "everything": no StorageClass `fast`, no ClusterRole
    // `unrelated`. 9. `private` carries the exclude label: never backed up.
    let case = "case 1 includedNamespaces [shop]";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["shop"]}),
            shop_only,
        )
        .await?;
    report.exact(case, &b, &shop_backup);
    report.check(!b.items.contains(&private()), || {
        format!("case 9: {} has the exclude label", show(&private()))
    });
    report.check(
        !b.entries.keys().any(|p| p.ends_with("/shop/private.json")),
        || "case 9: a copy of shop/private is in the tarball".into(),
    );
    let w1 = b
        .json("resources/widgets.example.com/namespaces/shop/w1.json")
        .unwrap_or_default();
    report.check(
        w1["apiVersion"] == "example.com/v1"
            && w1["kind"] == "Widget"
            && w1["spec"]["color"] == "blue"
            && w1["spec"]["size"] == 3,
        || format!("{case}: the Widget reads back as {w1}"),
    );
    let pv = b
        .json("resources/persistentvolumes/cluster/pv-shop.json")
        .unwrap_or_default();
    report.check(
        pv["apiVersion"] == "v1"
            && pv["kind"] == "PersistentVolume"
            && pv["spec"]["hostPath"]["path"] == "/tmp/pv-shop",
        || format!("{case}: the PV reads back as {pv}"),
    );
    let crd = b
        .json("resources/customresourcedefinitions.apiextensions.k8s.io/cluster/widgets.example.com.json")
        .unwrap_or_default();
    report.check(
        crd["kind"] == "CustomResourceDefinition" && crd["spec"]["group"] == "example.com",
        || format!("{case}: the CRD reads back as {crd}"),
    );

    // 7. Globs, expanded against the existing namespaces: `sh*` → shop, `b?og` → blog, then blog
    // excluded: the same backup as case 1.
    let case = "case 7 includedNamespaces [sh*, b?og], excludedNamespaces [blog]";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["sh*", "b?og"], "excludedNamespaces": ["blog"]}),
            shop_only,
        )
        .await?;
    report.exact(case, &b, &shop_backup);

    // 8. An included namespace that does not exist: the backup goes on with the others, and logs
    // an error for it (→ PartiallyFailed).
    let case = "case 8 includedNamespaces [shop, ghost]";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["shop", "ghost"]}),
            shop_only,
        )
        .await?;
    report.matches_cluster(case, &b.items, &b);
    report.fixture(case, &b.items, &shop_backup);
    let errors = &b.outcome.results.errors;
    // Velero logs it without a namespace field, so its results carry it under `velero`.
    report.check(
        errors.len() == 1
            && errors.velero.len() == 1
            && errors.velero[0].contains(
                "fail to get the namespace ghost specified in backup.Spec.IncludedNamespaces",
            ),
        || format!("{case}: want one Velero-level error for namespace ghost, got {errors:?}"),
    );
    report.check(b.outcome.results.warnings.is_empty(), || {
        format!("{case}: warnings {:?}", b.outcome.results.warnings)
    });

    // 2. No filter at all, but `skip-me` carries velero.io/exclude-from-backup=true, which Velero
    // turns into excludedNamespaces [skip-me] (`prepareBackupRequest` in `pkg/controller/backup_controller.go`). Nothing of skip-me, nor its
    // Namespace object. And with an exclude the namespace filter no longer "includes everything",
    // so cluster-scoped types are not collected on their own (`includes_excludes.go`: old style says so
    // explicitly; new style requires the namespace filter to be "everything"; Velero's
    // ScopeIncludesExcludes.ShouldInclude): `fast` and `unrelated` stay out; cluster-scoped items
    // come only as additional items.
    let case = "case 2 {} with namespace skip-me labelled exclude-from-backup";
    let b = cluster
        .backup(&mut report, case, json!({}), |inv: &Inventory| {
            let mut want = inv.with_additional_items(inv.in_namespaces(|ns| ns != "skip-me"));
            want.extend(inv.namespaces(|ns| ns != "skip-me"));
            want
        })
        .await?;
    report.exact(
        case,
        &b,
        &keys(&[shop_backup.clone(), blog_items(), vec![namespace("blog")]]),
    );

    // 2b. The full-cluster rule: once no namespace is excluded, `{}` backs up everything,
    // cluster-scoped types included (`fast`, `unrelated`), although the VolumeSnapshot
    // auto-exclusions (Velero ≥ 1.17) would literally turn that off (the documented deviation in
    // filters/resources.rs). Only the exclude-labelled item stays out.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    namespaces
        .patch(
            "skip-me",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {EXCLUDE_LABEL: null}}})),
        )
        .await?;
    let case = "case 2b {} with no namespace excluded";
    let b = cluster
        .backup(&mut report, case, json!({}), |inv: &Inventory| {
            inv.select(|_, _| true)
        })
        .await?;
    let everything: Vec<Key> = fixture().into_iter().filter(|k| *k != private()).collect();
    report.exact(case, &b, &everything);

    report.finish();
    Ok(())
}

/// Cases 3, 4, 5 and 6: resource filters (old and new style) and label selectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_and_label_filters_select_types_and_items() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut report = Report::default();

    // 3. Old style, all namespaces, ConfigMaps and Secrets, includeClusterResources: false. Every
    // ConfigMap and Secret outside skip-me (the system ones too), nothing cluster-scoped.
    let case = "case 3 old style [configmaps, secrets], includeClusterResources false";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["*"], "includedResources": ["configmaps", "secrets"],
                   "includeClusterResources": false}),
            |inv: &Inventory| {
                inv.select(|k, _| {
                    (k.0 == CONFIGMAPS || k.0 == SECRETS) && !k.1.is_empty() && k.1 != "skip-me"
                })
            },
        )
        .await?;
    // `includes_excludes.go`/`item_collector.go`: with includeClusterResources: false no cluster-scoped type is included,
    // `namespaces` neither ("cluster-scoped and includeClusterResources=false → no", checked before
    // "namespaces handled specially"); Velero's item collector skips the type before its namespace
    // tracker runs, so such a backup carries no Namespace object at all.
    let namespace_objects = b.namespace_objects();
    report.check(namespace_objects.is_empty(), || {
        format!(
            "{case}: Namespace objects backed up although includeClusterResources is false: {}",
            show_all(&namespace_objects)
        )
    });
    let rest: BTreeSet<Key> = b.items.difference(&namespace_objects).cloned().collect();
    report.matches_cluster(case, &rest, &b);
    report.fixture(
        case,
        &rest,
        &[
            nk(CONFIGMAPS, "shop", "settings"),
            nk(SECRETS, "shop", "token"),
            nk(CONFIGMAPS, "shop", "unlabelled"),
            nk(CONFIGMAPS, "blog", "post"),
        ],
    );
    report.no_errors(case, &b);

    // 4. A label selector with explicit namespaces: the app=web items of shop and blog (blog has
    // none), the Widget's CRD; Namespace `shop` (it has items) and also `blog`: the namespace
    // tracker keeps a Namespace whose name the filter includes, and skips that rule only when the
    // namespace filter is "everything" (`includes_excludes.go`, velero#7105), which it is not here.
    let case = "case 4 includedNamespaces [shop, blog], labelSelector app=web";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["shop", "blog"],
                   "labelSelector": {"matchLabels": {"app": "web"}}}),
            |inv: &Inventory| {
                let mut want = inv.with_additional_items(inv.select(|k, l| {
                    (k.1 == "shop" || k.1 == "blog")
                        && l.get("app").map(String::as_str) == Some("web")
                }));
                want.extend(inv.namespaces(|ns| ns == "shop" || ns == "blog"));
                want
            },
        )
        .await?;
    report.exact(
        case,
        &b,
        &keys(&[
            shop_web_items(),
            vec![
                ck(CRDS, "widgets.example.com"),
                namespace("shop"),
                namespace("blog"),
            ],
        ]),
    );

    // 5. OR selectors over all namespaces: app=web and app=blog items (not skip-me's). The
    // Namespace objects: skip-me's label makes the namespace filter `*` minus skip-me, which is
    // not "everything", so (`includes_excludes.go`) every other Namespace is kept, not only those with
    // items.
    let case = "case 5 includedNamespaces [*], orLabelSelectors app=web | app=blog";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["*"],
                   "orLabelSelectors": [{"matchLabels": {"app": "web"}}, {"matchLabels": {"app": "blog"}}]}),
            |inv: &Inventory| {
                let mut want = inv.with_additional_items(inv.select(|k, l| {
                    !k.1.is_empty()
                        && k.1 != "skip-me"
                        && matches!(l.get("app").map(String::as_str), Some("web" | "blog"))
                }));
                want.extend(inv.namespaces(|ns| ns != "skip-me"));
                want
            },
        )
        .await?;
    report.exact(
        case,
        &b,
        &keys(&[
            shop_web_items(),
            vec![
                nk(CONFIGMAPS, "blog", "post"),
                ck(CRDS, "widgets.example.com"),
                namespace("shop"),
                namespace("blog"),
            ],
        ]),
    );

    // 6. New style: ConfigMaps of shop, the StorageClasses, and Namespace `shop`.
    let case = "case 6 new style shop configmaps + storageclasses";
    let b = cluster
        .backup(
            &mut report,
            case,
            json!({"includedNamespaces": ["shop"],
                   "includedNamespaceScopedResources": ["configmaps"],
                   "includedClusterScopedResources": ["storageclasses"]}),
            |inv: &Inventory| {
                let mut want = inv
                    .select(|k, _| (k.0 == CONFIGMAPS && k.1 == "shop") || k.0 == STORAGE_CLASSES);
                want.extend(inv.namespaces(|ns| ns == "shop"));
                want
            },
        )
        .await?;
    report.exact(
        case,
        &b,
        &[
            nk(CONFIGMAPS, "shop", "settings"),
            nk(CONFIGMAPS, "shop", "unlabelled"),
            fast(),
            namespace("shop"),
        ],
    );

    report.finish();
    Ok(())
}
