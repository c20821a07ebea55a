//! Real infrastructure for velero-rs integration tests.
//!
//! - [`ControlPlane`]: etcd, kube-apiserver and kube-controller-manager (Kubernetes
//!   [`KUBERNETES_VERSION`]) running as local processes on free loopback ports. It is a real API
//!   server, not a fake: admission, RBAC, garbage collection and namespace deletion all behave as in
//!   a cluster; without a node pods stay pending, and [`ControlPlane::start_with_node`] adds a
//!   scheduler and a real node (containerd + kubelet) on which they run.
//! - [`S3Server`]: an in-process S3-compatible server (s3s + s3s-fs) on loopback, storing objects
//!   as files in a temporary directory.
//!
//! Both clean up after themselves when dropped, use no fixed ports or paths, and can run many times
//! in parallel (several tests and test binaries at once).
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let control_plane = velero_test_harness::ControlPlane::start().await?;
//! let client = control_plane.client().await?;
//! let s3 = velero_test_harness::S3Server::start().await?;
//! s3.create_bucket("backups")?;
//! # Ok(()) }
//! ```

mod control_plane;
pub mod install;
pub mod manifests;
mod node;
mod objects;
mod process;
mod s3;
pub mod tools;
pub mod tree;
pub mod velero_layout;

pub use control_plane::{Component, ControlPlane, KUBERNETES_VERSION, Topology};
pub use node::{BUSYBOX_IMAGE, NODE_NAME};
pub use objects::{LOCAL_STORAGE_CLASS, bind_claim, create_object, local_volume};
pub use s3::S3Server;

/// `bytes` random bytes from the kernel, hex-encoded: tokens and keys that differ per instance.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use std::io::Read as _;

    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
