//! Kopia's repository format, as kopia 0.22.3 writes it with the parameters Velero 1.17+ leaves
//! at kopia's defaults (format version 3, scrypt-65536-8-1, BLAKE2B-256-128,
//! AES256-GCM-HMAC-SHA256, DYNAMIC-4M-BUZHASH, index v2 with the epoch manager): so that
//! repositories Velero wrote restore here and repositories written here restore with Velero, and
//! kopia itself lists, verifies and restores them.
//!
//! Layers, bottom up:
//! - [`blob`]: the store of named blobs (an object store's keys, or kopia's filesystem layout);
//! - [`format`] and [`crypto`]: `kopia.repository`, the password's key, content hashes and ciphers;
//! - [`index`], [`epoch`] and [`pack`]: where each content is; contents packed into `p`/`q` blobs;
//! - [`splitter`], [`object`]: files split into contents, long objects through tables;
//! - [`snapshot`] and [`manifest`]: directories, snapshot manifests, the manifests store;
//! - [`repo`]: an open repository (contents, objects, snapshots by ID); [`writer`]: one writing
//!   session; [`upload`] snapshots a directory, [`restore`] restores one.
//!
//! Nothing here knows Velero: velero-repository puts a Velero volume namespace's repository
//! behind it.

pub mod blob;
pub mod compaction;
pub mod compression;
pub mod crypto;
pub mod epoch;
mod error;
pub mod format;
pub mod id;
pub mod index;
pub mod maintenance;
pub mod manifest;
pub mod pack;
pub mod repo;
pub mod restore;
pub mod snapshot;
pub mod splitter;
pub mod upload;
pub mod writer;

pub use blob::{BlobMeta, BlobStore, FsBlobStore};
pub use error::{BlobError, KopiaError};
pub use id::{ContentId, ObjectId};
pub use repo::{Repository, SnapshotEntry};
pub use restore::{RestoreOptions, RestoreStats, restore};
pub use snapshot::{Snapshot, SourceInfo};
pub use upload::{SnapshotOptions, UploadOutcome, snapshot_directory};
