//! Running the `velero` binary against a test control plane.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// `velero` talking to the cluster of `kubeconfig`, never to the developer's own cluster or
/// client config.
pub fn velero(kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_velero"));
    cmd.env_remove("VELERO_NAMESPACE")
        .env("HOME", env!("CARGO_TARGET_TMPDIR"))
        .env("KUBECONFIG", kubeconfig);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("velero runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh control plane with Velero's CRDs (installed by `velero install --crds-only`) and the
/// `velero` namespace, but no location and no server: what the CLI tests start from.
#[allow(dead_code)]
pub async fn control_plane_with_crds() -> anyhow::Result<velero_test_harness::ControlPlane> {
    let cp = velero_test_harness::ControlPlane::start().await?;
    let crds = run(velero(cp.kubeconfig_path()).args(["install", "--crds-only"]));
    anyhow::ensure!(crds.status.success(), "{}", text(&crds.stderr));
    let ns = cp
        .kubectl()
        .args(["create", "namespace", "velero"])
        .output()?;
    anyhow::ensure!(ns.status.success(), "{}", text(&ns.stderr));
    Ok(cp)
}

/// Kills the server when the test ends, however it ends.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..240 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `velero server` beside the control plane (log in `dir/server.log`), once its location is
/// Available; its HTTP listener on a free loopback port.
pub async fn start_server(kubeconfig: &Path, dir: &Path) -> anyhow::Result<Server> {
    start_server_with(kubeconfig, dir, &["--metrics-address", "127.0.0.1:0"]).await
}

/// [`start_server`] with other listener flags.
pub async fn start_server_with(
    kubeconfig: &Path,
    dir: &Path,
    args: &[&str],
) -> anyhow::Result<Server> {
    let log = std::fs::File::create(dir.join("server.log"))?;
    let server = Server(
        velero(kubeconfig)
            .args(["server", "--store-validation-frequency", "1s"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    eventually("the location to be Available", || {
        text(&run(velero(kubeconfig).args(["backup-location", "get"])).stdout).contains("Available")
    })
    .await;
    Ok(server)
}

/// `velero install` with the `aws` provider against `s3`'s bucket `velero` (under `prefix`), the
/// location naming its credentials Secret (`velero_test_harness::install::install_on_s3`).
#[allow(dead_code)]
pub fn install_on_s3(
    cp: &velero_test_harness::ControlPlane,
    s3: &velero_test_harness::S3Server,
    work: &Path,
    prefix: Option<&str>,
) -> anyhow::Result<()> {
    velero_test_harness::install::install_on_s3(
        Path::new(env!("CARGO_BIN_EXE_velero")),
        cp,
        s3,
        work,
        prefix,
    )
}

/// `kubectl ARGS` against the test cluster; its stdout, failing the test with its stderr.
#[allow(dead_code)]
pub fn kubectl(cp: &velero_test_harness::ControlPlane, args: &[&str]) -> String {
    let out = cp.kubectl().args(args).output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `kubectl apply -f -` of `manifest` (YAML or JSON); its stdout, failing the test with its stderr.
#[allow(dead_code)]
pub fn kubectl_apply(cp: &velero_test_harness::ControlPlane, manifest: &[u8]) -> String {
    let mut child = cp
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), manifest)
        .expect("kubectl reads its input");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl ends");
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `scripts/oci-image.py ARGS --out DIR/FILE`: the archive it wrote.
fn oci_image(dir: &Path, file: &str, args: &[&str]) -> anyhow::Result<PathBuf> {
    let archive = dir.join(file);
    let out = Command::new("python3")
        .arg(workspace_root().join("scripts/oci-image.py"))
        .args(args)
        .arg("--out")
        .arg(&archive)
        .output()
        .context("running scripts/oci-image.py")?;
    ensure!(out.status.success(), "oci-image.py: {}", text(&out.stderr));
    Ok(archive)
}

/// The velero-rs image named `reference`, made from the `velero` binary these tests run.
#[allow(dead_code)]
pub fn build_image(dir: &Path, reference: &str) -> anyhow::Result<PathBuf> {
    let binary = env!("CARGO_BIN_EXE_velero");
    oci_image(
        dir,
        "velero-rs.tar",
        &["velero", "--binary", binary, "--ref", reference],
    )
}

/// An image of Velero itself (`velero`, Velero's binary) named `reference`, its restore helper
/// being velero-rs's (`scripts/oci-image.py upstream-velero`).
#[allow(dead_code)]
pub fn build_upstream_image(dir: &Path, velero: &Path, reference: &str) -> anyhow::Result<PathBuf> {
    let velero = velero
        .to_str()
        .context("the Velero binary's path is UTF-8")?;
    let helper = env!("CARGO_BIN_EXE_velero");
    oci_image(
        dir,
        "velero-upstream.tar",
        &[
            "upstream-velero",
            "--binary",
            velero,
            "--helper",
            helper,
            "--ref",
            reference,
        ],
    )
}

/// The pods matching `selector` once at least one is Running (at most two minutes).
#[allow(dead_code)]
pub async fn running_pods(pods: &Api<Pod>, selector: &str) -> anyhow::Result<Vec<Pod>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .collect();
        if !running.is_empty() {
            return Ok(running);
        }
        ensure!(
            Instant::now() < deadline,
            "no Running pod with {selector} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `sh -c SCRIPT` in the pod's first container, through the API server.
#[allow(dead_code)]
pub async fn exec_sh(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    script: &str,
) -> anyhow::Result<velero_cluster::exec::ExecOutput> {
    let command = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    Ok(velero_cluster::exec::exec_in_pod(
        client,
        namespace,
        pod,
        None,
        &command,
        Duration::from_secs(30),
    )
    .await?)
}

/// A shell script printing, for everything below `dirs` (relative to `root`) but an app's start
/// record (`seen-at-start`) and the restore helper's markers, one line each: path, mode, size
/// (files and links), mtime and kind, then a content hash for regular files. The same script runs
/// in a pod (busybox) and on the host (coreutils), which print alike.
#[allow(dead_code)]
pub fn fingerprint_script(root: &str, dirs: &str) -> String {
    format!(
        "cd {root} && find {dirs} -mindepth 1 ! -name seen-at-start ! -path '*/.velero*' | sort | \
        while read f; do if [ -d \"$f\" ] && [ ! -L \"$f\" ]; then stat -c '%n %a %Y %F' \"$f\"; \
        else stat -c '%n %a %s %Y %F' \"$f\"; fi; \
        if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then md5sum \"$f\"; fi; done"
    )
}

/// Whether a restore is expected to bring back the mtimes of directories.
#[allow(dead_code)]
#[derive(Clone, Copy, PartialEq)]
pub enum DirectoryTimes {
    Kept,
    /// kopia's own restore (and so Velero's) does not: the tests that use it say why.
    NotKept,
}

/// A fingerprint's lines, without directories' mtimes when they are not expected back.
fn fingerprint_lines(fingerprint: &str, times: DirectoryTimes) -> Vec<String> {
    fingerprint
        .lines()
        .map(
            |line| match line.split(' ').collect::<Vec<_>>().as_slice() {
                [name, mode, _mtime, "directory"] if times == DirectoryTimes::NotKept => {
                    format!("{name} {mode} directory")
                }
                _ => line.to_string(),
            },
        )
        .collect()
}

/// The two fingerprints ([`fingerprint_script`]) are the same; else the lines that differ.
#[allow(dead_code)]
pub fn same_fingerprint(
    original: &str,
    restored: &str,
    times: DirectoryTimes,
    what: &str,
) -> anyhow::Result<()> {
    let (original, restored) = (
        fingerprint_lines(original, times),
        fingerprint_lines(restored, times),
    );
    let a: std::collections::BTreeSet<&String> = original.iter().collect();
    let b: std::collections::BTreeSet<&String> = restored.iter().collect();
    let lost: Vec<&&String> = a.difference(&b).take(20).collect();
    let gained: Vec<&&String> = b.difference(&a).take(20).collect();
    ensure!(
        lost.is_empty() && gained.is_empty() && original == restored,
        "{what}: the volume differs\nbacked up: {lost:#?}\nrestored: {gained:#?}"
    );
    Ok(())
}

/// Waits (at most a minute) until `path` exists in the Running pod `ns/pod` (an app's data is in
/// place).
#[allow(dead_code)]
pub async fn wait_for_file(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    path: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while exec_sh(client, ns, pod, &format!("test -e {path}"))
        .await?
        .exit_code
        != 0
    {
        ensure!(
            Instant::now() < deadline,
            "{path} never appeared in {ns}/{pod}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Held by each test that runs Velero's own server, so they take turns: run side by side in this
/// binary, the second server's location never became Available (seen on fresh-clone CI runs,
/// with each server's temporary directory already its own).
#[allow(dead_code)]
pub static VELERO_SERVER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A pod's init containers, as `<name> <image>` each (the restore helper's, after a file-system
/// restore).
#[allow(dead_code)]
pub fn init_containers(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| format!("{} {}", c.name, c.image.clone().unwrap_or_default()))
        .collect()
}
