//! velero-rs inside a cluster, as its users run it: the image built by `scripts/oci-image.py` from
//! this build's binary, `velero install` with the server Deployment and the node-agent DaemonSet on
//! a real node (containerd + kubelet), then backups, restores, logs, downloads and metrics through
//! the in-cluster server, exec in a pod, and the node agent's view of the host's pod directory.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{exec_sh, run, running_pods, text, velero};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use velero_test_harness::ControlPlane;

/// The image reference the test imports and installs (a fixed tag: nothing is ever pulled).
const IMAGE: &str = "velero-rs:test";
/// The non-root user of the image, who must be able to write the `local` location's directory.
const IMAGE_USER: u32 = 65532;

fn kubectl_ok(cluster: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.kubectl().args(args).output()?;
    ensure!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

fn velero_ok(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = run(velero(kubeconfig).args(args));
    ensure!(
        out.status.success(),
        "velero {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

/// File-system backup and restore of an emptyDir and of a claim on a local PersistentVolume
/// through the installed server, node-agent DaemonSet and restore helper: the restored pod's app
/// container starts on its restored data, every file as it was (content, mode, mtime, symlink,
/// sparse file); the claim is provisioned anew (bound to the other free volume). Then the node
/// agent is killed in the middle of a volume backup.
async fn volume_data_round_trip(
    cluster: &ControlPlane,
    kubeconfig: &Path,
    client: &kube::Client,
    disks: &Path,
) -> anyhow::Result<()> {
    for disk in ["disk-a", "disk-b"] {
        velero_test_harness::local_volume(client, disk, &disks.join(disk), "2Gi").await?;
    }
    kubectl_ok(cluster, &["create", "namespace", "files"])?;
    velero_test_harness::create_object(client, serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "claim", "namespace": "files" },
        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": velero_test_harness::LOCAL_STORAGE_CLASS,
            "resources": { "requests": { "storage": "1Gi" } } },
    })).await?;
    // The app records what it finds at its start, then writes its data only if it is not there.
    let script = "ls -A /data /claim > /tmp/seen; cp /tmp/seen /data/seen-at-start; \
        if [ ! -e /claim/origin ]; then for d in /data /claim; do \
          echo hello > $d/a.txt && chmod 640 $d/a.txt && head -c 20000000 /dev/urandom > $d/big.bin && chmod 755 $d/big.bin \
          && mkdir $d/sub && for i in $(seq 1 2000); do echo $i > $d/sub/f$i; done && chmod 750 $d/sub \
          && ln -s a.txt $d/link && ln $d/big.bin $d/hard.bin && mkdir $d/empty \
          && dd if=/dev/urandom of=$d/sparse bs=4096 count=2 seek=5000 2>/dev/null \
          && touch -d '2021-03-04 05:06:07' $d/a.txt $d/sub/f1 $d/sparse $d/sub $d/empty; \
        done && echo written > /claim/origin; fi; sleep 3600";
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "keeper", "namespace": "files", "labels": { "app": "keeper" },
            "annotations": { "backup.velero.io/backup-volumes": "data,claim" } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "app", "image": velero_test_harness::BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script], "volumeMounts": [
                    { "name": "data", "mountPath": "/data" }, { "name": "claim", "mountPath": "/claim" }] }],
            "volumes": [{ "name": "data", "emptyDir": {} },
                { "name": "claim", "persistentVolumeClaim": { "claimName": "claim" } }],
        },
    });
    velero_test_harness::create_object(client, pod).await?;
    let files: Api<Pod> = Api::namespaced(client.clone(), "files");
    running_pods(&files, "app=keeper").await?;
    common::wait_for_file(client, "files", "keeper", "/claim/origin").await?;
    let fingerprint = common::fingerprint_script("/", "data claim");
    let before = exec_sh(client, "files", "keeper", &fingerprint)
        .await?
        .stdout;
    ensure!(
        before.contains("claim/sparse 644 20488192") && before.contains("data/link 777"),
        "the app wrote what the test expects:\n{before}"
    );

    // Two equal volumes: the PV controller may bind the claim to either of them.
    let first = claim_volume(cluster)?;
    let other = match first.as_str() {
        "disk-a" => "disk-b",
        "disk-b" => "disk-a",
        unexpected => anyhow::bail!("the claim bound to {unexpected:?}, not a test disk"),
    };
    velero_ok(
        kubeconfig,
        &[
            "backup",
            "create",
            "files",
            "--include-namespaces",
            "files",
            "--wait",
        ],
    )?;
    let described = velero_ok(kubeconfig, &["backup", "describe", "files", "--details"])?;
    assert!(described.contains("Completed"), "{described}");
    assert!(
        described.contains("Pod Volume Backups - kopia:")
            && described.contains("files/keeper: claim (size: ")
            && described.contains(", data (size: "),
        "{described}"
    );
    kubectl_ok(cluster, &["delete", "namespace", "files", "--wait=true"])?;

    velero_ok(
        kubeconfig,
        &[
            "restore",
            "create",
            "files-back",
            "--from-backup",
            "files",
            "--wait",
        ],
    )?;
    let restored = velero_ok(kubeconfig, &["restore", "describe", "files-back"])?;
    assert!(restored.contains("Completed"), "{restored}");
    let pod = running_pods(&files, "app=keeper").await?.remove(0);
    let init = common::init_containers(&pod);
    assert_eq!(
        init,
        [format!("restore-wait {IMAGE}")],
        "the restore helper from our image"
    );
    assert_eq!(
        claim_volume(cluster)?,
        other,
        "the claim is provisioned anew, not bound to its old volume {first}"
    );
    let after = exec_sh(client, "files", "keeper", &fingerprint)
        .await?
        .stdout;
    common::same_fingerprint(
        &before,
        &after,
        common::DirectoryTimes::Kept,
        "the restored volumes hold the backed-up files, modes and mtimes",
    )?;
    let seen = exec_sh(
        client,
        "files",
        "keeper",
        "cat /data/seen-at-start; ls -a /data /claim",
    )
    .await?
    .stdout;
    assert!(
        seen.matches("big.bin").count() >= 4,
        "the app started on restored data in both volumes: {seen}"
    );
    assert!(
        !seen.contains(".velero"),
        "the helper removed its markers: {seen}"
    );

    kopia_restores_the_same(client, &disks.join("backups"), &before).await?;
    agent_killed_during_a_volume_backup(cluster, kubeconfig, client, &disks.join(other)).await
}

/// kopia 0.22.3 itself on the repository the installed node agent wrote for backup `files`: each
/// volume's snapshot is listed with Velero's source and tags, verified file by file and content
/// by content, and restored with the same files as the pod had (`before`).
async fn kopia_restores_the_same(
    client: &kube::Client,
    bucket: &Path,
    before: &str,
) -> anyhow::Result<()> {
    let Some(kopia) =
        velero_test_harness::tools::kopia_or_skip("kopia on the installed agent's repository")
    else {
        return Ok(());
    };
    let password = velero_podvolume::read_password(client, "velero").await?;
    let view = tempfile::tempdir()?;
    let repo = view.path().join("repo");
    velero_test_harness::tools::kopia_filesystem_copy(&bucket.join("kopia/files"), &repo)?;
    let cli = velero_test_harness::tools::KopiaCli::new(&kopia, view.path(), &password);
    cli.connect_filesystem(&repo)?;
    let listed: serde_json::Value =
        serde_json::from_str(&cli.run(&["snapshot", "list", "--all", "--json"])?)?;
    let pvbs: Api<velero_api::v1::PodVolumeBackup> = Api::namespaced(client.clone(), "velero");
    let restored = view.path().join("restored");
    for pvb in pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=files"))
        .await?
        .items
    {
        let volume = pvb.spec.volume.clone();
        let id = pvb
            .status
            .and_then(|s| s.snapshot_id)
            .context("a Completed volume's snapshot")?;
        let snapshot = listed
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"] == id.as_str())
            .with_context(|| format!("kopia lists {id}: {listed}"))?;
        ensure!(
            snapshot["source"]["userName"] == "default"
                && snapshot["source"]["host"] == "default"
                && snapshot["source"]["path"]
                    == format!("snapshot-pod-volume/kopia/files/keeper/{volume}").as_str()
                && snapshot["tags"]["snapshot-requester"] == "snapshot-pod-volume"
                && snapshot["tags"]["snapshot-uploader"] == "kopia",
            "Velero's source and tags: {snapshot}"
        );
        cli.run(&["snapshot", "verify", "--verify-files-percent=100", &id])?;
        let target = restored.join(&volume);
        cli.run(&["snapshot", "restore", &id, &target.to_string_lossy()])?;
    }
    cli.run(&["content", "verify", "--full"])?;
    let script = common::fingerprint_script(&restored.to_string_lossy(), "data claim");
    let out = Command::new("sh")
        .env("LC_ALL", "C")
        .args(["-c", &script])
        .output()?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    // kopia's restore gives a directory the newest time below it (its snapshotfs reads a
    // subdirectory's time from its summary), not its own.
    common::same_fingerprint(
        before,
        &text(&out.stdout),
        common::DirectoryTimes::NotKept,
        "kopia's restore of the installed agent's snapshots",
    )
}

/// The PersistentVolume the test namespace's claim is bound to.
fn claim_volume(cluster: &ControlPlane) -> anyhow::Result<String> {
    kubectl_ok(
        cluster,
        &[
            "-n",
            "files",
            "get",
            "pvc",
            "claim",
            "-o",
            "jsonpath={.spec.volumeName}",
        ],
    )
}

/// The node agent is killed while it reads a volume: the volume's backup is Failed (by the agent
/// that starts next), the backup PartiallyFailed, the repository consistent for kopia 0.22.3,
/// and the next backup complete.
async fn agent_killed_during_a_volume_backup(
    cluster: &ControlPlane,
    kubeconfig: &Path,
    client: &kube::Client,
    claim_dir: &Path,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    // A gigabyte the agent needs seconds to read, written from the host into the claim's volume.
    {
        let mut big = std::io::BufWriter::new(std::fs::File::create(claim_dir.join("huge.bin"))?);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            for chunk in block.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            big.write_all(&block)?;
        }
        big.flush()?;
    }
    velero_ok(
        kubeconfig,
        &["backup", "create", "cut", "--include-namespaces", "files"],
    )?;
    let pvbs: Api<velero_api::v1::PodVolumeBackup> = Api::namespaced(client.clone(), "velero");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pvbs
            .list(&ListParams::default().labels("velero.io/backup-name=cut"))
            .await?;
        let reading = list.items.iter().any(|p| {
            p.spec.volume == "claim"
                && p.status
                    .as_ref()
                    .and_then(|s| s.progress.as_ref())
                    .and_then(|p| p.bytes_done)
                    .is_some_and(|done| done > 0)
        });
        if reading {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the claim's backup never started reading: {:?}",
            list.items.iter().map(|p| &p.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let velero_pods: Api<Pod> = Api::namespaced(client.clone(), "velero");
    let agent = running_pods(&velero_pods, "name=node-agent")
        .await?
        .remove(0);
    let agent_uid = agent.metadata.uid.context("the node agent's pod UID")?;
    let pid = find_process(&agent_uid, &["/velero", "node-agent", "server"])
        .context("the node agent's process")?;
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    ensure!(killed.success(), "kill -9 {pid}");

    let deadline = Instant::now() + Duration::from_secs(180);
    let phase = loop {
        let phase = kubectl_ok(
            cluster,
            &[
                "-n",
                "velero",
                "get",
                "backup",
                "cut",
                "-o",
                "jsonpath={.status.phase}",
            ],
        )?;
        if ["Completed", "PartiallyFailed", "Failed"].contains(&phase.as_str()) {
            break phase;
        }
        ensure!(Instant::now() < deadline, "backup cut still {phase}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(phase, "PartiallyFailed");
    let claim = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=cut"))
        .await?
        .items
        .into_iter()
        .find(|p| p.spec.volume == "claim")
        .context("the claim's PodVolumeBackup")?;
    let status = claim.status.unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(velero_api::v1::DataPathPhase::Failed),
        "{status:?}"
    );

    // kopia 0.22.3 finds the repository consistent after the kill.
    if let Some(kopia) = velero_test_harness::tools::kopia_or_skip("the repository after the kill")
    {
        let password = velero_podvolume::read_password(client, "velero").await?;
        let bucket = claim_dir
            .ancestors()
            .nth(1)
            .context("the disks' directory")?
            .join("backups");
        let view = tempfile::tempdir()?;
        let repo = view.path().join("repo");
        velero_test_harness::tools::kopia_filesystem_copy(&bucket.join("kopia/files"), &repo)?;
        let cli = velero_test_harness::tools::KopiaCli::new(&kopia, view.path(), &password);
        cli.connect_filesystem(&repo)?;
        cli.run(&["content", "verify", "--full"])
            .context("kopia content verify after the kill")?;
    }

    velero_ok(
        kubeconfig,
        &[
            "backup",
            "create",
            "after-cut",
            "--include-namespaces",
            "files",
            "--wait",
        ],
    )?;
    let described = velero_ok(kubeconfig, &["backup", "describe", "after-cut"])?;
    assert!(described.contains("Phase:  Completed"), "{described}");
    std::fs::remove_file(claim_dir.join("huge.bin"))?;
    Ok(())
}

/// The process of pod `pod_uid` whose command line holds every one of `words`, in order. Other
/// clusters on this machine (tests run two at a time) run node agents too: the kubelet's cgroup
/// path, which names the pod, tells this one's apart.
fn find_process(pod_uid: &str, words: &[&str]) -> Option<u32> {
    let needle: Vec<u8> = words.join("\0").into_bytes();
    let pod = format!("pod{pod_uid}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            (cgroups.contains(&pod)
                && cmdline
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice()))
            .then_some(pid)
        })
}

#[tokio::test]
async fn velero_runs_in_the_cluster_from_its_image() -> anyhow::Result<()> {
    let cluster = ControlPlane::start_with_node().await?;
    eprintln!(
        "node-backed cluster started in {:.1} s",
        cluster.started_in().as_secs_f64()
    );
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let client = cluster.client().await?;
    let work = tempfile::tempdir()?;
    cluster.import_image(&common::build_image(work.path(), IMAGE)?)?;

    // A `local` location the pods mount from the node: writable by the image's user.
    let backups = work.path().join("backups");
    std::fs::create_dir(&backups)?;
    std::os::unix::fs::chown(&backups, Some(IMAGE_USER), Some(IMAGE_USER))?;
    let backups_arg = backups.to_str().context("temporary path is UTF-8")?;
    let kubelet_root = cluster
        .kubelet_root_dir()
        .context("the cluster has a node")?
        .to_str()
        .context("kubelet root is UTF-8")?
        .to_string();
    let install = [
        "install",
        "--image",
        IMAGE,
        "--provider",
        "local",
        "--bucket",
        backups_arg,
        "--no-secret",
        "--use-volume-snapshots=false",
        "--use-node-agent",
        "--kubelet-root-dir",
        &kubelet_root,
        "--wait",
    ];
    let installed = velero_ok(&kubeconfig, &install)?;
    assert!(
        installed.contains("Waiting for node-agent daemonset to be ready."),
        "{installed}"
    );

    // The server pod runs our image as the non-root user and reaches the API server in-cluster.
    let velero_pods: Api<Pod> = Api::namespaced(client.clone(), "velero");
    let server = running_pods(&velero_pods, "deploy=velero").await?.remove(0);
    let server_name = server.metadata.name.clone().context("pod name")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let locations = velero_ok(&kubeconfig, &["backup-location", "get"])?;
        if locations.contains("Available") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the location never became Available:\n{locations}\nserver log:\n{}",
            kubectl_ok(&cluster, &["-n", "velero", "logs", &server_name]).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let version = velero_ok(&kubeconfig, &["version", "--timeout", "30s"])?;
    let client_version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        version.matches(client_version).count(),
        2,
        "client and server both {client_version}:\n{version}"
    );

    // An application whose pods really run.
    kubectl_ok(&cluster, &["create", "namespace", "shop"])?;
    kubectl_ok(
        &cluster,
        &[
            "-n",
            "shop",
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ],
    )?;
    kubectl_ok(
        &cluster,
        &[
            "-n",
            "shop",
            "create",
            "deployment",
            "web",
            "--image",
            velero_test_harness::BUSYBOX_IMAGE,
            "--",
            "sleep",
            "3600",
        ],
    )?;
    let shop: Api<Pod> = Api::namespaced(client.clone(), "shop");
    running_pods(&shop, "app=web").await?;

    velero_ok(
        &kubeconfig,
        &[
            "backup",
            "create",
            "shop",
            "--include-namespaces",
            "shop",
            "--wait",
        ],
    )?;
    let described = velero_ok(&kubeconfig, &["backup", "describe", "shop", "--details"])?;
    assert!(described.contains("Completed"), "{described}");
    assert!(described.contains("shop/settings"), "{described}");
    let log = velero_ok(&kubeconfig, &["backup", "logs", "shop"])?;
    assert!(
        log.contains("shop"),
        "the backup's log comes from the pod:\n{log}"
    );
    assert!(
        backups.join("backups/shop/velero-backup.json").is_file(),
        "the in-cluster server wrote into the mounted location"
    );

    // Metrics through the API server's proxy to the real pod.
    let metrics = client
        .request_text(
            http::Request::get(format!(
                "/api/v1/namespaces/velero/pods/http:{server_name}:8085/proxy/metrics"
            ))
            .body(Vec::new())?,
        )
        .await?;
    assert!(metrics.contains("velero_backup_success_total"), "{metrics}");

    kubectl_ok(&cluster, &["delete", "namespace", "shop", "--wait=true"])?;
    velero_ok(
        &kubeconfig,
        &[
            "restore",
            "create",
            "back",
            "--from-backup",
            "shop",
            "--wait",
        ],
    )?;
    let restored = velero_ok(&kubeconfig, &["restore", "describe", "back", "--details"])?;
    assert!(restored.contains("Completed"), "{restored}");
    let color = kubectl_ok(
        &cluster,
        &[
            "-n",
            "shop",
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.color}",
        ],
    )?;
    assert_eq!(color, "blue");
    let web = running_pods(&shop, "app=web").await?.remove(0);
    let web_name = web.metadata.name.clone().context("pod name")?;
    let web_uid = web.metadata.uid.clone().context("pod uid")?;

    // Exec through the API server: output and exit code (the ground for hooks).
    let command: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let output = velero_cluster::exec::exec_in_pod(
        &client,
        "shop",
        &web_name,
        None,
        &command,
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(
        (
            output.stdout.as_str(),
            output.stderr.as_str(),
            output.exit_code
        ),
        ("out\n", "err\n", 3)
    );
    let missing = velero_cluster::exec::exec_in_pod(
        &client,
        "shop",
        &web_name,
        Some("no-such-container"),
        &command,
        Duration::from_secs(30),
    )
    .await
    .expect_err("no such container");
    assert!(
        missing.to_string().contains("no-such-container"),
        "{missing}"
    );

    // The node agent runs and sees the kubelet's pod directories, a pod started after it included.
    let agent = running_pods(&velero_pods, "name=node-agent")
        .await?
        .remove(0);
    let agent_uid = agent.metadata.uid.clone().context("agent uid")?;
    let agent_log = kubectl_ok(
        &cluster,
        &[
            "-n",
            "velero",
            "logs",
            agent.metadata.name.as_deref().unwrap_or_default(),
        ],
    )?;
    assert!(agent_log.contains("node agent ready"), "{agent_log}");
    let pid = find_process(&agent_uid, &["/velero", "node-agent", "server"])
        .context("the node agent's process")?;
    let seen: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root/host_pods"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        seen.contains(&agent_uid) && seen.contains(&web_uid),
        "/host_pods in the agent holds {seen:?}"
    );

    volume_data_round_trip(&cluster, &kubeconfig, &client, work.path()).await?;

    let usage = cluster.memory_usage();
    let total: u64 = usage.iter().map(|(_, b)| b).sum();
    eprintln!(
        "memory of the node-backed cluster with velero-rs installed: {} MiB",
        total >> 20
    );
    for (name, bytes) in &usage {
        eprintln!("  {name:<26} {:>5} MiB", bytes >> 20);
    }

    // An image the node does not have: --wait names the failure instead of waiting it out.
    let mut bad = install.to_vec();
    bad[2] = "velero-rs:no-such-tag";
    let started = Instant::now();
    let out = run(velero(&kubeconfig).args(&bad));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"]
            .iter()
            .any(|reason| stderr.contains(reason)),
        "{stderr}"
    );
    assert!(stderr.contains("velero-rs:no-such-tag"), "{stderr}");
    eprintln!(
        "an unavailable image was reported after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
