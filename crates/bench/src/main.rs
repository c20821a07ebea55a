//! `velero-bench [--objects N]`: seeds N objects of several kinds into a fresh local control plane,
//! then in one run measures (a) the raw time to list them with plain paginated GETs, (b) a full
//! backup of them by `velero server`, (c) the raw time to create them again with plain concurrent
//! POSTs after their namespaces are deleted, then, into the namespaces emptied again, (e) a dry
//! run of the restore and (d) the restore of the backup by `velero server`. It prints objects/s,
//! the server's peak RSS and the ratios (b)/(a), (d)/(c) and (e)/(d). It measures; it asserts
//! nothing.
//!
//! `velero-bench --volume [--volume-mb N] [--volume-files N] [--work-dir DIR] [--keep]`: the volume half
//! instead (no control plane), see [`volume`].
//!
//! `velero-bench --hooks [--hook-pods N]`: the hooks half, pods with backup hooks on a real node
//! against Velero 1.18.1 itself, see [`hooks`].
//!
//! `velero-bench --pod-volumes [--volumes-per-pod N]`: the API server's load from the server and
//! node agent while they back up and restore pod volumes on a real node, see [`pod_volumes`].
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use velero_test_harness::ControlPlane;

mod hooks;
mod pod_volumes;
mod volume;

const NAMESPACES: usize = 10;
/// Requests in flight for the raw creates: the restore's own default window.
const IN_FLIGHT: usize = 32;

struct Args {
    objects: usize,
    velero: PathBuf,
}

enum Mode {
    Objects(Args),
    Volume(volume::VolumeArgs),
    Hooks(hooks::HookArgs, PathBuf),
    PodVolumes(pod_volumes::PodVolumeArgs, PathBuf),
}

const USAGE: &str = "usage: velero-bench [--objects N] [--velero PATH] | velero-bench --volume [--volume-mb N] [--volume-files N] [--work-dir DIR] [--keep] | velero-bench --hooks [--hook-pods N] [--velero PATH] | velero-bench --pod-volumes [--volumes-per-pod N] [--velero PATH]";

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .with_context(|| format!("{flag} needs a number"))?
        .parse()
        .with_context(|| format!("{flag} needs a number"))
}

fn args() -> anyhow::Result<Mode> {
    let mut objects = 10_000;
    let mut velero = std::env::current_exe()?.with_file_name("velero");
    // Any of the volume flags selects the volume half: they mean nothing to the object half.
    let mut volume = false;
    let mut volume_args = volume::VolumeArgs {
        mb: 2048,
        files: None,
        work_dir: None,
        keep: false,
    };
    let mut hook_args: Option<hooks::HookArgs> = None;
    let mut pod_volume_args: Option<pod_volumes::PodVolumeArgs> = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--hooks" => {
                hook_args.get_or_insert(hooks::HookArgs { pods: 50 });
            }
            "--hook-pods" => {
                hook_args.get_or_insert(hooks::HookArgs { pods: 50 }).pods =
                    number(&arg, it.next())?;
            }
            "--pod-volumes" => {
                pod_volume_args.get_or_insert(pod_volumes::PodVolumeArgs { volumes_per_pod: 5 });
            }
            "--volumes-per-pod" => {
                pod_volume_args
                    .get_or_insert(pod_volumes::PodVolumeArgs { volumes_per_pod: 5 })
                    .volumes_per_pod = number(&arg, it.next())?;
            }
            "--objects" => objects = number(&arg, it.next())?,
            "--velero" => velero = it.next().context("--velero needs a path")?.into(),
            "--volume" => volume = true,
            "--volume-mb" => {
                volume = true;
                volume_args.mb = number(&arg, it.next())?;
            }
            "--volume-files" => {
                volume = true;
                volume_args.files = Some(number(&arg, it.next())?);
            }
            "--work-dir" => {
                volume = true;
                volume_args.work_dir = Some(it.next().context("--work-dir needs a path")?.into());
            }
            "--keep" => {
                volume = true;
                volume_args.keep = true;
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    if volume {
        return Ok(Mode::Volume(volume_args));
    }
    if !velero.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p velero-cli)",
            velero.display()
        );
    }
    if let Some(args) = pod_volume_args {
        return Ok(Mode::PodVolumes(args, velero));
    }
    if let Some(hook_args) = hook_args {
        return Ok(Mode::Hooks(hook_args, velero));
    }
    Ok(Mode::Objects(Args { objects, velero }))
}

/// The seeded mix: what a namespace full of applications holds.
fn object(i: usize) -> (String, Value) {
    let ns = format!("bench-{}", i % NAMESPACES);
    let name = format!("obj-{i}");
    let labels = json!({ "app": format!("app-{}", i % 50), "tier": "bench" });
    match i % 20 {
        0..=7 => (
            format!("/api/v1/namespaces/{ns}/configmaps"),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name, "labels": labels },
                "data": { "config.yaml": format!("replicas: {i}\nendpoint: http://svc-{i}.{ns}.svc:8080\nfeature: [a, b, c]\n") },
            }),
        ),
        8..=13 => (
            format!("/api/v1/namespaces/{ns}/secrets"),
            json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name, "labels": labels },
                "type": "Opaque", "stringData": { "password": format!("secret-{i}-0123456789abcdef") },
            }),
        ),
        14..=16 => (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": name, "labels": labels },
                "rules": [{ "apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list"] }],
            }),
        ),
        _ => (
            format!("/apis/bench.velero.io/v1/namespaces/{ns}/widgets"),
            json!({
                "apiVersion": "bench.velero.io/v1", "kind": "Widget", "metadata": { "name": name, "labels": labels },
                "spec": { "size": i, "color": "blue", "owners": ["a", "b"] },
            }),
        ),
    }
}

async fn post(client: &kube::Client, path: &str, body: &Value) -> anyhow::Result<()> {
    for attempt in 0..8u32 {
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?)?;
        match client.request::<Value>(request).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            Err(kube::Error::Api(s)) if matches!(s.code, 429 | 500 | 503 | 504) && attempt < 7 => {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("POST {path}")),
        }
    }
    Ok(())
}

async fn seed(client: &kube::Client, objects: usize) -> anyhow::Result<()> {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.bench.velero.io" },
        "spec": { "group": "bench.velero.io", "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }] },
    });
    post(
        client,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await?;
    velero_install::wait_for_crds_established(
        client,
        &["widgets.bench.velero.io".to_string()],
        Duration::from_secs(60),
    )
    .await?;
    let took = create_all(client, objects).await?;
    eprintln!("seeded {objects} objects in {:.1}s", took.as_secs_f64());
    Ok(())
}

/// The namespaces, then every object with plain POSTs, [`IN_FLIGHT`] at a time.
async fn create_all(client: &kube::Client, objects: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for n in 0..NAMESPACES {
        post(client, "/api/v1/namespaces", &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": format!("bench-{n}") } })).await?;
    }
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..objects)
        .map(|i| async move {
            let (path, body) = object(i);
            post(client, &path, &body).await
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(started.elapsed())
}

/// Deletes the bench namespaces and waits until the namespace controller has emptied them.
async fn delete_namespaces(client: &kube::Client) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for n in 0..NAMESPACES {
        let request =
            http::Request::delete(format!("/api/v1/namespaces/bench-{n}")).body(Vec::new())?;
        client.request_text(request).await?;
    }
    for n in 0..NAMESPACES {
        loop {
            let request =
                http::Request::get(format!("/api/v1/namespaces/bench-{n}")).body(Vec::new())?;
            match client.request_text(request).await {
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    Ok(started.elapsed())
}

/// Polls a Velero object until it reaches a final phase; returns the phase and the object.
async fn wait_done(client: &kube::Client, path: &str) -> anyhow::Result<(String, Value)> {
    loop {
        let object: Value = client
            .request(http::Request::get(path).body(Vec::new())?)
            .await?;
        let phase = object
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let done = [
            "Completed",
            "PartiallyFailed",
            "Failed",
            "FailedValidation",
            "DryRunCompleted",
        ];
        if done.contains(&phase.as_str()) {
            return Ok((phase, object));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(serde::Deserialize)]
struct Page {
    metadata: PageMeta,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PageMeta {
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// (a): every type a backup of the bench namespaces lists, read page by page (500 items), one
/// request at a time, reading nothing of the bodies but the item count and continue token.
async fn raw_list(client: &kube::Client) -> anyhow::Result<(Duration, usize)> {
    let discovery = velero_cluster::discovery::discover(client).await?;
    let started = Instant::now();
    let mut items = 0;
    for r in discovery.resources.iter().filter(|r| r.namespaced) {
        for n in 0..NAMESPACES {
            let path = r.list_path(Some(&format!("bench-{n}")));
            let mut token: Option<String> = None;
            loop {
                let query = match &token {
                    Some(t) => format!(
                        "{path}?limit=500&continue={}",
                        form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
                    ),
                    None => format!("{path}?limit=500"),
                };
                let body = client
                    .request_text(http::Request::get(query).body(Vec::new())?)
                    .await?;
                let page: Page = serde_json::from_str(&body)?;
                items += page.items.len();
                token = page.metadata.continue_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
    }
    Ok((started.elapsed(), items))
}

/// A process (server, node agent) stopped when the benchmark is done with it, or fails.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM in /proc status")
}

/// User plus system CPU seconds a process has used so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    Ok(ticks / 100.0)
}

fn kubectl(cp: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    checked(cp.kubectl().args(args))
}

/// Waits until `pods` pods of `namespace` are Running (10 minutes at most).
pub(crate) async fn wait_running(
    client: &kube::Client,
    namespace: &str,
    pods: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list: Value = client
            .request(
                http::Request::get(format!("/api/v1/namespaces/{namespace}/pods"))
                    .body(Vec::new())?,
            )
            .await?;
        let running = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        if running == pods {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {running} of {pods} pods run in {namespace} after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `cmd` and fails with what it printed when it fails.
pub(crate) fn checked(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some(volume::STEP) {
        return volume::step(&argv[1..]);
    }
    match args()? {
        Mode::Objects(args) => tokio::runtime::Runtime::new()
            .context("starting the Tokio runtime")?
            .block_on(objects(args)),
        Mode::Volume(args) => volume::run(&args),
        Mode::Hooks(args, velero) => tokio::runtime::Runtime::new()
            .context("starting the Tokio runtime")?
            .block_on(hooks::run(&args, &velero)),
        Mode::PodVolumes(args, velero) => tokio::runtime::Runtime::new()
            .context("starting the Tokio runtime")?
            .block_on(pod_volumes::run(&args, &velero)),
    }
}

async fn objects(args: Args) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    seed(&client, args.objects).await?;

    let (raw, listed) = raw_list(&client).await?;
    eprintln!(
        "raw paginated list: {listed} items in {:.2}s",
        raw.as_secs_f64()
    );

    let work = tempfile::tempdir()?;
    let bucket = work.path().join("backups");
    let velero = |extra: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(&args.velero)
            .env("KUBECONFIG", cp.kubeconfig_path())
            .args(extra)
            .output()?;
        if !out.status.success() {
            bail!("velero {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    let bucket_arg = bucket.to_string_lossy().into_owned();
    velero(&[
        "install",
        "--provider",
        "local",
        "--bucket",
        &bucket_arg,
        "--no-secret",
        "--use-volume-snapshots=false",
    ])?;
    let server = KillOnDrop(
        Command::new(&args.velero)
            .env("KUBECONFIG", cp.kubeconfig_path())
            .args([
                "server",
                "--store-validation-frequency",
                "1s",
                "--log-level",
                "debug",
            ])
            .env(
                "VELERO_LOG",
                "velero_controllers=debug,velero_backup=debug,velero_restore=debug,warn",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.path().join("server.log"))?)
            .spawn()?,
    );
    velero_test_harness::install::location_available(&cp).await?;
    let idle_rss = peak_rss_kib(server.0.id())?;

    let cpu_before = cpu_seconds(server.0.id())?;
    let started = Instant::now();
    velero(&[
        "backup",
        "create",
        "bench",
        "--include-namespaces",
        "bench-*",
    ])?;
    // Polled through the API, not kubectl: a process per poll would steal CPU from the server.
    let (phase, _) = wait_done(
        &client,
        "/apis/velero.io/v1/namespaces/velero/backups/bench",
    )
    .await?;
    let backup = started.elapsed();
    let peak_rss = peak_rss_kib(server.0.id())?;
    let cpu = cpu_seconds(server.0.id())? - cpu_before;
    let items: usize = kubectl(
        &cp,
        &[
            "-n",
            "velero",
            "get",
            "backup",
            "bench",
            "-o",
            "jsonpath={.status.progress.itemsBackedUp}",
        ],
    )?
    .parse()
    .unwrap_or(0);
    let tarball = std::fs::metadata(bucket.join("backups/bench/bench.tar.gz"))
        .map(|m| m.len())
        .unwrap_or(0);

    // The restore half: (c) plain concurrent creates of the same objects, (d) velero restore,
    // each into namespaces just deleted.
    let deleted = delete_namespaces(&client).await?;
    eprintln!(
        "deleted the bench namespaces in {:.1}s",
        deleted.as_secs_f64()
    );
    let raw_create = create_all(&client, args.objects).await?;
    eprintln!("raw concurrent creates: {:.2}s", raw_create.as_secs_f64());
    delete_namespaces(&client).await?;
    // (e) a dry run of the same restore, then (d) the restore, both into the bench namespaces
    // existing and empty, so that every dry-run create goes through the API server's admission
    // and validation as the real one does (into missing namespaces it would be refused at once).
    for n in 0..NAMESPACES {
        post(&client, "/api/v1/namespaces", &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": format!("bench-{n}") } })).await?;
    }
    let started = Instant::now();
    velero(&[
        "restore",
        "create",
        "bench-dry-run",
        "--from-backup",
        "bench",
        "--dry-run",
    ])?;
    let (dry_run_phase, _) = wait_done(
        &client,
        "/apis/velero.io/v1/namespaces/velero/restores/bench-dry-run",
    )
    .await?;
    let dry_run_time = started.elapsed();
    // Peak RSS from here on: writing 5 to clear_refs resets VmHWM (Linux 4.0+).
    let _ = std::fs::write(format!("/proc/{}/clear_refs", server.0.id()), "5");
    let cpu_before = cpu_seconds(server.0.id())?;
    let started = Instant::now();
    velero(&[
        "restore",
        "create",
        "bench-restore",
        "--from-backup",
        "bench",
    ])?;
    let (restore_phase, restore_object) = wait_done(
        &client,
        "/apis/velero.io/v1/namespaces/velero/restores/bench-restore",
    )
    .await?;
    let restore_time = started.elapsed();
    let restore_rss = peak_rss_kib(server.0.id())?;
    let restore_cpu = cpu_seconds(server.0.id())? - cpu_before;
    let restored = restore_object
        .pointer("/status/progress/itemsRestored")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let restore_warnings = restore_object
        .pointer("/status/warnings")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let restore_errors = restore_object
        .pointer("/status/errors")
        .and_then(Value::as_u64)
        .unwrap_or(0);

    if std::env::var_os("VELERO_BENCH_SERVER_LOG").is_some() {
        eprintln!(
            "{}",
            std::fs::read_to_string(work.path().join("server.log")).unwrap_or_default()
        );
    }
    println!("velero-rs backup benchmark");
    println!("  seeded objects:            {}", args.objects);
    println!("  backup phase:              {phase}");
    println!("  items backed up:           {items}");
    println!(
        "  (a) raw paginated list:    {:.2} s ({listed} items, {:.0} objects/s)",
        raw.as_secs_f64(),
        listed as f64 / raw.as_secs_f64()
    );
    println!(
        "  (b) velero-rs backup:      {:.2} s ({:.0} objects/s, tarball {:.1} MiB)",
        backup.as_secs_f64(),
        items as f64 / backup.as_secs_f64(),
        tarball as f64 / 1048576.0
    );
    println!(
        "  ratio (b)/(a):             {:.2}",
        backup.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  server peak RSS:           {:.1} MiB (idle {:.1} MiB)",
        peak_rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    println!("  server CPU during backup:  {cpu:.2} s");
    println!("velero-rs restore benchmark");
    println!(
        "  restore phase:             {restore_phase} ({restore_warnings} warnings, {restore_errors} errors)"
    );
    println!("  items restored:            {restored}");
    println!(
        "  (c) raw concurrent POSTs:  {:.2} s ({} objects, {IN_FLIGHT} in flight, {:.0} objects/s)",
        raw_create.as_secs_f64(),
        args.objects,
        args.objects as f64 / raw_create.as_secs_f64()
    );
    println!(
        "  (d) velero-rs restore:     {:.2} s ({:.0} objects/s)",
        restore_time.as_secs_f64(),
        restored as f64 / restore_time.as_secs_f64()
    );
    println!(
        "  ratio (d)/(c):             {:.2}",
        restore_time.as_secs_f64() / raw_create.as_secs_f64()
    );
    println!(
        "  server peak RSS:           {:.1} MiB",
        restore_rss as f64 / 1024.0
    );
    println!("  server CPU during restore: {restore_cpu:.2} s");
    println!(
        "  (e) velero-rs dry run:     {:.2} s, {dry_run_phase} (same restore, --dry-run, before (d))",
        dry_run_time.as_secs_f64()
    );
    println!(
        "  ratio (e)/(d):             {:.2}",
        dry_run_time.as_secs_f64() / restore_time.as_secs_f64()
    );
    Ok(())
}
