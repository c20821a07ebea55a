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

const HELP: &str =
    "Runs a local Kubernetes cluster of the velero-rs test harness until Ctrl-C or SIGTERM.

Options:
  --kubeconfig-out PATH    write the cluster's kubeconfig here once it is ready (required)
  --node                   start a node too (containerd and a kubelet), so pods run
  --import IMAGE.tar       load an OCI image archive onto the node (needs --node; repeatable)
  --kubelet-root-out PATH  write the node's kubelet root directory here
  -h, --help               print this help";

/// What the command line asks for: a cluster, or only the help text.
enum Request {
    Run(Args),
    Help,
}

#[derive(Default)]
struct Args {
    kubeconfig_out: Option<PathBuf>,
    node: bool,
    imports: Vec<PathBuf>,
    kubelet_root_out: Option<PathBuf>,
}

fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Request> {
    let mut args = Args::default();
    while let Some(arg) = it.next() {
        let mut value = || it.next().map(PathBuf::from).context(USAGE);
        match arg.as_str() {
            "-h" | "--help" => return Ok(Request::Help),
            "--kubeconfig-out" => args.kubeconfig_out = Some(value()?),
            "--node" => args.node = true,
            "--import" => args.imports.push(value()?),
            "--kubelet-root-out" => args.kubelet_root_out = Some(value()?),
            _ => anyhow::bail!("unknown argument {arg:?}; {USAGE}"),
        }
    }
    if args.kubeconfig_out.is_none() {
        anyhow::bail!("--kubeconfig-out is required; {USAGE}");
    }
    if !args.node && !args.imports.is_empty() {
        anyhow::bail!("--import needs --node; {USAGE}");
    }
    Ok(Request::Run(args))
}

/// Writes through a temporary name, so a waiting script never reads half a file.
fn publish(from: &[u8], to: &std::path::Path) -> anyhow::Result<()> {
    let partial = to.with_extension("partial");
    std::fs::write(&partial, from).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, to).with_context(|| format!("writing {}", to.display()))
}

fn main() -> std::process::ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Request::Run(args)) => args,
        Ok(Request::Help) => {
            println!("{HELP}\n\n{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("velero-local-cluster: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("velero-local-cluster: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // A plain message, never a backtrace: this is a command people run by hand.
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("velero-local-cluster: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> anyhow::Result<Request> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn help_is_usage_and_bad_arguments_say_what_is_wrong() {
        assert!(matches!(parse_args(&["--help"]), Ok(Request::Help)));
        assert!(matches!(parse_args(&["--node", "-h"]), Ok(Request::Help)));
        let missing = parse_args(&["--node"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            missing.starts_with("--kubeconfig-out is required"),
            "{missing}"
        );
        let import = parse_args(&["--kubeconfig-out", "k", "--import", "i.tar"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(import.starts_with("--import needs --node"), "{import}");
        let unknown = parse_args(&["--nodes"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            unknown.contains("unknown argument \"--nodes\""),
            "{unknown}"
        );
        assert!(matches!(
            parse_args(&["--kubeconfig-out", "k", "--node", "--import", "i.tar"]),
            Ok(Request::Run(Args { node: true, .. }))
        ));
    }
}
