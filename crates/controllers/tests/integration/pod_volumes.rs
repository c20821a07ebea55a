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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_volume_is_backed_up_by_the_node_agent_and_restic_restores_it() -> anyhow::Result<()>
{
    let env = support::setup_with_node().await?;
    let c = &env.client;
    let kubelet_root = env.cp.kubelet_root_dir().context("a node")?.to_path_buf();
    let agent = velero_controllers::node_agent::NodeAgentConfig {
        node_name: NODE_NAME.into(),
        namespace: "velero".into(),
        host_pods: kubelet_root.join("pods"),
        pod_uid: None,
        metrics_address: "127.0.0.1:0".parse()?,
    };
    let agent_client = c.clone();
    let _agent = tokio::spawn(async move {
        if let Err(e) = velero_controllers::node_agent::run_node_agent(
            agent_client,
            agent,
            std::future::pending(),
        )
        .await
        {
            panic!("node agent stopped: {e}");
        }
    });

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
    .await?;
    support::wait_running(c, NS, &["writer"]).await?;

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
    let requests: Api<velero_api::v1::DeleteBackupRequest> = Api::namespaced(c.clone(), "velero");
    let request: velero_api::v1::DeleteBackupRequest = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": { "name": "delete-vol", "namespace": "velero", "labels": { "velero.io/backup-name": "vol" } },
        "spec": { "backupName": "vol" },
    }))?;
    requests.create(&Default::default(), &request).await?;
    let backups: Api<velero_api::v1::Backup> = Api::namespaced(c.clone(), "velero");
    wait_for("backup vol to be deleted", || async {
        backups.get_opt("vol").await.ok()?.is_none().then_some(())
    })
    .await?;
    let left: Value =
        serde_json::from_str(&restic(&repo_dir, &password, &["snapshots", "--json"])?)?;
    let ids: Vec<&str> = left
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [second_snapshot.as_str()],
        "only the second backup's snapshot is left"
    );
    let frequency = json!({ "spec": { "maintenanceFrequency": "1s" } });
    repos
        .patch(
            "app-default-restic",
            &Default::default(),
            &kube::api::Patch::Merge(&frequency),
        )
        .await?;
    wait_for("a repository maintenance", || async {
        let status = repos.get("app-default-restic").await.ok()?.status?;
        status
            .recent_maintenance?
            .iter()
            .any(|m| m.result == Some(velero_api::v1::MaintenanceResult::Succeeded))
            .then_some(())
    })
    .await?;
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
