//! Runs a local cluster of the test harness until interrupted, for the quickstart and for trying
//! `velero` by hand:
//!
//! ```text
//! velero-local-cluster --kubeconfig-out /tmp/kubeconfig              # control plane only
//! velero-local-cluster --kubeconfig-out /tmp/kubeconfig --node \
//!     --import velero-rs.tar --kubelet-root-out /tmp/kubelet-root    # and a node, pods run
//! ```

use std::path::PathBuf;

use anyhow::Context;
use velero_test_harness::{ControlPlane, Topology};

const USAGE: &str = "usage: velero-local-cluster --kubeconfig-out PATH [--node] [--import IMAGE.tar]... [--kubelet-root-out PATH]";

#[derive(Default)]
struct Args {
    kubeconfig_out: Option<PathBuf>,
    node: bool,
    imports: Vec<PathBuf>,
    kubelet_root_out: Option<PathBuf>,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().map(PathBuf::from).context(USAGE);
        match arg.as_str() {
            "--kubeconfig-out" => args.kubeconfig_out = Some(value()?),
            "--node" => args.node = true,
            "--import" => args.imports.push(value()?),
            "--kubelet-root-out" => args.kubelet_root_out = Some(value()?),
            _ => anyhow::bail!("unknown argument {arg:?}; {USAGE}"),
        }
    }
    if args.kubeconfig_out.is_none() || (!args.node && !args.imports.is_empty()) {
        anyhow::bail!("{USAGE} (--import needs --node)");
    }
    Ok(args)
}

/// Writes through a temporary name, so a waiting script never reads half a file.
fn publish(from: &[u8], to: &std::path::Path) -> anyhow::Result<()> {
    let partial = to.with_extension("partial");
    std::fs::write(&partial, from).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, to).with_context(|| format!("writing {}", to.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let topology = if args.node {
        Topology::WithNode
    } else {
        Topology::ControlPlaneOnly
    };
    let cluster = ControlPlane::start_with(topology).await?;
    for image in &args.imports {
        cluster.import_image(image)?;
    }
    if let (Some(out), Some(root)) = (&args.kubelet_root_out, cluster.kubelet_root_dir()) {
        publish(root.as_os_str().as_encoded_bytes(), out)?;
    }
    // The kubeconfig last: its appearance says everything is ready.
    let out = args.kubeconfig_out.context(USAGE)?;
    let kubeconfig = std::fs::read(cluster.kubeconfig_path())
        .with_context(|| format!("reading {}", cluster.kubeconfig_path().display()))?;
    publish(&kubeconfig, &out)?;
    let memory: u64 = cluster.memory_usage().iter().map(|(_, bytes)| bytes).sum();
    eprintln!(
        "local cluster (Kubernetes {}{}) at {} started in {:.1} s, {} MiB resident; kubeconfig: {}; Ctrl-C or SIGTERM stops it",
        velero_test_harness::KUBERNETES_VERSION,
        if args.node { ", one node" } else { ", no node" },
        cluster.server_url(),
        cluster.started_in().as_secs_f64(),
        memory >> 20,
        out.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(cluster);
    let _ = std::fs::remove_file(&out);
    Ok(())
}
