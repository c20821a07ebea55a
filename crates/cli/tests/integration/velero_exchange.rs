//! Backups exchanged with Velero 1.18.1 itself: its server and ours take turns on one cluster and
//! one bucket, each restoring what the other backed up, and Velero's own CLI drives our server as
//! it drives its own. The Velero binaries come from the project's shared tools
//! (velero_test_harness::tools says where they are looked for).

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};
use velero_test_harness::{ControlPlane, S3Server, tools};

use common::{eventually, kubectl, kubectl_apply, run, start_server, text};

/// Runs Velero's CLI and returns stdout, failing with everything it said when it fails.
fn velero_ok(cmd: &mut Command) -> String {
    let out: Output = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The objects, applied as one List.
fn apply_objects(cp: &ControlPlane, objects: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl_apply(cp, list.to_string().as_bytes());
}

/// The application: two namespaces, a CRD and its custom resources, cluster-scoped companions
/// (a ClusterRole and ClusterRoleBinding for a ServiceAccount, a PersistentVolume for a claim),
/// Secrets and a Service with node ports, one chosen and one allocated.
fn application(shop: &str, crm: &str) -> Vec<Value> {
    let mut objects = vec![
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "shop-reader", "labels": {"app": "shop"}},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "shop-runner", "labels": {"app": "shop"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "shop-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": shop}]}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "shop-disk", "labels": {"app": "shop"}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                "hostPath": {"path": "/tmp/shop-disk"},
                "claimRef": {"namespace": shop, "name": "data"}}}),
    ];
    for (ns, color) in [(shop, "blue"), (crm, "green")] {
        let labels = json!({"app": ns, "tier": "web"});
        objects.extend([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": ns, "labels": labels, "annotations": {"note": "keep me"}},
                "data": {"color": color}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns, "labels": labels},
                "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "gear", "namespace": ns, "labels": labels},
                "spec": {"teeth": 12, "color": color}}),
        ]);
    }
    let last_applied = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": shop},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "nodePort": 30380}, {"name": "metrics", "port": 9090}]}});
    objects.extend([
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": shop}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": shop},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": shop},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": shop}]}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": shop},
            "spec": {"storageClassName": "", "volumeName": "shop-disk", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": shop,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string()}},
            "spec": last_applied["spec"]}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": shop, "labels": {"app": "web"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"serviceAccountName": "runner",
                        "containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
    ]);
    objects
}

/// What must come back the same, whoever restores: each object's labels (without Velero's
/// bookkeeping), annotations, data and spec, without what the API server assigns.
fn essence(object: &Value) -> Value {
    let mut o = object.clone();
    let kind = o["kind"].as_str().unwrap_or_default().to_string();
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        match kind.as_str() {
            "Service" => {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
                // Allocated node ports are given up on restore; a chosen one is kept.
                for port in spec
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if port["name"] != "http" {
                        port.as_object_mut().map(|p| p.remove("nodePort"));
                    }
                }
            }
            "PersistentVolume" => {
                if let Some(c) = spec.get_mut("claimRef").and_then(Value::as_object_mut) {
                    c.retain(|k, _| k == "name" || k == "namespace");
                }
            }
            _ => {}
        }
    }
    let mut labels = o["metadata"]["labels"].clone();
    if let Some(map) = labels.as_object_mut() {
        map.retain(|k, _| !k.starts_with("velero.io/"));
        if map.is_empty() {
            labels = Value::Null;
        }
    }
    let mut annotations = o["metadata"]["annotations"].clone();
    if let Some(map) = annotations.as_object_mut() {
        map.retain(|k, _| {
            !k.starts_with("pv.kubernetes.io/") && k != "deployment.kubernetes.io/revision"
        });
    }
    json!({
        "labels": labels, "annotations": annotations,
        "spec": o.get("spec").cloned().unwrap_or(Value::Null),
        "data": o.get("data").cloned().unwrap_or(Value::Null),
        "rules": o.get("rules").cloned().unwrap_or(Value::Null),
        "subjects": o.get("subjects").cloned().unwrap_or(Value::Null),
        "roleRef": o.get("roleRef").cloned().unwrap_or(Value::Null),
    })
}

/// `kubectl get` paths of the application's objects, by a name for messages.
fn object_paths(shop: &str, crm: &str) -> Vec<(String, String)> {
    let mut paths = vec![
        (
            "crd".into(),
            "customresourcedefinition/widgets.example.com".into(),
        ),
        ("clusterrole".into(), "clusterrole/shop-reader".into()),
        (
            "clusterrolebinding".into(),
            "clusterrolebinding/shop-runner".into(),
        ),
        ("pv".into(), "persistentvolume/shop-disk".into()),
    ];
    for ns in [shop, crm] {
        for kind in [
            "namespace",
            "configmap/settings",
            "secret/creds",
            "widget.example.com/gear",
        ] {
            let path = if kind == "namespace" {
                format!("namespace/{ns}")
            } else {
                format!("-n {ns} {kind}")
            };
            paths.push((format!("{ns} {kind}"), path));
        }
    }
    for kind in [
        "serviceaccount/runner",
        "role/reader",
        "rolebinding/reader",
        "persistentvolumeclaim/data",
        "service/web",
        "deployment/web",
    ] {
        paths.push((format!("{shop} {kind}"), format!("-n {shop} {kind}")));
    }
    paths
}

/// The essence of every application object as the cluster has it now; missing ones are `null`.
fn snapshot(cp: &ControlPlane, shop: &str, crm: &str) -> BTreeMap<String, Value> {
    object_paths(shop, crm)
        .into_iter()
        .map(|(name, path)| {
            let mut args: Vec<&str> = path.split(' ').collect();
            args.extend(["-o", "json", "--ignore-not-found"]);
            let mut full = vec!["get"];
            full.extend(args);
            let out = cp.kubectl().args(&full).output().expect("kubectl runs");
            let body = text(&out.stdout);
            let value = if body.trim().is_empty() {
                Value::Null
            } else {
                essence(&serde_json::from_str(&body).expect("kubectl prints JSON"))
            };
            (name, value)
        })
        .collect()
}

/// The namespaces and cluster-scoped objects of the application, deleted and gone.
async fn delete_application(cp: &ControlPlane, namespaces: &[&str]) {
    for object in [
        "customresourcedefinition/widgets.example.com",
        "clusterrolebinding/shop-runner",
        "clusterrole/shop-reader",
        "persistentvolume/shop-disk",
    ] {
        kubectl(
            cp,
            &["delete", object, "--ignore-not-found", "--wait=false"],
        );
    }
    delete_namespaces(cp, namespaces).await;
    eventually("the volume to be gone", || {
        let out = cp
            .kubectl()
            .args(["get", "pv", "shop-disk", "--ignore-not-found", "-o", "name"])
            .output()
            .expect("kubectl runs");
        text(&out.stdout).trim().is_empty()
    })
    .await;
}

fn assert_same(want: &BTreeMap<String, Value>, got: &BTreeMap<String, Value>, what: &str) {
    for (name, expected) in want {
        let actual = got.get(name).unwrap_or(&Value::Null);
        assert_eq!(actual, expected, "{what}: {name} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_cross_both_ways_with_velero_and_its_cli_drives_our_server() -> anyhow::Result<()> {
    let Some(velero_tool) = tools::require_or_skip(tools::VELERO, "velero_exchange") else {
        return Ok(());
    };
    if tools::require_or_skip(tools::VELERO_AWS_PLUGIN, "velero_exchange").is_none() {
        return Ok(());
    }
    let _turn = common::VELERO_SERVER_TURN.lock().await;
    let cp = ControlPlane::start().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let s3 = S3Server::start().await?;
    s3.create_bucket("velero")?;
    let work = tempfile::tempdir()?;
    let home: PathBuf = work.path().join("home");
    std::fs::create_dir_all(&home)?;
    let io =
        |args: &[&str]| velero_ok(tools::velero_cli(&velero_tool, &kubeconfig, &home).args(args));
    // `velero restore create NAME --from-backup BACKUP [--namespace-mappings …] --wait`, Completed.
    let restored = |name: &str, backup: &str, mappings: Option<&str>| {
        let mut args = vec!["restore", "create", name, "--from-backup", backup, "--wait"];
        if let Some(mappings) = mappings {
            args.extend(["--namespace-mappings", mappings]);
        }
        let out = io(&args);
        assert!(
            out.contains("Restore completed with status: Completed"),
            "{name}: {out}"
        );
    };

    // Our install: CRDs, the namespace, the location and its credentials Secret (both servers
    // run outside the cluster).
    common::install_on_s3(&cp, &s3, work.path(), None)?;

    let objects = application("shop", "crm");
    apply_objects(&cp, &objects[..1]);
    kubectl(
        &cp,
        &[
            "wait",
            "--for",
            "condition=established",
            "crd/widgets.example.com",
        ],
    );
    apply_objects(&cp, &objects[1..]);
    velero_test_harness::bind_claim(&cp.client().await?, "shop", "data").await?;
    let original = snapshot(&cp, "shop", "crm");
    assert!(original.values().all(|v| !v.is_null()), "{original:#?}");

    // 1. Velero backs up; our server restores, as it was and into other namespaces.
    let velero_server = tools::VeleroServer::start(&velero_tool, &kubeconfig, work.path())?;
    velero_test_harness::install::location_available(&cp).await?;
    let out = io(&[
        "backup",
        "create",
        "by-velero",
        "--include-namespaces",
        "shop,crm",
        "--wait",
    ]);
    assert!(
        out.contains("Backup completed with status: Completed"),
        "{out}"
    );
    drop(velero_server);
    delete_application(&cp, &["shop", "crm"]).await;

    let ours = start_server(&kubeconfig, work.path()).await?;
    restored("r-ours", "by-velero", None);
    assert_same(
        &original,
        &snapshot(&cp, "shop", "crm"),
        "Velero's backup restored by velero-rs",
    );
    let described = io(&["restore", "describe", "r-ours", "--colorized=false"]);
    for want in [
        "Phase:                       Completed",
        "Backup:  by-velero",
        "Items restored:",
        // Velero's CLI sends 0s for a timeout left out; the server puts in the default.
        "ItemOperationTimeout:       4h0m0s",
    ] {
        assert!(described.contains(want), "{want:?} in\n{described}");
    }
    // The same backup into other namespaces (the originals gone first: the Service's chosen
    // node port is one per cluster).
    delete_namespaces(&cp, &["shop", "crm"]).await;
    restored("r-mapped", "by-velero", Some("shop:shop-2,crm:crm-2"));
    assert_same(
        &mapped(&original),
        &snapshot(&cp, "shop-2", "crm-2"),
        "Velero's backup restored by velero-rs into other namespaces",
    );
    delete_namespaces(&cp, &["shop-2", "crm-2"]).await;

    // 2. Velero's CLI drives our server: a backup, its listing, details and log, a restore, a schedule.
    restored("r-again", "by-velero", None);
    // A restored claim is Pending until a binder binds it; only a Bound claim brings its volume.
    velero_test_harness::bind_claim(&cp.client().await?, "shop", "data").await?;
    let out = io(&[
        "backup",
        "create",
        "by-rs",
        "--include-namespaces",
        "shop,crm",
        "--wait",
    ]);
    assert!(
        out.contains("Backup completed with status: Completed"),
        "{out}"
    );
    let listed = io(&["backup", "get"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with("by-rs "))
        .unwrap_or_default();
    assert!(
        row.contains("Completed") && row.contains("default"),
        "{listed}"
    );
    let details = io(&[
        "backup",
        "describe",
        "by-rs",
        "--details",
        "--colorized=false",
    ]);
    for want in [
        "Phase:  Completed",
        "Resource List:",
        "example.com/v1/Widget:",
        "- crm/gear",
        "v1/PersistentVolume:",
        "- shop-disk",
        "rbac.authorization.k8s.io/v1/ClusterRoleBinding:",
        "- shop-runner",
    ] {
        assert!(details.contains(want), "{want:?} in\n{details}");
    }
    let logs = io(&["backup", "logs", "by-rs"]);
    assert!(
        logs.contains("backup=velero/by-rs") && logs.contains("name=gear"),
        "{logs}"
    );
    let described = io(&[
        "restore",
        "describe",
        "r-again",
        "--details",
        "--colorized=false",
    ]);
    assert!(
        described.contains("Phase:                       Completed"),
        "{described}"
    );
    let out = io(&[
        "schedule",
        "create",
        "nightly",
        "--schedule",
        "0 3 * * *",
        "--include-namespaces",
        "shop",
    ]);
    assert!(
        out.contains("Schedule \"nightly\" created successfully."),
        "{out}"
    );
    eventually("our server to accept the schedule", || {
        let out =
            run(tools::velero_cli(&velero_tool, &kubeconfig, &home).args(["schedule", "get"]));
        text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("nightly ") && l.contains("Enabled"))
    })
    .await;
    drop(ours);

    // 3. Velero restores our backup, as it was and into other namespaces.
    delete_application(&cp, &["shop", "crm"]).await;
    let _velero_server = tools::VeleroServer::start(&velero_tool, &kubeconfig, work.path())?;
    restored("v-restore", "by-rs", None);
    assert_same(
        &original,
        &snapshot(&cp, "shop", "crm"),
        "velero-rs's backup restored by Velero",
    );
    delete_namespaces(&cp, &["shop", "crm"]).await;
    restored("v-mapped", "by-rs", Some("shop:shop-2,crm:crm-2"));
    assert_same(
        &mapped(&original),
        &snapshot(&cp, "shop-2", "crm-2"),
        "velero-rs's backup restored by Velero into other namespaces",
    );

    // 4. The same resource modifiers through both servers: a rule with conditions and no
    // patches, and a patch go-yaml cannot parse, give the same errors and the same objects.
    let rules = "version: v1\nresourceModifierRules:\n\
        - conditions: {groupResource: configmaps, resourceNameRegex: '^settings$'}\n\
        - conditions: {groupResource: secrets}\n  mergePatches: [{patchData: '{\"a\"::1}'}]\n\
        - conditions: {groupResource: '*'}\n  mergePatches: [{patchData: '{\"metadata\": {\"labels\": {\"seen\": \"yes\"}}}'}]\n";
    apply_objects(
        &cp,
        &[json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "modifiers", "namespace": "velero"}, "data": {"rules.yaml": rules}})],
    );
    let restore_with_modifiers = |name: &str| {
        let out = io(&[
            "restore",
            "create",
            name,
            "--from-backup",
            "by-rs",
            "--include-namespaces",
            "crm",
            "--resource-modifier-configmap",
            "modifiers",
            "--wait",
        ]);
        assert!(
            out.contains("Restore completed with status: PartiallyFailed"),
            "{out}"
        );
        let described = io(&["restore", "describe", name, "--colorized=false"]);
        let errors: Vec<String> = described
            .lines()
            .skip_while(|l| !l.starts_with("Errors:"))
            .take_while(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let labels: Vec<String> = [
            "configmap/settings",
            "secret/creds",
            "widget.example.com/gear",
        ]
        .iter()
        .map(|o| {
            kubectl(
                &cp,
                &[
                    "-n",
                    "crm",
                    "get",
                    o,
                    "-o",
                    "jsonpath={.metadata.labels.seen}",
                ],
            )
        })
        .collect();
        (errors, labels)
    };
    delete_namespaces(&cp, &["crm", "crm-2", "shop-2"]).await;
    let by_velero = restore_with_modifiers("v-modifiers");
    drop(_velero_server);
    delete_namespaces(&cp, &["crm"]).await;
    let _ours = start_server(&kubeconfig, work.path()).await?;
    let by_us = restore_with_modifiers("r-modifiers");
    assert!(
        by_velero.0.join("\n").contains("no patch data found"),
        "{by_velero:#?}"
    );
    assert!(
        by_velero
            .0
            .join("\n")
            .contains("did not find expected node content"),
        "{by_velero:#?}"
    );
    assert_eq!(
        by_us, by_velero,
        "velero-rs and Velero apply the same modifiers alike"
    );
    Ok(())
}

/// The namespaced objects of `original` as a restore with the mappings shop:shop-2,crm:crm-2
/// makes them: under the new namespaces, with the RoleBinding's subject following.
fn mapped(original: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    original
        .iter()
        .filter_map(|(name, value)| {
            let (ns, rest) = name.split_once(' ')?;
            let target = match ns {
                "shop" => "shop-2",
                "crm" => "crm-2",
                _ => return None,
            };
            let mut value = value.clone();
            for subject in value["subjects"].as_array_mut().into_iter().flatten() {
                if subject["namespace"] == "shop" {
                    subject["namespace"] = json!("shop-2");
                }
            }
            Some((format!("{target} {rest}"), value))
        })
        .collect()
}

/// Deletes namespaces and waits until they are gone.
async fn delete_namespaces(cp: &ControlPlane, namespaces: &[&str]) {
    for ns in namespaces {
        kubectl(
            cp,
            &[
                "delete",
                "namespace",
                ns,
                "--ignore-not-found",
                "--wait=false",
            ],
        );
    }
    eventually("the namespaces to be gone", || {
        let out = cp
            .kubectl()
            .args(["get", "namespace", "-o", "name"])
            .output()
            .expect("kubectl runs");
        let left = text(&out.stdout);
        !namespaces
            .iter()
            .any(|ns| left.lines().any(|l| l == format!("namespace/{ns}")))
    })
    .await;
}
