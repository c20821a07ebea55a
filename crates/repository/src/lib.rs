//! Volume data for file-system backups: restic-format repositories (content-defined chunking,
//! deduplication, AES-256 + Poly1305, zstd), written through rustic_core into the backup
//! storage location's object store, where Debian's `restic` (and Velero's restic path) can read
//! them.

mod backend;
mod contents;
mod error;
mod progress;
mod repo;

pub use error::RepositoryError;
pub use progress::ByteProgress;
pub use repo::{RepositoryLocation, SnapshotInfo, VolumeRepository};
