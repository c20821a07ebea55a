//! A restic-format repository (rustic_core): opened (or created) with its password, snapshots of
//! directories into it, restores out of it, forgetting snapshots and pruning what nothing
//! references.
//!
//! Every method blocks (rustic_core is synchronous); call them from blocking threads.

use std::path::Path;
use std::sync::Arc;

use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, ConfigOptions, Credentials, KeyOptions, LocalDestination, LsOptions, OpenStatus,
    ParentOptions, PathList, PruneOptions, Repository, RepositoryBackends, RepositoryOptions,
    RestoreOptions, SnapshotOptions,
};

use crate::backend::ObjectStoreBackend;
use crate::error::RepositoryError;
use crate::error::rustic;
use crate::progress::Bars;
use crate::progress::ByteProgress;
use crate::{RepositoryLocation, SnapshotInfo};

impl SnapshotInfo {
    pub(crate) fn of(snap: &SnapshotFile) -> Self {
        let summary = snap.summary.clone().unwrap_or_default();
        SnapshotInfo {
            id: snap.id.into_inner().to_hex().as_str().to_string(),
            total_bytes: summary.total_bytes_processed,
            added_bytes: summary.data_added,
            files: summary.total_files_processed,
            paths: snap.paths.iter().cloned().collect(),
            tags: snap.tags.iter().cloned().collect(),
        }
    }
}

/// An open repository.
pub struct ResticRepository {
    repo: Repository<OpenStatus>,
    /// The same backend the repository reads through, for reading pack ranges at once on restore.
    backend: Arc<ObjectStoreBackend>,
    location: String,
}

impl ResticRepository {
    /// Opens the repository at `location`, creating it first when it has no `config` yet.
    /// `runtime` is the Tokio runtime whose object store the calls block on.
    pub fn open_or_init(
        location: &RepositoryLocation,
        password: &str,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, RepositoryError> {
        Self::open_with(location, password, runtime, true, None)
    }

    /// [`Self::open_or_init`], counting the bytes a backup reads into `progress` as it goes.
    pub fn open_or_init_with_progress(
        location: &RepositoryLocation,
        password: &str,
        runtime: tokio::runtime::Handle,
        progress: Arc<ByteProgress>,
    ) -> Result<Self, RepositoryError> {
        Self::open_with(location, password, runtime, true, Some(progress))
    }

    /// Opens an existing repository; a missing one is an error (a restore must not create one).
    pub fn open(
        location: &RepositoryLocation,
        password: &str,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, RepositoryError> {
        Self::open_with(location, password, runtime, false, None)
    }

    fn open_with(
        location: &RepositoryLocation,
        password: &str,
        runtime: tokio::runtime::Handle,
        create: bool,
        progress: Option<Arc<ByteProgress>>,
    ) -> Result<Self, RepositoryError> {
        let backend = Arc::new(ObjectStoreBackend::new(
            location.store.clone(),
            location.root.clone(),
            runtime,
        ));
        let name = format!("{}", location.root);
        let backends = RepositoryBackends::new(backend.clone(), None);
        let mut options = RepositoryOptions::default();
        match &location.cache_dir {
            Some(dir) => options = options.cache_dir(dir.clone()),
            None => options = options.no_cache(true),
        }
        let repo = match progress {
            Some(p) => Repository::new_with_progress(&options, &backends, Bars(p)),
            None => Repository::new(&options, &backends),
        }
        .map_err(rustic("opening the repository"))?;
        let credentials = Credentials::password(password);
        let exists = repo
            .config_id()
            .map_err(rustic(format!("reading the repository config at {name}")))?
            .is_some();
        let repo = if exists {
            repo.open(&credentials).map_err(|e| {
                if e.is_incorrect_password() {
                    RepositoryError::WrongPassword {
                        location: name.clone(),
                    }
                } else {
                    RepositoryError::Rustic {
                        context: format!("opening the repository at {name}"),
                        source: e,
                    }
                }
            })?
        } else if !create {
            return Err(RepositoryError::Missing(name));
        } else {
            tracing::info!(repository = %name, "initialising the repository");
            repo.init(
                &credentials,
                &KeyOptions::default(),
                &ConfigOptions::default(),
            )
            .map_err(rustic(format!("initialising the repository at {name}")))?
        };
        Ok(ResticRepository {
            repo,
            backend,
            location: name,
        })
    }

    /// Snapshots the directory `source` (its contents, as Velero's restic path records a pod
    /// volume) with `host` and `tags` (`key=value`), deduplicated against `parent` when given.
    pub fn backup(
        self,
        source: &Path,
        host: &str,
        tags: &[String],
        parent: Option<&str>,
    ) -> Result<(Self, SnapshotInfo), RepositoryError> {
        let source_text = source.to_str().ok_or_else(|| {
            RepositoryError::Invalid(format!("{} is not UTF-8", source.display()))
        })?;
        let paths = PathList::from_string(source_text)
            .map_err(rustic(format!("reading {source_text}")))?
            .sanitize()
            .map_err(|e| RepositoryError::Invalid(format!("the path {source_text}: {e}")))?;
        let mut snap_options = SnapshotOptions::default().host(host.to_string());
        for tag in tags {
            snap_options = snap_options
                .add_tags(tag)
                .map_err(rustic(format!("the snapshot tag {tag:?}")))?;
        }
        let snap = snap_options
            .to_snapshot()
            .map_err(rustic("preparing the snapshot"))?;
        let mut parent_options = ParentOptions::default();
        if let Some(parent) = parent {
            parent_options = parent_options.parents(vec![parent.to_string()]);
        }
        let options = BackupOptions::default().parent_opts(parent_options);
        let location = self.location.clone();
        let indexed = self
            .repo
            .to_indexed_ids()
            .map_err(rustic(format!("reading the index of {location}")))?;
        let saved = indexed
            .backup(&options, &paths, snap)
            .map_err(rustic(format!("backing up {source_text}")))?;
        Ok((
            ResticRepository {
                repo: indexed.drop_index(),
                backend: self.backend,
                location,
            },
            SnapshotInfo::of(&saved),
        ))
    }

    /// Every snapshot in the repository.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, RepositoryError> {
        let all = self.repo.get_all_snapshots().map_err(rustic(format!(
            "listing the snapshots of {}",
            self.location
        )))?;
        Ok(all.iter().map(SnapshotInfo::of).collect())
    }

    /// The newest snapshot carrying `tag` (`key=value`), the parent Velero gives the next
    /// backup of the same claim (its `pvc-uid`), so that an unchanged volume is not read again
    /// when its pod, and with it the volume's path on the node, is new.
    pub fn latest_with_tag(&self, tag: &str) -> Result<Option<String>, RepositoryError> {
        let all = self.repo.get_all_snapshots().map_err(rustic(format!(
            "listing the snapshots of {}",
            self.location
        )))?;
        Ok(all
            .iter()
            .filter(|s| s.tags.iter().any(|t| t == tag))
            .max_by_key(|s| s.time.timestamp())
            .map(|s| SnapshotInfo::of(s).id))
    }

    /// Writes the contents of the snapshot's directory into `target` (created if missing).
    pub fn restore(self, snapshot: &str, target: &Path) -> Result<Self, RepositoryError> {
        self.restore_counting(snapshot, target, &ByteProgress::default())
    }

    /// [`Self::restore`], counting the files' bytes into `progress` as they are written (a
    /// PodVolumeRestore's `progress`).
    pub fn restore_counting(
        self,
        snapshot: &str,
        target: &Path,
        progress: &ByteProgress,
    ) -> Result<Self, RepositoryError> {
        let location = self.location.clone();
        let found = self
            .repo
            .get_snapshots(&[snapshot])
            .map_err(rustic(format!("finding snapshot {snapshot} in {location}")))?;
        let snap = found.first().ok_or_else(|| {
            RepositoryError::Invalid(format!("no snapshot {snapshot} in {location}"))
        })?;
        // The snapshot's one path is the directory that was backed up; its contents go into the
        // target, whatever the path was on the node that took it.
        let inner = snap.paths.iter().next().cloned().unwrap_or_default();
        let indexed = self
            .repo
            .to_indexed()
            .map_err(rustic(format!("reading the index of {location}")))?;
        let node = indexed
            .node_from_snapshot_path(&format!("{snapshot}:{inner}"), |_| true)
            .map_err(rustic(format!("finding {inner} in snapshot {snapshot}")))?;
        let target_text = target.to_str().ok_or_else(|| {
            RepositoryError::Invalid(format!("{} is not UTF-8", target.display()))
        })?;
        let destination = LocalDestination::new(&format!("{target_text}/"), true, false)
            .map_err(rustic(format!("preparing {target_text}")))?;
        // Owners by number, as restic restores them: the names the node agent's image knows say
        // nothing about the users of the pod the volume belongs to.
        let options = RestoreOptions::default().numeric_id(true);
        let listing = indexed
            .ls(&node, &LsOptions::default())
            .map_err(rustic(format!("listing snapshot {snapshot}")))?;
        crate::contents::write_contents(
            &indexed,
            &*self.backend,
            listing.clone(),
            target,
            progress,
        )?;
        let plan = indexed
            .prepare_restore(&options, listing.clone(), &destination, false)
            .map_err(rustic(format!("planning the restore of {snapshot}")))?;
        indexed
            .restore(plan, &options, listing, &destination)
            .map_err(rustic(format!("restoring {snapshot} into {target_text}")))?;
        Ok(ResticRepository {
            repo: indexed.drop_index(),
            backend: self.backend,
            location,
        })
    }

    /// Removes snapshots (Velero's `restic forget` when a backup is deleted). Their data stays
    /// until [`Self::prune`].
    pub fn forget(&self, snapshots: &[String]) -> Result<(), RepositoryError> {
        let found = self
            .repo
            .get_snapshots(snapshots)
            .map_err(rustic(format!("finding snapshots in {}", self.location)))?;
        let ids: Vec<_> = found.iter().map(|s| s.id).collect();
        self.repo
            .delete_snapshots(&ids)
            .map_err(rustic(format!("forgetting snapshots in {}", self.location)))
    }

    /// Removes the data no snapshot references any more (repository maintenance).
    pub fn prune(&self) -> Result<(), RepositoryError> {
        let options = PruneOptions::default()
            .instant_delete(true)
            .keep_delete(rustic_core::jiff::Span::new());
        let plan = self
            .repo
            .prune_plan(&options)
            .map_err(rustic(format!("planning maintenance of {}", self.location)))?;
        self.repo
            .prune(&options, plan)
            .map_err(rustic(format!("maintenance of {}", self.location)))
    }
}
