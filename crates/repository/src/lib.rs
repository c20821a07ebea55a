//! Volume data for file-system backups, in the two repository formats Velero writes: kopia's
//! (Velero 1.17+, the default, through velero-kopia) and restic's (Velero before 1.17, through
//! rustic_core, so Debian's `restic` reads it). Both live in the backup storage location's object
//! store and sit behind one seam, [`VolumeRepository`]: the node agent, the server, deletion and
//! maintenance never ask which format they hold.

mod backend;
mod contents;
mod error;
mod kopia;
mod kopia_blobs;
mod progress;
mod restic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;

pub use error::RepositoryError;
pub use kopia::{KopiaRepository, source_of as kopia_source};
pub use progress::ByteProgress;
pub use restic::ResticRepository;

/// Where a repository lives: a location's object store and the key prefix inside it.
#[derive(Clone)]
pub struct RepositoryLocation {
    pub store: Arc<dyn ObjectStore>,
    /// `<location prefix>restic/<volume namespace>` or `<location prefix>kopia/<volume namespace>`.
    pub root: object_store::path::Path,
    /// rustic's cache of index and snapshot files; `None` for no cache.
    pub cache_dir: Option<PathBuf>,
}

/// What a snapshot holds, as PodVolumeBackup status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: String,
    /// Bytes of every file in the snapshot.
    pub total_bytes: u64,
    /// Bytes of data this snapshot added to the repository (before compression).
    pub added_bytes: u64,
    pub files: u64,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
}

/// The two formats, as a PodVolumeBackup's `uploaderType` and a BackupRepository's
/// `repositoryType` name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RepositoryFormat {
    Kopia,
    Restic,
}

impl RepositoryFormat {
    /// The key prefix under a location (`kopia/<namespace>` or `restic/<namespace>`).
    pub fn directory(self) -> &'static str {
        match self {
            RepositoryFormat::Kopia => "kopia",
            RepositoryFormat::Restic => "restic",
        }
    }
}

/// Which pod volume a backup is of: each format records it its own way (restic: the host and
/// `key=value` tags; kopia: a snapshot source per pod and volume, Velero's tags).
#[derive(Clone, Debug, Default)]
pub struct VolumeSource {
    pub pod_namespace: String,
    pub pod_name: String,
    /// The claim's name for a claim-backed volume, else the volume's name.
    pub volume: String,
    /// restic's snapshot host (Velero: the pod's node) and tags.
    pub host: String,
    pub tags: Vec<String>,
    /// The tag (`pvc-uid=<uid>`) whose newest restic snapshot is the parent.
    pub parent_tag: Option<String>,
}

/// How a repository is opened for one piece of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create it when it does not exist yet (backups).
    OrCreate,
    /// It must exist (restores, forgetting, maintenance).
    Existing,
}

/// An open volume repository of either format. Every call blocks (both formats read the object
/// store synchronously); run them on blocking threads.
pub enum VolumeRepository {
    Kopia(KopiaRepository),
    Restic(ResticRepository),
}

impl VolumeRepository {
    /// Opens the repository at `location`. `runtime` is the Tokio runtime whose object store the
    /// calls block on; `progress` hears the bytes a backup reads.
    pub fn open(
        format: RepositoryFormat,
        location: &RepositoryLocation,
        password: &str,
        runtime: tokio::runtime::Handle,
        mode: OpenMode,
        progress: Option<Arc<ByteProgress>>,
    ) -> Result<Self, RepositoryError> {
        let create = mode == OpenMode::OrCreate;
        Ok(match format {
            RepositoryFormat::Kopia => {
                VolumeRepository::Kopia(KopiaRepository::open(location, password, runtime, create)?)
            }
            RepositoryFormat::Restic => VolumeRepository::Restic(match (create, progress) {
                (true, Some(p)) => {
                    ResticRepository::open_or_init_with_progress(location, password, runtime, p)?
                }
                (true, None) => ResticRepository::open_or_init(location, password, runtime)?,
                (false, _) => ResticRepository::open(location, password, runtime)?,
            }),
        })
    }

    pub fn format(&self) -> RepositoryFormat {
        match self {
            VolumeRepository::Kopia(_) => RepositoryFormat::Kopia,
            VolumeRepository::Restic(_) => RepositoryFormat::Restic,
        }
    }

    /// Snapshots the directory `source`, the data of `volume`, deduplicated against the format's
    /// parent for it. `progress` counts the bytes as they are read.
    pub fn backup(
        self,
        source: &Path,
        volume: &VolumeSource,
        progress: &ByteProgress,
    ) -> Result<(Self, SnapshotInfo), RepositoryError> {
        match self {
            VolumeRepository::Kopia(mut repo) => {
                let info = repo.backup(source, volume, progress)?;
                Ok((VolumeRepository::Kopia(repo), info))
            }
            VolumeRepository::Restic(repo) => {
                let parent = match &volume.parent_tag {
                    Some(tag) => repo.latest_with_tag(tag)?,
                    None => None,
                };
                let (repo, info) =
                    repo.backup(source, &volume.host, &volume.tags, parent.as_deref())?;
                Ok((VolumeRepository::Restic(repo), info))
            }
        }
    }

    /// Writes the snapshot's files into `target` (created if missing), counting them into
    /// `progress`.
    pub fn restore(
        self,
        snapshot: &str,
        target: &Path,
        progress: &ByteProgress,
    ) -> Result<Self, RepositoryError> {
        match self {
            VolumeRepository::Kopia(repo) => {
                repo.restore(snapshot, target, progress)?;
                Ok(VolumeRepository::Kopia(repo))
            }
            VolumeRepository::Restic(repo) => Ok(VolumeRepository::Restic(
                repo.restore_counting(snapshot, target, progress)?,
            )),
        }
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, RepositoryError> {
        match self {
            VolumeRepository::Kopia(repo) => repo.snapshots(),
            VolumeRepository::Restic(repo) => repo.snapshots(),
        }
    }

    /// Removes snapshots when their backup is deleted; their data stays until maintenance.
    pub fn forget(&mut self, snapshots: &[String]) -> Result<(), RepositoryError> {
        match self {
            VolumeRepository::Kopia(repo) => repo.forget(snapshots),
            VolumeRepository::Restic(repo) => repo.forget(snapshots),
        }
    }

    /// Removes the data no snapshot references any more (repository maintenance).
    pub fn maintain(&mut self) -> Result<(), RepositoryError> {
        match self {
            VolumeRepository::Kopia(repo) => repo.maintain(),
            VolumeRepository::Restic(repo) => repo.prune(),
        }
    }
}
