//! The engine against a real API server with a minimal selection (one namespace, everything in it).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use velero_backup::engine::{BackupParams, Selection, run};
use velero_cluster::api::ApiReader;
use velero_cluster::discovery::{DiscoveredResource, discover};
use velero_test_harness::ControlPlane;
use velero_test_harness::create_object;

struct OneNamespace(String);

impl Selection for OneNamespace {
    fn include_type(&self, r: &DiscoveredResource) -> bool {
        // Namespaced types, and Namespace objects (which the tracker then filters).
        r.namespaced || (r.group.is_empty() && r.resource == "namespaces")
    }
    fn namespace_scopes(&self) -> Vec<Option<String>> {
        vec![Some(self.0.clone())]
    }
    fn include_namespace(&self, ns: &str) -> bool {
        ns == self.0
    }
    fn label_selectors(&self) -> Vec<Option<String>> {
        vec![None]
    }
    fn exclude_additional(&self, _: &DiscoveredResource) -> bool {
        false
    }
    fn keep_namespace(&self, name: &str, _: &BTreeMap<String, String>, _: bool, _: bool) -> bool {
        name == self.0
    }
    fn item_order(&self, _: &DiscoveredResource) -> Option<String> {
        None
    }
    fn missing_namespaces(&self) -> Vec<String> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_up_a_namespace_with_its_additional_items() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "app"}, "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "skipped", "namespace": "app", "labels": {"velero.io/exclude-from-backup": "true"}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "elsewhere", "namespace": "other"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "app"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "runner-role"}, "rules": []}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "runner-binding"},
               "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "app"}],
               "roleRef": {"kind": "ClusterRole", "name": "runner-role", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-data"},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv-data"}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "app"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-data", "storageClassName": ""}}),
    ] {
        create_object(&client, object).await?;
    }
    // No binder runs without a node; a claim brings its volume only when it is Bound.
    velero_test_harness::bind_claim(&client, "app", "data").await?;

    let reader = ApiReader::new(client.clone());
    let discovery = discover(&client).await?;
    let params = BackupParams {
        backup_namespace: "velero".into(),
        backup_name: "b1".into(),
        concurrency: 4,
        hooks: None,
        pod_volumes: None,
    };
    let (outcome, tarball) = run(
        &reader,
        &discovery,
        &OneNamespace("app".into()),
        &params,
        Vec::new(),
        &|_| {},
    )
    .await?;
    let entries = velero_archive::read_all(&tarball[..])?;
    let paths: BTreeSet<&str> = entries.keys().map(String::as_str).collect();

    for want in [
        "metadata/version",
        "resources/configmaps/namespaces/app/settings.json",
        "resources/configmaps/v1-preferredversion/namespaces/app/settings.json",
        "resources/serviceaccounts/namespaces/app/runner.json",
        "resources/clusterrolebindings.rbac.authorization.k8s.io/cluster/runner-binding.json",
        "resources/clusterroles.rbac.authorization.k8s.io/v1-preferredversion/cluster/runner-role.json",
        "resources/persistentvolumeclaims/namespaces/app/data.json",
        "resources/persistentvolumes/cluster/pv-data.json",
        "resources/namespaces/cluster/app.json",
    ] {
        assert!(paths.contains(want), "{want} missing from {paths:#?}");
    }
    for unwanted in ["skipped", "elsewhere", "namespaces/cluster/other.json"] {
        assert!(
            !paths.iter().any(|p| p.contains(unwanted)),
            "{unwanted} must not be backed up"
        );
    }
    let cm: Value =
        serde_json::from_slice(&entries["resources/configmaps/namespaces/app/settings.json"])?;
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["data"]["k"], "v");
    assert!(
        cm["metadata"]["uid"].is_string(),
        "objects are kept as the API server returned them"
    );
    // Each item has two copies; one version file besides.
    assert_eq!(outcome.items_backed_up as usize * 2 + 1, entries.len());
    assert_eq!(outcome.resource_list["v1/PersistentVolume"], ["pv-data"]);
    assert!(
        outcome.results.errors.is_empty(),
        "{:?}",
        outcome.results.errors
    );
    Ok(())
}
