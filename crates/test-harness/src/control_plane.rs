//! A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback, and
//! on request a scheduler and a real node (see [`crate::node`]) so that pods run.

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

use crate::node::{self, NodeSlot};
use crate::process::{self, ExitedEarly, LOG_TAIL_LINES, ManagedChild};

/// The Kubernetes version whose binaries `scripts/setup-control-plane.sh` builds.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// How many times [`ControlPlane::start`] starts over after a component exited on its own.
const START_ATTEMPTS: usize = 3;
/// Upper bound for each readiness stage (etcd listening, API server ready, controllers running).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

const AUDIT_LOG: &str = "audit.log";

/// Every request once, when it arrives, with its metadata only: a count of requests per client,
/// not a record of their bodies.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted, ResponseComplete, Panic]
rules:
- level: Metadata
";

/// One process of the control plane, to name its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    ApiServer,
    ControllerManager,
    Scheduler,
    Containerd,
    Kubelet,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Containerd => "containerd",
            Component::Kubelet => "kubelet",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running etcd + kube-apiserver + kube-controller-manager, each on free loopback ports, with all
/// state in a temporary directory; with [`ControlPlane::start_with_node`] also a kube-scheduler and
/// a node (containerd + kubelet) on which pods run.
///
/// Every instance is independent: tests (and test binaries) can run many at once. Dropping it stops
/// the processes and removes the directory; the processes are also killed if the test process dies,
/// and what a killed node-backed cluster leaves on the host is removed by the next one to start.
pub struct ControlPlane {
    // Stopped by `Drop::drop`, which runs before the fields are dropped, so the processes are gone
    // before `dir` is removed.
    children: Vec<ManagedChild>,
    node: Option<NodeParts>,
    server_url: String,
    kubeconfig_path: PathBuf,
    started_in: Duration,
    dir: TempDir,
}

/// The node's share of a [`ControlPlane`].
struct NodeParts {
    slot: NodeSlot,
    ctr: PathBuf,
    containerd_socket: PathBuf,
    kubelet_root: PathBuf,
    /// containerd first, then the kubelet.
    children: Vec<ManagedChild>,
}

/// Which parts of a cluster [`ControlPlane::start_with`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// etcd, kube-apiserver, kube-controller-manager: every API but pods stay Pending. Starts in
    /// about 5 s.
    ControlPlaneOnly,
    /// Also kube-scheduler, containerd and a kubelet: pods run, exec and logs work, volumes appear
    /// under the kubelet's root directory. Needs root.
    WithNode,
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
        Self::start_with(Topology::ControlPlaneOnly).await
    }

    /// Starts a cluster with one real node (named [`node::NODE_NAME`]) and returns once the node is
    /// Ready and schedulable. The images in `$VELERO_RS_CACHE/images` (busybox, pause) are
    /// imported; [`ControlPlane::import_image`] adds more.
    pub async fn start_with_node() -> anyhow::Result<ControlPlane> {
        Self::start_with(Topology::WithNode).await
    }

    pub async fn start_with(topology: Topology) -> anyhow::Result<ControlPlane> {
        Self::start_logged(topology, false).await
    }

    /// As [`ControlPlane::start_with`], with the API server writing one audit event per request
    /// it receives (verb, resource, user agent) to [`ControlPlane::audit_log_path`]: how
    /// benchmarks count the requests a component sends, seen from the API server's side.
    pub async fn start_audited(topology: Topology) -> anyhow::Result<ControlPlane> {
        Self::start_logged(topology, true).await
    }

    async fn start_logged(topology: Topology, audit: bool) -> anyhow::Result<ControlPlane> {
        let binaries = Binaries::locate(topology)?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, topology, audit).await {
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

    async fn start_once(
        binaries: &Binaries,
        topology: Topology,
        audit: bool,
    ) -> anyhow::Result<ControlPlane> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix(node::CLUSTER_DIR_PREFIX)
            .tempdir()
            .context("creating the control plane's temporary directory")?;
        let root = dir.path();
        let [etcd_port, etcd_peer_port, loopback_apiserver_port] = process::free_ports::<3>()?;
        let slot = match topology {
            Topology::ControlPlaneOnly => None,
            Topology::WithNode => {
                let networks = node::Networks::from_env(|name| std::env::var_os(name))?;
                let slot = NodeSlot::acquire(root, networks)?;
                node::prepare_host(&slot, root).inspect_err(|_| {
                    node::clean_host(&slot, root);
                    slot.release();
                })?;
                Some(slot)
            }
        };
        // Pods reach the API server as in-cluster clients do, at the `kubernetes` Service's address
        // and port 443; without a node it stays on a loopback port.
        let (bind_address, apiserver_port, service_range, advertise_address) = match &slot {
            None => (
                "127.0.0.1".to_string(),
                loopback_apiserver_port,
                "10.0.0.0/24".to_string(),
                // Only advertised (in the `kubernetes` Service), never contacted. Not loopback
                // because Endpoints may not hold loopback addresses.
                "10.0.0.1".to_string(),
            ),
            Some(slot) => (
                slot.api_address(),
                443,
                slot.service_range(),
                slot.api_address(),
            ),
        };

        let token = crate::random_hex(16)?;
        let token_file = root.join("tokens.csv");
        std::fs::write(&token_file, format!("{token},admin,admin,system:masters\n"))
            .with_context(|| format!("writing {}", token_file.display()))?;
        let (sa_private_key, sa_public_key) = generate_service_account_keys(root).await?;

        let mut control_plane = ControlPlane {
            children: Vec::with_capacity(4),
            node: slot
                .zip(binaries.node.as_ref())
                .map(|(slot, bins)| NodeParts {
                    slot,
                    ctr: bins.ctr.clone(),
                    containerd_socket: root.join("containerd/containerd.sock"),
                    kubelet_root: root.join("kubelet"),
                    children: Vec::with_capacity(2),
                }),
            server_url: format!("https://{bind_address}:{apiserver_port}"),
            kubeconfig_path: root.join("kubeconfig"),
            started_in: Duration::ZERO,
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
            .arg(format!("--bind-address={bind_address}"))
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
            .arg(format!("--service-cluster-ip-range={service_range}"))
            .arg(format!("--advertise-address={advertise_address}"))
            // Nothing in this cluster needs the `kubernetes` Service's endpoints, and the default
            // (lease) reconciler logs an error every 10 s in this setup.
            .arg("--endpoint-reconciler-type=none")
            // Velero's node agent runs privileged pods.
            .arg("--allow-privileged=true");
        if audit {
            let policy = root.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY)
                .with_context(|| format!("writing {}", policy.display()))?;
            apiserver
                .arg(arg("--audit-policy-file", &policy))
                .arg(arg("--audit-log-path", root.join(AUDIT_LOG)));
        }
        control_plane.spawn(Component::ApiServer, apiserver)?;
        // The certificate is written before the port is opened, so once it accepts connections the
        // certificate is complete. (The port opens ~0.5 s after exec, but TLS handshakes only
        // complete once the server runs, ~4 s later: the first /readyz request waits for that.)
        let api_socket: std::net::SocketAddr = format!("{bind_address}:{apiserver_port}")
            .parse()
            .context("the API server's address")?;
        control_plane
            .wait_until(
                Component::ApiServer,
                "kube-apiserver to listen",
                async || Ok(process::address_open(api_socket).await),
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
            .arg(match topology {
                // No nodes: node, volume-attachment and TTL controllers have nothing to do. With
                // the PV binder off too, PVCs stay Pending.
                Topology::ControlPlaneOnly => {
                    "--controllers=*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-ttl"
                }
                // The node lifecycle controller removes the not-ready taint the API server puts on
                // a registering node (nothing schedules otherwise); the binder binds claims. Pod
                // CIDRs (host-local IPAM has its own), attach/detach (local volumes only) and TTL
                // stay off.
                Topology::WithNode => "--controllers=*,-nodeipam,-attachdetach,-ttl",
            })
            .arg("--use-service-account-credentials=false")
            // The default client-side limit (20 requests/s) throttles the discovery and listing
            // that the garbage collector and namespace deletion do over every resource type.
            .arg("--kube-api-qps=1000")
            .arg("--kube-api-burst=2000")
            // Both default to fixed ports (10257, 10252), which parallel instances would share.
            .arg("--secure-port=0")
            .arg("--port=0");
        control_plane.spawn(Component::ControllerManager, controller_manager)?;
        if control_plane.node.is_some() {
            control_plane.start_node_processes(binaries).await?;
        }

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

        if control_plane.node.is_some() {
            control_plane.wait_for_node().await?;
        }
        control_plane.started_in = started.elapsed();
        tracing::info!(
            server = %control_plane.server_url,
            dir = %control_plane.dir.path().display(),
            elapsed = ?started.elapsed(),
            "control plane ready"
        );
        Ok(control_plane)
    }

    /// The scheduler, containerd (with the test images imported) and the kubelet. The API server
    /// need not be ready yet: each waits for it by itself, which overlaps their startups.
    async fn start_node_processes(&mut self, binaries: &Binaries) -> anyhow::Result<()> {
        let root = self.dir.path().to_owned();
        let bins = binaries
            .node
            .as_ref()
            .context("the node's binaries were not located")?;
        let (slot, socket) = match &self.node {
            Some(node) => (node.slot.clone(), node.containerd_socket.clone()),
            None => bail!("this cluster has no node"),
        };
        let mut command = Command::new(&bins.scheduler);
        command
            .arg(arg("--kubeconfig", &self.kubeconfig_path))
            .arg("--leader-elect=false")
            // Both default to fixed ports, which parallel instances would share.
            .arg("--secure-port=0")
            .arg("--port=0");
        self.spawn(Component::Scheduler, command)?;

        let config = root.join("containerd/config.toml");
        std::fs::create_dir_all(root.join("containerd"))?;
        std::fs::write(&config, node::containerd_config(&root))
            .with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new(&bins.containerd);
        command
            .arg("--config")
            .arg(&config)
            // A guard: a pull (there should be none) meets a closed loopback port instead of a
            // registry. Images come from `ctr images import` only.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "");
        self.spawn_node(Component::Containerd, command)?;
        self.wait_until(Component::Containerd, "containerd to serve", async || {
            Ok(Command::new(&bins.ctr)
                .arg("--address")
                .arg(&socket)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success()))
        })
        .await?;
        for image in ["pause.tar", "busybox.tar"] {
            node::import_image(&bins.ctr, &socket, &binaries.images.join(image))?;
        }

        let [port, healthz_port] = process::free_ports::<2>()?;
        let kubelet_config = root.join("kubelet-config.yaml");
        std::fs::write(
            &kubelet_config,
            node::kubelet_config(&slot, &root, port, healthz_port),
        )
        .with_context(|| format!("writing {}", kubelet_config.display()))?;
        let pod_logs = root.join("pod-logs");
        std::fs::create_dir_all(&pod_logs)?;
        let mut command = Command::new(&bins.kubelet);
        command
            .arg(arg("--config", &kubelet_config))
            .arg(arg("--kubeconfig", &self.kubeconfig_path))
            .arg("--container-runtime=remote")
            .arg(format!(
                "--container-runtime-endpoint=unix://{}",
                socket.display()
            ))
            .arg(arg("--root-dir", root.join("kubelet")))
            .arg(arg("--cert-dir", root.join("kubelet/pki")))
            .arg(format!("--hostname-override={}", node::NODE_NAME))
            .arg("--v=2")
            // Our kubelet build reads its pod log directory from here (upstream: /var/log/pods,
            // which another node's kubelet would garbage-collect).
            .env("KUBELET_POD_LOGS_DIR", &pod_logs)
            // A second guard besides the build without cloud credential providers: no AWS SDK
            // call may reach for the metadata address.
            .env("AWS_EC2_METADATA_DISABLED", "true");
        self.spawn_node(Component::Kubelet, command)?;
        Ok(())
    }

    /// Waits until the node is registered, Ready and without taints (the node lifecycle controller
    /// removes `not-ready` once it is Ready).
    async fn wait_for_node(&mut self) -> anyhow::Result<()> {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client().await?);
        let mut last = String::from("not registered yet");
        self.wait_until(Component::Kubelet, "the node to be Ready", async || {
            let Some(node) = nodes.get_opt(node::NODE_NAME).await? else {
                return Ok(false);
            };
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let tainted = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| !t.is_empty());
            last = match ready {
                Some(c) if c.status == "True" && !tainted => return Ok(true),
                Some(c) if c.status == "True" => "Ready, still tainted".into(),
                Some(c) => format!(
                    "Ready={} ({})",
                    c.status,
                    c.message.as_deref().unwrap_or_default()
                ),
                None => "no Ready condition yet".into(),
            };
            Ok(false)
        })
        .await
        .with_context(|| format!("node {}: {last}", node::NODE_NAME))
    }

    /// The directory holding every file of the cluster (and, with a node, its mounts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bridge a node's pods are attached to (`vlr-br<N>`), for a cluster with a node.
    pub fn node_bridge(&self) -> Option<String> {
        self.node.as_ref().map(|n| n.slot.bridge())
    }

    /// The host's address on the node's bridge (10.88.N.1): the one address of this machine its
    /// pods reach, for servers the pods must talk to (an S3 server, say).
    pub fn node_host_address(&self) -> Option<std::net::IpAddr> {
        self.node
            .as_ref()
            .and_then(|n| n.slot.bridge_address().parse().ok())
    }

    /// Whether this cluster has a node (pods run).
    pub fn has_node(&self) -> bool {
        self.node.is_some()
    }

    /// The kubelet's `--root-dir` (pod volumes are under `pods/<uid>/volumes/`), for a cluster with
    /// a node.
    pub fn kubelet_root_dir(&self) -> Option<&Path> {
        self.node.as_ref().map(|n| n.kubelet_root.as_path())
    }

    /// Imports an image archive (OCI layout or `docker save` format) into the node's containerd,
    /// under the name its index gives it (`io.containerd.image.name`).
    pub fn import_image(&self, archive: &Path) -> anyhow::Result<()> {
        let node = self
            .node
            .as_ref()
            .context("this control plane has no node to import images into")?;
        node::import_image(&node.ctr, &node.containerd_socket, archive)
    }

    /// How long [`ControlPlane::start_with`] took, from creating the directory to ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Resident memory of every process of the cluster now, largest first: the components the
    /// harness started, and for a node its containerd shims and pod processes.
    pub fn memory_usage(&self) -> Vec<(String, u64)> {
        let mut usage: Vec<(String, u64)> = self
            .children
            .iter()
            .chain(self.node.iter().flat_map(|n| n.children.iter()))
            .filter_map(|c| Some((c.name().to_string(), node::rss_bytes(c.id())?)))
            .collect();
        if let Some(node) = &self.node {
            let (shims, pods) = node::shim_and_pod_rss(&node.slot, self.dir.path());
            usage.push(("containerd shims".into(), shims));
            usage.push(("pod processes".into(), pods));
        }
        usage.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
        usage
    }

    /// Path of a kubeconfig with cluster-admin rights (a static token in `system:masters`) that
    /// trusts the API server's self-signed certificate. Valid while `self` lives.
    /// The API server's audit log (one JSON event per line), when started with
    /// [`ControlPlane::start_audited`].
    pub fn audit_log_path(&self) -> PathBuf {
        self.dir.path().join(AUDIT_LOG)
    }

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

    fn spawn_node(&mut self, component: Component, command: Command) -> anyhow::Result<()> {
        let child = ManagedChild::spawn(component.name(), command, self.log_path(component))?;
        match &mut self.node {
            Some(node) => node.children.push(child),
            None => bail!("no node to run {component} for"),
        }
        Ok(())
    }

    fn ensure_all_running(&mut self) -> anyhow::Result<()> {
        self.children
            .iter_mut()
            .chain(self.node.iter_mut().flat_map(|n| n.children.iter_mut()))
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
        // Blocks the current thread for a few seconds (the API server takes about 1 s to shut
        // down), which is acceptable in tests and keeps teardown independent of any runtime.
        // A node goes first: the kubelet (it would restart pods), the containers while containerd
        // still runs (so their shims exit), containerd; then the control plane; then what is left
        // on the host, once nothing can add to it.
        if let Some(node) = &mut self.node {
            let first = 1.min(node.children.len());
            let (containerd, kubelet) = node.children.split_at_mut(first);
            process::terminate_all(kubelet);
            node::remove_containers(&node.ctr, &node.containerd_socket);
            process::terminate_all(containerd);
        }
        process::terminate_all(&mut self.children);
        if let Some(node) = &self.node {
            let root = self.dir.path();
            node::clean_host(&node.slot, root);
            let left = node::mounts_under(root);
            if left.is_empty() {
                node.slot.release();
            } else {
                // Removing the directory could follow a mount into data outside it: keep it, and
                // its record, for the next node start to clean.
                node::note(
                    &root.join("teardown.log"),
                    &format!("mounts left: {left:?}"),
                );
                tracing::warn!(?left, dir = %root.display(), "mounts left under the node's directory; keeping it");
                self.dir.disable_cleanup(true);
            }
        }
    }
}

/// Where the cluster's programs are.
struct Binaries {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
    /// Located only for a node-backed cluster.
    node: Option<NodeBinaries>,
    images: PathBuf,
}

struct NodeBinaries {
    scheduler: PathBuf,
    kubelet: PathBuf,
    containerd: PathBuf,
    ctr: PathBuf,
}

impl Binaries {
    fn locate(topology: Topology) -> anyhow::Result<Binaries> {
        let in_path = |name: &str| {
            process::find_in_path(name)
                .with_context(|| format!("{name} was not found in PATH: {SETUP_HINT}"))
        };
        let bin_dir = kube_bin_dir(|name| std::env::var_os(name))?;
        let mut binaries = Binaries {
            etcd: in_path("etcd")?,
            apiserver: find_kube_binary(&bin_dir, "kube-apiserver")?,
            controller_manager: find_kube_binary(&bin_dir, "kube-controller-manager")?,
            node: None,
            images: cache_dir(|name| std::env::var_os(name))?.join("images"),
        };
        if topology == Topology::WithNode {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                bail!(
                    "a cluster with a node must run as root (bridge, cgroups, mounts, containerd)"
                );
            }
            binaries.node = Some(NodeBinaries {
                scheduler: find_kube_binary(&bin_dir, "kube-scheduler")?,
                kubelet: find_kube_binary(&bin_dir, "kubelet")?,
                containerd: in_path("containerd")?,
                ctr: in_path("ctr")?,
            });
            for image in ["pause.tar", "busybox.tar"] {
                let path = binaries.images.join(image);
                if !path.is_file() {
                    bail!("the test image {} is missing: {SETUP_HINT}", path.display());
                }
            }
        }
        Ok(binaries)
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
    Ok(cache_dir(env)?.join(format!("kubernetes-{KUBERNETES_VERSION}")))
}

/// `${VELERO_RS_CACHE:-$HOME/.cache/velero-rs}`: binaries and test images the setup script made.
pub(crate) fn cache_dir(env: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    match env("VELERO_RS_CACHE") {
        Some(cache) => Ok(PathBuf::from(cache)),
        None => {
            let home = env("HOME").context(
                "neither VELERO_RS_KUBE_BIN_DIR, VELERO_RS_CACHE nor HOME is set: cannot find \
                 kube-apiserver",
            )?;
            Ok(Path::new(&home).join(".cache/velero-rs"))
        }
    }
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
