//! Running the `velero` binary against a test control plane.

use std::path::Path;
use std::process::{Command, Output};

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
