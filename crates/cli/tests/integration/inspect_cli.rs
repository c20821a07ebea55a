//! `velero backup contents`, `get-item` and `diff` (velero-rs additions), as a user runs them,
//! against a real control plane, with `velero server` beside it serving a `local` location.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{Server, eventually, kubectl, run, start_server, text, velero};
use serde_json::{Value, json};
use velero_test_harness::ControlPlane;

/// A control plane with velero-rs installed (a `local` location in `storage/backups`) and its
/// server running.
async fn installed(storage: &Path) -> anyhow::Result<(ControlPlane, Server)> {
    let cp = ControlPlane::start().await?;
    let install = run(velero(cp.kubeconfig_path())
        .args(["install", "--provider", "local", "--bucket"])
        .arg(storage.join("backups"))
        .args(["--no-secret", "--use-volume-snapshots=false"]));
    anyhow::ensure!(install.status.success(), "{}", text(&install.stderr));
    let server = start_server(cp.kubeconfig_path(), storage).await?;
    Ok((cp, server))
}

fn failed_with(out: &Output, code: i32, message: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(message),
        "wanted {message:?} in: {}",
        text(&out.stderr)
    );
}

/// The entry `path` of the tarball the server stored for `backup`.
fn stored_entry(storage: &Path, backup: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(
        storage
            .join("backups/backups")
            .join(backup)
            .join(format!("{backup}.tar.gz")),
    )?;
    let mut entries = velero_archive::read_all(file)?;
    entries
        .remove(path)
        .ok_or_else(|| anyhow::anyhow!("{path} is not in {backup}'s tarball"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_get_item_and_diff_of_an_app_that_drifted() -> anyhow::Result<()> {
    let storage = tempfile::tempdir()?;
    let (cp, _server) = installed(storage.path()).await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let velero_in = |args: &[&str]| run(velero(&kubeconfig).args(args));

    kubectl(&cp, &["create", "namespace", "shop"]);
    for args in [
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ],
        vec!["label", "configmap", "settings", "tier=config"],
        vec![
            "create",
            "secret",
            "generic",
            "token",
            "--from-literal=t=s3cret",
        ],
        vec!["create", "deployment", "web", "--image=busybox:1.35"],
        vec!["create", "service", "clusterip", "web", "--tcp=80:8080"],
    ] {
        kubectl(&cp, &[&["-n", "shop"][..], &args[..]].concat());
    }
    // What the controllers add on their own must be there before the backup, or it would be
    // drift: the Deployment's revision, the namespace's CA ConfigMap, the ServiceAccount's token.
    eventually("the namespace to settle", || {
        let revision = cp
            .kubectl()
            .args(["-n", "shop", "get", "deployment", "web", "-o"])
            .arg("jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
            .output();
        let token = cp
            .kubectl()
            .args(["-n", "shop", "get", "serviceaccount", "default", "-o"])
            .arg("jsonpath={.secrets[0].name}")
            .output();
        let ca = cp
            .kubectl()
            .args(["-n", "shop", "get", "configmap", "kube-root-ca.crt"])
            .output();
        matches!((revision, token, ca), (Ok(r), Ok(t), Ok(c))
            if text(&r.stdout) == "1" && !t.stdout.is_empty() && c.status.success())
    })
    .await;
    let created = velero_in(&[
        "backup",
        "create",
        "shop-1",
        "--include-namespaces",
        "shop",
        "--wait",
    ]);
    assert!(
        text(&created.stdout).contains("Backup completed with status: Completed."),
        "{}{}",
        text(&created.stdout),
        text(&created.stderr)
    );

    // contents: every item once, in a table like `velero backup get`'s.
    let listed = velero_in(&["backup", "contents", "shop-1"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    let mut lines = table.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("RESOURCE")
            && h.contains("   NAMESPACE   ")
            && h.ends_with("API VERSION")),
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    for want in [
        ["configmaps", "shop", "settings", "v1"],
        ["deployments.apps", "shop", "web", "apps/v1"],
        ["secrets", "shop", "token", "v1"],
        ["services", "shop", "web", "v1"],
        ["namespaces", "<none>", "shop", "v1"],
    ] {
        assert_eq!(
            rows.iter().filter(|r| r[..] == want[..]).count(),
            1,
            "{want:?} once in:\n{table}"
        );
    }
    // Filters: resources as users type them, a label selector, namespaces (which leave
    // cluster-scoped items out), and JSON.
    let names = |args: &[&str]| -> Vec<String> {
        let out = velero_in(&[&["backup", "contents", "shop-1", "-o", "json"][..], args].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["backup"], "shop-1");
        doc["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                format!(
                    "{}/{}/{}",
                    i["namespace"].as_str().unwrap_or("-"),
                    i["groupResource"].as_str().unwrap_or_default(),
                    i["name"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    assert_eq!(
        names(&["--include-resources", "deploy,svc"]),
        ["shop/deployments.apps/web", "shop/services/web"]
    );
    assert_eq!(
        names(&["--include-resources", "deployments.apps"]),
        ["shop/deployments.apps/web"]
    );
    assert_eq!(names(&["-l", "tier=config"]), ["shop/configmaps/settings"]);
    let in_shop = names(&["--include-namespaces", "sh*"]);
    assert!(
        in_shop.iter().all(|n| n.starts_with("shop/"))
            && in_shop.contains(&"shop/secrets/token".to_string()),
        "{in_shop:?}"
    );
    assert!(names(&["--include-namespaces", "other"]).is_empty());
    let one = velero_in(&[
        "backup",
        "contents",
        "shop-1",
        "--include-resources",
        "deployments",
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_slice(&one.stdout)?;
    assert_eq!(
        doc["items"],
        json!([{"groupResource": "deployments.apps", "namespace": "shop", "name": "web",
                "apiVersion": "apps/v1", "kind": "Deployment"}])
    );

    // get-item: the object as stored; -o json is the tarball's bytes.
    let stored = stored_entry(
        storage.path(),
        "shop-1",
        "resources/configmaps/namespaces/shop/settings.json",
    )?;
    let item = velero_in(&[
        "backup",
        "get-item",
        "shop-1",
        "cm/settings",
        "--item-namespace",
        "shop",
        "-o",
        "json",
    ]);
    assert!(item.status.success(), "{}", text(&item.stderr));
    assert_eq!(item.stdout.strip_suffix(b"\n"), Some(&stored[..]));
    let yaml = velero_in(&["backup", "get-item", "shop-1", "deployments/web"]);
    assert!(yaml.status.success(), "{}", text(&yaml.stderr));
    let deployment: Value = serde_saphyr::from_str(&text(&yaml.stdout))?;
    assert_eq!(
        deployment,
        serde_json::from_slice::<Value>(&stored_entry(
            storage.path(),
            "shop-1",
            "resources/deployments.apps/namespaces/shop/web.json"
        )?)?
    );

    // Bad input, each with a clear error.
    failed_with(
        &velero_in(&["backup", "contents", "nope"]),
        1,
        "backup \"nope\" does not exist",
    );
    failed_with(
        &velero_in(&["backup", "get-item", "nope", "cm/settings"]),
        1,
        "backup \"nope\" does not exist",
    );
    failed_with(
        &velero_in(&[
            "backup",
            "get-item",
            "shop-1",
            "cm/absent",
            "--item-namespace",
            "shop",
        ]),
        1,
        "item configmaps/absent in namespace shop is not in backup \"shop-1\"; see `velero backup contents shop-1`",
    );
    failed_with(
        &velero_in(&["backup", "get-item", "shop-1", "settings"]),
        1,
        "give it as <resource>/<name>",
    );

    // Nothing changed yet: no drift, exit code 0.
    let same = velero_in(&["backup", "diff", "shop-1"]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}{}",
        text(&same.stdout),
        text(&same.stderr)
    );
    assert_eq!(
        text(&same.stdout),
        "No drift: the cluster matches backup shop-1.\n"
    );

    // Four changes, and what the controllers derive from them (a ReplicaSet scaled, Pods, the new
    // Service's Endpoints and EndpointSlice, Events).
    kubectl(
        &cp,
        &[
            "-n",
            "shop",
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"data":{"color":"red"}}"#,
        ],
    );
    kubectl(
        &cp,
        &["-n", "shop", "scale", "deployment", "web", "--replicas=3"],
    );
    kubectl(&cp, &["-n", "shop", "delete", "secret", "token"]);
    kubectl(
        &cp,
        &[
            "-n",
            "shop",
            "create",
            "service",
            "clusterip",
            "web-extra",
            "--tcp=81:8081",
        ],
    );
    eventually("the controllers to follow", || {
        let pods = cp
            .kubectl()
            .args(["-n", "shop", "get", "pods", "-o", "name"])
            .output();
        let endpoints = cp
            .kubectl()
            .args(["-n", "shop", "get", "endpoints", "web-extra"])
            .output();
        matches!((pods, endpoints), (Ok(p), Ok(e))
            if text(&p.stdout).lines().count() == 3 && e.status.success())
    })
    .await;

    let drifted = velero_in(&["backup", "diff", "shop-1"]);
    assert_eq!(
        drifted.status.code(),
        Some(1),
        "{}{}",
        text(&drifted.stdout),
        text(&drifted.stderr)
    );
    assert_eq!(
        text(&drifted.stdout),
        "Namespace shop:
  ~ configmaps/settings
      data.color: \"blue\" -> \"red\"
  ~ deployments.apps/web
      spec.replicas: 1 -> 3
  - secrets/token
  + services/web-extra

Backup shop-1 against the cluster now: 1 added, 1 removed, 2 changed.
"
    );
    let as_json = velero_in(&["backup", "diff", "shop-1", "-o", "json"]);
    assert_eq!(as_json.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&as_json.stdout)?;
    assert_eq!(report["drift"], true);
    assert_eq!(
        report["summary"],
        json!({"added": 1, "removed": 1, "changed": 2})
    );
    assert_eq!(
        report["items"][1],
        json!({"change": "changed", "groupResource": "deployments.apps", "namespace": "shop",
               "name": "web", "fields": [{"path": "spec.replicas", "backup": 1, "cluster": 3}]})
    );
    // The derived objects are there to be seen when asked for.
    let owned = text(&velero_in(&["backup", "diff", "shop-1", "--include-owned"]).stdout);
    for want in [
        "  ~ replicasets.apps/web-",
        "  + pods/web-",
        "  + endpoints/web-extra (owned)",
        "  + endpointslices.discovery.k8s.io/web-extra-",
    ] {
        assert!(owned.contains(want), "{want:?} in:\n{owned}");
    }
    assert!(!owned.contains("events"), "{owned}");

    // A backup of the changed namespace matches it; a missing backup is an error (2), not drift.
    let again = velero_in(&[
        "backup",
        "create",
        "shop-2",
        "--include-namespaces",
        "shop",
        "--wait",
    ]);
    assert!(
        text(&again.stdout).contains("Completed."),
        "{}",
        text(&again.stderr)
    );
    let unchanged = velero_in(&["backup", "diff", "shop-2"]);
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "{}{}",
        text(&unchanged.stdout),
        text(&unchanged.stderr)
    );
    failed_with(
        &velero_in(&["backup", "diff", "nope"]),
        2,
        "backup \"nope\" does not exist",
    );
    Ok(())
}

/// A backup this project did not write (the Velero-layout fixture the restore tests restore),
/// put into the location by hand and read through the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_and_get_item_of_a_velero_layout_backup() -> anyhow::Result<()> {
    use velero_test_harness::velero_layout::{handmade_backup, handmade_items, plant};
    let storage = tempfile::tempdir()?;
    let (cp, _server) = installed(storage.path()).await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let velero_in = |args: &[&str]| run(velero(&kubeconfig).args(args));

    let location_dir = storage.path().join("backups");
    let client = cp.client().await?;
    plant(
        &client,
        &location_dir,
        "handmade",
        "default",
        &handmade_backup()?,
    )
    .await?;

    // Each item once, though the tarball holds it twice (the version-less and versioned copies).
    let listed = velero_in(&["backup", "contents", "handmade"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(
        text(&listed.stdout),
        "RESOURCE           NAMESPACE   NAME       API VERSION
configmaps         handmade    greeting   v1
deployments.apps   handmade    api        apps/v1
namespaces         <none>      handmade   v1
"
    );
    let deployments = velero_in(&[
        "backup",
        "contents",
        "handmade",
        "--include-resources",
        "deploy",
    ]);
    assert_eq!(
        text(&deployments.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        ["deployments.apps   handmade    api    apps/v1"]
    );

    let items = handmade_items();
    let deploy = velero_in(&[
        "backup",
        "get-item",
        "handmade",
        "deployments.apps/api",
        "-o",
        "json",
    ]);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    assert_eq!(
        deploy.stdout.strip_suffix(b"\n"),
        Some(&serde_json::to_vec(&items[2].1)?[..]),
        "the item's bytes as stored"
    );
    let namespace = velero_in(&["backup", "get-item", "handmade", "ns/handmade"]);
    assert!(namespace.status.success(), "{}", text(&namespace.stderr));
    let as_yaml: Value = serde_saphyr::from_str(&text(&namespace.stdout))?;
    assert_eq!(as_yaml, items[0].1);
    failed_with(
        &velero_in(&[
            "backup",
            "get-item",
            "handmade",
            "cm/greeting",
            "--item-namespace",
            "other",
        ]),
        1,
        "item configmaps/greeting in namespace other is not in backup \"handmade\"",
    );
    Ok(())
}
