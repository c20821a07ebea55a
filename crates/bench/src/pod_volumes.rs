//! The pod-volume load half (`velero-bench --pod-volumes [--volumes-per-pod N]`): how many
//! requests velero-rs's server and node agent send the API server while they back up and restore
//! small pod volumes on a real node, seen from the API server's side (its audit log, one event per
//! request, told apart by Velero's User-Agents `velero-server/…` and `node-agent-server/…`).
//!
//! Two rounds on one cluster: 2 pods, then 10 pods, each with N small emptyDir volumes (N = 5 by
//! default: 10 and 50 volumes). Each round backs its namespace up, deletes it, and restores it
//! (the pods wait in the restore helper until the agent has written their data). It prints the
//! requests per second of each component and the verbs behind them, so the rate of requests spent
//! waiting can be compared between the rounds; it asserts nothing.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{KillOnDrop, checked};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use velero_test_harness::{BUSYBOX_IMAGE, ControlPlane, S3Server, Topology};

/// The image the restore helper runs from, imported into the node (nothing is pulled).
const IMAGE: &str = "velero-rs:bench";
/// The User-Agent prefixes of the two components, as Velero names them.
const COMPONENTS: [(&str, &str); 2] = [
    ("server", "velero-server/"),
    ("node agent", "node-agent-server/"),
];

pub struct PodVolumeArgs {
    pub volumes_per_pod: usize,
}

fn pod(namespace: &str, i: usize, volumes: usize) -> Value {
    let names: Vec<String> = (0..volumes).map(|v| format!("v{v}")).collect();
    let script = names
        .iter()
        .map(|v| format!("[ -e /{v}/data ] || echo {v}-{i} > /{v}/data"))
        .collect::<Vec<_>>()
        .join("; ");
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("app-{i}"), "namespace": namespace, "labels": {"app": "bench"},
            "annotations": {"backup.velero.io/backup-volumes": names.join(",")}},
        "spec": {"terminationGracePeriodSeconds": 0, "automountServiceAccountToken": false,
            "containers": [{"name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", format!("{script}; sleep 3600")],
                "volumeMounts": names.iter().map(|v| json!({"name": v, "mountPath": format!("/{v}")})).collect::<Vec<_>>()}],
            "volumes": names.iter().map(|v| json!({"name": v, "emptyDir": {}})).collect::<Vec<_>>()}})
}

/// Requests per component and verb (`get pods`, `watch podvolumebackups`) in a stretch of the
/// audit log.
#[derive(Default)]
struct Requests {
    by_component: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

impl Requests {
    fn total(&self, component: &str) -> u64 {
        self.by_component
            .get(component)
            .map(|verbs| verbs.values().sum())
            .unwrap_or(0)
    }
}

/// The audit events written after byte `from` of the log.
fn requests_since(log: &Path, from: u64) -> anyhow::Result<Requests> {
    let mut file =
        std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    file.seek(std::io::SeekFrom::Start(from))?;
    let mut requests = Requests::default();
    for line in std::io::BufReader::new(file).lines() {
        let event: Value = serde_json::from_str(&line?).context("an audit event")?;
        let agent = event["userAgent"].as_str().unwrap_or_default();
        let Some((component, _)) = COMPONENTS.iter().find(|(_, p)| agent.starts_with(p)) else {
            continue;
        };
        let verb = event["verb"].as_str().unwrap_or("?");
        // Requests without an object are the discovery of API groups (`/apis/velero.io/v1`).
        let resource = event["objectRef"]["resource"]
            .as_str()
            .unwrap_or("(discovery)");
        let sub = event["objectRef"]["subresource"]
            .as_str()
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        *requests
            .by_component
            .entry(component)
            .or_default()
            .entry(format!("{verb} {resource}{sub}"))
            .or_default() += 1;
    }
    Ok(requests)
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

struct Round {
    what: String,
    volumes: usize,
    took: Duration,
    requests: Requests,
}

/// Runs `args` through our CLI and counts what the server and agent sent while it ran.
fn measured(
    cp: &ControlPlane,
    velero: &Path,
    what: &str,
    volumes: usize,
    args: &[&str],
) -> anyhow::Result<Round> {
    let log = cp.audit_log_path();
    let from = log_len(&log);
    let started = Instant::now();
    let out = checked(
        Command::new(velero)
            .env("KUBECONFIG", cp.kubeconfig_path())
            .args(args),
    )?;
    let took = started.elapsed();
    if !out.contains("Completed") {
        bail!("{what} did not complete: {out}");
    }
    Ok(Round {
        what: what.to_string(),
        volumes,
        took,
        requests: requests_since(&log, from)?,
    })
}

fn build_image(velero: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let archive = dir.join("velero-rs.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oci-image.py");
    checked(
        Command::new("python3")
            .arg(script)
            .args(["velero", "--binary"])
            .arg(velero)
            .args(["--ref", IMAGE, "--out"])
            .arg(&archive),
    )?;
    Ok(archive)
}

pub async fn run(args: &PodVolumeArgs, velero: &Path) -> anyhow::Result<()> {
    let cp = ControlPlane::start_audited(Topology::WithNode).await?;
    let work = tempfile::tempdir()?;
    cp.import_image(&build_image(velero, work.path())?)?;
    let s3 = S3Server::start().await?;
    s3.create_bucket("velero")?;
    velero_test_harness::install::install_on_s3(velero, &cp, &s3, work.path(), None)?;
    let client = cp.client().await?;
    velero_test_harness::create_object(&client, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "fs-restore-action-config", "namespace": "velero",
            "labels": {"velero.io/plugin-config": "", "velero.io/pod-volume-restore": "RestoreItemAction"}},
        "data": {"image": IMAGE},
    }))
    .await?;
    let pods_dir = cp
        .kubelet_root_dir()
        .context("the cluster's node")?
        .join("pods");
    let spawn = |args: &[&str], log: &str| -> anyhow::Result<KillOnDrop> {
        Ok(KillOnDrop(
            Command::new(velero)
                .env("KUBECONFIG", cp.kubeconfig_path())
                .env("NODE_NAME", velero_test_harness::NODE_NAME)
                .args(args)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(work.path().join(log))?)
                .spawn()?,
        ))
    };
    let _server = spawn(
        &["server", "--metrics-address", "127.0.0.1:0"],
        "server.log",
    )?;
    let _agent = spawn(
        &[
            "node-agent",
            "server",
            "--metrics-address",
            "127.0.0.1:0",
            "--host-pods-dir",
            &pods_dir.to_string_lossy(),
        ],
        "node-agent.log",
    )?;
    velero_test_harness::install::location_available(&cp).await?;

    let mut rounds = Vec::new();
    for pods in [2, 10] {
        let volumes = pods * args.volumes_per_pod;
        let ns = format!("volumes-{volumes}");
        checked(cp.kubectl().args(["create", "namespace", &ns]))?;
        for i in 0..pods {
            velero_test_harness::create_object(&client, pod(&ns, i, args.volumes_per_pod)).await?;
        }
        crate::wait_running(&client, &ns, pods).await?;
        rounds.push(measured(
            &cp,
            velero,
            "backup",
            volumes,
            &[
                "backup",
                "create",
                &ns,
                "--include-namespaces",
                &ns,
                "--wait",
            ],
        )?);
        checked(
            cp.kubectl()
                .args(["delete", "namespace", &ns, "--wait=true"]),
        )?;
        let restore = format!("{ns}-back");
        rounds.push(measured(
            &cp,
            velero,
            "restore",
            volumes,
            &[
                "restore",
                "create",
                &restore,
                "--from-backup",
                &ns,
                "--wait",
            ],
        )?);
        let status = checked(cp.kubectl().args([
            "-n",
            "velero",
            "get",
            "restore",
            &restore,
            "-o",
            "jsonpath={.status.phase}",
        ]))?;
        if status != "Completed" {
            bail!(
                "restore {restore} ended {status}; see {}",
                work.path().display()
            );
        }
    }

    println!(
        "pod volumes: requests to the API server from velero-rs (audit log), {} emptyDir volumes per pod",
        args.volumes_per_pod
    );
    for round in &rounds {
        let secs = round.took.as_secs_f64();
        println!("  {} of {} volumes: {secs:.1}s", round.what, round.volumes);
        for (component, _) in COMPONENTS {
            let total = round.requests.total(component);
            println!(
                "    {component}: {total} requests, {:.1}/s",
                total as f64 / secs
            );
            if let Some(verbs) = round.requests.by_component.get(component) {
                let mut verbs: Vec<_> = verbs.iter().collect();
                verbs.sort_by(|a, b| b.1.cmp(a.1));
                let top: Vec<String> = verbs
                    .iter()
                    .take(6)
                    .map(|(verb, n)| format!("{verb} {n}"))
                    .collect();
                println!("      {}", top.join(", "));
            }
        }
    }
    Ok(())
}
