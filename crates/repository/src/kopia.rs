//! A kopia-format repository as Velero 1.17+ uses it for file-system backup
//! (pkg/uploader/kopia/snapshot.go): one snapshot source per pod volume
//! (`default@default:snapshot-pod-volume/kopia/<namespace>/<pod>/<claim or volume>`), tagged
//! `snapshot-requester: snapshot-pod-volume` and `snapshot-uploader: kopia`, pinned
//! `velero-pin`; the parent is the source's newest complete snapshot with those tags.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use velero_kopia::{Repository, RestoreOptions, SnapshotOptions, SourceInfo};

use crate::error::RepositoryError;
use crate::kopia_blobs::ObjectStoreBlobs;
use crate::progress::ByteProgress;
use crate::{RepositoryLocation, SnapshotInfo, VolumeSource};

/// Velero's kopia client identity (`udmrepo.GetRepoUser()@GetRepoDomain()`).
const USER: &str = "default";
const HOST: &str = "default";
/// Velero's snapshot description and pin.
const DESCRIPTION: &str = "Kopia Uploader";
const PIN: &str = "velero-pin";
/// The tags Velero's pod volume backups carry (and find their parent by).
const REQUESTER: (&str, &str) = ("snapshot-requester", "snapshot-pod-volume");
const UPLOADER: (&str, &str) = ("snapshot-uploader", "kopia");
/// Velero's blob beside kopia's: the repository's unique ID, which Velero checks on connect.
const UDMREPO_BLOB: &str = "udmrepo.Repository";

pub struct KopiaRepository {
    repo: Repository,
    location: String,
}

fn kopia_error(location: &str) -> impl Fn(velero_kopia::KopiaError) -> RepositoryError + '_ {
    move |e| match e {
        velero_kopia::KopiaError::WrongPassword => RepositoryError::WrongPassword {
            location: location.to_string(),
        },
        velero_kopia::KopiaError::NotARepository => RepositoryError::Missing(location.to_string()),
        other => RepositoryError::Kopia {
            location: location.to_string(),
            source: other,
        },
    }
}

/// The snapshot source of a pod volume, as Velero's kopia uploader names it.
pub fn source_of(volume: &VolumeSource) -> SourceInfo {
    SourceInfo {
        host: HOST.into(),
        user_name: USER.into(),
        path: format!(
            "snapshot-pod-volume/kopia/{}/{}/{}",
            volume.pod_namespace, volume.pod_name, volume.volume
        ),
    }
}

impl KopiaRepository {
    pub(crate) fn open(
        location: &RepositoryLocation,
        password: &str,
        runtime: tokio::runtime::Handle,
        create: bool,
    ) -> Result<Self, RepositoryError> {
        let name = location.root.to_string();
        let blobs = Arc::new(ObjectStoreBlobs::new(
            location.store.clone(),
            location.root.clone(),
            runtime,
        ));
        let repo = match Repository::open(blobs.clone(), password) {
            Ok(repo) => repo,
            Err(velero_kopia::KopiaError::NotARepository) if create => {
                tracing::info!(repository = %name, "initialising the kopia repository");
                let mut repo =
                    Repository::create(blobs.clone(), password).map_err(kopia_error(&name))?;
                // What Velero adds when it creates one: maintenance owned by its identity, and
                // its own blob naming the repository.
                velero_kopia::maintenance::ensure_owner(&mut repo, &format!("{USER}@{HOST}"))
                    .map_err(kopia_error(&name))?;
                write_udmrepo_blob(&*blobs, &repo).map_err(kopia_error(&name))?;
                repo
            }
            Err(e) => return Err(kopia_error(&name)(e)),
        };
        Ok(KopiaRepository {
            repo,
            location: name,
        })
    }

    /// Snapshots `source` for the pod volume `volume`, from its newest complete snapshot.
    pub(crate) fn backup(
        &mut self,
        source: &Path,
        volume: &VolumeSource,
        progress: &ByteProgress,
    ) -> Result<SnapshotInfo, RepositoryError> {
        let error = kopia_error(&self.location);
        let info = source_of(volume);
        let tags = BTreeMap::from([
            (REQUESTER.0.to_string(), REQUESTER.1.to_string()),
            (UPLOADER.0.to_string(), UPLOADER.1.to_string()),
        ]);
        // Velero's findPreviousSnapshotManifest: same source, same requester and uploader tags.
        let parent = self
            .repo
            .snapshots(Some(&info))
            .map_err(&error)?
            .into_iter()
            .filter(|s| {
                s.snapshot.tags.get(REQUESTER.0).map(String::as_str) == Some(REQUESTER.1)
                    && s.snapshot.tags.get(UPLOADER.0).map(String::as_str) == Some(UPLOADER.1)
            })
            .max_by_key(|s| s.snapshot.start_time)
            .map(|s| s.id);
        progress.total.store(
            directory_bytes(source),
            std::sync::atomic::Ordering::Relaxed,
        );
        let options = SnapshotOptions {
            source: info.clone(),
            description: DESCRIPTION.into(),
            tags: tags.clone(),
            pins: vec![PIN.into()],
            parent,
        };
        let (outcome, _) =
            velero_kopia::snapshot_directory(&mut self.repo, source, &options, &|n| {
                progress.done.store(n, std::sync::atomic::Ordering::Relaxed)
            })
            .map_err(&error)?;
        Ok(SnapshotInfo {
            id: outcome.snapshot_id,
            total_bytes: outcome.total_bytes,
            added_bytes: outcome.added_bytes,
            files: outcome.files,
            paths: vec![info.path],
            tags: tags.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        })
    }

    pub(crate) fn restore(
        &self,
        snapshot: &str,
        target: &Path,
        progress: &ByteProgress,
    ) -> Result<(), RepositoryError> {
        let error = kopia_error(&self.location);
        let root = self.repo.snapshot(snapshot).map_err(&error)?;
        progress.total.store(
            u64::try_from(root.root_entry.summ.map(|s| s.size).unwrap_or(0)).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        velero_kopia::restore(
            &self.repo,
            snapshot,
            target,
            RestoreOptions::default(),
            &|n| progress.done.store(n, std::sync::atomic::Ordering::Relaxed),
        )
        .map_err(&error)?;
        Ok(())
    }

    pub(crate) fn snapshots(&self) -> Result<Vec<SnapshotInfo>, RepositoryError> {
        let all = self
            .repo
            .snapshots(None)
            .map_err(kopia_error(&self.location))?;
        Ok(all
            .into_iter()
            .map(|s| SnapshotInfo {
                id: s.id,
                total_bytes: u64::try_from(s.snapshot.stats.total_size).unwrap_or(0),
                added_bytes: 0,
                files: u64::try_from(s.snapshot.stats.file_count).unwrap_or(0),
                paths: vec![s.snapshot.source.path],
                tags: s
                    .snapshot
                    .tags
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            })
            .collect())
    }

    /// Deletes snapshot manifests (Velero's `DeleteManifest` when a backup is deleted); their data
    /// stays until maintenance.
    pub(crate) fn forget(&mut self, snapshots: &[String]) -> Result<(), RepositoryError> {
        let error = kopia_error(&self.location);
        let mut writer = velero_kopia::writer::Writer::new(&mut self.repo).map_err(&error)?;
        for id in snapshots {
            writer.delete_manifest(id);
        }
        writer.flush().map_err(&error)
    }
}

impl KopiaRepository {
    /// Kopia's full maintenance with kopia's safety margins, as the maintenance owner Velero's
    /// repository maintenance job is (`default@default`).
    pub(crate) fn maintain(&mut self) -> Result<(), RepositoryError> {
        let report = velero_kopia::maintenance::run_full(
            &mut self.repo,
            &format!("{USER}@{HOST}"),
            velero_kopia::maintenance::Safety::FULL,
        )
        .map_err(kopia_error(&self.location))?;
        tracing::info!(repository = %self.location, ?report, "kopia maintenance done");
        Ok(())
    }
}

/// Velero's `udmrepo.Repository`: `{"uniqueID":"<base64 of kopia.repository's uniqueID>"}`.
fn write_udmrepo_blob(
    blobs: &dyn velero_kopia::BlobStore,
    repo: &Repository,
) -> Result<(), velero_kopia::KopiaError> {
    use base64::Engine as _;
    let unique = base64::engine::general_purpose::STANDARD.encode(repo.unique_id());
    let body = serde_json::json!({ "uniqueID": unique });
    blobs.put(UDMREPO_BLOB, body.to_string().into_bytes())?;
    Ok(())
}

/// Bytes of the regular files below `dir` (the total a backup reports before it starts).
fn directory_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}
