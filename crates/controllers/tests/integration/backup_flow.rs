//! The server's backup flow on a real API server with a real S3 server: validation, a filtered
//! backup with every file in Velero's layout, refusal of duplicates, deletion, restart handling.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use velero_api::v1::{
    Backup, BackupPhase, BackupStorageLocation, BackupStorageLocationPhase, DeleteBackupRequest,
};
use velero_storage::{BackupStore, LocationConfig};
use velero_test_harness::create_object;
use velero_test_harness::{ControlPlane, S3Server};

use crate::support;

use support::wait_for;

const NS: &str = "velero";

struct Env {
    _cp: ControlPlane,
    s3: S3Server,
    client: kube::Client,
    _server: tokio::task::JoinHandle<()>,
}

/// A control plane with Velero installed (S3 location), and the server running.
async fn setup() -> anyhow::Result<Env> {
    let cp = ControlPlane::start().await?;
    let s3 = S3Server::start().await?;
    s3.create_bucket("velero")?;
    let client = cp.client().await?;
    let options = velero_install::InstallOptions {
        provider: Some("aws".into()),
        bucket: Some("velero".into()),
        prefix: Some("cluster-a".into()),
        backup_location_config: [
            ("region".to_string(), "us-east-1".to_string()),
            ("s3ForcePathStyle".to_string(), "true".to_string()),
            ("s3Url".to_string(), s3.endpoint()),
        ]
        .into(),
        secret_data: Some(s3.credentials_file().into_bytes()),
        use_volume_snapshots: false,
        ..Default::default()
    };
    velero_install::apply(&client, &options.render(), &mut std::io::sink()).await?;
    // The server runs outside the cluster here, so it reads the credentials through the BSL.
    let bsls: Api<BackupStorageLocation> = Api::namespaced(client.clone(), NS);
    let patch =
        json!({ "spec": { "credential": { "name": "cloud-credentials", "key": "cloud" } } });
    bsls.patch(
        "default",
        &Default::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;

    let config = velero_controllers::ServerConfig {
        namespace: NS.into(),
        store_validation_frequency: Duration::from_secs(1),
        concurrent_backups: 2,
        ..Default::default()
    };
    let server_client = client.clone();
    let server = tokio::spawn(async move {
        if let Err(e) =
            velero_controllers::run_server(server_client, config, std::future::pending()).await
        {
            panic!("server stopped: {e}");
        }
    });
    wait_for("the location to be Available", || async {
        let bsl = bsls.get("default").await.ok()?;
        (bsl.status?.phase? == BackupStorageLocationPhase::Available).then_some(())
    })
    .await?;
    Ok(Env {
        _cp: cp,
        s3,
        client,
        _server: server,
    })
}

async fn backup(env: &Env, name: &str, spec: Value) -> anyhow::Result<Backup> {
    support::backup_ended(&env.client, name, spec).await
}

fn store(env: &Env) -> anyhow::Result<BackupStore> {
    Ok(BackupStore::open(&LocationConfig {
        provider: "aws".into(),
        bucket: "velero".into(),
        prefix: "cluster-a".into(),
        config: [
            ("region".to_string(), "us-east-1".to_string()),
            ("s3ForcePathStyle".to_string(), "true".to_string()),
            ("s3Url".to_string(), env.s3.endpoint()),
        ]
        .into(),
        credentials: Some(env.s3.credentials_file().into_bytes()),
        ca_cert: None,
    })?)
}

async fn read(store: &BackupStore, key: &str) -> anyhow::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut reader = store.get_object(key).await?;
    let mut data = Vec::new();
    reader.read_to_end(&mut data).await?;
    Ok(data)
}

fn gunzip_json(data: &[u8]) -> anyhow::Result<Value> {
    Ok(serde_json::from_reader(flate2::read::GzDecoder::new(data))?)
}

/// Every key under the location, relative to its prefix.
async fn keys(store: &BackupStore) -> anyhow::Result<BTreeSet<String>> {
    use futures::TryStreamExt;
    let prefix = object_store::path::Path::from("cluster-a");
    let listed: Vec<_> = store.store().list(Some(&prefix)).try_collect().await?;
    Ok(listed
        .into_iter()
        .map(|m| {
            m.location
                .to_string()
                .trim_start_matches("cluster-a/")
                .to_string()
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_backup_lands_in_velero_layout_and_deletes_cleanly() -> anyhow::Result<()> {
    let env = setup().await?;
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "noise"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "skipped", "labels": {"velero.io/exclude-from-backup": "true"}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}}, "data": {"color": "blue"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "shop", "labels": {"app": "shop"}}, "stringData": {"t": "s3cr3t"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "shop"}}, "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "shop"}},
               "spec": {"selector": {"matchLabels": {"app": "shop"}}, "template": {"metadata": {"labels": {"app": "shop"}},
               "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": "noise"}}),
    ] {
        create_object(&env.client, object).await?;
    }

    // The Deployment's ReplicaSet and Pod carry its labels too; wait for them so the backup has a
    // settled set of objects to find.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), "shop");
    let pod = wait_for("the deployment's pod", || async {
        pods.list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await?;
    let replica_set = pod
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .first()
        .map(|o| o.name.clone())
        .context("pod owner")?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();

    let done = backup(&env, "shop-1", json!({ "includedNamespaces": ["shop"], "labelSelector": { "matchLabels": { "app": "shop" } } })).await?;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::Completed), "{status:?}");
    assert_eq!(status.format_version.as_deref(), Some("1.1.0"));
    assert!(
        status.start_timestamp.is_some()
            && status.completion_timestamp.is_some()
            && status.expiration.is_some()
    );
    assert_eq!(
        done.metadata.labels.unwrap_or_default()["velero.io/storage-location"],
        "default"
    );
    let annotations = done.metadata.annotations.unwrap_or_default();
    assert!(
        annotations["velero.io/source-cluster-k8s-gitversion"].starts_with("v1.20"),
        "{annotations:?}"
    );
    assert_eq!(annotations["velero.io/resource-timeout"], "10m0s");
    // The Backup records the spec as prepared, as Velero's prepareBackupRequest leaves it: the
    // labelled namespace among the excludes, the auto-excluded snapshot types, defaults.
    assert_eq!(
        done.spec.excluded_namespaces,
        Some(vec!["skipped".to_string()])
    );
    assert_eq!(
        done.spec.excluded_namespace_scoped_resources,
        Some(vec!["volumesnapshots.snapshot.storage.k8s.io".to_string()])
    );
    assert_eq!(
        done.spec.excluded_cluster_scoped_resources,
        Some(vec![
            "volumesnapshotcontents.snapshot.storage.k8s.io".to_string()
        ])
    );
    assert!(done.spec.ttl.is_some() && done.spec.csi_snapshot_timeout.is_some());

    let store = store(&env)?;
    let files = keys(&store).await?;
    for suffix in [
        "velero-backup.json",
        "shop-1.tar.gz",
        "shop-1-logs.gz",
        "shop-1-results.gz",
        "shop-1-resource-list.json.gz",
        "shop-1-volumesnapshots.json.gz",
        "shop-1-podvolumebackups.json.gz",
        "shop-1-itemoperations.json.gz",
        "shop-1-volumeinfo.json.gz",
    ] {
        assert!(
            files.contains(&format!("backups/shop-1/{suffix}")),
            "{suffix} missing from {files:?}"
        );
    }
    let tarball = read(&store, "cluster-a/backups/shop-1/shop-1.tar.gz").await?;
    let entries = velero_archive::read_all(&tarball[..])?;
    let names: BTreeSet<&str> = entries.keys().map(String::as_str).collect();
    // The label selector keeps only the labelled objects: the ConfigMap in `noise` and the
    // unlabelled defaults (ServiceAccount, root CA ConfigMap) stay out.
    let pod_entries = [
        format!("resources/pods/namespaces/shop/{pod_name}.json"),
        format!("resources/pods/v1-preferredversion/namespaces/shop/{pod_name}.json"),
        format!("resources/replicasets.apps/namespaces/shop/{replica_set}.json"),
        format!(
            "resources/replicasets.apps/v1-preferredversion/namespaces/shop/{replica_set}.json"
        ),
    ];
    let mut expected: BTreeSet<&str> = [
        "metadata/version",
        "resources/configmaps/namespaces/shop/settings.json",
        "resources/configmaps/v1-preferredversion/namespaces/shop/settings.json",
        "resources/secrets/namespaces/shop/token.json",
        "resources/secrets/v1-preferredversion/namespaces/shop/token.json",
        "resources/services/namespaces/shop/web.json",
        "resources/services/v1-preferredversion/namespaces/shop/web.json",
        "resources/deployments.apps/namespaces/shop/web.json",
        "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json",
        "resources/namespaces/cluster/shop.json",
        "resources/namespaces/v1-preferredversion/cluster/shop.json",
    ]
    .into();
    expected.extend(pod_entries.iter().map(String::as_str));
    assert_eq!(names, expected);
    let secret: Value =
        serde_json::from_slice(&entries["resources/secrets/namespaces/shop/token.json"])?;
    assert_eq!(secret["kind"], "Secret");
    assert!(secret["data"]["t"].is_string());

    let metadata: Backup = serde_json::from_slice(&store.get_backup_metadata("shop-1").await?)?;
    assert_eq!(
        metadata.status.and_then(|s| s.phase),
        Some(BackupPhase::Completed)
    );
    let list = gunzip_json(
        &read(
            &store,
            "cluster-a/backups/shop-1/shop-1-resource-list.json.gz",
        )
        .await?,
    )?;
    assert_eq!(list["v1/ConfigMap"], json!(["shop/settings"]));
    assert_eq!(list["v1/Namespace"], json!(["shop"]));
    let results = gunzip_json(&read(&store, "cluster-a/backups/shop-1/shop-1-results.gz").await?)?;
    assert_eq!(results["errors"], json!({}));

    // A second backup whose name is a prefix of the first's, then a deletion of the first.
    let other = backup(&env, "shop", json!({ "includedNamespaces": ["noise"] })).await?;
    assert_eq!(
        other.status.and_then(|s| s.phase),
        Some(BackupPhase::Completed)
    );
    let requests: Api<DeleteBackupRequest> = Api::namespaced(env.client.clone(), NS);
    let request: DeleteBackupRequest = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": { "name": "delete-shop-1", "namespace": NS, "labels": { "velero.io/backup-name": "shop-1" } },
        "spec": { "backupName": "shop-1" },
    }))?;
    requests.create(&PostParams::default(), &request).await?;
    let backups: Api<Backup> = Api::namespaced(env.client.clone(), NS);
    wait_for("backup shop-1 to be deleted", || async {
        backups
            .get_opt("shop-1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    let left = keys(&store).await?;
    assert!(
        !left.iter().any(|k| k.starts_with("backups/shop-1/")),
        "{left:?}"
    );
    assert!(
        left.contains("backups/shop/velero-backup.json"),
        "the other backup must survive: {left:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backups_fail_with_velero_reasons_and_leave_only_honest_traces() -> anyhow::Result<()> {
    let env = setup().await?;
    let mixed = backup(&env, "mixed", json!({ "includedResources": ["pods"], "includedClusterScopedResources": ["storageclasses"] })).await?;
    let status = mixed.status.unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::FailedValidation));
    assert!(
        status
            .validation_errors
            .unwrap_or_default()
            .iter()
            .any(|e| e.contains("old filter parameters"))
    );

    let both = backup(&env, "both-selectors", json!({ "labelSelector": {"matchLabels": {"a": "b"}}, "orLabelSelectors": [{"matchLabels": {"c": "d"}}] })).await?;
    let errors = both
        .status
        .unwrap_or_default()
        .validation_errors
        .unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("encountered labelSelector as well as orLabelSelectors")),
        "{errors:?}"
    );

    let nowhere = backup(&env, "nowhere", json!({ "storageLocation": "missing" })).await?;
    let errors = nowhere
        .status
        .unwrap_or_default()
        .validation_errors
        .unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("error getting backup storage location")),
        "{errors:?}"
    );

    // A read-only location refuses new backups.
    let bsls: Api<BackupStorageLocation> = Api::namespaced(env.client.clone(), NS);
    bsls.patch(
        "default",
        &Default::default(),
        &kube::api::Patch::Merge(&json!({ "spec": { "accessMode": "ReadOnly" } })),
    )
    .await?;
    let read_only = backup(&env, "read-only", json!({})).await?;
    let errors = read_only
        .status
        .unwrap_or_default()
        .validation_errors
        .unwrap_or_default();
    assert!(
        errors.iter().any(|e| e.contains("read-only mode")),
        "{errors:?}"
    );
    bsls.patch(
        "default",
        &Default::default(),
        &kube::api::Patch::Merge(&json!({ "spec": { "accessMode": "ReadWrite" } })),
    )
    .await?;

    let store = store(&env)?;
    assert!(
        keys(&store).await?.is_empty(),
        "failed validations must write nothing"
    );

    // A name already present in the store is refused, and what is there is left alone.
    let first = backup(&env, "dup", json!({ "includedNamespaces": ["default"] })).await?;
    assert_eq!(
        first.status.and_then(|s| s.phase),
        Some(BackupPhase::Completed)
    );
    let before = read(&store, "cluster-a/backups/dup/velero-backup.json").await?;
    let backups: Api<Backup> = Api::namespaced(env.client.clone(), NS);
    backups.delete("dup", &DeleteParams::default()).await?;
    wait_for("the dup CR to go", || async {
        backups.get_opt("dup").await.ok()?.is_none().then_some(())
    })
    .await?;
    let again = backup(&env, "dup", json!({ "includedNamespaces": ["default"] })).await?;
    let status = again.status.unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        status.failure_reason.as_deref(),
        Some("backup already exists in object storage")
    );
    assert_eq!(
        read(&store, "cluster-a/backups/dup/velero-backup.json").await?,
        before
    );

    // A backup that fails while writing (its tarball's key is taken by a directory in the
    // store's file system) still uploads its log, results and a Failed velero-backup.json, as
    // Velero does, and no tarball that could pass for a backup.
    std::fs::create_dir_all(
        env.s3
            .root()
            .join("velero/cluster-a/backups/broken/broken.tar.gz"),
    )?;
    let broken = backup(&env, "broken", json!({ "includedNamespaces": ["default"] })).await?;
    let status = broken.status.unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    let reason = status.failure_reason.unwrap_or_default();
    assert!(reason.contains("writing the backup tarball"), "{reason}");
    let metadata: Value = serde_json::from_slice(
        &read(&store, "cluster-a/backups/broken/velero-backup.json").await?,
    )?;
    assert_eq!(metadata["status"]["phase"], "Failed");
    assert_eq!(metadata["status"]["failureReason"], reason.as_str());
    let log_gz = read(&store, "cluster-a/backups/broken/broken-logs.gz").await?;
    let log = std::io::read_to_string(flate2::read::GzDecoder::new(&log_gz[..]))?;
    assert!(
        log.contains("level=error msg=\"backup failed\"")
            && log.contains("writing the backup tarball"),
        "{log}"
    );
    let results = gunzip_json(&read(&store, "cluster-a/backups/broken/broken-results.gz").await?)?;
    assert!(
        results["errors"]["velero"][0]
            .as_str()
            .is_some_and(|e| e.contains("backup failed")),
        "{results}"
    );
    let broken_keys: Vec<String> = keys(&store)
        .await?
        .into_iter()
        .filter(|k| k.starts_with("backups/broken/"))
        .collect();
    assert_eq!(
        broken_keys,
        [
            "backups/broken/broken-logs.gz",
            "backups/broken/broken-results.gz",
            "backups/broken/velero-backup.json"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_fails_backups_left_in_progress() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    let crds = velero_install::InstallOptions {
        crds_only: true,
        ..Default::default()
    };
    velero_install::apply(&client, &crds.render(), &mut std::io::sink()).await?;
    create_object(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    // Velero's CRDs have no status subresource, so a Backup can be created mid-flight, as a
    // crashed server leaves it.
    let api: Api<Backup> = Api::namespaced(client.clone(), NS);
    let interrupted: Backup = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup", "metadata": { "name": "interrupted", "namespace": NS },
        "spec": {}, "status": { "phase": "InProgress" },
    }))?;
    api.create(&PostParams::default(), &interrupted).await?;
    velero_controllers::backup::fail_interrupted_backups(
        &client,
        NS,
        velero_controllers::backup::RESTART_FAILURE,
    )
    .await?;
    let status = api.get("interrupted").await?.status.unwrap_or_default();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        status.failure_reason.as_deref(),
        Some(velero_controllers::backup::RESTART_FAILURE)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_locations_go_unavailable_with_a_reason_and_refuse_backups() -> anyhow::Result<()>
{
    let env = setup().await?;
    // A port nothing listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(env.client.clone(), NS);
    let wrong = env
        .s3
        .credentials_file()
        .replace(env.s3.secret_key(), "not-the-secret");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": "wrong-credentials", "namespace": NS }, "stringData": { "cloud": wrong },
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    let location = |name: &str,
                    provider: &str,
                    endpoint: String,
                    secret: &str|
     -> anyhow::Result<BackupStorageLocation> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": { "name": name, "namespace": NS },
            "spec": { "provider": provider, "objectStorage": { "bucket": "velero" },
                "credential": { "name": secret, "key": "cloud" },
                "config": { "region": "us-east-1", "s3ForcePathStyle": "true", "s3Url": endpoint } },
        }))?)
    };
    let bsls: Api<BackupStorageLocation> = Api::namespaced(env.client.clone(), NS);
    let cases = [
        (
            "unknown",
            location("unknown", "s4", env.s3.endpoint(), "cloud-credentials")?,
            "aws, azure, gcp, local",
        ),
        (
            "unreachable",
            location(
                "unreachable",
                "aws",
                format!("http://127.0.0.1:{closed}"),
                "cloud-credentials",
            )?,
            "cannot reach",
        ),
        (
            "denied",
            location(
                "denied",
                "velero.io/aws",
                env.s3.endpoint(),
                "wrong-credentials",
            )?,
            "access denied",
        ),
    ];
    for (name, bsl, want) in &cases {
        bsls.create(&PostParams::default(), bsl).await?;
        let message = wait_for(&format!("location {name} to be Unavailable"), || async {
            let status = bsls.get(name).await.ok()?.status?;
            (status.phase? == BackupStorageLocationPhase::Unavailable)
                .then_some(status.message.unwrap_or_default())
        })
        .await?;
        assert!(
            message.to_lowercase().contains(want),
            "{name}: {message:?} should mention {want:?}"
        );
        assert!(
            !message.contains("not-the-secret") && !message.contains(env.s3.secret_key()),
            "no secret in {message:?}"
        );
    }
    for (name, _, _) in &cases {
        let refused = backup(
            &env,
            &format!("to-{name}"),
            json!({ "storageLocation": name }),
        )
        .await?;
        let status = refused.status.unwrap_or_default();
        assert_eq!(status.phase, Some(BackupPhase::FailedValidation), "{name}");
        let errors = status.validation_errors.unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("is in Unavailable status")),
            "{name}: {errors:?}"
        );
    }
    assert!(keys(&store(&env)?).await?.is_empty(), "nothing was written");
    Ok(())
}

/// Two backups of the same namespace: the second waits Queued while the first runs and starts
/// when the first ends, woken by it (nothing polls for a free slot, so without the wake it would
/// stay Queued and this test would time out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_backup_queues_and_starts_when_the_first_ends() -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use kube::runtime::{WatchStreamExt, watcher};
    let env = setup().await?;
    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "queue"}}),
    )
    .await?;
    // Enough objects that the first backup is still running when the second arrives.
    let filler = "x".repeat(4096);
    let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..1500)
        .map(|i| {
            let (client, filler) = (env.client.clone(), filler.clone());
            async move {
                create_object(
                    &client,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "queue"},
                    "data": {"filler": filler}}),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    let api: Api<Backup> = Api::namespaced(env.client.clone(), NS);
    let phases_of = |name: &str| {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        watcher(api.clone(), config)
            .applied_objects()
            .map_ok(|b: Backup| b.phase())
    };
    let spec = json!({ "includedNamespaces": ["queue"] });
    let mut first_phases = std::pin::pin!(phases_of("first"));
    let new = |name: &str| -> anyhow::Result<Backup> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": { "name": name, "namespace": NS }, "spec": spec,
        }))?)
    };
    api.create(&PostParams::default(), &new("first")?).await?;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(phase) = first_phases.try_next().await? {
            if phase == Some(BackupPhase::InProgress) {
                return anyhow::Ok(());
            }
            anyhow::ensure!(
                !phase.is_some_and(|p| p.is_terminal()),
                "the first backup ended before the second was created: {phase:?}"
            );
        }
        anyhow::bail!("the watch of the first backup ended")
    })
    .await
    .context("the first backup never ran")??;

    let mut second_phases = std::pin::pin!(phases_of("second"));
    api.create(&PostParams::default(), &new("second")?).await?;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(phase) = second_phases.try_next().await? {
            if seen.last() != Some(&phase) {
                seen.push(phase);
            }
            if phase.is_some_and(|p| p.is_terminal()) {
                break;
            }
        }
        anyhow::Ok(())
    })
    .await
    .with_context(|| format!("the second backup did not end; its phases: {seen:?}"))??;
    assert!(
        seen.contains(&Some(BackupPhase::Queued)),
        "the second backup waited Queued: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&Some(BackupPhase::Completed)), "{seen:?}");
    let (first, second) = (api.get("first").await?, api.get("second").await?);
    assert_eq!(first.phase(), Some(BackupPhase::Completed));
    let ended = first.status.and_then(|s| s.completion_timestamp);
    let started = second.status.and_then(|s| s.start_timestamp);
    assert!(
        ended.is_some() && started >= ended,
        "the second started ({started:?}) after the first ended ({ended:?})"
    );
    Ok(())
}
