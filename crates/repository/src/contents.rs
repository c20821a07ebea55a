//! Restoring regular files' contents in bounded memory, before rustic_core's own restore does the
//! rest (directories, symlinks, special files, modes, owners, times).
//!
//! rustic_core 0.13 restores contents on 20 threads, each holding a whole run of a pack (tens of
//! MiB) and its decompressed blobs while it writes them (rustic-rs/rustic#1067): 1.2–1.8 GiB for a
//! 2 GiB volume, far more than a node agent should take. Here the needed blobs are grouped into
//! runs of neighbouring blobs of one pack, at most [`RUN_BYTES`] each, so that each run is one
//! read from the location (one GET on an object store, as restic's restorer reads pack ranges),
//! and a few threads each take a run, decrypt and decompress its blobs one by one, write each to
//! every place that needs it and drop it. Memory is one run and one blob per thread plus the
//! placements. Each file then gets its size and mtime, so rustic_core's restore, which accepts a
//! file whose size and mtime already match, writes no content again and only sets metadata.
//!
//! rustic_core decrypts a pack range only blob by blob through its own backend
//! (`Repository::cat_blob`, one read each), so the blobs of a run are decrypted here with the
//! repository's master key and the same crates rustic_core uses: restic's format
//! (<https://restic.readthedocs.io/en/stable/100_references.html#pack-format>) stores each blob
//! as nonce (16 bytes), AES-256-CTR ciphertext and a Poly1305-AES tag (16 bytes), the plaintext
//! zstd-compressed when the index gives an uncompressed length (repository format 2).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::AeadInPlace;
use rustic_core::repofile::Node;
use rustic_core::{FileType, IndexedFull, ReadBackend, Repository, RusticResult};

use crate::error::RepositoryError;
use crate::progress::ByteProgress;

/// Runs read, decrypted and written at once: more than the cores, so reading one run from disk or
/// the object store overlaps decrypting and writing others. Measured on the 2 GiB bench volume
/// (local disk, 2 cores): 4 takes the least time; 8 takes no less and about 80 MiB more memory
/// (each thread's buffers stay with its allocator arena).
const WORKERS: usize = 4;

/// The most bytes one read takes from a pack (a single larger blob is read whole). restic's
/// chunker makes blobs of 512 KiB to 8 MiB, so a run holds a few of them.
const RUN_BYTES: u32 = 4 << 20;

/// Bytes between two needed blobs of a pack that are read and thrown away rather than starting a
/// new read: on an object store one more request costs more than a few hundred KiB.
const GAP_BYTES: u32 = 256 << 10;

/// restic's nonce and Poly1305 tag around every blob's ciphertext.
const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 16;

/// One file the contents go into.
struct Target {
    path: PathBuf,
    size: u64,
    mtime: Option<rustic_core::jiff::Timestamp>,
}

/// Where a blob's data goes: which file, at which offset.
type Placement = (usize, u64);

/// A needed blob: where it is in its pack and every place its data goes.
struct Blob {
    offset: u32,
    length: u32,
    /// Plaintext length: the zstd-decompressed one when compressed.
    data_length: u32,
    compressed: bool,
    placements: Vec<Placement>,
}

/// Neighbouring blobs of one pack, read at once.
struct Run {
    pack: rustic_core::Id,
    offset: u32,
    length: u32,
    blobs: Vec<Blob>,
}

/// Writes the contents of every regular file of `listing` (paths relative to `target`), reading
/// the packs through `backend`, the repository's own.
/// `progress` counts the files' bytes (holes included) as they are written.
pub(crate) fn write_contents<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    backend: &(dyn ReadBackend + Sync),
    listing: impl Iterator<Item = RusticResult<(PathBuf, Node)>>,
    target: &Path,
    progress: &ByteProgress,
) -> Result<(), RepositoryError> {
    let cipher = cipher(repo)?;
    let mut files: Vec<Target> = Vec::new();
    // Keyed by (pack, offset in the pack) so runs follow the packs' layout; a blob several files
    // share is read once.
    let mut blobs: BTreeMap<(rustic_core::Id, u32), Blob> = BTreeMap::new();
    // The files (device, inode) of the snapshot that had several names: only the first name gets
    // contents here; rustic_core's restore links the others to it and fails where a file exists.
    let mut linked: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
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
        let meta = &node.meta;
        if meta.links > 1
            && meta.device_id != 0
            && meta.inode != 0
            && !linked.insert((meta.device_id, meta.inode))
        {
            continue;
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
            let data_length = entry.data_length();
            blobs
                .entry((*entry.pack, entry.location.offset))
                .or_insert_with(|| Blob {
                    offset: entry.location.offset,
                    length: entry.location.length,
                    data_length,
                    compressed: entry.location.uncompressed_length.is_some(),
                    placements: Vec::new(),
                })
                .placements
                .push((file_index, offset));
            offset += u64::from(data_length);
        }
        files.push(Target {
            path: target.join(&path),
            size: node.meta.size,
            mtime: node.meta.mtime,
        });
    }

    progress
        .total
        .store(files.iter().map(|f| f.size).sum(), Ordering::Relaxed);
    let mut real_dirs = std::collections::HashSet::new();
    for file in &files {
        make_room(target, &file.path, &mut real_dirs)?;
        // Holes where nothing is written: a sparse file stays sparse.
        File::create(&file.path)
            .and_then(|f| f.set_len(file.size))
            .map_err(|e| io_error("creating", &file.path, e))?;
    }

    let runs = runs(blobs);
    let scratches = (0..WORKERS)
        .map(|_| Scratch::new())
        .collect::<Result<Vec<_>, _>>()?;
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<RepositoryError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for mut scratch in scratches {
            let (runs, next, failure, files, cipher) = (&runs, &next, &failure, &files, &cipher);
            scope.spawn(move || {
                loop {
                    if failure.lock().is_ok_and(|f| f.is_some()) {
                        return;
                    }
                    let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = write_run(backend, cipher, files, run, &mut scratch, progress) {
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

/// Makes the directories of `path` (under `target`) real directories and clears a symlink or
/// special file at `path` itself. The volume a restore writes into may hold what an earlier user
/// left (a reused PersistentVolume); a symlink there must not send the node agent's writes, as
/// root, to a file outside the volume.
fn make_room(
    target: &Path,
    path: &Path,
    real_dirs: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), RepositoryError> {
    use std::io::ErrorKind::NotFound;
    let rel = path.strip_prefix(target).unwrap_or(path);
    let mut dir = target.to_path_buf();
    for component in rel.parent().into_iter().flat_map(Path::components) {
        dir.push(component);
        if real_dirs.contains(&dir) {
            continue;
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => std::fs::remove_file(&dir)
                .and_then(|()| std::fs::create_dir(&dir))
                .map_err(|e| io_error("replacing with a directory", &dir, e))?,
            Err(e) if e.kind() == NotFound => {
                std::fs::create_dir(&dir).map_err(|e| io_error("creating", &dir, e))?;
            }
            Err(e) => return Err(io_error("checking", &dir, e)),
        }
        real_dirs.insert(dir.clone());
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => Err(RepositoryError::Invalid(format!(
            "{} is a directory in the volume where the backup has a file: remove it and restore again",
            path.display()
        ))),
        Ok(_) => std::fs::remove_file(path).map_err(|e| io_error("removing", path, e)),
        Err(e) if e.kind() == NotFound => Ok(()),
        Err(e) => Err(io_error("checking", path, e)),
    }
}

/// The repository's data key in the form the AEAD takes: AES-256 key, then Poly1305's k and r.
fn cipher<S>(repo: &Repository<S>) -> Result<Aes256CtrPoly1305Aes, RepositoryError>
where
    S: rustic_core::Open,
{
    let master = repo.key();
    let mut key = aes256ctr_poly1305aes::Key::default();
    let parts = [
        (&master.encrypt, 0..32),
        (&master.mac.k, 32..48),
        (&master.mac.r, 48..64),
    ];
    for (part, range) in parts {
        if part.len() != range.len() {
            return Err(RepositoryError::Invalid(
                "the repository's key file holds a key of the wrong length".into(),
            ));
        }
        key[range].copy_from_slice(part);
    }
    Ok(Aes256CtrPoly1305Aes::new(&key))
}

/// Groups blobs sorted by (pack, offset) into runs of one pack, each at most [`RUN_BYTES`] (or one
/// blob) with gaps of at most [`GAP_BYTES`].
fn runs(blobs: BTreeMap<(rustic_core::Id, u32), Blob>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for ((pack, _), blob) in blobs {
        let end = blob.offset.saturating_add(blob.length);
        if let Some(run) = runs.last_mut() {
            let run_end = run.offset.saturating_add(run.length);
            if run.pack == pack
                && blob.offset >= run_end
                && blob.offset - run_end <= GAP_BYTES
                && end - run.offset <= RUN_BYTES
            {
                run.length = end - run.offset;
                run.blobs.push(blob);
                continue;
            }
        }
        runs.push(Run {
            pack,
            offset: blob.offset,
            length: blob.length,
            blobs: vec![blob],
        });
    }
    runs
}

fn write_run(
    backend: &(dyn ReadBackend + Sync),
    cipher: &Aes256CtrPoly1305Aes,
    files: &[Target],
    run: &Run,
    scratch: &mut Scratch,
    progress: &ByteProgress,
) -> Result<(), RepositoryError> {
    let read = backend
        .read_partial(FileType::Pack, &run.pack, false, run.offset, run.length)
        .map_err(|e| RepositoryError::Rustic {
            context: format!("reading pack {}", run.pack.to_hex().as_str()),
            source: e,
        })?;
    // Decrypted in place, so the run's bytes need to be ours; usually this takes the buffer over.
    let mut bytes = Vec::from(read);
    if bytes.len() != run.length as usize {
        return Err(damaged(run, run.offset, "is shorter than the index says"));
    }
    for blob in &run.blobs {
        let start = (blob.offset - run.offset) as usize;
        let sealed = &mut bytes[start..start + blob.length as usize];
        let data = open_blob(cipher, sealed, blob, scratch)
            .map_err(|what| damaged(run, blob.offset, what))?;
        if data.len() != blob.data_length as usize {
            return Err(damaged(
                run,
                blob.offset,
                "holds data of another length than the index says",
            ));
        }
        let written = data.len() as u64 * blob.placements.len() as u64;
        if data.iter().all(|b| *b == 0) {
            progress.done.fetch_add(written, Ordering::Relaxed);
            continue;
        }
        for (file_index, offset) in &blob.placements {
            let path = &files[*file_index].path;
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.write_all_at(data, *offset))
                .map_err(|e| io_error("writing", path, e))?;
        }
        progress.done.fetch_add(written, Ordering::Relaxed);
    }
    Ok(())
}

/// Checks and decrypts one sealed blob in place and decompresses it into `plain` when compressed;
/// returns its plaintext.
fn open_blob<'a>(
    cipher: &Aes256CtrPoly1305Aes,
    sealed: &'a mut [u8],
    blob: &Blob,
    scratch: &'a mut Scratch,
) -> Result<&'a [u8], &'static str> {
    if sealed.len() < NONCE_BYTES + TAG_BYTES {
        return Err("is too short to be an encrypted blob");
    }
    let (nonce, rest) = sealed.split_at_mut(NONCE_BYTES);
    let (ciphertext, tag) = rest.split_at_mut(rest.len() - TAG_BYTES);
    cipher
        .decrypt_in_place_detached(
            aes256ctr_poly1305aes::Nonce::from_slice(nonce),
            &[],
            ciphertext,
            aes256ctr_poly1305aes::Tag::from_slice(tag),
        )
        .map_err(|_| "fails its authentication (MAC) check")?;
    if !blob.compressed {
        return Ok(ciphertext);
    }
    scratch.plain.clear();
    scratch.plain.reserve(blob.data_length as usize);
    scratch
        .zstd
        .decompress_to_buffer(&*ciphertext, &mut scratch.plain)
        .map_err(|_| "is not valid zstd data")?;
    Ok(&scratch.plain)
}

/// A worker's reusable decompression state and buffer.
struct Scratch {
    zstd: zstd::bulk::Decompressor<'static>,
    plain: Vec<u8>,
}

impl Scratch {
    fn new() -> Result<Self, RepositoryError> {
        let zstd = zstd::bulk::Decompressor::new()
            .map_err(|e| RepositoryError::Invalid(format!("preparing zstd decompression: {e}")))?;
        Ok(Scratch {
            zstd,
            plain: Vec::new(),
        })
    }
}

fn damaged(run: &Run, offset: u32, what: &str) -> RepositoryError {
    RepositoryError::Invalid(format!(
        "the blob at offset {offset} of pack {} {what}: the repository is damaged; run `restic check --read-data` on it",
        run.pack.to_hex().as_str()
    ))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> RepositoryError {
    RepositoryError::Invalid(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(offset: u32, length: u32) -> Blob {
        Blob {
            offset,
            length,
            data_length: length,
            compressed: false,
            placements: vec![(0, 0)],
        }
    }

    fn plan(blobs: &[(u8, u32, u32)]) -> Vec<(u8, u32, u32, usize)> {
        let map = blobs
            .iter()
            .map(|&(pack, offset, length)| {
                let id = rustic_core::Id::new([pack; 32]);
                ((id, offset), blob(offset, length))
            })
            .collect();
        runs(map)
            .into_iter()
            .map(|r| {
                let pack = blobs
                    .iter()
                    .map(|b| b.0)
                    .find(|p| rustic_core::Id::new([*p; 32]) == r.pack)
                    .unwrap_or_default();
                (pack, r.offset, r.length, r.blobs.len())
            })
            .collect()
    }

    #[test]
    fn neighbouring_blobs_of_a_pack_are_read_at_once() {
        const MIB: u32 = 1 << 20;
        assert_eq!(
            plan(&[(1, 0, MIB), (1, MIB, MIB), (1, 2 * MIB + 100, MIB)]),
            vec![(1, 0, 3 * MIB + 100, 3)]
        );
        // Another pack, a gap too wide to read through, and the size limit each start a new read.
        assert_eq!(
            plan(&[(1, 0, MIB), (2, MIB, MIB)]),
            vec![(1, 0, MIB, 1), (2, MIB, MIB, 1)]
        );
        assert_eq!(
            plan(&[(1, 0, MIB), (1, MIB + GAP_BYTES + 1, MIB)]),
            vec![(1, 0, MIB, 1), (1, MIB + GAP_BYTES + 1, MIB, 1)]
        );
        assert_eq!(
            plan(&[(1, 0, 3 * MIB), (1, 3 * MIB, 2 * MIB)]),
            vec![(1, 0, 3 * MIB, 1), (1, 3 * MIB, 2 * MIB, 1)]
        );
        // A blob larger than a run is read whole, on its own.
        assert_eq!(
            plan(&[(1, 0, 9 * MIB), (1, 9 * MIB, 10)]),
            vec![(1, 0, 9 * MIB, 1), (1, 9 * MIB, 10, 1)]
        );
    }
}
