//! The controllers of `velero server`: backups, backup storage locations, delete-backup, download
//! and server-status requests.
//!
//! Every controller works on the Velero custom resources of one namespace (the server's), as
//! Velero's do. They use the backup engine (`velero-backup`) and the object store
//! (`velero-storage`); the CLI starts them through [`run_server`].

pub mod backup;
pub mod delete;
pub mod download;
pub mod locations;
pub mod server;
pub mod status;

pub use server::{ServerConfig, run_server};

/// `velero-rs` server version, reported through ServerStatusRequests.
pub const SERVER_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Now, as the `metav1.Time` Velero writes (second precision, UTC).
pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let ts = jiff::Timestamp::now();
    let secs = ts.as_second();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(secs).unwrap_or(ts),
    )
}
