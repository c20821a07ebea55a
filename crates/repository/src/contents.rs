//! Restoring regular files' contents in bounded memory, before rustic_core's own restore does the
//! rest (directories, symlinks, special files, modes, owners, times).
//!
//! rustic_core 0.13 restores contents on 20 threads, each holding a whole run of a pack (tens of
//! MiB) and its decompressed blobs while it writes them (rustic-rs/rustic#1067): 1.2–1.8 GiB for a
//! 2 GiB volume, far more than a node agent should take. Here the blobs are read one at a time on
//! a few threads, in pack order (so reads stay sequential within a pack), each written to every
//! place that needs it and dropped: memory is eight blobs (at most 8 MiB each) plus the
//! placements. Each file then gets its size and mtime, so rustic_core's restore, which accepts a
//! file whose size and mtime already match, writes no content again and only sets metadata.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustic_core::repofile::BlobType;
use rustic_core::repofile::Node;
use rustic_core::{DataId, IndexedFull, Repository, RusticResult};

use crate::repo::RepositoryError;

/// Blobs read and written at once: more than the cores, so reading one blob from disk or the
/// object store overlaps decrypting and writing others.
const WORKERS: usize = 8;

/// One file the contents go into.
struct Target {
    path: PathBuf,
    size: u64,
    mtime: Option<rustic_core::jiff::Timestamp>,
}

/// Where a blob's data goes: which file, at which offset.
type Placement = (usize, u64);

/// Writes the contents of every regular file of `listing` (paths relative to `target`).
pub(crate) fn write_contents<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    listing: impl Iterator<Item = RusticResult<(PathBuf, Node)>>,
    target: &Path,
) -> Result<(), RepositoryError> {
    let mut files: Vec<Target> = Vec::new();
    // Keyed by (pack, offset in the pack) so reads follow the packs' layout; a blob several files
    // share is read once.
    let mut blobs: BTreeMap<(String, u32), (DataId, Vec<Placement>)> = BTreeMap::new();
    for entry in listing {
        let (path, node) = entry.map_err(|e| RepositoryError::Rustic {
            context: "listing the snapshot".into(),
            source: e,
        })?;
        if !node.is_file() {
            continue;
        }
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(RepositoryError::Invalid(format!(
                "the snapshot holds a path leaving the restore's directory: {}",
                path.display()
            )));
        }
        let file_index = files.len();
        let mut offset = 0u64;
        for id in node.content.iter().flatten() {
            let entry = repo
                .get_index_entry(id)
                .map_err(|e| RepositoryError::Rustic {
                    context: format!("finding the data of {}", path.display()),
                    source: e,
                })?;
            blobs
                .entry((entry.pack.to_string(), entry.location.offset))
                .or_insert_with(|| (*id, Vec::new()))
                .1
                .push((file_index, offset));
            offset += u64::from(entry.data_length());
        }
        files.push(Target {
            path: target.join(&path),
            size: node.meta.size,
            mtime: node.meta.mtime,
        });
    }

    for file in &files {
        if let Some(parent) = file.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("creating", parent, e))?;
        }
        // Holes where nothing is written: a sparse file stays sparse.
        File::create(&file.path)
            .and_then(|f| f.set_len(file.size))
            .map_err(|e| io_error("creating", &file.path, e))?;
    }

    let blobs: Vec<(DataId, Vec<Placement>)> = blobs.into_values().collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<RepositoryError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    if failure.lock().is_ok_and(|f| f.is_some()) {
                        return;
                    }
                    let Some((id, placements)) = blobs.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        return;
                    };
                    if let Err(e) = write_blob(repo, &files, id, placements) {
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure
        .into_inner()
        .map_err(|_| RepositoryError::Invalid("a restore thread panicked".into()))?
    {
        return Err(e);
    }

    for file in &files {
        if let Some(mtime) = file.mtime {
            let times = std::fs::FileTimes::new().set_modified(std::time::SystemTime::from(mtime));
            OpenOptions::new()
                .write(true)
                .open(&file.path)
                .and_then(|f| f.set_times(times))
                .map_err(|e| io_error("setting the modification time of", &file.path, e))?;
        }
    }
    Ok(())
}

fn write_blob<S: IndexedFull>(
    repo: &Repository<S>,
    files: &[Target],
    id: &DataId,
    placements: &[Placement],
) -> Result<(), RepositoryError> {
    // Not through rustic_core's blob cache: each blob is read once here (shared ones go to all
    // their places at once), so caching would only cost time and 32 MiB.
    let data = repo
        .cat_blob(BlobType::Data, id.into_inner().to_hex().as_str())
        .map_err(|e| RepositoryError::Rustic {
            context: format!("reading data blob {id}"),
            source: e,
        })?;
    if data.iter().all(|b| *b == 0) {
        return Ok(());
    }
    for (file_index, offset) in placements {
        let path = &files[*file_index].path;
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.write_all_at(&data, *offset))
            .map_err(|e| io_error("writing", path, e))?;
    }
    Ok(())
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> RepositoryError {
    RepositoryError::Invalid(format!("{what} {}: {e}", path.display()))
}
