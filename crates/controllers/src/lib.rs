//! The controllers of `velero server` and its node agent, each on the Velero custom resources of
//! one namespace (the server's), as Velero's are:
//!
//! - [`backup`], [`restore`] and what they share in `operation` (status patches, progress, the
//!   end of an operation); [`schedule`], [`gc`] (expired backups), [`delete`] (DeleteBackupRequests),
//!   [`sync`] (backups found in locations), [`locations`] (validation), [`download`] and
//!   [`status`] (DownloadRequests, ServerStatusRequests);
//! - [`pod_volume`]: volume data (PodVolumeBackups/Restores, the node agent, repositories and
//!   their maintenance);
//! - [`server`] wires them together with [`metrics`] and [`leader`] election; `shared` holds what
//!   every controller uses.
//!
//! They use the engines (`velero-backup`, `velero-restore`) and the object store
//! (`velero-storage`); the CLI starts them through [`run_server`] and [`node_agent`].

pub mod backup;
pub mod delete;
pub mod download;
pub mod gc;
pub mod leader;
pub mod locations;
pub mod metrics;
mod operation;
pub mod pod_volume;
pub mod restore;
pub mod schedule;
pub mod server;
mod shared;
pub mod status;
pub mod sync;

pub use pod_volume::node_agent;
pub use server::{ServerConfig, run_server};

/// `velero-rs` server version, reported through ServerStatusRequests.
pub const SERVER_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

pub(crate) use shared::{
    Watched, controller, fail_interrupted, fail_interrupted_with, gzip_json, kube_message, now,
    run_controller,
};
