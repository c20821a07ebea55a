//! Backups over their life on real control planes: expiry and garbage collection, sync of a
//! location into a second cluster (migration, with a restore there under a namespace mapping), and
//! removal of Backup objects whose files are gone.

use crate::support;

use std::time::Duration;

use anyhow::Context;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use velero_api::v1::{Backup, BackupPhase, RestorePhase};
use velero_test_harness::create_object;

use support::{backup, get, phase, restore, setup_with, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_backups_are_collected_with_their_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = setup_with(dir.path(), |c| {
        c.garbage_collection_frequency = Duration::from_secs(1);
    })
    .await?;
    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "short"}}),
    )
    .await?;
    create_object(&env.client, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "short"}})).await?;
    backup(
        &env.client,
        "keeper",
        json!({"includedNamespaces": ["short"]}),
    )
    .await?;
    backup(
        &env.client,
        "fleeting",
        json!({"includedNamespaces": ["short"], "ttl": "2s"}),
    )
    .await?;
    let files = env.bucket.join("backups/fleeting");
    assert!(files.join("velero-backup.json").exists());
    let backups: Api<Backup> = Api::namespaced(env.client.clone(), "velero");
    wait_for("the expired backup to be collected", || async {
        (backups.get_opt("fleeting").await.ok()?.is_none() && !files.exists()).then_some(())
    })
    .await?;
    assert!(
        backups.get_opt("keeper").await?.is_some(),
        "an unexpired backup stays"
    );
    assert!(
        env.bucket
            .join("backups/keeper/velero-backup.json")
            .exists()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_sees_the_first_ones_backups_and_restores_them() -> anyhow::Result<()> {
    let shared = tempfile::tempdir()?;
    let a = setup_with(shared.path(), |c| {
        c.backup_sync_period = Duration::from_secs(1)
    })
    .await?;
    create_object(&a.client, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "web"}}})).await?;
    create_object(&a.client, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"color": "blue"}})).await?;
    create_object(&a.client, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})).await?;
    backup(&a.client, "shop-1", json!({"includedNamespaces": ["shop"]})).await?;

    // Cluster B shares the location and starts with no Backup objects.
    let b = setup_with(shared.path(), |c| {
        c.backup_sync_period = Duration::from_secs(1)
    })
    .await?;
    let b_backups: Api<Backup> = Api::namespaced(b.client.clone(), "velero");
    let synced = wait_for("the backup to be synced into cluster B", || async {
        b_backups.get_opt("shop-1").await.ok().flatten()
    })
    .await?;
    assert_eq!(
        synced.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed)
    );
    assert_eq!(synced.spec.storage_location.as_deref(), Some("default"));
    assert_eq!(
        synced
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("velero.io/storage-location"))
            .map(String::as_str),
        Some("default")
    );

    let migrated = restore(
        &b.client,
        "from-a",
        json!({"backupName": "shop-1", "namespaceMapping": {"shop": "shop-b"}}),
    )
    .await?;
    assert_eq!(
        phase(&migrated),
        Some(RestorePhase::Completed),
        "{:?}",
        migrated.status
    );
    let cm = get(&b.client, "/api/v1/namespaces/shop-b/configmaps/settings")
        .await
        .context("configmap in B")?;
    assert_eq!(cm["data"]["color"], "blue");
    assert!(
        get(&b.client, "/apis/apps/v1/namespaces/shop-b/deployments/web")
            .await
            .is_some()
    );
    let ns = get(&b.client, "/api/v1/namespaces/shop-b")
        .await
        .context("namespace in B")?;
    assert_eq!(ns["metadata"]["labels"]["team"], "web");
    assert!(
        get(&a.client, "/api/v1/namespaces/shop-b").await.is_none(),
        "cluster A is untouched"
    );

    // A backup whose files disappear from the location is removed from cluster B too, while an
    // unfinished one (no velero-backup.json yet) is never imported.
    std::fs::create_dir_all(shared.path().join("backups/in-flight"))?;
    std::fs::write(
        shared.path().join("backups/in-flight/in-flight.tar.gz"),
        b"partial",
    )?;
    std::fs::remove_dir_all(shared.path().join("backups/shop-1"))?;
    wait_for(
        "the orphaned backup to be removed from cluster B",
        || async {
            b_backups
                .get_opt("shop-1")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        b_backups.get_opt("in-flight").await?.is_none(),
        "an unfinished backup is not synced"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_refused_while_storage_is_down_succeeds_once_it_is_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bucket = dir.path().join("bucket");
    let env = setup_with(&bucket, |_| {}).await?;
    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await?;
    backup(&env.client, "doomed", json!({"includedNamespaces": ["d"]})).await?;
    let made = restore(
        &env.client,
        "from-doomed",
        json!({"backupName": "doomed", "includedNamespaces": ["nothing"]}),
    )
    .await?;
    assert!(phase(&made).is_some());

    // The location's directory is replaced by a plain file: the location goes Unavailable.
    let parked = dir.path().join("parked");
    std::fs::rename(&bucket, &parked)?;
    std::fs::write(&bucket, b"not a directory")?;
    let bsls: Api<velero_api::v1::BackupStorageLocation> =
        Api::namespaced(env.client.clone(), "velero");
    wait_for("the location to be Unavailable", || async {
        let bsl = bsls.get("default").await.ok()?;
        (bsl.status?.phase? == velero_api::v1::BackupStorageLocationPhase::Unavailable)
            .then_some(())
    })
    .await?;
    let requests: Api<velero_api::v1::DeleteBackupRequest> =
        Api::namespaced(env.client.clone(), "velero");
    let request = |name: &str| {
        json!({"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": {"name": name, "namespace": "velero", "labels": {"velero.io/backup-name": "doomed"}},
        "spec": {"backupName": "doomed"}})
    };
    create_object(&env.client, request("first-try")).await?;
    let refused = wait_for("the first request to be processed", || async {
        let r = requests.get("first-try").await.ok()?;
        (r.status.as_ref()?.phase? == velero_api::v1::DeleteBackupRequestPhase::Processed)
            .then_some(r)
    })
    .await?;
    let errors = refused
        .status
        .and_then(|s| s.errors)
        .unwrap_or_default()
        .join("; ");
    assert!(errors.contains("Unavailable"), "{errors}");
    let backups: Api<Backup> = Api::namespaced(env.client.clone(), "velero");
    let kept = backups.get("doomed").await?;
    assert_eq!(
        kept.status.and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "the backup is untouched"
    );

    // Storage comes back; the same request made again now deletes the backup, its files and the
    // restores made from it.
    std::fs::remove_file(&bucket)?;
    std::fs::rename(&parked, &bucket)?;
    wait_for("the location to be Available", || async {
        let bsl = bsls.get("default").await.ok()?;
        (bsl.status?.phase? == velero_api::v1::BackupStorageLocationPhase::Available).then_some(())
    })
    .await?;
    create_object(&env.client, request("second-try")).await?;
    let restores: Api<velero_api::v1::Restore> = Api::namespaced(env.client.clone(), "velero");
    wait_for(
        "the backup, its files and its restores to be gone",
        || async {
            let gone = backups.get_opt("doomed").await.ok()?.is_none()
                && restores.get_opt("from-doomed").await.ok()?.is_none()
                && !bucket.join("backups/doomed").exists()
                && !bucket.join("restores/from-doomed").exists();
            gone.then_some(())
        },
    )
    .await?;
    Ok(())
}

/// Every file under `dir` with its content.
fn snapshot(dir: &std::path::Path) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let key = path.strip_prefix(dir)?.display().to_string();
                files.insert(key, std::fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_location_is_restored_from_but_its_backups_never_change() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let env = setup_with(dir.path(), |c| {
        c.garbage_collection_frequency = Duration::from_secs(1);
    })
    .await?;
    let ns = "velero";
    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ro"}}),
    )
    .await?;
    create_object(&env.client, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ro"}, "data": {"k": "v"}})).await?;
    backup(&env.client, "kept", json!({"includedNamespaces": ["ro"]})).await?;
    let before = snapshot(&env.bucket.join("backups"))?;

    let bsls: Api<velero_api::v1::BackupStorageLocation> = Api::namespaced(env.client.clone(), ns);
    let set_mode = |mode: &'static str| {
        let bsls = bsls.clone();
        async move {
            bsls.patch(
                "default",
                &Default::default(),
                &kube::api::Patch::Merge(&json!({"spec": {"accessMode": mode}})),
            )
            .await
        }
    };
    set_mode("ReadOnly").await?;

    // Expired: garbage collection labels it instead of deleting it.
    let backups: Api<Backup> = Api::namespaced(env.client.clone(), ns);
    backups
        .patch(
            "kept",
            &Default::default(),
            &kube::api::Patch::Merge(&json!({"status": {"expiration": "2020-01-01T00:00:00Z"}})),
        )
        .await?;
    wait_for("the gc-failure label", || async {
        let b = backups.get("kept").await.ok()?;
        (b.labels().get("velero.io/gc-failure")? == "BSLReadOnly").then_some(())
    })
    .await?;

    // An explicit deletion is refused with a reason.
    let requests: Api<velero_api::v1::DeleteBackupRequest> =
        Api::namespaced(env.client.clone(), ns);
    create_object(&env.client, json!({"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": {"name": "delete-kept", "namespace": ns, "labels": {"velero.io/backup-name": "kept"}},
        "spec": {"backupName": "kept"}})).await?;
    let refused = wait_for("the deletion request to be processed", || async {
        let r = requests.get("delete-kept").await.ok()?;
        (r.status.as_ref()?.phase? == velero_api::v1::DeleteBackupRequestPhase::Processed)
            .then_some(r)
    })
    .await?;
    let errors = refused
        .status
        .and_then(|s| s.errors)
        .unwrap_or_default()
        .join("; ");
    assert!(
        errors.contains("cannot delete backup because backup storage location default is currently in read-only mode"),
        "{errors}"
    );

    // A new backup is refused before anything is written.
    let api: Api<Backup> = Api::namespaced(env.client.clone(), ns);
    create_object(
        &env.client,
        json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "refused", "namespace": ns}, "spec": {}}),
    )
    .await?;
    let refused = wait_for("the new backup to be refused", || async {
        let b = api.get("refused").await.ok()?;
        b.status.as_ref()?.phase?.is_terminal().then_some(b)
    })
    .await?;
    let status = refused.status.unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::FailedValidation));
    assert!(
        status
            .validation_errors
            .unwrap_or_default()
            .iter()
            .any(|e| e.contains("is currently in read-only mode"))
    );

    // Restores read it, and write their own files as Velero's do.
    let restored = restore(
        &env.client,
        "from-read-only",
        json!({"backupName": "kept", "namespaceMapping": {"ro": "ro-copy"}}),
    )
    .await?;
    assert_eq!(phase(&restored), Some(RestorePhase::Completed));
    let copy = get(&env.client, "/api/v1/namespaces/ro-copy/configmaps/c")
        .await
        .context("the restored ConfigMap")?;
    assert_eq!(copy["data"]["k"], "v");
    assert!(env.bucket.join("restores/from-read-only").is_dir());

    let backups_now = backups.get("kept").await?;
    assert_eq!(
        backups_now.status.and_then(|s| s.phase),
        Some(BackupPhase::Completed)
    );
    assert_eq!(
        snapshot(&env.bucket.join("backups"))?,
        before,
        "no file of any backup changed"
    );

    // Writable again: the expired backup is collected at last.
    set_mode("ReadWrite").await?;
    wait_for("the expired backup to be collected", || async {
        let gone = backups.get_opt("kept").await.ok()?.is_none()
            && !env.bucket.join("backups/kept").exists();
        gone.then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_a_crash_interrupted_finish_after_the_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = setup_with(dir.path(), |_| {}).await?;
    let ns = "velero";
    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}}),
    )
    .await?;
    for name in ["half-deleted", "orphaned-deleting"] {
        backup(&env.client, name, json!({"includedNamespaces": ["gone"]})).await?;
    }
    // The server dies without a clean shutdown...
    env.server.abort();
    let _ = env.server.await;
    // ...in the middle of two deletions: one with its request InProgress, one whose request is
    // already gone (expired, or deleted by hand). Both backups are Deleting, files still there.
    let backups: Api<Backup> = Api::namespaced(env.client.clone(), ns);
    for name in ["half-deleted", "orphaned-deleting"] {
        backups
            .patch(
                name,
                &Default::default(),
                &kube::api::Patch::Merge(&json!({
                    "metadata": {"annotations": {"velero-rs.io/phase-before-deletion": "Completed"}},
                    "status": {"phase": "Deleting"},
                })),
            )
            .await?;
    }
    create_object(&env.client, json!({"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": {"name": "half-deleted-req", "namespace": ns, "labels": {"velero.io/backup-name": "half-deleted"}},
        "spec": {"backupName": "half-deleted"}, "status": {"phase": "InProgress"}})).await?;

    let config = velero_controllers::ServerConfig {
        namespace: ns.into(),
        store_validation_frequency: Duration::from_secs(1),
        ..Default::default()
    };
    let client = env.client.clone();
    let _restarted = tokio::spawn(async move {
        if let Err(e) = velero_controllers::run_server(client, config, std::future::pending()).await
        {
            panic!("server stopped: {e}");
        }
    });
    wait_for("both interrupted deletions to finish", || async {
        let gone = backups.get_opt("half-deleted").await.ok()?.is_none()
            && backups.get_opt("orphaned-deleting").await.ok()?.is_none()
            && !env.bucket.join("backups/half-deleted").exists()
            && !env.bucket.join("backups/orphaned-deleting").exists();
        gone.then_some(())
    })
    .await?;
    Ok(())
}
