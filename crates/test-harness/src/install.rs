//! Putting a backup server's configuration into a test cluster, the way a user does: `velero
//! install` against the harness's S3 server, and waiting until a server has found the location
//! usable. Both velero-rs's and Velero's servers run beside the cluster in tests, so the location
//! names its credentials Secret instead of mounting it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::{ControlPlane, S3Server};

/// `velero install` (the binary `velero`) with the `aws` provider against `s3`'s bucket `velero`
/// (under `prefix`), its credentials file written into `work`; the location then names its
/// credentials Secret, since a server outside the cluster cannot mount it.
pub fn install_on_s3(
    velero: &Path,
    cp: &ControlPlane,
    s3: &S3Server,
    work: &Path,
    prefix: Option<&str>,
) -> anyhow::Result<()> {
    let credentials = work.join("credentials-velero");
    std::fs::write(&credentials, s3.credentials_file())?;
    let config = format!(
        "region=us-east-1,s3ForcePathStyle=true,s3Url={}",
        s3.endpoint()
    );
    let mut install = std::process::Command::new(velero);
    // The user's own client config (namespace, HOME) stays out of it.
    install
        .env_remove("VELERO_NAMESPACE")
        .env("HOME", work)
        .env("KUBECONFIG", cp.kubeconfig_path())
        .args(["install", "--provider", "aws", "--bucket", "velero"]);
    if let Some(prefix) = prefix {
        install.args(["--prefix", prefix]);
    }
    let out = install
        .arg("--secret-file")
        .arg(&credentials)
        .args([
            "--backup-location-config",
            &config,
            "--use-volume-snapshots=false",
        ])
        .output()
        .with_context(|| format!("running {} install", velero.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "velero install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patch = cp
        .kubectl()
        .args([
            "-n",
            "velero",
            "patch",
            "bsl",
            "default",
            "--type=merge",
            "-p",
            r#"{"spec":{"credential":{"name":"cloud-credentials","key":"cloud"}}}"#,
        ])
        .output()?;
    anyhow::ensure!(
        patch.status.success(),
        "kubectl patch bsl: {}",
        String::from_utf8_lossy(&patch.stderr)
    );
    Ok(())
}

/// Waits (at most two minutes) until a server has found the location `default` Available.
pub async fn location_available(cp: &ControlPlane) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = cp
            .kubectl()
            .args([
                "-n",
                "velero",
                "get",
                "bsl",
                "default",
                "-o",
                "jsonpath={.status.phase}",
            ])
            .output()?;
        if out.stdout == b"Available" {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the location default did not become Available within two minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
