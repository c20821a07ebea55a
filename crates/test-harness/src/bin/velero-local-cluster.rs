//! Runs the local control plane of the test harness until interrupted, for the quickstart and for
//! trying `velero` by hand: `velero-local-cluster --kubeconfig-out /tmp/kubeconfig`.

use std::path::PathBuf;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = match (args.next().as_deref(), args.next()) {
        (Some("--kubeconfig-out"), Some(path)) => PathBuf::from(path),
        _ => anyhow::bail!("usage: velero-local-cluster --kubeconfig-out PATH"),
    };
    let control_plane = velero_test_harness::ControlPlane::start().await?;
    // Write to a temporary name and rename, so a waiting script never reads half a file.
    let partial = out.with_extension("partial");
    std::fs::copy(control_plane.kubeconfig_path(), &partial)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "local control plane (Kubernetes {}) at {}; kubeconfig: {}; Ctrl-C or SIGTERM stops it",
        velero_test_harness::KUBERNETES_VERSION,
        control_plane.server_url(),
        out.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(control_plane);
    let _ = std::fs::remove_file(&out);
    Ok(())
}
