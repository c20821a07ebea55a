//! Restoring a snapshot into a directory, as Velero's kopia uploader restores a pod volume:
//! directories, files (part by part, never a whole file in memory), symlinks; modes, times and,
//! when allowed, owners; what is already there is overwritten.

use std::io::{Seek as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::error::KopiaError;
use crate::repo::Repository;
use crate::snapshot::{DirEntry, EntryType, Time, unix_mode};

#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Leave runs of zeros as holes (Velero's `writeSparseFiles`).
    pub sparse: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Files of one directory restored at once; each multi-part file is also read on one thread
/// while written on another.
const FILE_WORKERS: usize = 2;

/// Restores snapshot `snapshot_id` into `target` (created if missing). `progress` hears the file
/// bytes written so far, in all.
pub fn restore(
    repo: &Repository,
    snapshot_id: &str,
    target: &Path,
    options: RestoreOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RestoreStats, KopiaError> {
    let snapshot = repo.snapshot(snapshot_id)?;
    let mut run = Run {
        repo,
        options,
        progress,
        written: AtomicU64::new(0),
        files: AtomicU64::new(0),
        stats: RestoreStats::default(),
    };
    run.entry(&snapshot.root_entry, target)?;
    run.stats.files = run.files.load(Relaxed);
    run.stats.bytes = run.written.load(Relaxed);
    Ok(run.stats)
}

struct Run<'a> {
    repo: &'a Repository,
    options: RestoreOptions,
    progress: &'a (dyn Fn(u64) + Sync),
    /// File bytes written so far, by every worker.
    written: AtomicU64,
    files: AtomicU64,
    stats: RestoreStats,
}

/// Permission errors on owners and times are expected when not running as root; Velero ignores
/// them, and so does this.
fn tolerated(result: std::io::Result<()>, path: &Path) -> Result<(), KopiaError> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::debug!(path = %path.display(), "not restoring ownership or times: {e}");
            Ok(())
        }
        other => other.map_err(KopiaError::io(path)),
    }
}

impl Run<'_> {
    fn entry(&mut self, entry: &DirEntry, path: &Path) -> Result<(), KopiaError> {
        match entry.kind {
            EntryType::Directory => self.directory(entry, path),
            EntryType::File => self.file(entry, path),
            EntryType::Symlink => self.symlink(entry, path),
        }
    }

    fn directory(&mut self, entry: &DirEntry, path: &Path) -> Result<(), KopiaError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => std::fs::remove_file(path).map_err(KopiaError::io(path))?,
            Err(_) => std::fs::create_dir_all(path).map_err(KopiaError::io(path))?,
        }
        let dir = self.repo.directory(&entry.obj)?;
        let mut files = Vec::new();
        for child in dir.entries() {
            if child.name.is_empty()
                || child.name.contains('/')
                || child.name == ".."
                || child.name == "."
            {
                return Err(KopiaError::BadObject {
                    id: entry.obj.to_string(),
                    reason: format!("entry name {:?} would leave the directory", child.name),
                });
            }
            let child_path = path.join(&child.name);
            match child.kind {
                EntryType::File => files.push((child, child_path)),
                _ => self.entry(child, &child_path)?,
            }
        }
        self.files_of(&files)?;
        self.stats.directories += 1;
        // After the children: writing them changed the directory's time.
        self.attributes(entry, path)
    }

    /// A directory's files, on up to [`FILE_WORKERS`] threads.
    fn files_of(&self, files: &[(&DirEntry, std::path::PathBuf)]) -> Result<(), KopiaError> {
        if files.len() < 2 {
            return files.iter().try_for_each(|(e, p)| self.file(e, p));
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..FILE_WORKERS)
                .map(|_| {
                    scope.spawn(|| -> Result<(), KopiaError> {
                        while let Some((e, p)) = files.get(next.fetch_add(1, Relaxed)) {
                            self.file(e, p)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            let mut first_error = None;
            for worker in workers {
                let result = worker.join().unwrap_or_else(|_| {
                    Err(KopiaError::Unsupported("a restore thread panicked".into()))
                });
                if let Err(e) = result {
                    // The others stop at the next file.
                    next.store(files.len(), Relaxed);
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    fn file(&self, entry: &DirEntry, path: &Path) -> Result<(), KopiaError> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() || m.is_symlink()) {
            remove_any(path)?;
        }
        let mut file = std::fs::File::create(path).map_err(KopiaError::io(path))?;
        let sparse = self.options.sparse;
        let mut at = 0u64;
        let mut write = |part: &[u8]| -> Result<(), KopiaError> {
            let len = part.len() as u64;
            if sparse && part.iter().all(|&b| b == 0) {
                file.seek(std::io::SeekFrom::Current(
                    i64::try_from(len).unwrap_or(i64::MAX),
                ))
                .map_err(KopiaError::io(path))?;
            } else {
                file.write_all(part).map_err(KopiaError::io(path))?;
            }
            at += len;
            (self.progress)(self.written.fetch_add(len, Relaxed) + len);
            Ok(())
        };
        if entry.obj.indirection == 0 {
            self.repo.read_object(&entry.obj, &mut write)?;
        } else {
            // Parts are read and opened on one thread while the previous ones are written.
            let (parts, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
            std::thread::scope(|scope| {
                let reading = scope.spawn(move || {
                    self.repo.read_object(&entry.obj, &mut |part| {
                        parts
                            .send(part.to_vec())
                            .map_err(|_| KopiaError::Unsupported("the writer stopped".into()))
                    })
                });
                let written: Result<(), KopiaError> =
                    received.iter().try_for_each(|part| write(&part));
                drop(received);
                let read = reading.join().unwrap_or_else(|_| {
                    Err(KopiaError::Unsupported("a restore thread panicked".into()))
                });
                // A write error stops the reading, whose error then says only that.
                written.and(read)
            })?;
        }
        // A file ending in a hole still has its length.
        file.set_len(at).map_err(KopiaError::io(path))?;
        drop(file);
        self.files.fetch_add(1, Relaxed);
        self.attributes(entry, path)
    }

    fn symlink(&mut self, entry: &DirEntry, path: &Path) -> Result<(), KopiaError> {
        let target = self.repo.object_bytes(&entry.obj)?;
        let target = String::from_utf8(target).map_err(|_| KopiaError::BadObject {
            id: entry.obj.to_string(),
            reason: "a symlink target that is not UTF-8".into(),
        })?;
        if std::fs::symlink_metadata(path).is_ok() {
            remove_any(path)?;
        }
        std::os::unix::fs::symlink(&target, path).map_err(KopiaError::io(path))?;
        self.stats.symlinks += 1;
        tolerated(
            std::os::unix::fs::lchown(path, Some(entry.uid), Some(entry.gid)),
            path,
        )?;
        let time = filetime_of(entry.mtime);
        tolerated(filetime::set_symlink_file_times(path, time, time), path)
    }

    fn attributes(&self, entry: &DirEntry, path: &Path) -> Result<(), KopiaError> {
        use std::os::unix::fs::PermissionsExt as _;
        tolerated(
            std::os::unix::fs::lchown(path, Some(entry.uid), Some(entry.gid)),
            path,
        )?;
        // Owners first: changing the owner clears setuid and setgid.
        if let Some(mode) = unix_mode(&entry.mode) {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(KopiaError::io(path))?;
        }
        let time = filetime_of(entry.mtime);
        tolerated(filetime::set_file_times(path, time, time), path)
    }
}

fn filetime_of(t: Time) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(t.seconds, t.nanos)
}

fn remove_any(path: &Path) -> Result<(), KopiaError> {
    let meta = std::fs::symlink_metadata(path).map_err(KopiaError::io(path))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(KopiaError::io(path))
    } else {
        std::fs::remove_file(path).map_err(KopiaError::io(path))
    }
}
