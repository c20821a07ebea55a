//! Restores on a real API server from a `local` location: the round trip of several namespaces
//! with every kind the restore transforms plus a CRD and its custom resources, then the same
//! backup with namespace mappings, the update policy and label selectors.

use crate::support;

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::{Value, json};
use velero_api::v1::RestorePhase;
use velero_test_harness::create_object;

use support::{backup, delete_all, get, phase, restore, restore_files, setup, wait_for};

fn strip_velero_labels(labels: &Value) -> Value {
    let mut labels = labels.clone();
    if let Some(map) = labels.as_object_mut() {
        map.remove("velero.io/backup-name");
        map.remove("velero.io/restore-name");
        if map.is_empty() {
            return Value::Null;
        }
    }
    labels
}

/// What must survive a round trip: spec (minus what the server assigns), labels, annotations, data.
fn essence(object: &Value) -> Value {
    let mut o = object.clone();
    let kind = o["kind"].as_str().unwrap_or_default().to_string();
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        match kind.as_str() {
            "Service" => {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            "PersistentVolume" => {
                if let Some(c) = spec.get_mut("claimRef").and_then(Value::as_object_mut) {
                    c.remove("uid");
                    c.remove("resourceVersion");
                }
            }
            "Job" => {
                spec.remove("selector");
                if let Some(l) = spec
                    .get_mut("template")
                    .and_then(|t| t.pointer_mut("/metadata/labels"))
                    .and_then(Value::as_object_mut)
                {
                    l.remove("controller-uid");
                }
            }
            _ => {}
        }
    }
    let mut annotations = o["metadata"]["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        // The server's own bookkeeping on claims and volumes.
        a.remove("pv.kubernetes.io/bind-completed");
        a.remove("pv.kubernetes.io/bound-by-controller");
        a.remove("deployment.kubernetes.io/revision");
    }
    json!({
        "labels": strip_velero_labels(&o["metadata"]["labels"]),
        "annotations": annotations,
        "spec": o.get("spec").cloned().unwrap_or(Value::Null),
        "data": o.get("data").cloned().unwrap_or(Value::Null),
        "rules": o.get("rules").cloned().unwrap_or(Value::Null),
        "subjects": o.get("subjects").cloned().unwrap_or(Value::Null),
        "roleRef": o.get("roleRef").cloned().unwrap_or(Value::Null),
        "value": o.get("value").cloned().unwrap_or(Value::Null),
    })
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})
}

/// Objects of one application namespace, by API path.
fn app(ns: &str) -> Vec<(String, Value)> {
    let labels = json!({"app": "web", "team": ns});
    vec![
        (
            format!("/api/v1/namespaces/{ns}/configmaps/settings"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns, "labels": labels, "annotations": {"note": "keep me"}}, "data": {"color": "blue"}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/configmaps/unlabelled"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unlabelled", "namespace": ns}, "data": {"x": "y"}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/secrets/creds"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns, "labels": labels}, "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/serviceaccounts/runner"),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": ns, "labels": labels}}),
        ),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/reader"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": ns, "labels": labels},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        ),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/reader"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader", "namespace": ns, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}]}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/services/web"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns, "labels": labels},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/services/headless"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "headless", "namespace": ns, "labels": labels},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        ),
        (
            format!("/apis/apps/v1/namespaces/{ns}/deployments/web"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns, "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"serviceAccountName": "runner", "containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
        ),
        (
            format!("/apis/batch/v1/namespaces/{ns}/jobs/migrate"),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns, "labels": labels},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox", "command": ["true"]}]}}}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns, "labels": labels},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": format!("pv-{ns}"), "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            format!("/api/v1/persistentvolumes/pv-{ns}"),
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": format!("pv-{ns}"), "labels": labels},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                "hostPath": {"path": format!("/tmp/{ns}")}, "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": "data", "apiVersion": "v1"}}}),
        ),
        (
            format!("/apis/example.com/v1/namespaces/{ns}/widgets/gear"),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "gear", "namespace": ns, "labels": labels}, "spec": {"teeth": 12, "size": {"mm": 40}}}),
        ),
    ]
}

fn cluster_objects() -> Vec<(String, Value)> {
    vec![
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/rt-viewer".to_string(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "rt-viewer", "labels": {"app": "web"}},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/rt-viewer".to_string(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "rt-viewer", "labels": {"app": "web"}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rt-viewer"},
                "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "rt-a"}]}),
        ),
        (
            "/apis/scheduling.k8s.io/v1/priorityclasses/rt-high".to_string(),
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "rt-high", "labels": {"app": "web"}}, "value": 1000}),
        ),
    ]
}

fn count(results: &Value, kind: &str) -> usize {
    let r = &results[kind];
    r["velero"].as_array().map_or(0, Vec::len)
        + r["cluster"].as_array().map_or(0, Vec::len)
        + r["namespaces"].as_object().map_or(0, |m| {
            m.values().map(|v| v.as_array().map_or(0, Vec::len)).sum()
        })
}

fn entries(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_crds_and_cluster_objects_come_back_as_they_were() -> anyhow::Result<()> {
    let env = setup().await?;
    let client = &env.client;
    create_object(client, crd()).await?;
    wait_for("the CRD to be served", || async {
        get(client, "/apis/example.com/v1/widgets")
            .await
            .map(|_| ())
    })
    .await?;
    for ns in ["rt-a", "rt-b"] {
        create_object(client, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"tier": "apps"}, "annotations": {"owner": "team"}}})).await?;
    }
    let mut originals: BTreeMap<String, Value> = BTreeMap::new();
    for (path, object) in app("rt-a")
        .into_iter()
        .chain(app("rt-b"))
        .chain(cluster_objects())
    {
        create_object(client, object).await?;
        originals.insert(path, Value::Null);
    }
    for (path, value) in originals.iter_mut() {
        *value = get(client, path)
            .await
            .with_context(|| format!("created {path}"))?;
    }

    backup(
        client,
        "rt",
        json!({"includedNamespaces": ["rt-a", "rt-b"], "includeClusterResources": true}),
    )
    .await?;

    let mut gone: Vec<String> = originals
        .keys()
        .filter(|p| p.contains("/persistentvolumes/") || !p.contains("/namespaces/"))
        .cloned()
        .collect();
    gone.push("/api/v1/namespaces/rt-a".into());
    gone.push("/api/v1/namespaces/rt-b".into());
    gone.push("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com".into());
    delete_all(client, &gone).await?;

    // 1. Everything back.
    let done = restore(client, "rt-1", json!({"backupName": "rt"})).await?;
    assert_eq!(
        phase(&done),
        Some(RestorePhase::Completed),
        "{:?}",
        done.status
    );
    for (path, original) in &originals {
        let restored = get(client, path)
            .await
            .with_context(|| format!("{path} was not restored"))?;
        assert_eq!(essence(&restored), essence(original), "{path}");
        assert_eq!(
            restored["metadata"]["labels"]["velero.io/restore-name"], "rt-1",
            "{path}"
        );
        assert_eq!(
            restored["metadata"]["labels"]["velero.io/backup-name"], "rt",
            "{path}"
        );
    }
    let ns = get(client, "/api/v1/namespaces/rt-a")
        .await
        .context("namespace")?;
    assert_eq!(ns["metadata"]["labels"]["tier"], "apps");
    assert_eq!(ns["metadata"]["annotations"]["owner"], "team");
    // Cluster IPs are assigned anew; headless stays headless.
    let headless = get(client, "/api/v1/namespaces/rt-a/services/headless")
        .await
        .context("svc")?;
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let (list, results) = restore_files(&env, "rt-1")?;
    assert_eq!(count(&results, "errors"), 0, "{results}");
    assert!(
        entries(&list, "v1/ConfigMap").contains(&"rt-a/settings(created)".to_string()),
        "{list}"
    );
    assert!(
        entries(&list, "example.com/v1/Widget").contains(&"rt-b/gear(created)".to_string()),
        "{list}"
    );
    assert!(
        entries(&list, "apiextensions.k8s.io/v1/CustomResourceDefinition")
            .contains(&"widgets.example.com(created)".to_string()),
        "{list}"
    );
    assert!(
        entries(&list, "v1/PersistentVolume").contains(&"pv-rt-a(created)".to_string()),
        "{list}"
    );
    assert!(
        entries(&list, "v1/Namespace").contains(&"rt-a(created)".to_string()),
        "{list}"
    );
    let status = done.status.clone().unwrap_or_default();
    let progress = status.progress.clone().unwrap_or_default();
    assert!(
        progress.items_restored.unwrap_or(0) >= originals.len() as i32,
        "{progress:?}"
    );

    // 2. Restoring over what is there changes nothing and says why.
    let again = restore(
        client,
        "rt-2",
        json!({"backupName": "rt", "includedNamespaces": ["rt-a"]}),
    )
    .await?;
    let (list, _) = restore_files(&env, "rt-2")?;
    assert!(
        entries(&list, "v1/ConfigMap").contains(&"rt-a/settings(skipped)".to_string()),
        "{list} {:?}",
        again.status
    );

    // 3. Modified objects: warnings by default, patched back with the update policy.
    let settings = "/api/v1/namespaces/rt-b/configmaps/settings";
    let patch = json!({"data": {"color": "red"}});
    let request = http::Request::patch(settings)
        .header("Content-Type", "application/merge-patch+json")
        .body(serde_json::to_vec(&patch)?)?;
    client.request::<Value>(request).await?;
    let warned = restore(
        client,
        "rt-3",
        json!({"backupName": "rt", "includedNamespaces": ["rt-b"]}),
    )
    .await?;
    assert_eq!(phase(&warned), Some(RestorePhase::Completed));
    let (_, results) = restore_files(&env, "rt-3")?;
    let warnings = results["warnings"]["namespaces"]["rt-b"].to_string();
    assert!(
        warnings.contains("could not restore, ConfigMap:settings already exists"),
        "{results}"
    );
    assert_eq!(
        get(client, settings).await.context("cm")?["data"]["color"],
        "red"
    );
    let updated = restore(client, "rt-4", json!({"backupName": "rt", "includedNamespaces": ["rt-b"], "existingResourcePolicy": "update"})).await?;
    assert_eq!(
        phase(&updated),
        Some(RestorePhase::Completed),
        "{:?}",
        updated.status
    );
    let cm = get(client, settings).await.context("cm")?;
    assert_eq!(cm["data"]["color"], "blue");
    assert_eq!(cm["metadata"]["labels"]["velero.io/restore-name"], "rt-4");
    let (list, _) = restore_files(&env, "rt-4")?;
    assert!(
        entries(&list, "v1/ConfigMap").contains(&"rt-b/settings(updated)".to_string()),
        "{list}"
    );

    // 4. Into new namespaces: bindings follow the mapping. The Retain volume, still claimed by
    // the original, is left as it is: Velero makes a second PersistentVolume (`velero-clone-…`)
    // only for a disk made anew from a native snapshot, never for the same disk twice.
    let mapped = restore(client, "rt-5", json!({"backupName": "rt", "includedNamespaces": ["rt-a"], "namespaceMapping": {"rt-a": "rt-a-copy"}})).await?;
    assert_eq!(
        phase(&mapped),
        Some(RestorePhase::Completed),
        "{:?}",
        mapped.status
    );
    let binding = get(
        client,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/rt-a-copy/rolebindings/reader",
    )
    .await
    .context("binding")?;
    assert_eq!(binding["subjects"][0]["namespace"], "rt-a-copy");
    let claim = get(
        client,
        "/api/v1/namespaces/rt-a-copy/persistentvolumeclaims/data",
    )
    .await
    .context("claim")?;
    assert_eq!(claim["spec"]["volumeName"], "pv-rt-a", "{claim}");
    let pv = get(client, "/api/v1/persistentvolumes/pv-rt-a")
        .await
        .context("pv")?;
    assert_eq!(pv["spec"]["claimRef"]["namespace"], "rt-a", "{pv}");
    let volumes = get(client, "/api/v1/persistentvolumes")
        .await
        .context("pvs")?;
    assert!(
        !volumes.to_string().contains("velero-clone-"),
        "no second volume for the same disk: {volumes}"
    );
    assert!(
        get(
            client,
            "/apis/example.com/v1/namespaces/rt-a-copy/widgets/gear"
        )
        .await
        .is_some()
    );
    assert!(
        get(client, "/api/v1/namespaces/rt-a").await.is_some(),
        "the source namespace is untouched"
    );

    // 5. Label selectors: only the labelled objects of the namespace come back.
    delete_all(client, &["/api/v1/namespaces/rt-b".to_string()]).await?;
    let selected = restore(client, "rt-6", json!({"backupName": "rt", "includedNamespaces": ["rt-b"], "labelSelector": {"matchLabels": {"team": "rt-b"}}})).await?;
    assert_eq!(
        phase(&selected),
        Some(RestorePhase::Completed),
        "{:?}",
        selected.status
    );
    assert!(
        get(client, "/api/v1/namespaces/rt-b/configmaps/settings")
            .await
            .is_some()
    );
    assert!(
        get(client, "/api/v1/namespaces/rt-b/configmaps/unlabelled")
            .await
            .is_none()
    );
    let (list, _) = restore_files(&env, "rt-6")?;
    assert!(!list.to_string().contains("unlabelled"), "{list}");

    // 6. Resource modifiers from a ConfigMap: a JSON patch with a value test, a merge patch and a
    // strategic patch, each on the types its conditions name.
    let rules = r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: configmaps
    resourceNameRegex: "^settings$"
    namespaces: [rt-a]
  patches:
  - operation: test
    path: /data/color
    value: blue
  - operation: replace
    path: /data/color
    value: green
- conditions:
    groupResource: deployments.apps
  mergePatches:
  - patchData: |
      metadata:
        labels:
          modified: "yes"
- conditions:
    groupResource: deployments.apps
  strategicPatches:
  - patchData: |
      spec:
        template:
          spec:
            containers:
            - name: web
              image: nginx:1.27
"#;
    create_object(
        client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "modifiers", "namespace": "velero"}, "data": {"rules.yaml": rules}}),
    )
    .await?;
    let modified = restore(client, "rt-7", json!({"backupName": "rt", "includedNamespaces": ["rt-a"],
        "namespaceMapping": {"rt-a": "rt-mod"}, "resourceModifier": {"kind": "ConfigMap", "name": "modifiers"}})).await?;
    assert_eq!(
        phase(&modified),
        Some(RestorePhase::Completed),
        "{:?}",
        modified.status
    );
    let cm = get(client, "/api/v1/namespaces/rt-mod/configmaps/settings")
        .await
        .context("cm")?;
    assert_eq!(cm["data"]["color"], "green");
    let other = get(client, "/api/v1/namespaces/rt-mod/configmaps/unlabelled")
        .await
        .context("cm")?;
    assert_eq!(
        other["data"]["x"], "y",
        "rules apply only where their conditions hold"
    );
    let deploy = get(client, "/apis/apps/v1/namespaces/rt-mod/deployments/web")
        .await
        .context("deploy")?;
    assert_eq!(deploy["metadata"]["labels"]["modified"], "yes");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // 7. The change-image-name plugin ConfigMap rewrites images on the way in.
    create_object(
        client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "images", "namespace": "velero", "labels": {
            "velero.io/plugin-config": "", "velero.io/change-image-name": "RestoreItemAction"}},
        "data": {"case1": "nginx,registry.local/nginx"}}),
    )
    .await?;
    let renamed = restore(
        client,
        "rt-8",
        json!({"backupName": "rt", "includedNamespaces": ["rt-a"],
        "includedResources": ["deployments"], "namespaceMapping": {"rt-a": "rt-img"}}),
    )
    .await?;
    assert_eq!(
        phase(&renamed),
        Some(RestorePhase::Completed),
        "{:?}",
        renamed.status
    );
    let deploy = get(client, "/apis/apps/v1/namespaces/rt-img/deployments/web")
        .await
        .context("deploy")?;
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/nginx:1.25"
    );
    assert!(
        get(client, "/api/v1/namespaces/rt-img/configmaps/settings")
            .await
            .is_none(),
        "only deployments were included"
    );
    delete_all(
        client,
        &["/api/v1/namespaces/velero/configmaps/images".to_string()],
    )
    .await?;

    // 8. Status is restored for the types `restoreStatus` names, unless an object's
    // velero.io/restore-status annotation says otherwise.
    create_object(
        client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rt-status"}}),
    )
    .await?;
    for (name, annotations) in [
        ("counted", json!({})),
        ("opted-out", json!({"velero.io/restore-status": "false"})),
    ] {
        create_object(client, json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "rt-status", "annotations": annotations}, "spec": {"teeth": 3}})).await?;
        let path = format!("/apis/example.com/v1/namespaces/rt-status/widgets/{name}");
        let mut widget = get(client, &path).await.context("widget")?;
        widget["status"] = json!({"turns": 7});
        let request = http::Request::put(format!("{path}/status"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&widget)?)?;
        client.request::<Value>(request).await?;
    }
    backup(
        client,
        "rt-status",
        json!({"includedNamespaces": ["rt-status"]}),
    )
    .await?;
    delete_all(client, &["/api/v1/namespaces/rt-status".to_string()]).await?;
    let with_status = restore(
        client,
        "rt-9",
        json!({"backupName": "rt-status",
        "restoreStatus": {"includedResources": ["widgets.example.com"]}}),
    )
    .await?;
    assert_eq!(
        phase(&with_status),
        Some(RestorePhase::Completed),
        "{:?}",
        with_status.status
    );
    let counted = get(
        client,
        "/apis/example.com/v1/namespaces/rt-status/widgets/counted",
    )
    .await
    .context("widget")?;
    assert_eq!(counted["status"]["turns"], 7, "{counted}");
    let opted_out = get(
        client,
        "/apis/example.com/v1/namespaces/rt-status/widgets/opted-out",
    )
    .await
    .context("widget")?;
    assert!(opted_out.get("status").is_none(), "{opted_out}");
    Ok(())
}

/// A StatefulSet's ControllerRevision keeps its `data` as the bytes it was sent, and the controller
/// compares them with Go's encoding of the same data when it adopts the restored revision. A shell
/// redirection in the pod template (`>`, `&`) is written escaped by Go: the restore must send it
/// the same way, or the controller's update is refused as a change to an immutable field and the
/// StatefulSet never progresses (found on the real node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_with_shell_redirections_progresses_after_restore() -> anyhow::Result<()> {
    let env = setup().await?;
    let client = &env.client;
    create_object(
        client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sts"}}),
    )
    .await?;
    create_object(
        client,
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "sts"},
            "spec": {
                "serviceName": "db", "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{
                        "name": "db", "image": "busybox:1.35",
                        "command": ["sh", "-c", "echo x >> /data/log && exec sleep 3600 < /dev/null"],
                    }]},
                },
            },
        }),
    )
    .await?;
    let revisions = "/apis/apps/v1/namespaces/sts/controllerrevisions";
    wait_for("the StatefulSet's revision", || async {
        let list = get(client, revisions).await?;
        (!list["items"].as_array()?.is_empty()).then_some(())
    })
    .await?;
    backup(client, "sts", json!({"includedNamespaces": ["sts"]})).await?;
    delete_all(client, &["/api/v1/namespaces/sts".to_string()]).await?;

    let done = restore(client, "sts-1", json!({"backupName": "sts"})).await?;
    assert_eq!(
        phase(&done),
        Some(RestorePhase::Completed),
        "{:?}",
        done.status
    );
    let (list, _) = restore_files(&env, "sts-1")?;
    assert!(
        entries(&list, "apps/v1/ControllerRevision")
            .iter()
            .any(|e| e.ends_with("(created)")),
        "{list}"
    );
    // The controller took the restored revision as its own and synced the set.
    wait_for(
        "the restored StatefulSet to be synced by its controller",
        || async {
            let sts = get(client, "/apis/apps/v1/namespaces/sts/statefulsets/db").await?;
            let status = &sts["status"];
            (status["observedGeneration"] == sts["metadata"]["generation"]
                && status["currentRevision"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()))
            .then_some(())
        },
    )
    .await?;
    Ok(())
}
