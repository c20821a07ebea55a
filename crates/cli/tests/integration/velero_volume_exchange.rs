//! Volume data exchanged with Velero 1.18.1 itself on a real node: Velero's node agent runs as the
//! DaemonSet Velero's own `velero install` writes, from an image made of Velero's binary the way
//! the project makes its own (`scripts/oci-image.py upstream-velero`), and takes turns with
//! velero-rs's node agent on one cluster, one bucket and one kopia repository. A file-system
//! backup Velero took restores through velero-rs into a new pod, and a velero-rs backup restores
//! through Velero, both byte for byte; kopia 0.22.3 then finds the repository both wrote
//! consistent. Both servers run beside the cluster; the S3 server listens on the node's bridge,
//! the one address of this machine the pods (the agents and Velero's data-mover pods) reach.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use velero_test_harness::{ControlPlane, S3Server, tools};

use common::{DirectoryTimes, exec_sh, kubectl, kubectl_apply, run, running_pods, text, velero};

/// velero-rs's image, from the binary these tests run.
const OURS: &str = "velero-rs:exchange";
/// Velero's image: Velero's binary, with velero-rs's restore helper (the project does not build
/// Velero's).
const VELERO: &str = "velero/velero:v1.18.1-exchange";

/// The app records what it finds at its start, then writes its data only if none is there: a
/// large file, two thousand small ones, a symlink, a hard link, modes, mtimes, a sparse file and
/// an empty directory.
const APP: &str = "ls -A /data > /tmp/seen; cp /tmp/seen /data/seen-at-start; cd /data; \
    if [ ! -e origin ]; then \
      echo hello > a.txt && chmod 640 a.txt && head -c 20000000 /dev/urandom > big.bin && chmod 755 big.bin \
      && ln big.bin hard.bin && mkdir sub && for i in $(seq 1 2000); do echo $i > sub/f$i; done && chmod 750 sub \
      && mkdir empty && ln -s a.txt link && dd if=/dev/urandom of=sparse bs=4096 count=2 seek=5000 2>/dev/null \
      && touch -d '2021-03-04 05:06:07' a.txt sub/f1 sparse sub empty && echo written > origin; \
    fi; sleep 3600";

fn app_pod() -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "keeper", "namespace": "files", "labels": { "app": "keeper" },
            "annotations": { "backup.velero.io/backup-volumes": "data" } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "app", "image": velero_test_harness::BUSYBOX_IMAGE,
                "imagePullPolicy": "Never", "command": ["sh", "-c", APP],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }],
            "volumes": [{ "name": "data", "emptyDir": {} }],
        },
    })
}

/// The one DaemonSet in a `velero install --dry-run -o json` list.
fn daemon_set(list: &str) -> anyhow::Result<Value> {
    let list: Value =
        serde_json::from_str(list).context("install --dry-run -o json prints JSON")?;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["kind"] == "DaemonSet")
        .cloned()
        .context("the install's list has no DaemonSet")
}

/// Runs the node agent `daemon_set` describes, once the other's pods are gone: two agents would
/// both take the same PodVolumeRestores.
async fn run_node_agent(
    cp: &ControlPlane,
    pods: &Api<Pod>,
    daemon_set: &Value,
    image: &str,
) -> anyhow::Result<()> {
    kubectl(
        cp,
        &[
            "-n",
            "velero",
            "delete",
            "daemonset",
            "node-agent",
            "--ignore-not-found",
            "--wait=true",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods
        .list(&ListParams::default().labels("name=node-agent"))
        .await?
        .items
        .is_empty()
    {
        ensure!(
            Instant::now() < deadline,
            "the old node agent's pod is still there"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    kubectl_apply(cp, daemon_set.to_string().as_bytes());
    let agent = running_pods(pods, "name=node-agent").await?.remove(0);
    let running = agent
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.image.clone())
        .collect::<Vec<_>>();
    ensure!(running == [image], "the node agent runs {running:?}");
    // The server's restore helper comes from the image of Deployment velero (Velero's
    // GetVeleroServerImage), which stays scaled to zero: both servers run beside the cluster.
    kubectl(
        cp,
        &[
            "-n",
            "velero",
            "set",
            "image",
            "deployment/velero",
            &format!("velero={image}"),
        ],
    );
    Ok(())
}

/// The app's pod in namespace `files`, Running, its data in place; the volume's fingerprint.
async fn app_data(client: &kube::Client) -> anyhow::Result<String> {
    let files: Api<Pod> = Api::namespaced(client.clone(), "files");
    running_pods(&files, "app=keeper").await?;
    common::wait_for_file(client, "files", "keeper", "/data/origin").await?;
    let out = exec_sh(
        client,
        "files",
        "keeper",
        &common::fingerprint_script("/", "data"),
    )
    .await?;
    ensure!(out.exit_code == 0, "fingerprint: {}", out.stderr);
    Ok(out.stdout)
}

/// The restored pod's init containers, and that the app started on restored data.
async fn restored_with_helper(client: &kube::Client, image: &str) -> anyhow::Result<()> {
    let files: Api<Pod> = Api::namespaced(client.clone(), "files");
    let pod = running_pods(&files, "app=keeper").await?.remove(0);
    let init = common::init_containers(&pod);
    ensure!(
        init == [format!("restore-wait {image}")],
        "init containers {init:?}"
    );
    let seen = exec_sh(client, "files", "keeper", "cat /data/seen-at-start")
        .await?
        .stdout;
    ensure!(
        seen.contains("big.bin") && seen.contains("origin"),
        "the app started before its data was back: it saw {seen:?}"
    );
    Ok(())
}

/// The PodVolumeBackup of `backup`: uploader kopia, Completed, its snapshot's id.
fn kopia_snapshot_of(cp: &ControlPlane, backup: &str) -> anyhow::Result<String> {
    let list: Value = serde_json::from_str(&kubectl(
        cp,
        &[
            "-n",
            "velero",
            "get",
            "podvolumebackups",
            "-l",
            &format!("velero.io/backup-name={backup}"),
            "-o",
            "json",
        ],
    ))?;
    let items = list["items"].as_array().context("a list")?;
    ensure!(items.len() == 1, "{backup}: {items:#?}");
    let pvb = &items[0];
    ensure!(
        pvb["spec"]["uploaderType"] == "kopia" && pvb["status"]["phase"] == "Completed",
        "{backup}: {pvb:#}"
    );
    Ok(pvb["status"]["snapshotID"]
        .as_str()
        .context("snapshotID")?
        .to_string())
}

/// The location Available to Velero's server; else what its log says last.
async fn velero_location_available(
    cp: &ControlPlane,
    work: &std::path::Path,
) -> anyhow::Result<()> {
    velero_test_harness::install::location_available(cp)
        .await
        .with_context(|| {
            let log = std::fs::read_to_string(work.join("velero-server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            format!(
                "Velero's server log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
}

fn delete_app_namespace(cp: &ControlPlane) {
    kubectl(cp, &["delete", "namespace", "files", "--wait=true"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_data_crosses_both_ways_with_velero_on_a_real_node() -> anyhow::Result<()> {
    let Some(velero_tool) = tools::require_or_skip(tools::VELERO, "velero_volume_exchange") else {
        return Ok(());
    };
    if tools::require_or_skip(tools::VELERO_AWS_PLUGIN, "velero_volume_exchange").is_none() {
        return Ok(());
    }
    let _turn = common::VELERO_SERVER_TURN.lock().await;
    let cp = ControlPlane::start_with_node().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let client = cp.client().await?;
    let s3 = S3Server::start_on(cp.node_host_address().context("the cluster has a node")?).await?;
    s3.create_bucket("velero")?;
    let work = tempfile::tempdir()?;
    let home = work.path().join("home");
    std::fs::create_dir_all(&home)?;
    cp.import_image(&common::build_image(work.path(), OURS)?)?;
    cp.import_image(&common::build_upstream_image(
        work.path(),
        &velero_tool,
        VELERO,
    )?)?;

    // Our install (CRDs, namespace, location, credentials); the server Deployment stays at zero.
    common::install_on_s3(&cp, &s3, work.path(), None)?;
    kubectl(
        &cp,
        &["-n", "velero", "scale", "deployment/velero", "--replicas=0"],
    );
    let kubelet_root = cp
        .kubelet_root_dir()
        .context("the cluster has a node")?
        .to_str()
        .context("UTF-8 path")?
        .to_string();
    let credentials = work.path().join("credentials-velero");
    let credentials = credentials.to_str().context("UTF-8 path")?;
    let config = format!(
        "region=us-east-1,s3ForcePathStyle=true,s3Url={}",
        s3.endpoint()
    );
    let common_flags = [
        "--provider",
        "aws",
        "--bucket",
        "velero",
        "--secret-file",
        credentials,
        "--backup-location-config",
        &config,
        "--use-volume-snapshots=false",
        "--use-node-agent",
        "--kubelet-root-dir",
        &kubelet_root,
        "--dry-run",
        "-o",
        "json",
    ];
    let velero_cli = |args: &[&str]| {
        let out = run(tools::velero_cli(&velero_tool, &kubeconfig, &home).args(args));
        assert!(
            out.status.success(),
            "Velero's velero {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let velero_agent = daemon_set(&velero_cli(
        &[
            &[
                "install",
                "--image",
                VELERO,
                "--plugins",
                "velero/velero-plugin-for-aws:v1.14.0",
            ][..],
            &common_flags[..],
        ]
        .concat(),
    ))?;
    let ours_out = run(velero(&kubeconfig)
        .args(["install", "--image", OURS])
        .args(common_flags));
    ensure!(ours_out.status.success(), "{}", text(&ours_out.stderr));
    let our_agent = daemon_set(&text(&ours_out.stdout))?;
    let velero_pods: Api<Pod> = Api::namespaced(client.clone(), "velero");

    kubectl(&cp, &["create", "namespace", "files"]);
    velero_test_harness::create_object(&client, app_pod()).await?;
    let original = app_data(&client).await?;
    ensure!(
        original.contains("data/sparse 644 20488192")
            && original.contains("data/link 777")
            && original.contains("data/empty 755")
            && original.contains("data/sub/f2000 644 5"),
        "the app wrote what the test expects:\n{original}"
    );

    // 1. Velero backs up the volume; velero-rs restores it into a new pod.
    run_node_agent(&cp, &velero_pods, &velero_agent, VELERO).await?;
    let velero_server = tools::VeleroServer::start(&velero_tool, &kubeconfig, work.path())?;
    velero_location_available(&cp, work.path()).await?;
    let log = || std::fs::read_to_string(work.path().join("velero-server.log")).unwrap_or_default();
    let out = velero_cli(&[
        "backup",
        "create",
        "by-velero",
        "--include-namespaces",
        "files",
        "--wait",
    ]);
    ensure!(
        out.contains("Backup completed with status: Completed"),
        "{out}\nVelero's server:\n{}",
        log()
    );
    let velero_snapshot = kopia_snapshot_of(&cp, "by-velero")?;
    drop(velero_server);
    delete_app_namespace(&cp);

    run_node_agent(&cp, &velero_pods, &our_agent, OURS).await?;
    let ours = common::start_server(&kubeconfig, work.path()).await?;
    let out = run(velero(&kubeconfig).args([
        "restore",
        "create",
        "from-velero",
        "--from-backup",
        "by-velero",
        "--wait",
    ]));
    ensure!(
        text(&out.stdout).contains("Restore completed with status: Completed"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    restored_with_helper(&client, OURS).await?;
    common::same_fingerprint(
        &original,
        &app_data(&client).await?,
        DirectoryTimes::Kept,
        "Velero's backup restored by velero-rs",
    )?;

    // 2. velero-rs backs up the restored volume into the same repository; Velero restores it.
    let out = run(velero(&kubeconfig).args([
        "backup",
        "create",
        "by-ours",
        "--include-namespaces",
        "files",
        "--wait",
    ]));
    ensure!(
        text(&out.stdout).contains("Backup completed with status: Completed"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let our_snapshot = kopia_snapshot_of(&cp, "by-ours")?;
    drop(ours);
    delete_app_namespace(&cp);

    run_node_agent(&cp, &velero_pods, &velero_agent, VELERO).await?;
    let velero_server = tools::VeleroServer::start(&velero_tool, &kubeconfig, work.path())?;
    velero_location_available(&cp, work.path()).await?;
    let out = velero_cli(&[
        "restore",
        "create",
        "from-ours",
        "--from-backup",
        "by-ours",
        "--wait",
    ]);
    ensure!(
        out.contains("Restore completed with status: Completed"),
        "{out}\n{}\nVelero's server:\n{}",
        velero_cli(&["restore", "describe", "from-ours", "--details"]),
        log()
    );
    restored_with_helper(&client, VELERO).await?;
    // Velero restores with kopia's restore (pkg/uploader/kopia/snapshot.go, in parallel at the
    // number of CPUs), which does not bring back a directory's own time: it sets the newest time
    // found below it (kopia's snapshotfs reads a subdirectory's time from its summary), and files
    // still being created in it afterwards leave it at the time of the restore. The snapshot
    // holds the directory's own time (checked below), and velero-rs restores it.
    common::same_fingerprint(
        &original,
        &app_data(&client).await?,
        DirectoryTimes::NotKept,
        "velero-rs's backup restored by Velero",
    )?;
    drop(velero_server);

    // kopia 0.22.3 lists both snapshots and finds the repository both wrote consistent.
    if let Some(kopia) = tools::kopia_or_skip("the repository Velero and velero-rs both wrote") {
        let password = velero_podvolume::read_password(&client, "velero").await?;
        let view = tempfile::tempdir()?;
        let repo = view.path().join("repo");
        tools::kopia_filesystem_copy(&s3.root().join("velero/kopia/files"), &repo)?;
        let cli = tools::KopiaCli::new(&kopia, view.path(), &password);
        cli.connect_filesystem(&repo)?;
        let listed = cli.run(&["snapshot", "list", "--all", "--json"])?;
        for id in [&velero_snapshot, &our_snapshot] {
            ensure!(listed.contains(id.as_str()), "snapshot {id}: {listed}");
        }
        cli.run(&["content", "verify", "--full"])?;
        cli.run(&["snapshot", "verify", "--verify-files-percent=100"])?;
        // The directory whose time Velero's restore does not bring back has it in our snapshot.
        let listed: Value = serde_json::from_str(&listed)?;
        let root = listed
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"] == our_snapshot.as_str())
            .and_then(|s| s["rootEntry"]["obj"].as_str())
            .context("our snapshot's root directory")?;
        let root: Value = serde_json::from_str(&cli.run(&["show", root])?)?;
        let sub = root["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "sub")
            .context("sub/ in our snapshot")?;
        ensure!(
            sub["mtime"]
                .as_str()
                .is_some_and(|t| t.starts_with("2021-03-04T05:06:07")),
            "our snapshot's sub/: {sub}"
        );
    }
    Ok(())
}
