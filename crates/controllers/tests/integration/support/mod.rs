//! Shared by the restore tests: a control plane with a `local` location and the server running,
//! and helpers to create backups and restores and read what they uploaded.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use velero_api::v1::{Backup, BackupPhase, Restore, RestorePhase};
use velero_test_harness::ControlPlane;

const NS: &str = "velero";

pub struct Env {
    pub cp: ControlPlane,
    pub client: kube::Client,
    /// The `local` location's directory.
    pub bucket: std::path::PathBuf,
    _bucket: Option<tempfile::TempDir>,
    pub server: tokio::task::JoinHandle<()>,
}

/// A control plane with a `local` location and the server running in this process.
pub async fn setup() -> anyhow::Result<Env> {
    let dir = tempfile::tempdir()?;
    let mut env = setup_with(dir.path(), |_| {}).await?;
    env._bucket = Some(dir);
    Ok(env)
}

/// [`setup`] with the location in `bucket` (two clusters may share one) and server settings
/// adjusted by `tune`.
pub async fn setup_with(
    bucket: &Path,
    tune: impl FnOnce(&mut velero_controllers::ServerConfig),
) -> anyhow::Result<Env> {
    setup_on(ControlPlane::start().await?, bucket, tune).await
}

/// [`setup`] on a control plane with a real node, for tests whose pods must run.
pub async fn setup_with_node() -> anyhow::Result<Env> {
    setup_with_node_and(|_| {}).await
}

/// [`setup_with_node`] with server settings adjusted by `tune`.
pub async fn setup_with_node_and(
    tune: impl FnOnce(&mut velero_controllers::ServerConfig),
) -> anyhow::Result<Env> {
    let dir = tempfile::tempdir()?;
    let mut env = setup_on(ControlPlane::start_with_node().await?, dir.path(), tune).await?;
    env._bucket = Some(dir);
    Ok(env)
}

async fn setup_on(
    cp: ControlPlane,
    bucket: &Path,
    tune: impl FnOnce(&mut velero_controllers::ServerConfig),
) -> anyhow::Result<Env> {
    let client = cp.client().await?;
    let options = velero_install::InstallOptions {
        provider: Some("local".into()),
        bucket: Some(bucket.display().to_string()),
        no_secret: true,
        use_volume_snapshots: false,
        ..Default::default()
    };
    velero_install::apply(&client, &options.render(), &mut std::io::sink()).await?;
    let config = velero_controllers::ServerConfig {
        namespace: NS.into(),
        store_validation_frequency: Duration::from_secs(1),
        resource_timeout: Duration::from_secs(60),
        terminating_resource_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let mut config = config;
    tune(&mut config);
    let server_client = client.clone();
    let server = tokio::spawn(async move {
        if let Err(e) =
            velero_controllers::run_server(server_client, config, std::future::pending()).await
        {
            panic!("server stopped: {e}");
        }
    });
    let bsls: Api<velero_api::v1::BackupStorageLocation> = Api::namespaced(client.clone(), NS);
    wait_for("the location to be Available", || async {
        let bsl = bsls.get("default").await.ok()?;
        (bsl.status?.phase? == velero_api::v1::BackupStorageLocationPhase::Available).then_some(())
    })
    .await?;
    Ok(Env {
        cp,
        client,
        bucket: bucket.to_path_buf(),
        _bucket: None,
        server,
    })
}

pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn get(client: &kube::Client, path: &str) -> Option<Value> {
    let request = http::Request::get(path).body(Vec::new()).ok()?;
    client.request::<Value>(request).await.ok()
}

pub async fn delete(client: &kube::Client, path: &str) -> anyhow::Result<()> {
    let request = http::Request::delete(path).body(Vec::new())?;
    match client.request::<Value>(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes and waits until each path is gone (namespaces take a few seconds to finalize).
pub async fn delete_all(client: &kube::Client, paths: &[String]) -> anyhow::Result<()> {
    for path in paths {
        delete(client, path).await?;
    }
    for path in paths {
        wait_for(&format!("{path} to be deleted"), || async {
            get(client, path).await.is_none().then_some(())
        })
        .await?;
    }
    Ok(())
}

pub async fn backup(client: &kube::Client, name: &str, spec: Value) -> anyhow::Result<Backup> {
    let done = backup_ended(client, name, spec).await?;
    anyhow::ensure!(
        done.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed),
        "backup {name} did not complete: {:?}",
        done.status
    );
    Ok(done)
}

/// Waits until every pod of `names` in `namespace` is Running as the API server reports it.
pub async fn wait_running(
    client: &kube::Client,
    namespace: &str,
    names: &[&str],
) -> anyhow::Result<()> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    wait_for(&format!("pods {names:?} to run"), || async {
        let list = pods.list(&Default::default()).await.ok()?;
        let running: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        names
            .iter()
            .all(|n| running.iter().any(|r| r == n))
            .then_some(())
    })
    .await
}

/// Deletes backup `name` as `velero backup delete` does (a DeleteBackupRequest) and waits until
/// it is gone.
pub async fn delete_backup(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let requests: Api<velero_api::v1::DeleteBackupRequest> = Api::namespaced(client.clone(), NS);
    let request: velero_api::v1::DeleteBackupRequest = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": { "name": format!("delete-{name}"), "namespace": NS,
            "labels": { "velero.io/backup-name": name } },
        "spec": { "backupName": name },
    }))?;
    requests.create(&PostParams::default(), &request).await?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), NS);
    wait_for(&format!("backup {name} to be deleted"), || async {
        backups.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
}

/// Creates a Backup and waits for it to end, whatever its phase.
pub async fn backup_ended(
    client: &kube::Client,
    name: &str,
    spec: Value,
) -> anyhow::Result<Backup> {
    let api: Api<Backup> = Api::namespaced(client.clone(), NS);
    let object: Backup = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": { "name": name, "namespace": NS }, "spec": spec,
    }))?;
    api.create(&PostParams::default(), &object).await?;
    wait_for(&format!("backup {name} to finish"), || async {
        let b = api.get(name).await.ok()?;
        b.status.as_ref()?.phase?.is_terminal().then_some(b)
    })
    .await
}

/// A backup's uploaded log (text), results and tarball entries.
pub fn backup_files(
    env: &Env,
    name: &str,
) -> anyhow::Result<(String, Value, std::collections::BTreeMap<String, Vec<u8>>)> {
    let dir = env.bucket.join("backups").join(name);
    let log = gunzip_text(&dir.join(format!("{name}-logs.gz")))?;
    let results = gunzip_json(&dir.join(format!("{name}-results.gz")))?;
    let tarball = std::fs::read(dir.join(format!("{name}.tar.gz")))?;
    let entries = velero_archive::read_all(&tarball[..])?;
    Ok((log, results, entries))
}

pub async fn restore(client: &kube::Client, name: &str, spec: Value) -> anyhow::Result<Restore> {
    let api: Api<Restore> = Api::namespaced(client.clone(), NS);
    let object: Restore = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": { "name": name, "namespace": NS }, "spec": spec,
    }))?;
    api.create(&PostParams::default(), &object).await?;
    wait_for(&format!("restore {name} to finish"), || async {
        let r = api.get(name).await.ok()?;
        r.status.as_ref()?.phase?.is_terminal().then_some(r)
    })
    .await
}

pub fn phase(r: &Restore) -> Option<RestorePhase> {
    r.status.as_ref().and_then(|s| s.phase)
}

/// A gzipped text file of the location, such as an operation's log.
pub fn gunzip_text(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    Ok(std::io::read_to_string(flate2::read::GzDecoder::new(file))?)
}

/// A gzipped JSON file of the location (results, lists of PodVolumeBackups, volume info).
pub fn gunzip_json(path: &Path) -> anyhow::Result<Value> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_reader(flate2::read::GzDecoder::new(file))?)
}

/// The uploaded resource list and results of a restore.
pub fn restore_files(env: &Env, name: &str) -> anyhow::Result<(Value, Value)> {
    let dir = env.bucket.join("restores").join(name);
    let list = gunzip_json(&dir.join(format!("restore-{name}-resource-list.json.gz")))?;
    let results = gunzip_json(&dir.join(format!("restore-{name}-results.gz")))?;
    anyhow::ensure!(
        dir.join(format!("restore-{name}-logs.gz")).exists(),
        "no restore log"
    );
    Ok((list, results))
}
