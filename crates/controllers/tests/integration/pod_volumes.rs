//! File-system backup of a pod volume on a real node: the server creates the PodVolumeBackup, the
//! node agent (here in-process, reading the kubelet's pod directory on this machine) snapshots the
//! volume into the namespace's repository, and Debian's restic restores it byte for byte.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, ensure};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use velero_api::v1::{
    BackupPhase, BackupRepository, BackupRepositoryPhase, DataPathPhase, PodVolumeBackup,
};
use velero_test_harness::{BUSYBOX_IMAGE, NODE_NAME, create_object};

use crate::support::{self, wait_for};

const NS: &str = "app";

fn restic(repo: &Path, password: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("restic")
        .arg("--repo")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .context("running restic (scripts/setup-control-plane.sh installs it)")?;
    ensure!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The node agent of the test's node, in this process, until the test ends.
fn start_agent(env: &support::Env) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let kubelet_root = env.cp.kubelet_root_dir().context("a node")?.to_path_buf();
    let agent = velero_controllers::node_agent::NodeAgentConfig {
        node_name: NODE_NAME.into(),
        namespace: "velero".into(),
        host_pods: kubelet_root.join("pods"),
        pod_uid: None,
        metrics_address: "127.0.0.1:0".parse()?,
    };
    let agent_client = env.client.clone();
    Ok(tokio::spawn(async move {
        if let Err(e) = velero_controllers::node_agent::run_node_agent(
            agent_client,
            agent,
            std::future::pending(),
        )
        .await
        {
            panic!("node agent stopped: {e}");
        }
    }))
}

/// Waits until the pod `writer` in the test namespace runs and its script has reached
/// `/data/ready`.
async fn wait_written(c: &kube::Client) -> anyhow::Result<()> {
    support::wait_running(c, NS, &["writer"]).await?;
    wait_for("the pod to write its data", || async {
        let out = velero_cluster::exec::exec_in_pod(
            c,
            NS,
            "writer",
            None,
            &[
                "test".to_string(),
                "-e".to_string(),
                "/data/ready".to_string(),
            ],
            std::time::Duration::from_secs(10),
        )
        .await
        .ok()?;
        (out.exit_code == 0).then_some(())
    })
    .await
}

/// The `id`s of a JSON list of snapshots (restic's or kopia's `--json` listing).
fn snapshot_ids(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect()
}

/// Runs the repository's maintenance now (its frequency down to a second) and waits for a
/// successful one.
async fn maintain_now(repos: &Api<BackupRepository>, name: &str) -> anyhow::Result<()> {
    let frequency = json!({ "spec": { "maintenanceFrequency": "1s" } });
    repos
        .patch(
            name,
            &Default::default(),
            &kube::api::Patch::Merge(&frequency),
        )
        .await?;
    wait_for("a repository maintenance", || async {
        let status = repos.get(name).await.ok()?.status?;
        status
            .recent_maintenance?
            .iter()
            .any(|m| m.result == Some(velero_api::v1::MaintenanceResult::Succeeded))
            .then_some(())
    })
    .await
}

/// The volumes of the PodVolumeBackups of backup `name`, sorted, with their phases.
async fn volume_phases(
    c: &kube::Client,
    backup: &str,
) -> anyhow::Result<Vec<(String, Option<DataPathPhase>, String)>> {
    let pvbs: Api<PodVolumeBackup> = Api::namespaced(c.clone(), "velero");
    let mut found: Vec<_> = pvbs
        .list(&ListParams::default().labels(&format!("velero.io/backup-name={backup}")))
        .await?
        .items
        .into_iter()
        .map(|p| {
            let status = p.status.unwrap_or_default();
            (
                p.spec.volume,
                status.phase,
                status.message.unwrap_or_default(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_volume_is_backed_up_by_the_node_agent_and_restic_restores_it() -> anyhow::Result<()>
{
    // restic's format: Debian's restic reads what the agent wrote.
    let env = support::setup_with_node_and(|c| {
        c.uploader_type = velero_api::v1::UploaderType::Restic;
    })
    .await?;
    let c = &env.client;
    let kubelet_root = env.cp.kubelet_root_dir().context("a node")?.to_path_buf();
    let _agent = start_agent(&env)?;

    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    let script = "mkdir -p /data/sub && echo hello > /data/a.txt && chmod 600 /data/a.txt \
        && head -c 3000000 /dev/urandom > /data/big.bin && ln -s a.txt /data/link \
        && for i in $(seq 1 200); do echo $i > /data/sub/f$i; done && touch /data/ready && sleep 3600";
    create_object(c, json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "writer", "namespace": NS, "annotations": {
            "backup.velero.io/backup-volumes": "data",
            "post.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\", \"echo post-ran\"]",
        } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }],
            "volumes": [{ "name": "data", "emptyDir": {} }, { "name": "settings", "configMap": { "name": "absent", "optional": true } }],
        },
    })).await?;
    wait_written(c).await?;

    let b = support::backup_ended(c, "vol", json!({ "includedNamespaces": [NS] })).await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );

    // One PodVolumeBackup, named, labelled, owned and tagged as Velero's, Completed by the agent.
    let pvbs: Api<PodVolumeBackup> = Api::namespaced(c.clone(), "velero");
    let list = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=vol"))
        .await?
        .items;
    ensure!(
        list.len() == 1,
        "one PodVolumeBackup (the configMap volume is never backed up): {list:?}\n{}",
        support::backup_files(&env, "vol")?.0
    );
    let pvb = &list[0];
    let status = pvb.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(DataPathPhase::Completed), "{status:?}");
    assert!(
        pvb.metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .starts_with("vol-")
    );
    assert_eq!(pvb.spec.node, NODE_NAME);
    assert_eq!(pvb.spec.volume, "data");
    let owner = pvb.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| o.kind == "Backup" && o.name == "vol" && o.controller == Some(true)),
        "{owner:?}"
    );
    let tags = pvb.spec.tags.clone().unwrap_or_default();
    assert_eq!(tags.get("pod").map(String::as_str), Some("writer"));
    assert_eq!(tags.get("volume").map(String::as_str), Some("data"));
    let snapshot = status.snapshot_id.clone().context("a snapshot ID")?;
    let total = status.progress.and_then(|p| p.total_bytes).unwrap_or(0);
    ensure!(total > 3_000_000, "totalBytes {total}");

    // The repository is Ready, and the backup's files list the PodVolumeBackup.
    let repos: Api<BackupRepository> = Api::namespaced(c.clone(), "velero");
    let repo = repos.get("app-default-restic").await?;
    assert_eq!(
        repo.status.and_then(|s| s.phase),
        Some(BackupRepositoryPhase::Ready)
    );
    let listed =
        support::gunzip_json(&env.bucket.join("backups/vol/vol-podvolumebackups.json.gz"))?;
    assert_eq!(
        listed[0]["status"]["snapshotID"],
        snapshot.as_str(),
        "{listed}"
    );
    let info = support::gunzip_json(&env.bucket.join("backups/vol/vol-volumeinfo.json.gz"))?;
    assert_eq!(info[0]["backupMethod"], "PodVolumeBackup", "{info}");
    assert_eq!(info[0]["result"], "succeeded", "{info}");
    assert_eq!(
        info[0]["pvbInfo"]["snapshotHandle"],
        snapshot.as_str(),
        "{info}"
    );
    assert_eq!(info[0]["pvbInfo"]["volumeName"], "data", "{info}");
    assert_eq!(info[0]["pvbInfo"]["uploaderType"], "restic", "{info}");

    // The post hook ran after the volume's backup.
    let (log, _, _) = support::backup_files(&env, "vol")?;
    let volume_done = log
        .find("Pod volume backup")
        .context("the volume's line in the log")?;
    let post = log
        .find("stdout: post-ran")
        .context("the post hook's output")?;
    ensure!(
        volume_done < post,
        "the post hook runs after the volume backup:\n{log}"
    );

    // Debian's restic, given the repository and the password, restores what the pod wrote.
    let password = velero_podvolume::read_password(c, "velero").await?;
    let repo_dir = env.bucket.join("restic").join(NS);
    let snapshots: Value =
        serde_json::from_str(&restic(&repo_dir, &password, &["snapshots", "--json"])?)?;
    ensure!(snapshots[0]["id"] == snapshot.as_str(), "{snapshots}");
    ensure!(
        snapshots[0]["tags"].to_string().contains("backup=vol"),
        "{snapshots}"
    );
    let out = tempfile::tempdir()?;
    restic(
        &repo_dir,
        &password,
        &[
            "restore",
            &snapshot,
            "--target",
            &out.path().display().to_string(),
        ],
    )?;
    let volume = std::path::PathBuf::from(status.path.context("the volume's path")?);
    velero_test_harness::tree::same_tree(&volume, &out.path().join(volume.strip_prefix("/")?))
        .map_err(anyhow::Error::msg)?;
    restic(&repo_dir, &password, &["check"])?;

    // A second backup of the unchanged volume adds next to nothing.
    let b = support::backup_ended(c, "vol2", json!({ "includedNamespaces": [NS] })).await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );
    let second = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=vol2"))
        .await?
        .items;
    let second_status = second
        .first()
        .and_then(|p| p.status.clone())
        .context("vol2's PodVolumeBackup")?;
    let incremental = second_status.incremental_bytes.unwrap_or(i64::MAX);
    ensure!(
        incremental < 64 << 10,
        "an unchanged volume uploads {incremental} bytes"
    );
    let second_snapshot = second_status
        .snapshot_id
        .clone()
        .context("vol2's snapshot")?;

    // Deleting the first backup forgets its snapshot; maintenance prunes what only it used, and
    // the second still restores.
    support::delete_backup(c, "vol").await?;
    let left: Value =
        serde_json::from_str(&restic(&repo_dir, &password, &["snapshots", "--json"])?)?;
    let ids = snapshot_ids(&left);
    assert_eq!(
        ids,
        [second_snapshot.as_str()],
        "only the second backup's snapshot is left"
    );
    maintain_now(&repos, "app-default-restic").await?;
    restic(&repo_dir, &password, &["check", "--read-data"])?;
    let out2 = tempfile::tempdir()?;
    restic(
        &repo_dir,
        &password,
        &[
            "restore",
            &second_snapshot,
            "--target",
            &out2.path().display().to_string(),
        ],
    )?;
    velero_test_harness::tree::same_tree(&volume, &out2.path().join(volume.strip_prefix("/")?))
        .map_err(anyhow::Error::msg)?;

    // A volume backup a stopped agent left InProgress is Failed by the next agent on its node.
    let mut interrupted = pvb.clone();
    interrupted.metadata = kube::api::ObjectMeta {
        name: Some("interrupted".into()),
        namespace: Some("velero".into()),
        ..Default::default()
    };
    interrupted.status = Some(velero_api::v1::PodVolumeBackupStatus {
        phase: Some(DataPathPhase::InProgress),
        ..Default::default()
    });
    pvbs.create(&Default::default(), &interrupted).await?;
    let restarted = velero_controllers::node_agent::NodeAgentConfig {
        node_name: NODE_NAME.into(),
        namespace: "velero".into(),
        host_pods: kubelet_root.join("pods"),
        pod_uid: None,
        metrics_address: "127.0.0.1:0".parse()?,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(velero_controllers::node_agent::run_node_agent(
        c.clone(),
        restarted,
        async move {
            let _ = stopped.await;
        },
    ));
    let failed = wait_for("the interrupted PodVolumeBackup to be Failed", || async {
        let p = pvbs.get("interrupted").await.ok()?;
        let status = p.status?;
        (status.phase == Some(DataPathPhase::Failed)).then_some(status)
    })
    .await?;
    assert!(
        failed
            .message
            .unwrap_or_default()
            .contains("during the server starting")
    );
    let _ = stop.send(());
    second.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_policies_choose_volumes_and_faults_give_clear_errors() -> anyhow::Result<()> {
    // restic's format: Debian's restic reads what the agent wrote.
    let env = support::setup_with_node_and(|c| {
        c.uploader_type = velero_api::v1::UploaderType::Restic;
    })
    .await?;
    let c = &env.client;
    let _agent = start_agent(&env)?;
    let disks = tempfile::tempdir()?;
    velero_test_harness::local_volume(c, "disk-a", &disks.path().join("a"), "2Gi").await?;
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    create_object(c, json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "claim", "namespace": NS, "labels": { "tier": "gold" } },
        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": velero_test_harness::LOCAL_STORAGE_CLASS,
            "resources": { "requests": { "storage": "1Gi" } } },
    })).await?;
    // `churn` changes all the time: files appear, grow and vanish while they are read.
    let script = "echo kept > /claim/kept && echo scratch > /scratch/s && \
        i=0; while true; do head -c 300000 /dev/urandom > /churn/f$((i % 40)); rm -f /churn/f$(((i + 20) % 40)); \
        i=$((i + 1)); done";
    create_object(
        c,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "mixed", "namespace": NS, "annotations": {
                "backup.velero.io/backup-volumes": "scratch,churn",
            } },
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{ "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                    "volumeMounts": [
                        { "name": "claim", "mountPath": "/claim" },
                        { "name": "scratch", "mountPath": "/scratch" },
                        { "name": "churn", "mountPath": "/churn" },
                    ] }],
                "volumes": [
                    { "name": "claim", "persistentVolumeClaim": { "claimName": "claim" } },
                    { "name": "scratch", "emptyDir": {} },
                    { "name": "churn", "emptyDir": {} },
                ],
            },
        }),
    )
    .await?;
    support::wait_running(c, NS, &["mixed"]).await?;

    // Policies decide before the annotations: the gold claim is backed up though no annotation
    // names it, the annotated emptyDirs are skipped.
    let policies = "version: v1\nvolumePolicies:\n\
        - conditions: {storageClass: [velero-local], pvcLabels: {tier: gold}, capacity: \"1Gi,\"}\n  action: {type: fs-backup}\n\
        - conditions: {volumeTypes: [emptyDir]}\n  action: {type: skip}\n";
    create_object(
        c,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "policies", "namespace": "velero" },
            "data": { "policies.yaml": policies },
        }),
    )
    .await?;
    let b = support::backup_ended(
        c,
        "chosen",
        json!({
            "includedNamespaces": [NS],
            "resourcePolicy": { "kind": "configmap", "name": "policies" },
        }),
    )
    .await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );
    let chosen = volume_phases(c, "chosen").await?;
    assert_eq!(
        chosen
            .iter()
            .map(|(v, p, _)| (v.as_str(), *p))
            .collect::<Vec<_>>(),
        [("claim", Some(DataPathPhase::Completed))],
        "{chosen:?}"
    );

    // A policy ConfigMap that cannot be used fails the Backup's validation, naming the problem.
    create_object(
        c,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "bad-policies", "namespace": "velero" },
            "data": { "p.yaml": "version: v2\nvolumePolicies: []\n" },
        }),
    )
    .await?;
    let b = support::backup_ended(
        c,
        "refused",
        json!({
            "includedNamespaces": [NS],
            "resourcePolicy": { "kind": "configmap", "name": "bad-policies" },
        }),
    )
    .await?;
    let status = b.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::FailedValidation));
    let errors = status.validation_errors.unwrap_or_default().join("\n");
    assert!(
        errors.contains("velero/bad-policies") && errors.contains("incompatible version number v2"),
        "{errors}"
    );

    // Without policies the annotations decide; the volume that changes while it is read is backed
    // up without the agent failing.
    let b = support::backup_ended(c, "annotated", json!({ "includedNamespaces": [NS] })).await?;
    let annotated = volume_phases(c, "annotated").await?;
    assert_eq!(
        annotated
            .iter()
            .map(|(v, p, _)| (v.as_str(), *p))
            .collect::<Vec<_>>(),
        [
            ("churn", Some(DataPathPhase::Completed)),
            ("scratch", Some(DataPathPhase::Completed))
        ],
        "{annotated:?}"
    );
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );

    // A wrong repository password: the volume's backup fails naming the Secret to check, the
    // backup is PartiallyFailed, and nothing in the repository changes.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c.clone(), "velero");
    let password = velero_podvolume::read_password(c, "velero").await?;
    let set_password = |p: &str| json!({ "stringData": { "repository-password": p } });
    secrets
        .patch(
            "velero-repo-credentials",
            &Default::default(),
            &kube::api::Patch::Merge(set_password("not-the-password")),
        )
        .await?;
    let repo_dir = env.bucket.join("restic").join(NS);
    let before = restic(&repo_dir, &password, &["snapshots", "--json"])?;
    let b =
        support::backup_ended(c, "wrong-password", json!({ "includedNamespaces": [NS] })).await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::PartiallyFailed),
        "{:?}",
        b.status
    );
    let (log, _, _) = support::backup_files(&env, "wrong-password")?;
    let failures = volume_phases(c, "wrong-password").await?;
    let said = format!("{failures:?}\n{log}");
    assert!(
        said.contains("velero-repo-credentials") && said.contains("password"),
        "the error names the Secret: {said}"
    );
    secrets
        .patch(
            "velero-repo-credentials",
            &Default::default(),
            &kube::api::Patch::Merge(set_password(&password)),
        )
        .await?;
    assert_eq!(
        restic(&repo_dir, &password, &["snapshots", "--json"])?,
        before
    );
    restic(&repo_dir, &password, &["check"])?;

    // A location that cannot be reached: the agent fails the volume's backup, naming the location.
    create_object(
        c,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "offline-credentials", "namespace": "velero" },
            "stringData": { "cloud": "[default]\naws_access_key_id=a\naws_secret_access_key=b\n" },
        }),
    )
    .await?;
    create_object(c, json!({
        "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": { "name": "offline", "namespace": "velero" },
        "spec": { "provider": "aws", "objectStorage": { "bucket": "gone" },
            "credential": { "name": "offline-credentials", "key": "cloud" },
            "config": { "region": "minio", "s3Url": "http://127.0.0.1:1", "s3ForcePathStyle": "true" } },
    })).await?;
    let pvbs: Api<PodVolumeBackup> = Api::namespaced(c.clone(), "velero");
    let mut offline = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=chosen"))
        .await?
        .items
        .remove(0);
    offline.metadata = kube::api::ObjectMeta {
        name: Some("offline".into()),
        namespace: Some("velero".into()),
        ..Default::default()
    };
    offline.spec.backup_storage_location = "offline".into();
    offline.status = None;
    pvbs.create(&Default::default(), &offline).await?;
    let failed = wait_for(
        "the PodVolumeBackup into an unreachable location to fail",
        || async {
            let status = pvbs.get("offline").await.ok()?.status?;
            (status.phase == Some(DataPathPhase::Failed)).then_some(status)
        },
    )
    .await?;
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("offline") && message.contains("127.0.0.1:1"),
        "{message}"
    );
    Ok(())
}

/// kopia 0.22.3 itself, connected to a copy of the kopia repository in the test's `local`
/// location (the copy lives as long as the returned directory).
fn kopia_view(
    kopia: &Path,
    bucket: &Path,
    password: &str,
) -> anyhow::Result<(tempfile::TempDir, velero_test_harness::tools::KopiaCli)> {
    let view = tempfile::tempdir()?;
    let repo = view.path().join("repo");
    velero_test_harness::tools::kopia_filesystem_copy(&bucket.join("kopia").join(NS), &repo)?;
    let cli = velero_test_harness::tools::KopiaCli::new(kopia, view.path(), password);
    cli.connect_filesystem(&repo)?;
    Ok((view, cli))
}

/// kopia lists every snapshot (returned), verifies `snapshot` (every file) and every content, and
/// restores `snapshot` into `restore_to` when given.
fn kopia_verifies(
    cli: &velero_test_harness::tools::KopiaCli,
    snapshot: &str,
    restore_to: Option<&Path>,
) -> anyhow::Result<Value> {
    let listed = serde_json::from_str(&cli.run(&["snapshot", "list", "--all", "--json"])?)?;
    cli.run(&["snapshot", "verify", "--verify-files-percent=100", snapshot])?;
    cli.run(&["content", "verify", "--full"])?;
    if let Some(target) = restore_to {
        cli.run(&["snapshot", "restore", snapshot, &target.to_string_lossy()])?;
    }
    Ok(listed)
}

/// The default uploader: a pod volume's backup is a kopia snapshot named as Velero names it, which
/// kopia lists, verifies and restores byte for byte; an unchanged second backup uploads next to
/// nothing; deleting the first backup deletes its snapshot; maintenance leaves a repository kopia
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_volume_backup_is_a_kopia_snapshot_kopia_verifies_and_restores() -> anyhow::Result<()>
{
    let Some(kopia) = velero_test_harness::tools::kopia_or_skip(
        "a_pod_volume_backup_is_a_kopia_snapshot_kopia_verifies_and_restores",
    ) else {
        return Ok(());
    };
    let env = support::setup_with_node().await?;
    let c = &env.client;
    let _agent = start_agent(&env)?;
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    let script = "mkdir -p /data/sub /data/empty && echo hello > /data/a.txt && chmod 4755 /data/a.txt \
        && head -c 12000000 /dev/urandom > /data/big.bin && ln -s a.txt /data/link && ln /data/a.txt /data/sub/hard \
        && dd if=/dev/urandom of=/data/sparse bs=4096 count=2 seek=2000 2>/dev/null \
        && for i in $(seq 1 500); do echo $i > /data/sub/f$i; done && touch -d '2021-03-04 05:06:07' /data/sub/f1 \
        && touch /data/ready && sleep 3600";
    create_object(
        c,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "writer", "namespace": NS, "annotations": {
                "backup.velero.io/backup-volumes": "data" } },
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{ "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                    "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }],
                "volumes": [{ "name": "data", "emptyDir": {} }],
            },
        }),
    )
    .await?;
    wait_written(c).await?;

    let b = support::backup(c, "k1", json!({ "includedNamespaces": [NS] })).await?;
    let pvbs: Api<PodVolumeBackup> = Api::namespaced(c.clone(), "velero");
    let first = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=k1"))
        .await?
        .items
        .pop()
        .context("k1's PodVolumeBackup")?;
    assert_eq!(
        first.spec.uploader_type,
        velero_api::v1::UploaderType::Kopia
    );
    assert_eq!(
        first.spec.repo_identifier, "",
        "kopia repositories have no identifier"
    );
    let status = first.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(DataPathPhase::Completed), "{status:?}");
    let snapshot = status.snapshot_id.clone().context("a snapshot ID")?;
    assert_eq!(snapshot.len(), 32, "a kopia manifest ID: {snapshot}");
    let repos: Api<BackupRepository> = Api::namespaced(c.clone(), "velero");
    let repo = repos.get("app-default-kopia").await?;
    assert_eq!(
        repo.spec.repository_type,
        velero_api::v1::UploaderType::Kopia
    );
    assert_eq!(
        repo.metadata
            .labels
            .unwrap_or_default()
            .get("velero.io/repository-type")
            .map(String::as_str),
        Some("kopia")
    );
    assert_eq!(
        repo.status.and_then(|s| s.phase),
        Some(BackupRepositoryPhase::Ready)
    );
    let info = support::gunzip_json(&env.bucket.join("backups/k1/k1-volumeinfo.json.gz"))?;
    assert_eq!(info[0]["pvbInfo"]["uploaderType"], "kopia", "{info}");
    ensure!(b.status.is_some());

    let password = velero_podvolume::read_password(c, "velero").await?;
    let volume = std::path::PathBuf::from(status.path.clone().context("the volume's path")?);
    let restored = tempfile::tempdir()?;
    let target = restored.path().join("volume");
    let (_view, cli) = kopia_view(&kopia, &env.bucket, &password)?;
    let listed = kopia_verifies(&cli, &snapshot, Some(&target))?;
    assert_eq!(listed[0]["id"], snapshot.as_str(), "{listed}");
    assert_eq!(listed[0]["source"]["userName"], "default", "{listed}");
    assert_eq!(listed[0]["source"]["host"], "default", "{listed}");
    assert_eq!(
        listed[0]["source"]["path"],
        format!("snapshot-pod-volume/kopia/{NS}/writer/data"),
        "{listed}"
    );
    assert_eq!(
        listed[0]["tags"]["snapshot-requester"], "snapshot-pod-volume",
        "{listed}"
    );
    assert_eq!(listed[0]["tags"]["snapshot-uploader"], "kopia", "{listed}");
    velero_test_harness::tree::same_tree(&volume, &target).map_err(anyhow::Error::msg)?;

    // Unchanged: the second backup reuses the first snapshot's files without reading them.
    support::backup(c, "k2", json!({ "includedNamespaces": [NS] })).await?;
    let second = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=k2"))
        .await?
        .items
        .pop()
        .and_then(|p| p.status)
        .context("k2's PodVolumeBackup")?;
    let incremental = second.incremental_bytes.unwrap_or(i64::MAX);
    ensure!(
        incremental < 64 << 10,
        "an unchanged volume uploads {incremental} bytes"
    );
    let second_snapshot = second.snapshot_id.context("k2's snapshot")?;

    // Deleting k1 deletes its snapshot; maintenance leaves a repository kopia verifies and from
    // which k2 restores.
    support::delete_backup(c, "k1").await?;
    maintain_now(&repos, "app-default-kopia").await?;
    let (view, cli) = kopia_view(&kopia, &env.bucket, &password)?;
    let after_ours = view.path().join("after-our-maintenance");
    let left = kopia_verifies(&cli, &second_snapshot, Some(&after_ours))?;
    let ids = snapshot_ids(&left);
    assert_eq!(
        ids,
        [second_snapshot.as_str()],
        "only k2's snapshot is left"
    );
    velero_test_harness::tree::same_tree(&volume, &after_ours).map_err(anyhow::Error::msg)?;

    // kopia's own full maintenance on what ours left succeeds and loses nothing.
    cli.run(&["maintenance", "run", "--full", "--safety=none"])?;
    let after_kopia = view.path().join("after-kopia-maintenance");
    let left = kopia_verifies(&cli, &second_snapshot, Some(&after_kopia))?;
    assert_eq!(snapshot_ids(&left), [second_snapshot.as_str()]);
    velero_test_harness::tree::same_tree(&volume, &after_kopia).map_err(anyhow::Error::msg)?;
    Ok(())
}
