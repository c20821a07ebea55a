//! A real Kubernetes node beside the control plane: containerd (Debian's), runc, the CNI bridge
//! plugin and a kubelet 1.20.2 built by `scripts/setup-control-plane.sh`, so pods really run.
//!
//! Everything a node needs from the host is made per node and removed again: a bridge with its own
//! /24, cgroup trees, mounts under the node's directory. Nodes are numbered by a lock file per
//! number, so parallel test binaries never share a bridge, subnet or cgroup. A test process that is
//! killed cannot clean up; the next node to start finds its lock file free with its directory still
//! recorded and removes what it left (processes, mounts, bridge, cgroups).
//!
//! Addresses: node index N owns the pod subnet 10.88.N.0/24 on bridge `vlr-brN` (the host is
//! 10.88.N.1) and the service range 10.89.N.0/24, whose first address 10.89.N.1 is the `kubernetes`
//! Service and sits on the bridge too. The API server listens there on 443, so pods reach it the way
//! in-cluster clients do (`KUBERNETES_SERVICE_HOST`) without kube-proxy; the kubelet, containerd and
//! the streaming server listen on 127.0.0.1. Pods get one route besides their own subnet, to the
//! service range through the host, and no default route: nothing they send can leave the machine.
//!
//! Nor can the host's own packets: both /16s get an `unreachable` route before the first node
//! starts, kept for good, so once a node's bridge is gone a client still holding its kubeconfig
//! (10.89.N.1) is refused at once instead of being routed off the machine by the default route.
//! The ranges are checked first: a LAN or VPN that already routes them stops the node with a
//! message, and `VELERO_RS_POD_NETWORK` / `VELERO_RS_SERVICE_NETWORK` (the first two octets,
//! like `10.188`) move the harness elsewhere.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The node's name, its `kubernetes.io/hostname` label and its InternalIP. The kubelet refuses a
/// loopback `--node-ip`, but `--hostname-override=127.0.0.1` gives all three, so the API server
/// reaches the kubelet on loopback without further flags.
pub const NODE_NAME: &str = "127.0.0.1";

/// Image references the test images are imported under (built offline from Debian's busybox-static
/// by `scripts/setup-control-plane.sh`). Pods must name a fixed tag (or `imagePullPolicy: Never`):
/// nothing can be pulled.
pub const BUSYBOX_IMAGE: &str = "busybox:1.35";
const PAUSE_IMAGE: &str = "localhost/pause:local";

/// Node numbers handed out; each owns a /24 of the pod network and one of the service network.
const MAX_NODES: u32 = 200;
const CGROUP_CONTROLLERS: [&str; 9] = [
    "cpu", "cpuacct", "cpuset", "memory", "pids", "systemd", "devices", "freezer", "blkio",
];
const CNI_RESULTS_DIR: &str = "/var/lib/cni/results";
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// How the harness names a cluster's temporary directory.
pub(crate) const CLUSTER_DIR_PREFIX: &str = "velero-rs-control-plane-";

/// What a node owns on the host, derived from its number.
/// The two /16s nodes take their addresses from, by their first two octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Networks {
    pod: [u8; 2],
    service: [u8; 2],
}

impl Networks {
    /// 10.88 and 10.89, or what `VELERO_RS_POD_NETWORK` and `VELERO_RS_SERVICE_NETWORK` say.
    pub(crate) fn from_env(
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> anyhow::Result<Networks> {
        let read = |var: &str, default: [u8; 2]| -> anyhow::Result<[u8; 2]> {
            let Some(value) = env(var) else {
                return Ok(default);
            };
            let text = value.to_string_lossy();
            let octets: Vec<u8> = text
                .trim_end_matches(".0.0/16")
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()
                .filter(|o: &Vec<u8>| o.len() == 2)
                .with_context(|| {
                    format!(
                        "{var}={text:?} is not a /16 given by its first two octets, like 10.188"
                    )
                })?;
            Ok([octets[0], octets[1]])
        };
        let defaults = Networks::default();
        let networks = Networks {
            pod: read("VELERO_RS_POD_NETWORK", defaults.pod)?,
            service: read("VELERO_RS_SERVICE_NETWORK", defaults.service)?,
        };
        if networks.pod == networks.service {
            bail!(
                "VELERO_RS_POD_NETWORK and VELERO_RS_SERVICE_NETWORK name the same /16 ({}); give them two different ones",
                networks.cidr(networks.pod)
            );
        }
        Ok(networks)
    }

    fn cidr(&self, net: [u8; 2]) -> String {
        format!("{}.{}.0.0/16", net[0], net[1])
    }

    fn both(&self) -> [String; 2] {
        [self.cidr(self.pod), self.cidr(self.service)]
    }
}

impl Default for Networks {
    fn default() -> Self {
        Networks {
            pod: [10, 88],
            service: [10, 89],
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NodeSlot {
    pub(crate) index: u32,
    networks: Networks,
    /// Held (flock) while the node lives; the kernel releases it when the process dies.
    _lock: std::sync::Arc<File>,
    state_file: PathBuf,
}

impl NodeSlot {
    pub(crate) fn bridge(&self) -> String {
        format!("vlr-br{}", self.index)
    }
    fn pod_address(&self, last: u8) -> String {
        let [a, b] = self.networks.pod;
        format!("{a}.{b}.{}.{last}", self.index)
    }
    pub(crate) fn bridge_address(&self) -> String {
        self.pod_address(1)
    }
    pub(crate) fn pod_subnet(&self) -> String {
        format!("{}/24", self.pod_address(0))
    }
    pub(crate) fn first_pod_address(&self) -> String {
        self.pod_address(10)
    }
    fn service_address(&self, last: u8) -> String {
        let [a, b] = self.networks.service;
        format!("{a}.{b}.{}.{last}", self.index)
    }
    pub(crate) fn service_range(&self) -> String {
        format!("{}/24", self.service_address(0))
    }
    /// The `kubernetes` Service's ClusterIP (the first address of the service range), where the
    /// API server of a node-backed cluster listens.
    pub(crate) fn api_address(&self) -> String {
        self.service_address(1)
    }
    fn cgroup_root(&self) -> String {
        format!("/velero-node-{}", self.index)
    }
    fn cni_network(&self) -> String {
        format!("velero-rs-{}", self.index)
    }

    /// Takes the first free node number, first cleaning up after any earlier holder that died
    /// without doing so itself. `root` is recorded so that such a cleanup can find its mounts.
    pub(crate) fn acquire(root: &Path, networks: Networks) -> anyhow::Result<NodeSlot> {
        let dir = lock_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // A recorded directory whose lock nobody holds belongs to a process that is gone.
        let recorded: Vec<u32> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".root")?.parse().ok())
            .collect();
        for index in recorded {
            if let Some(slot) = Self::try_lock(&dir, index, networks)? {
                slot.clean_if_stale();
            }
        }
        for index in 1..=MAX_NODES {
            if let Some(slot) = Self::try_lock(&dir, index, networks)? {
                slot.clean_if_stale();
                fs::write(&slot.state_file, root.as_os_str().as_encoded_bytes())
                    .with_context(|| format!("writing {}", slot.state_file.display()))?;
                return Ok(slot);
            }
        }
        bail!(
            "all {MAX_NODES} node numbers are in use (lock files in {})",
            dir.display()
        )
    }

    /// Removes what a dead holder of this (now locked) number left, if it recorded a directory.
    fn clean_if_stale(&self) {
        let Ok(stale_root) = fs::read_to_string(&self.state_file) else {
            return;
        };
        let stale_root = Path::new(stale_root.trim());
        tracing::warn!(index = self.index, root = %stale_root.display(), "cleaning up a node left behind");
        clean_host(self, stale_root);
        // Its directory too, once nothing is mounted there (and only one of ours).
        let ours = stale_root
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(CLUSTER_DIR_PREFIX));
        if ours && mounts_under(stale_root).is_empty() {
            let _ = fs::remove_dir_all(stale_root);
        }
        let _ = fs::remove_file(&self.state_file);
    }

    fn try_lock(dir: &Path, index: u32, networks: Networks) -> anyhow::Result<Option<NodeSlot>> {
        let path = dir.join(format!("{index}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        Ok(locked.then(|| NodeSlot {
            index,
            networks,
            _lock: std::sync::Arc::new(file),
            state_file: dir.join(format!("{index}.root")),
        }))
    }

    /// Forgets the recorded directory once the node has been cleaned up.
    pub(crate) fn release(&self) {
        let _ = fs::remove_file(&self.state_file);
    }
}

fn lock_dir() -> PathBuf {
    std::env::var_os("VELERO_RS_NODE_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/velero-rs/nodes"))
}

/// Makes sure nothing the host sends to the harness's ranges leaves the machine: an
/// `unreachable` route for each /16, added once and kept (a node's own /24 and addresses, on its
/// bridge, are more specific and win while it lives). Refuses ranges the machine already routes.
fn keep_ranges_on_host(networks: Networks) -> anyhow::Result<()> {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .context("running ip route show")?;
    let routes = String::from_utf8_lossy(&routes.stdout);
    for range in networks.both() {
        if let Some(route) = foreign_route(&routes, &range) {
            bail!(
                "the test harness gives its nodes addresses in {} and services in {}, but this machine already routes {range} ({route:?}): a LAN or VPN may use it. Choose two free /16s with VELERO_RS_POD_NETWORK and VELERO_RS_SERVICE_NETWORK (their first two octets, e.g. VELERO_RS_POD_NETWORK=10.188 VELERO_RS_SERVICE_NETWORK=10.189) and run again",
                networks.cidr(networks.pod),
                networks.cidr(networks.service)
            );
        }
        run("ip", &["route", "replace", "unreachable", &range])?;
    }
    Ok(())
}

/// A route of the machine (from `ip -4 route show table all`) that overlaps `range` (a /16) and
/// is not the harness's own: neither a node bridge's (`dev vlr-br…`), nor its `unreachable` route,
/// nor the default route (which the unreachable route is there to override).
fn foreign_route(routes: &str, range: &str) -> Option<String> {
    let (base, _) = parse_cidr(range)?;
    routes
        .lines()
        .find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // `unreachable 10.88.0.0/16`, `local 10.89.3.1 dev …`, or a plain `10.0.0.0/8 via …`.
            let (kind, destination) = match words.as_slice() {
                [
                    kind @ ("unreachable" | "blackhole" | "prohibit" | "local" | "broadcast"
                    | "unicast" | "multicast" | "throw"),
                    dest,
                    ..,
                ] => (*kind, *dest),
                [dest, ..] => ("unicast", *dest),
                [] => return false,
            };
            if destination == "default" || words.iter().any(|w| w.starts_with("vlr-br")) {
                return false;
            }
            if kind == "unreachable" && destination == range {
                return false;
            }
            let Some((address, prefix)) = parse_cidr(destination) else {
                return false;
            };
            // Two prefixes overlap when the shorter one contains the other's start.
            let shorter = prefix.min(16);
            let mask = if shorter == 0 {
                0
            } else {
                u32::MAX << (32 - shorter)
            };
            prefix > 0 && (address & mask) == (base & mask)
        })
        .map(str::to_string)
}

/// `10.88.0.0/16` or a single address (a /32) as (address, prefix length).
fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, prefix.parse().ok()?),
        None => (text, 32),
    };
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    (prefix <= 32).then_some((u32::from(address), prefix))
}

/// Creates the bridge (with the host's pod-subnet address and the API server's address), the
/// cgroup trees the kubelet runs pods under, and the CNI configuration in `root/cni`.
pub(crate) fn prepare_host(slot: &NodeSlot, root: &Path) -> anyhow::Result<()> {
    keep_ranges_on_host(slot.networks)?;
    let bridge = slot.bridge();
    if Path::new("/sys/class/net").join(&bridge).exists() {
        run("ip", &["link", "del", &bridge])?;
    }
    run("ip", &["link", "add", &bridge, "type", "bridge"])?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/24", slot.bridge_address()),
            "dev",
            &bridge,
        ],
    )?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/32", slot.api_address()),
            "dev",
            &bridge,
        ],
    )?;
    // No IPv6 on the bridge: nothing to autoconfigure, no router or MLD chatter.
    let _ = fs::write(
        format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"),
        "1",
    );
    run("ip", &["link", "set", &bridge, "up"])?;

    // cgroupfs driver on cgroup v1: the kubelet refuses a --cgroup-root that does not exist.
    let cgroup_root = slot.cgroup_root();
    for controller in CGROUP_CONTROLLERS {
        let parent = Path::new("/sys/fs/cgroup").join(controller);
        if !parent.is_dir() {
            bail!(
                "{} is missing: the node needs the cgroup v1 controllers {} mounted under /sys/fs/cgroup",
                parent.display(),
                CGROUP_CONTROLLERS.join(", ")
            );
        }
        let dir = parent.join(cgroup_root.trim_start_matches('/'));
        fs::create_dir_all(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
    }
    let cpuset = Path::new("/sys/fs/cgroup/cpuset");
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let value = fs::read(cpuset.join(file)).with_context(|| format!("reading {file}"))?;
        let target = cpuset.join(cgroup_root.trim_start_matches('/')).join(file);
        fs::write(&target, value).with_context(|| format!("writing {}", target.display()))?;
    }

    let conf_dir = root.join("cni/net.d");
    fs::create_dir_all(&conf_dir)?;
    // isGateway false: the plugin neither routes pods off the host nor turns on ip_forward. The one
    // route leads to the service range, which ends at the host (the API server's address).
    let conflist = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": slot.cni_network(),
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": false,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": slot.pod_subnet(), "rangeStart": slot.first_pod_address() }]],
                "routes": [{ "dst": slot.service_range(), "gw": slot.bridge_address() }],
                "dataDir": root.join("cni/ipam"),
            },
        }],
    });
    fs::write(
        conf_dir.join("10-velero-rs.conflist"),
        serde_json::to_vec_pretty(&conflist)?,
    )?;
    Ok(())
}

/// containerd's configuration: its own root, state, sockets and runc root under `root`, images
/// never pulled, CRI streaming on loopback.
pub(crate) fn containerd_config(root: &Path) -> String {
    let root = root.display();
    format!(
        r#"version = 2
root = "{root}/containerd/root"
state = "{root}/containerd/state"
[grpc]
  address = "{root}/containerd/containerd.sock"
[ttrpc]
  address = "{root}/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # This machine's capability bounding set lacks CAP_SYS_RESOURCE, so runc cannot lower
  # oom_score_adj, which the kubelet asks (-998) for every sandbox: clamp to containerd's own value.
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        Root = "{root}/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{root}/cni/net.d"
    max_conf_num = 1
"#
    )
}

/// The kubelet's configuration file.
pub(crate) fn kubelet_config(slot: &NodeSlot, root: &Path, port: u16, healthz_port: u16) -> String {
    let cgroup_root = slot.cgroup_root();
    let plugins = root.join("kubelet/volume-plugins");
    let plugins = plugins.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Loopback only. The API server (exec, logs) connects without a client certificate and does not
# verify the kubelet's self-signed one, so anonymous requests are allowed; the file's defaults
# (anonymous off, webhook authorization) would fail every exec and logs call with 401.
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz_port}
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failSwapOn: false
# This machine cannot lower oom_score_adj (no CAP_SYS_RESOURCE).
oomScoreAdj: 0
makeIPTablesUtilChains: false
# Images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
serializeImagePulls: false
runtimeRequestTimeout: 5m
volumePluginDir: {plugins}
# Ready about 1 s after the runtime is, instead of after the default 10 s; still written only on
# change (or every minute).
nodeStatusUpdateFrequency: 1s
nodeStatusReportFrequency: 1m
"#
    )
}

/// Stops every container of the node through containerd (so the shims exit), while containerd still
/// runs. Bounded: a container that does not go is killed with its cgroup by [`clean_host`].
pub(crate) fn remove_containers(ctr: &Path, socket: &Path) {
    let ctr_run = |args: &[&str]| -> Option<String> {
        let output = Command::new(ctr)
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let Some(tasks) = ctr_run(&["tasks", "ls", "-q"]) else {
        return;
    };
    for id in tasks.split_whitespace() {
        ctr_run(&["tasks", "kill", "-s", "SIGKILL", id]);
    }
    let containers = ctr_run(&["containers", "ls", "-q"]).unwrap_or_default();
    for id in containers.split_whitespace() {
        ctr_run(&["tasks", "delete", "-f", id]);
        ctr_run(&["containers", "delete", id]);
    }
}

/// Removes everything a node with directory `root` put on the host, whether or not its processes
/// still run: processes that name `root` (containerd, its shims, the kubelet) and those in the
/// node's cgroups (the containers) are killed, mounts under `root` unmounted, the bridge, the
/// cgroups, the CNI result cache and the kubelet's log links removed. Idempotent.
pub(crate) fn clean_host(slot: &NodeSlot, root: &Path) {
    let cgroup_root = slot.cgroup_root();
    let cgroup_root = cgroup_root.trim_start_matches('/');
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pids = processes_naming(root);
        pids.extend(processes_in_cgroup(
            &Path::new("/sys/fs/cgroup/pids").join(cgroup_root),
        ));
        pids.retain(|pid| *pid != std::process::id() as libc::pid_t);
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    unmount_under(root);

    let _ = Command::new("ip")
        .args(["link", "del", &slot.bridge()])
        .output();
    for controller in CGROUP_CONTROLLERS {
        remove_cgroup_tree(
            &Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(cgroup_root),
        );
    }
    if let Ok(entries) = fs::read_dir(CNI_RESULTS_DIR) {
        let prefix = format!("{}-", slot.cni_network());
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    // The kubelet keeps legacy links to container logs in /var/log/containers whatever its root.
    if let Ok(entries) = fs::read_dir("/var/log/containers") {
        for entry in entries.flatten() {
            if fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(root)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Mount points at or below `root`, deepest first (from /proc/self/mountinfo, octal escapes
/// decoded).
pub(crate) fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mount| mount.starts_with(root))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

fn unmount_under(root: &Path) {
    // A mount can sit on top of another at the same point: repeat until none is left.
    for _ in 0..5 {
        let mounts = mounts_under(root);
        if mounts.is_empty() {
            return;
        }
        for mount in mounts {
            let Ok(path) = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: a valid NUL-terminated path. MNT_DETACH: a busy mount is detached now and
            // released once unused, as `umount -l` does.
            unsafe {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Processes whose command line mentions a path below `root` (a node's containerd, shims and
/// kubelet all do).
fn processes_naming(root: &Path) -> Vec<libc::pid_t> {
    let mut needle = root.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    let needle = needle.as_slice();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// Every process in a cgroup v1 tree.
fn processes_in_cgroup(dir: &Path) -> Vec<libc::pid_t> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return pids;
    };
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            procs
                .lines()
                .filter_map(|l| l.trim().parse::<libc::pid_t>().ok()),
        );
    }
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(processes_in_cgroup(&entry.path()));
        }
    }
    pids
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Resident memory of `pid` in bytes (VmRSS), if it still runs.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Memory of a node's helpers that the harness did not start itself: the containerd shims and the
/// pods' processes, in bytes.
pub(crate) fn shim_and_pod_rss(slot: &NodeSlot, root: &Path) -> (u64, u64) {
    let shims: u64 = processes_naming(&root.join("containerd"))
        .into_iter()
        // containerd-shim-runc-v2, cut to the kernel's 15 characters.
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with("containerd-shim"))
        })
        .filter_map(|pid| rss_bytes(pid as u32))
        .sum();
    let cgroup = Path::new("/sys/fs/cgroup/pids").join(slot.cgroup_root().trim_start_matches('/'));
    let mut pods = processes_in_cgroup(&cgroup);
    pods.sort_unstable();
    pods.dedup();
    let pods: u64 = pods
        .into_iter()
        .filter_map(|pid| rss_bytes(pid as u32))
        .sum();
    (shims, pods)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    crate::process::run_checked(
        Command::new(program).args(args),
        &format!("`{program} {}`", args.join(" ")),
    )
}

/// Imports an OCI or Docker image archive into the node's containerd, where pods find it.
pub(crate) fn import_image(ctr: &Path, socket: &Path, archive: &Path) -> anyhow::Result<()> {
    crate::process::run_checked(
        Command::new(ctr)
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(archive),
        &format!("importing {} into the node's containerd", archive.display()),
    )
}

/// Appends a line to a file (best effort): a record of what teardown could not do.
pub(crate) fn note(path: &Path, line: &str) {
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/odd\04"), r"/odd\04");
    }

    #[test]
    fn node_numbers_are_exclusive_and_reused_after_release() {
        let locks = tempfile::tempdir().unwrap();
        let net = Networks::default();
        let a = NodeSlot::try_lock(locks.path(), 7, net).unwrap().unwrap();
        assert!(NodeSlot::try_lock(locks.path(), 7, net).unwrap().is_none());
        drop(a);
        assert!(NodeSlot::try_lock(locks.path(), 7, net).unwrap().is_some());
    }

    #[test]
    fn addresses_follow_the_node_number_and_the_networks() {
        let locks = tempfile::tempdir().unwrap();
        let slot = NodeSlot::try_lock(locks.path(), 12, Networks::default())
            .unwrap()
            .unwrap();
        assert_eq!(slot.bridge(), "vlr-br12");
        assert_eq!(slot.pod_subnet(), "10.88.12.0/24");
        assert_eq!(slot.first_pod_address(), "10.88.12.10");
        assert_eq!(slot.api_address(), "10.89.12.1");
        assert_eq!(slot.service_range(), "10.89.12.0/24");

        let env = |name: &str| match name {
            "VELERO_RS_POD_NETWORK" => Some("172.30".into()),
            "VELERO_RS_SERVICE_NETWORK" => Some("172.31.0.0/16".into()),
            _ => None,
        };
        let moved = Networks::from_env(env).unwrap();
        assert_eq!(moved.both(), ["172.30.0.0/16", "172.31.0.0/16"]);
        let slot = NodeSlot::try_lock(locks.path(), 3, moved).unwrap().unwrap();
        assert_eq!(slot.pod_subnet(), "172.30.3.0/24");
        assert_eq!(slot.api_address(), "172.31.3.1");
        for bad in ["10", "10.300", "ten.88", "10.88.1"] {
            let err = Networks::from_env(|n| (n == "VELERO_RS_POD_NETWORK").then(|| bad.into()));
            assert!(err.is_err(), "{bad}");
        }
        let same = Networks::from_env(|_| Some("10.50".into()));
        assert!(same.is_err());
    }

    #[test]
    fn routes_that_overlap_the_ranges_are_found_and_the_harness_own_are_not() {
        let ours = "default via 192.168.1.1 dev eth0 proto dhcp\n\
            unreachable 10.88.0.0/16\n\
            10.88.3.0/24 dev vlr-br3 proto kernel scope link src 10.88.3.1\n\
            local 10.89.3.1 dev vlr-br3 table local proto kernel scope host src 10.89.3.1\n\
            192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.20\n\
            10.100.0.0/16 via 192.168.1.1 dev eth0\n";
        assert_eq!(foreign_route(ours, "10.88.0.0/16"), None);
        assert_eq!(foreign_route(ours, "10.89.0.0/16"), None);
        for (line, range) in [
            ("10.0.0.0/8 via 10.8.0.1 dev tun0", "10.88.0.0/16"),
            (
                "10.89.4.0/24 dev wlan0 proto kernel scope link",
                "10.89.0.0/16",
            ),
            ("local 10.88.7.5 dev eth1 table local", "10.88.0.0/16"),
            ("blackhole 10.89.0.0/16", "10.89.0.0/16"),
        ] {
            let routes = format!("{ours}{line}\n");
            assert_eq!(
                foreign_route(&routes, range).as_deref(),
                Some(line),
                "{line}"
            );
        }
    }
}
