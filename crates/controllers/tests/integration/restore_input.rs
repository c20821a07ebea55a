//! Restores from backups this project did not write (a tarball laid out by hand as Velero lays it
//! out), and bad input: each refused with a clear message and nothing changed in the cluster.

use crate::support;

use std::path::Path;

use serde_json::{Value, json};
use support::{Env, get, phase, restore, setup, wait_for};
use velero_api::v1::RestorePhase;
use velero_test_harness::create_object;
use velero_test_harness::velero_layout::{
    handmade_backup, item_entries, tarball as velero_tarball,
};

/// A tarball whose last entry is named `resources/../../escape.json`. The tar crate refuses to
/// write such a name, so its header is filled in by hand.
fn escaping_tarball(item: &Value) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut body);
        let mut entries = item_entries("configmaps", "v1", item);
        entries.insert(0, ("metadata/version".into(), b"1.1.0\n".to_vec()));
        for (path, data) in &entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            builder.append_data(&mut header, path, &data[..])?;
        }
        builder.finish()?;
    }
    // Drop the end-of-archive blocks, append the bad entry, and end the archive again.
    body.truncate(body.len() - 1024);
    let data = serde_json::to_vec(item)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    let name = b"resources/../../escape.json";
    if let Some(gnu) = header.as_gnu_mut() {
        gnu.name[..name.len()].copy_from_slice(name);
    }
    header.set_cksum();
    body.extend_from_slice(header.as_bytes());
    body.extend_from_slice(&data);
    body.resize(body.len().div_ceil(512) * 512 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &body)?;
    Ok(gz.finish()?)
}

/// Puts a backup into the test's location by hand and registers its Backup object.
async fn plant_backup(env: &Env, name: &str, location: &str, tarball: &[u8]) -> anyhow::Result<()> {
    velero_test_harness::velero_layout::plant(&env.client, &env.bucket, name, location, tarball)
        .await
}

async fn namespace_exists(env: &Env, ns: &str) -> bool {
    get(&env.client, &format!("/api/v1/namespaces/{ns}"))
        .await
        .is_some()
}

fn failure(r: &velero_api::v1::Restore) -> String {
    let s = r.status.clone().unwrap_or_default();
    format!(
        "{} {}",
        s.failure_reason.unwrap_or_default(),
        s.validation_errors.unwrap_or_default().join("; ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_backups_restore_and_bad_input_changes_nothing() -> anyhow::Result<()> {
    let env = setup().await?;

    // A backup laid out by hand, including a Deployment at apps/v1 and a Namespace object.
    let good = handmade_backup()?;
    plant_backup(&env, "handmade", "default", &good).await?;
    let done = restore(&env.client, "from-hand", json!({"backupName": "handmade"})).await?;
    assert_eq!(
        phase(&done),
        Some(RestorePhase::Completed),
        "{}",
        failure(&done)
    );
    let restored = get(
        &env.client,
        "/api/v1/namespaces/handmade/configmaps/greeting",
    )
    .await;
    assert_eq!(
        restored.map(|c| c["data"]["hello"].clone()),
        Some(json!("world"))
    );
    let namespace = get(&env.client, "/api/v1/namespaces/handmade")
        .await
        .unwrap_or_default();
    assert_eq!(namespace["metadata"]["labels"]["made"], "by-hand");
    assert!(
        get(
            &env.client,
            "/apis/apps/v1/namespaces/handmade/deployments/api"
        )
        .await
        .is_some()
    );

    // A backup that does not exist.
    let missing = restore(&env.client, "missing", json!({"backupName": "nope"})).await?;
    assert_eq!(phase(&missing), Some(RestorePhase::FailedValidation));
    assert!(
        failure(&missing).contains("Error retrieving backup: backups.velero.io \"nope\" not found"),
        "{}",
        failure(&missing)
    );

    // A backup whose location is unavailable.
    // A directory that cannot exist: its parent is a plain file.
    let plain_file = tempfile::NamedTempFile::new()?;
    let unusable = plain_file.path().join("backups");
    create_object(&env.client, json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "gone", "namespace": "velero"},
        "spec": {"provider": "local", "objectStorage": {"bucket": unusable.display().to_string()}}})).await?;
    let bsls: kube::Api<velero_api::v1::BackupStorageLocation> =
        kube::Api::namespaced(env.client.clone(), "velero");
    wait_for("the broken location to be Unavailable", || async {
        let bsl = bsls.get("gone").await.ok()?;
        (bsl.status?.phase? == velero_api::v1::BackupStorageLocationPhase::Unavailable)
            .then_some(())
    })
    .await?;
    plant_backup(&env, "elsewhere", "gone", &good).await?;
    let unavailable = restore(
        &env.client,
        "unavailable",
        json!({"backupName": "elsewhere"}),
    )
    .await?;
    assert_eq!(phase(&unavailable), Some(RestorePhase::FailedValidation));
    assert!(
        failure(&unavailable).contains("The BSL gone is unavailable, cannot retrieve the backup"),
        "{}",
        failure(&unavailable)
    );

    // Corrupt, truncated and escaping tarballs fail before anything is created.
    let item = |ns: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}, "data": {"a": "b"}});
    let mut truncated = velero_tarball(&item_entries("configmaps", "v1", &item("cut-ns")))?;
    truncated.truncate(truncated.len() / 2);
    let escaping = escaping_tarball(&item("escape-ns"))?;
    for (backup, tarball, ns, expect) in [
        (
            "corrupt",
            b"this is not a tarball".to_vec(),
            "none-ns",
            "corrupt",
        ),
        ("truncated", truncated, "cut-ns", "corrupt"),
        ("escaping", escaping, "escape-ns", "escaping the archive"),
    ] {
        plant_backup(&env, backup, "default", &tarball).await?;
        let r = restore(
            &env.client,
            &format!("from-{backup}"),
            json!({"backupName": backup}),
        )
        .await?;
        assert_eq!(
            phase(&r),
            Some(RestorePhase::Failed),
            "{backup}: {}",
            failure(&r)
        );
        assert!(failure(&r).contains(expect), "{backup}: {}", failure(&r));
        assert!(
            !namespace_exists(&env, ns).await,
            "{backup} created namespace {ns}"
        );
        // The failed restore's log is uploaded, so `velero restore logs` tells why.
        let name = format!("from-{backup}");
        let log_path = env
            .bucket
            .join(format!("restores/{name}/restore-{name}-logs.gz"));
        let log = crate::support::gunzip_text(&log_path)?;
        assert!(
            log.contains("restore failed") && log.contains(expect),
            "{backup}: {log}"
        );
        assert!(
            env.bucket
                .join(format!("restores/{name}/restore-{name}-results.gz"))
                .exists()
        );
    }

    // Invalid namespace mappings and an invalid modifier ConfigMap are refused up front.
    let bad_map = restore(
        &env.client,
        "bad-mapping",
        json!({"backupName": "handmade", "namespaceMapping": {"handmade": "Not_A_Namespace"}}),
    )
    .await?;
    assert_eq!(phase(&bad_map), Some(RestorePhase::FailedValidation));
    assert!(
        failure(&bad_map).contains("Invalid namespace mapping handmade:Not_A_Namespace"),
        "{}",
        failure(&bad_map)
    );
    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bad-modifiers", "namespace": "velero"},
        "data": {"rules.yaml": "version: v2\nresourceModifierRules: []\n"}}),
    )
    .await?;
    let bad_mod = restore(
        &env.client,
        "bad-modifiers",
        json!({"backupName": "handmade",
        "resourceModifier": {"kind": "ConfigMap", "name": "bad-modifiers"}}),
    )
    .await?;
    assert_eq!(phase(&bad_mod), Some(RestorePhase::FailedValidation));
    assert!(
        failure(&bad_mod).contains(
            "Error in parsing resource modifiers provided in configmap velero/bad-modifiers"
        ),
        "{}",
        failure(&bad_mod)
    );
    let no_cm = restore(
        &env.client,
        "no-modifiers",
        json!({"backupName": "handmade",
        "resourceModifier": {"kind": "ConfigMap", "name": "absent"}}),
    )
    .await?;
    assert!(
        failure(&no_cm).contains("failed to get resource modifiers configmap velero/absent"),
        "{}",
        failure(&no_cm)
    );

    // A restore the server was running when it stopped is Failed when it starts again.
    create_object(
        &env.client,
        json!({"apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "interrupted", "namespace": "velero"},
        "spec": {"backupName": "handmade"}, "status": {"phase": "InProgress"}}),
    )
    .await?;
    velero_controllers::restore::fail_interrupted_restores(
        &env.client,
        "velero",
        velero_controllers::restore::RESTART_FAILURE,
    )
    .await?;
    let restores: kube::Api<velero_api::v1::Restore> =
        kube::Api::namespaced(env.client.clone(), "velero");
    let interrupted = restores.get("interrupted").await?;
    assert_eq!(phase(&interrupted), Some(RestorePhase::Failed));
    assert_eq!(
        failure(&interrupted).trim(),
        velero_controllers::restore::RESTART_FAILURE
    );

    // Deleting a Restore removes its files from the location.
    let restore_dir = env.bucket.join("restores").join("from-hand");
    assert!(Path::new(&restore_dir).exists());
    restores.delete("from-hand", &Default::default()).await?;
    wait_for("the restore and its files to go", || async {
        (restores.get_opt("from-hand").await.ok()?.is_none() && !restore_dir.exists()).then_some(())
    })
    .await?;
    Ok(())
}

/// Velero provisions a claim anew when a pod volume backup holds its data (the data comes back
/// file by file); a claim without one gets its volume back as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_backed_up_file_by_file_is_provisioned_anew() -> anyhow::Result<()> {
    let env = setup().await?;
    let pv = |name: &str, claim: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                        "hostPath": {"path": format!("/tmp/{name}")},
                        "claimRef": {"namespace": "vols", "name": claim, "uid": "old"}}})
    };
    let pvc = |name: &str, volume: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "vols"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": volume,
                        "resources": {"requests": {"storage": "1Gi"}}}})
    };
    let mut entries = item_entries("persistentvolumes", "v1", &pv("pv-data", "data"));
    entries.extend(item_entries(
        "persistentvolumes",
        "v1",
        &pv("pv-plain", "plain"),
    ));
    entries.extend(item_entries(
        "persistentvolumeclaims",
        "v1",
        &pvc("data", "pv-data"),
    ));
    entries.extend(item_entries(
        "persistentvolumeclaims",
        "v1",
        &pvc("plain", "pv-plain"),
    ));
    plant_backup(&env, "claims", "default", &velero_tarball(&entries)?).await?;
    let pvbs = json!([{
        "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
        "metadata": {"name": "claims-x1", "namespace": "velero", "annotations": {"velero.io/pvc-name": "data"}},
        "spec": {"node": "n", "pod": {"kind": "Pod", "namespace": "vols", "name": "db-0", "uid": "p"},
                 "volume": "data", "backupStorageLocation": "default", "repoIdentifier": "restic/vols", "uploaderType": "restic"},
        "status": {"phase": "Completed", "snapshotID": "0123abcd"},
    }]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &serde_json::to_vec(&pvbs)?)?;
    std::fs::write(
        env.bucket
            .join("backups/claims/claims-podvolumebackups.json.gz"),
        gz.finish()?,
    )?;

    let done = restore(&env.client, "claims", json!({"backupName": "claims"})).await?;
    assert_eq!(
        phase(&done),
        Some(RestorePhase::Completed),
        "{}",
        failure(&done)
    );
    assert!(
        get(&env.client, "/api/v1/persistentvolumes/pv-data")
            .await
            .is_none(),
        "the file-system-backed claim's volume is not restored"
    );
    let data = get(
        &env.client,
        "/api/v1/namespaces/vols/persistentvolumeclaims/data",
    )
    .await
    .unwrap_or_default();
    assert!(
        data["metadata"]["name"] == "data" && data["spec"].get("volumeName").is_none(),
        "the claim is provisioned anew: {data}"
    );
    assert!(
        get(&env.client, "/api/v1/persistentvolumes/pv-plain")
            .await
            .is_some()
    );
    let plain = get(
        &env.client,
        "/api/v1/namespaces/vols/persistentvolumeclaims/plain",
    )
    .await
    .unwrap_or_default();
    assert_eq!(plain["spec"]["volumeName"], "pv-plain");
    Ok(())
}
