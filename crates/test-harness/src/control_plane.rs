//! A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;

use crate::process::{self, ExitedEarly, LOG_TAIL_LINES, ManagedChild};

/// The Kubernetes version whose binaries `scripts/setup-control-plane.sh` builds.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// How many times [`ControlPlane::start`] starts over after a component exited on its own.
const START_ATTEMPTS: usize = 3;
/// Upper bound for each readiness stage (etcd listening, API server ready, controllers running).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// One process of the control plane, to name its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    ApiServer,
    ControllerManager,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running etcd + kube-apiserver + kube-controller-manager, each on free loopback ports, with all
/// state in a temporary directory.
///
/// Every instance is independent: tests (and test binaries) can run many at once. Dropping it stops
/// the processes and removes the directory; the processes are also killed if the test process dies.
pub struct ControlPlane {
    // Stopped by `Drop::drop`, which runs before the fields are dropped, so the processes are gone
    // before `dir` is removed.
    children: Vec<ManagedChild>,
    server_url: String,
    kubeconfig_path: PathBuf,
    dir: TempDir,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server_url", &self.server_url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts a control plane and returns once it serves requests and its controllers run.
    ///
    /// Binaries: `etcd` from `PATH`, `kube-apiserver` and `kube-controller-manager` from
    /// `$VELERO_RS_KUBE_BIN_DIR`, by default `$VELERO_RS_CACHE/kubernetes-1.20.2` with
    /// `VELERO_RS_CACHE` defaulting to `~/.cache/velero-rs` (`scripts/setup-control-plane.sh`
    /// installs them there).
    pub async fn start() -> anyhow::Result<ControlPlane> {
        let binaries = Binaries::locate()?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries).await {
                Ok(control_plane) => return Ok(control_plane),
                // A component dying on its own during startup is almost always a port another
                // process took after we probed it: try again on fresh ports.
                Err(err) if attempt < START_ATTEMPTS && err.is::<ExitedEarly>() => {
                    tracing::warn!(attempt, "control plane failed to start, retrying: {err:#}");
                    attempt += 1;
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!("starting the Kubernetes control plane (attempt {attempt})")
                    });
                }
            }
        }
    }

    async fn start_once(binaries: &Binaries) -> anyhow::Result<ControlPlane> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("velero-rs-control-plane-")
            .tempdir()
            .context("creating the control plane's temporary directory")?;
        let root = dir.path();
        let [etcd_port, etcd_peer_port, apiserver_port] = process::free_ports::<3>()?;

        let token = crate::random_hex(16)?;
        let token_file = root.join("tokens.csv");
        std::fs::write(&token_file, format!("{token},admin,admin,system:masters\n"))
            .with_context(|| format!("writing {}", token_file.display()))?;
        let (sa_private_key, sa_public_key) = generate_service_account_keys(root).await?;

        let mut control_plane = ControlPlane {
            children: Vec::with_capacity(3),
            server_url: format!("https://127.0.0.1:{apiserver_port}"),
            kubeconfig_path: root.join("kubeconfig"),
            dir,
        };
        let root = control_plane.dir.path().to_owned();

        // etcd ---------------------------------------------------------------------------------
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut etcd = Command::new(&binaries.etcd);
        etcd.arg("--name=default")
            .arg(arg("--data-dir", root.join("etcd")))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={etcd_peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={etcd_peer_url}"))
            .arg(format!("--initial-cluster=default={etcd_peer_url}"))
            // The default capnslog logger prints a deprecation warning on every start.
            .arg("--logger=zap")
            .arg("--log-outputs=stderr");
        control_plane.spawn(Component::Etcd, etcd)?;
        // kube-apiserver gives up on an unreachable etcd only after a long while; waiting here
        // turns an etcd failure into a quick, clear error.
        control_plane
            .wait_until(Component::Etcd, "etcd to listen", async || {
                Ok(process::port_open(etcd_port).await)
            })
            .await?;

        // kube-apiserver -----------------------------------------------------------------------
        let cert_dir = root.join("pki");
        let mut apiserver = Command::new(&binaries.apiserver);
        apiserver
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={apiserver_port}"))
            // 1.20 still serves plain HTTP on 8080 by default: parallel instances would collide.
            .arg("--insecure-port=0")
            // Without a certificate it writes a self-made CA and a serving certificate signed by it
            // (SANs 127.0.0.1, 10.0.0.1, kubernetes.default.svc; no `localhost`) to
            // apiserver.crt here. The kubeconfig trusts that file.
            .arg(arg("--cert-dir", &cert_dir))
            .arg(arg("--token-auth-file", &token_file))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(arg("--service-account-key-file", &sa_public_key))
            .arg(arg("--service-account-signing-key-file", &sa_private_key))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            // Only advertised (in the `kubernetes` Service), never contacted. Not loopback because
            // Endpoints may not hold loopback addresses.
            .arg("--advertise-address=10.0.0.1")
            // Nothing in this cluster needs the `kubernetes` Service's endpoints, and the default
            // (lease) reconciler logs an error every 10 s in this setup.
            .arg("--endpoint-reconciler-type=none")
            // Velero's node agent runs privileged pods.
            .arg("--allow-privileged=true");
        control_plane.spawn(Component::ApiServer, apiserver)?;
        // The certificate is written before the port is opened, so once it accepts connections the
        // certificate is complete. (The port opens ~0.5 s after exec, but TLS handshakes only
        // complete once the server runs, ~4 s later: the first /readyz request waits for that.)
        control_plane
            .wait_until(
                Component::ApiServer,
                "kube-apiserver to listen",
                async || Ok(process::port_open(apiserver_port).await),
            )
            .await?;
        let ca_path = cert_dir.join("apiserver.crt");
        let ca = std::fs::read(&ca_path).with_context(|| {
            format!(
                "reading the API server's self-signed certificate {}",
                ca_path.display()
            )
        })?;
        write_kubeconfig(
            &control_plane.kubeconfig_path,
            &control_plane.server_url,
            &ca,
            &token,
        )?;

        // kube-controller-manager ----------------------------------------------------------------
        // Started right away: it waits for the API server by itself, which overlaps the two
        // startups.
        let mut controller_manager = Command::new(&binaries.controller_manager);
        controller_manager
            .arg(arg("--kubeconfig", &control_plane.kubeconfig_path))
            .arg(arg("--service-account-private-key-file", &sa_private_key))
            .arg("--leader-elect=false")
            // The cluster has no nodes: node, volume-attachment and TTL controllers have nothing
            // to do. With the PV binder off too, PVCs stay Pending.
            .arg("--controllers=*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-ttl")
            .arg("--use-service-account-credentials=false")
            // The default client-side limit (20 requests/s) throttles the discovery and listing
            // that the garbage collector and namespace deletion do over every resource type.
            .arg("--kube-api-qps=1000")
            .arg("--kube-api-burst=2000")
            // Both default to fixed ports (10257, 10252), which parallel instances would share.
            .arg("--secure-port=0")
            .arg("--port=0");
        control_plane.spawn(Component::ControllerManager, controller_manager)?;

        // Readiness -----------------------------------------------------------------------------
        let client = control_plane.client().await?;
        let mut last_readyz = String::from("<no answer yet>");
        control_plane
            .wait_until(Component::ApiServer, "kube-apiserver /readyz", async || {
                let request = http::Request::get("/readyz?verbose")
                    .body(Vec::new())
                    .context("building the /readyz request")?;
                match client.request_text(request).await {
                    Ok(_) => Ok(true),
                    // A not-ready answer is plain text listing each check; kube wraps it in a
                    // Status.
                    Err(kube::Error::Api(status)) => {
                        last_readyz = status.message;
                        Ok(false)
                    }
                    Err(err) => {
                        last_readyz = err.to_string();
                        Ok(false)
                    }
                }
            })
            .await
            .with_context(|| format!("last /readyz answer: {last_readyz}"))?;
        // The `default` ServiceAccount is created by the controller manager, so its existence
        // proves the controllers run; pods cannot be created in `default` before it exists anyway.
        let service_accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        control_plane
            .wait_until(
                Component::ControllerManager,
                "the controller manager to create ServiceAccount default/default",
                async || Ok(service_accounts.get_opt("default").await?.is_some()),
            )
            .await?;
        // /readyz does not cover the bootstrap controller creating the system namespaces.
        let namespaces: Api<Namespace> = Api::all(client);
        control_plane
            .wait_until(
                Component::ApiServer,
                "namespace kube-system to exist",
                async || Ok(namespaces.get_opt("kube-system").await?.is_some()),
            )
            .await?;

        tracing::info!(
            server = %control_plane.server_url,
            dir = %control_plane.dir.path().display(),
            elapsed = ?started.elapsed(),
            "control plane ready"
        );
        Ok(control_plane)
    }

    /// Path of a kubeconfig with cluster-admin rights (a static token in `system:masters`) that
    /// trusts the API server's self-signed certificate. Valid while `self` lives.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// A new cluster-admin client for this control plane.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig_path)
            .with_context(|| format!("reading {}", self.kubeconfig_path.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading {}", self.kubeconfig_path.display()))?;
        kube::Client::try_from(config).context("building a kube client for the control plane")
    }

    /// `kubectl --kubeconfig <kubeconfig_path>`, ready for more arguments.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig_path);
        command
    }

    /// Path of `component`'s log file (its stdout and stderr).
    pub fn log_path(&self, component: Component) -> PathBuf {
        self.dir.path().join(format!("{component}.log"))
    }

    /// The last `lines` lines of `component`'s log, for assertion messages.
    pub fn log_tail(&self, component: Component, lines: usize) -> String {
        process::log_tail(&self.log_path(component), lines)
    }

    fn spawn(&mut self, component: Component, command: Command) -> anyhow::Result<()> {
        let child = ManagedChild::spawn(component.name(), command, self.log_path(component))?;
        self.children.push(child);
        Ok(())
    }

    fn ensure_all_running(&mut self) -> anyhow::Result<()> {
        self.children
            .iter_mut()
            .try_for_each(ManagedChild::ensure_running)
    }

    /// Polls `ready` until it returns true, failing early if a child exits and after
    /// [`READY_TIMEOUT`] with the tail of `component`'s log.
    async fn wait_until(
        &mut self,
        component: Component,
        what: &str,
        mut ready: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.ensure_all_running()?;
            if ready().await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {READY_TIMEOUT:?} waiting for {what}; last lines of the \
                     {component} log ({}):\n{}",
                    self.log_path(component).display(),
                    self.log_tail(component, LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Blocks the current thread for up to 3 s (the API server takes about 1 s to shut down),
        // which is acceptable in tests and keeps teardown independent of any runtime.
        process::terminate_all(&mut self.children);
    }
}

/// Where the control plane's programs are.
struct Binaries {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
}

impl Binaries {
    fn locate() -> anyhow::Result<Binaries> {
        let etcd = process::find_in_path("etcd")
            .with_context(|| format!("etcd was not found in PATH: {SETUP_HINT}"))?;
        let bin_dir = kube_bin_dir(|name| std::env::var_os(name))?;
        Ok(Binaries {
            etcd,
            apiserver: find_kube_binary(&bin_dir, "kube-apiserver")?,
            controller_manager: find_kube_binary(&bin_dir, "kube-controller-manager")?,
        })
    }
}

const SETUP_HINT: &str = "run scripts/setup-control-plane.sh from the velero-rs checkout to install and build the \
     control plane";

fn find_kube_binary(bin_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir.join(name);
    if process::is_executable(&path) {
        return Ok(path);
    }
    bail!(
        "{} is missing or not executable: {SETUP_HINT} (or point VELERO_RS_KUBE_BIN_DIR at a \
         directory holding kube-apiserver and kube-controller-manager {KUBERNETES_VERSION})",
        path.display()
    )
}

/// `$VELERO_RS_KUBE_BIN_DIR`, else `${VELERO_RS_CACHE:-$HOME/.cache/velero-rs}/kubernetes-<version>`
/// (where `scripts/setup-control-plane.sh` puts them). `env` looks up environment variables.
fn kube_bin_dir(env: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = env("VELERO_RS_KUBE_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cache = match env("VELERO_RS_CACHE") {
        Some(cache) => PathBuf::from(cache),
        None => {
            let home = env("HOME").context(
                "neither VELERO_RS_KUBE_BIN_DIR, VELERO_RS_CACHE nor HOME is set: cannot find \
                 kube-apiserver",
            )?;
            Path::new(&home).join(".cache/velero-rs")
        }
    };
    Ok(cache.join(format!("kubernetes-{KUBERNETES_VERSION}")))
}

/// `--name=value`, for values that are paths (which need not be UTF-8).
fn arg(name: &str, value: impl AsRef<Path>) -> OsString {
    let mut arg = OsString::from(format!("{name}="));
    arg.push(value.as_ref());
    arg
}

/// Generates the RSA key pair the API server verifies and the controller manager signs service
/// account tokens with. Returns (private key, public key) paths.
async fn generate_service_account_keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let private = dir.join("sa.key");
    let public = dir.join("sa.pub");
    run_openssl(
        tokio::process::Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&private)
            .arg("2048"),
    )
    .await?;
    run_openssl(
        tokio::process::Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    )
    .await?;
    Ok((private, public))
}

async fn run_openssl(command: &mut tokio::process::Command) -> anyhow::Result<()> {
    let output = command.output().await.context(
        "running openssl to generate the service account key pair (is the openssl CLI installed?)",
    )?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn write_kubeconfig(path: &Path, server: &str, ca_pem: &[u8], token: &str) -> anyhow::Result<()> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: velero-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: velero-test
  context:
    cluster: velero-test
    user: admin
    namespace: default
current-context: velero-test
"
    );
    std::fs::write(path, kubeconfig).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn kube_bin_dir_precedence() {
        let dir = |vars| kube_bin_dir(env(vars)).unwrap();
        assert_eq!(
            dir(&[("HOME", "/home/u")]),
            Path::new("/home/u/.cache/velero-rs/kubernetes-1.20.2")
        );
        assert_eq!(
            dir(&[("HOME", "/home/u"), ("VELERO_RS_CACHE", "/c")]),
            Path::new("/c/kubernetes-1.20.2")
        );
        assert_eq!(
            dir(&[
                ("VELERO_RS_CACHE", "/c"),
                ("VELERO_RS_KUBE_BIN_DIR", "/bin/k8s")
            ]),
            Path::new("/bin/k8s")
        );
        assert!(kube_bin_dir(env(&[])).is_err());
    }

    #[test]
    fn missing_binary_points_at_the_setup_script() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_kube_binary(empty.path(), "kube-apiserver").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("scripts/setup-control-plane.sh"),
            "{message}"
        );
        assert!(message.contains("VELERO_RS_KUBE_BIN_DIR"), "{message}");
        assert!(message.contains("kube-apiserver"), "{message}");
    }

    #[test]
    fn kubeconfig_embeds_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write_kubeconfig(&path, "https://127.0.0.1:6443", b"PEM", "secret").unwrap();
        let kubeconfig = Kubeconfig::read_from(&path).unwrap();
        let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
        let user = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
        assert_eq!(kubeconfig.current_context.as_deref(), Some("velero-test"));
    }
}
