//! The control plane is real: controllers run, namespaces are really deleted, and several control
//! planes can run side by side.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use velero_test_harness::{Component, ControlPlane};

/// Polls `check` every 200 ms until it returns `Some`, panicking after `timeout`.
async fn eventually<T, F: AsyncFnMut() -> Option<T>>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_namespace(client: &kube::Client, name: &str) -> Namespace {
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name },
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_create_replicasets_and_delete_namespaces() {
    let started = Instant::now();
    let control_plane = ControlPlane::start().await.unwrap();
    eprintln!("control plane started in {:?}", started.elapsed());
    assert!(control_plane.server_url().starts_with("https://127.0.0.1:"));
    let client = control_plane.client().await.unwrap();

    create_namespace(&client, "harness").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "harness" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "nginx", "image": "nginx" }] },
            },
        },
    }))
    .unwrap();
    let deployment = Api::<Deployment>::namespaced(client.clone(), "harness")
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let deployment_uid = deployment.metadata.uid.unwrap();

    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), "harness");
    let replica_set = eventually(
        "a ReplicaSet for the Deployment",
        Duration::from_secs(30),
        async || {
            let list = replica_sets
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap();
            list.items.into_iter().find(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|owner| owner.kind == "Deployment" && owner.uid == deployment_uid)
            })
        },
    )
    .await;
    assert_eq!(replica_set.spec.unwrap().replicas, Some(1));

    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete("harness", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "namespace harness to be deleted",
        Duration::from_secs(60),
        async || {
            namespaces
                .get_opt("harness")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    // The namespace controller emptied the namespace before removing it.
    assert!(
        replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let log = control_plane.log_tail(Component::ApiServer, 5);
    assert!(!log.is_empty(), "the API server log is empty");
    let state_dir = control_plane.kubeconfig_path().parent().unwrap().to_owned();
    let port: u16 = control_plane
        .server_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let started = Instant::now();
    drop(control_plane);
    eprintln!("control plane stopped in {:?}", started.elapsed());
    // Dropping stopped the API server and removed all state.
    assert!(!state_dir.exists(), "{} still exists", state_dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "API server still listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_run_side_by_side() {
    let started = Instant::now();
    let (a, b) = tokio::try_join!(ControlPlane::start(), ControlPlane::start()).unwrap();
    eprintln!("two control planes started in {:?}", started.elapsed());
    assert_ne!(a.server_url(), b.server_url());
    assert_ne!(a.kubeconfig_path(), b.kubeconfig_path());

    let (client_a, client_b) = (a.client().await.unwrap(), b.client().await.unwrap());
    create_namespace(&client_a, "only-in-a").await;
    create_namespace(&client_b, "only-in-b").await;
    let (namespaces_a, namespaces_b) = (
        Api::<Namespace>::all(client_a),
        Api::<Namespace>::all(client_b),
    );
    assert!(namespaces_a.get_opt("only-in-a").await.unwrap().is_some());
    assert!(namespaces_a.get_opt("only-in-b").await.unwrap().is_none());
    assert!(namespaces_b.get_opt("only-in-b").await.unwrap().is_some());
    assert!(namespaces_b.get_opt("only-in-a").await.unwrap().is_none());

    // kubectl talks to the right cluster with the harness's kubeconfig.
    let output = b
        .kubectl()
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let names: BTreeSet<&str> = stdout.lines().collect();
    assert!(names.contains("namespace/only-in-b"), "{names:?}");
    assert!(!names.contains("namespace/only-in-a"), "{names:?}");
}

/// `velero-local-cluster --help` is its usage on stdout, nothing on stderr, exit 0; a bad
/// argument is one line on stderr naming it, never a backtrace.
#[test]
fn the_local_cluster_command_answers_help_and_bad_arguments_plainly() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_velero-local-cluster"))
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("velero-local-cluster runs")
    };
    let help = run(&["--help"]);
    let stdout = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{help:?}");
    assert!(stdout.contains("--kubeconfig-out PATH"), "{stdout}");
    assert!(
        help.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );

    let bad = run(&["--nodes"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("velero-local-cluster: unknown argument \"--nodes\""),
        "{stderr}"
    );
    assert!(
        !stderr.contains("backtrace") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
