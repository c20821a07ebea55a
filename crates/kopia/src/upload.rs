//! Snapshotting a directory as kopia's uploader does (snapshot/upload): files split into
//! contents, symlinks, one directory object per directory (children first), the snapshot
//! manifest last. A file whose name, size, mtime, mode and owner match the parent snapshot's entry
//! is not read again: its object is reused, as kopia reuses "cached" files.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::error::KopiaError;
use crate::id::ObjectId;
use crate::repo::{Repository, SNAPSHOT_TYPE};
use crate::snapshot::{
    DirEntry, DirManifest, DirectorySummary, EntryType, Snapshot, SourceInfo, Stats, Time,
    mode_string,
};
use crate::writer::Writer;

/// What a snapshot is of and how it is labelled.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    pub source: SourceInfo,
    pub description: String,
    /// Tags, stored in the manifest and as its labels (Velero's are unprefixed).
    pub tags: BTreeMap<String, String>,
    pub pins: Vec<String>,
    /// The snapshot whose unchanged files are reused without reading them.
    pub parent: Option<String>,
}

/// What a snapshot run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOutcome {
    pub snapshot_id: String,
    pub total_bytes: u64,
    /// Bytes of file data this snapshot added to the repository (new contents).
    pub added_bytes: u64,
    pub files: u64,
    /// Files reused from the parent without reading them.
    pub cached_files: u64,
}

/// Progress of a snapshot: file bytes accounted for (read, or reused) so far.
pub type Progress<'a> = &'a dyn Fn(u64);

/// Snapshots `dir` into `repo`.
pub fn snapshot_directory(
    repo: &mut Repository,
    dir: &Path,
    options: &SnapshotOptions,
    progress: Progress<'_>,
) -> Result<(UploadOutcome, Snapshot), KopiaError> {
    let parent_root = match &options.parent {
        Some(id) => Some(repo.snapshot(id)?.root_entry),
        None => None,
    };
    let start_time = Time::now();
    let mut writer = Writer::new(repo)?;
    let mut run = Upload {
        writer: &mut writer,
        progress,
        done: 0,
        stats: Stats::default(),
    };
    let root_meta = std::fs::metadata(dir).map_err(KopiaError::io(dir))?;
    if !root_meta.is_dir() {
        return Err(KopiaError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let parent_dir = match &parent_root {
        Some(root) if root.kind == EntryType::Directory => {
            Some(run.writer.repository().directory(&root.obj)?)
        }
        _ => None,
    };
    let (obj, summary) = run.directory(dir, parent_dir.as_ref())?;
    let stats = run.stats.clone();
    let root_entry = DirEntry {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        kind: EntryType::Directory,
        mode: mode_string(root_meta.mode()),
        size: 0,
        mtime: Time::from_system(root_meta.modified().map_err(KopiaError::io(dir))?),
        uid: root_meta.uid(),
        gid: root_meta.gid(),
        obj,
        summ: Some(summary.clone()),
    };
    let snapshot = Snapshot {
        id: String::new(),
        source: options.source.clone(),
        description: options.description.clone(),
        start_time,
        end_time: Time::now(),
        stats: stats.clone(),
        incomplete: String::new(),
        root_entry,
        tags: options.tags.clone(),
        pins: options.pins.clone(),
    };
    let mut labels: BTreeMap<String, String> = options.tags.clone();
    labels.insert("type".into(), SNAPSHOT_TYPE.into());
    labels.insert("hostname".into(), options.source.host.clone());
    labels.insert("username".into(), options.source.user_name.clone());
    labels.insert("path".into(), options.source.path.clone());
    let id = writer.put_manifest(labels, &snapshot)?;
    let added = writer.added_bytes;
    writer.flush()?;
    Ok((
        UploadOutcome {
            snapshot_id: id,
            total_bytes: u64::try_from(summary.size).unwrap_or(0),
            added_bytes: added,
            files: u64::try_from(stats.file_count).unwrap_or(0),
            cached_files: u64::try_from(stats.cached_files).unwrap_or(0),
        },
        snapshot,
    ))
}

struct Upload<'w, 'r> {
    writer: &'w mut Writer<'r>,
    progress: Progress<'w>,
    done: u64,
    stats: Stats,
}

fn same_metadata(previous: &DirEntry, entry: &DirEntry) -> bool {
    previous.kind == entry.kind
        && previous.mode == entry.mode
        && previous.mtime == entry.mtime
        && previous.uid == entry.uid
        && previous.gid == entry.gid
        && previous.size == entry.size
}

/// Files up to this size are read ahead, by threads of their own, while this one hashes and
/// seals the ones before them (kopia reads several files at once too). Larger ones go through
/// the writer's split/seal pipeline as they are read.
const READ_AHEAD_MAX: u64 = 1 << 20;
/// How many read-ahead files may wait per reader: at most this many megabytes held each, usually
/// far less.
const READ_AHEAD_DEPTH: usize = 16;
/// Threads reading ahead.
const READERS: usize = 2;

/// A file read ahead: its bytes, or the news that it grew past [`READ_AHEAD_MAX`] since it was
/// listed (it is then read as it is read without read-ahead).
enum ReadAhead {
    Bytes(Vec<u8>),
    Grew,
}

fn read_ahead(path: &Path) -> std::io::Result<ReadAhead> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(READ_AHEAD_MAX + 1)
        .read_to_end(&mut bytes)?;
    Ok(if bytes.len() as u64 > READ_AHEAD_MAX {
        ReadAhead::Grew
    } else {
        ReadAhead::Bytes(bytes)
    })
}

/// A directory's child, as listed.
struct Child {
    entry: DirEntry,
    path: std::path::PathBuf,
    /// The parent snapshot's object for this file when its metadata is unchanged.
    reused: Option<ObjectId>,
}

impl Upload<'_, '_> {
    /// The directory's object and summary; `parent` is the same directory in the parent snapshot.
    /// Its files are stored first (small ones read ahead), then its subdirectories, one at a time;
    /// the listing keeps name order.
    fn directory(
        &mut self,
        path: &Path,
        parent: Option<&DirManifest>,
    ) -> Result<(ObjectId, DirectorySummary), KopiaError> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(path)
            .map_err(KopiaError::io(path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(KopiaError::io(path))?;
        names.sort();
        let meta = std::fs::metadata(path).map_err(KopiaError::io(path))?;
        let own_time = Time::from_system(meta.modified().map_err(KopiaError::io(path))?);
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            let meta = std::fs::symlink_metadata(&child).map_err(KopiaError::io(&child))?;
            let kind = if meta.is_dir() {
                EntryType::Directory
            } else if meta.is_file() {
                EntryType::File
            } else if meta.file_type().is_symlink() {
                EntryType::Symlink
            } else {
                // Sockets, devices, FIFOs: kopia ignores unknown types, and so does Velero.
                continue;
            };
            let entry = DirEntry {
                name: name.to_string_lossy().into_owned(),
                kind,
                mode: mode_string(meta.mode()),
                size: if kind == EntryType::File {
                    i64::try_from(meta.len()).unwrap_or(i64::MAX)
                } else {
                    0
                },
                mtime: Time::from_system(meta.modified().map_err(KopiaError::io(&child))?),
                uid: meta.uid(),
                gid: meta.gid(),
                obj: ObjectId::direct(crate::ContentId::new(None, [0; 16])),
                summ: None,
            };
            let previous = parent.and_then(|p| p.entries().iter().find(|e| e.name == entry.name));
            let reused = previous
                .filter(|p| kind == EntryType::File && same_metadata(p, &entry))
                .map(|p| p.obj);
            children.push(Child {
                entry,
                path: child,
                reused,
            });
        }

        let mut summary = DirectorySummary::default();
        self.files(&mut children, &mut summary)?;
        for child in &mut children {
            if child.entry.kind != EntryType::Directory {
                continue;
            }
            let previous = parent.and_then(|p| {
                p.entries()
                    .iter()
                    .find(|e| e.name == child.entry.name && e.kind == EntryType::Directory)
            });
            let previous_dir = match previous {
                Some(p) => Some(self.writer.repository().directory(&p.obj)?),
                None => None,
            };
            let (obj, child_summary) = self.directory(&child.path, previous_dir.as_ref())?;
            child.entry.obj = obj;
            summary.size += child_summary.size;
            summary.files += child_summary.files;
            summary.dirs += child_summary.dirs;
            summary.symlinks += child_summary.symlinks;
            summary.num_failed += child_summary.num_failed;
            summary.max_time = summary.max_time.max(child_summary.max_time);
            child.entry.summ = Some(child_summary);
            self.stats.dir_count += 1;
        }
        let entries: Vec<DirEntry> = children.into_iter().map(|c| c.entry).collect();
        for entry in &entries {
            summary.max_time = summary.max_time.max(entry.mtime);
        }
        summary.dirs += 1;
        if entries.is_empty() {
            summary.max_time = own_time;
        }
        let manifest = DirManifest::new(entries, summary.clone());
        let mut json = serde_json::to_vec(&manifest)
            .map_err(|e| KopiaError::Unsupported(format!("encoding a directory: {e}")))?;
        json.push(b'\n');
        // Directory objects uncompressed, as Velero's kopia writes them.
        let (obj, _) = self.writer.write_bytes(&json, Some(b'k'), false)?;
        Ok((obj, summary))
    }

    /// Stores a directory's files and symlinks, in name order; files that must be read and are
    /// small are read ahead on other threads.
    fn files(
        &mut self,
        children: &mut [Child],
        summary: &mut DirectorySummary,
    ) -> Result<(), KopiaError> {
        let ahead: Vec<std::path::PathBuf> = children
            .iter()
            .filter(|c| read_ahead_wanted(c))
            .map(|c| c.path.clone())
            .collect();
        std::thread::scope(|scope| {
            // Two readers, taking turns file by file, so the disk has two reads to work on as
            // kopia's parallel reads give it; each file is taken from its reader in order.
            let mut readers = Vec::with_capacity(READERS);
            for first in 0..READERS.min(ahead.len()) {
                let (sender, read) = std::sync::mpsc::sync_channel(READ_AHEAD_DEPTH);
                let mine: Vec<std::path::PathBuf> =
                    ahead.iter().skip(first).step_by(READERS).cloned().collect();
                scope.spawn(move || {
                    for path in mine {
                        // The receiver gone means the snapshot stopped: so does reading.
                        if sender.send(read_ahead(&path)).is_err() {
                            break;
                        }
                    }
                });
                readers.push(read);
            }
            let mut turn = 0;
            for child in children.iter_mut() {
                match child.entry.kind {
                    EntryType::File => {
                        let reader = if read_ahead_wanted(child) {
                            turn += 1;
                            readers.get((turn - 1) % READERS)
                        } else {
                            None
                        };
                        self.file(child, reader)?;
                        summary.files += 1;
                        summary.size += child.entry.size;
                        self.stats.file_count += 1;
                        self.stats.total_size += child.entry.size;
                    }
                    EntryType::Symlink => {
                        let target =
                            std::fs::read_link(&child.path).map_err(KopiaError::io(&child.path))?;
                        let bytes = target.as_os_str().as_encoded_bytes().to_vec();
                        child.entry.size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                        let (obj, _) = self.writer.write_bytes(&bytes, None, false)?;
                        child.entry.obj = obj;
                        summary.symlinks += 1;
                    }
                    EntryType::Directory => {}
                }
            }
            Ok(())
        })
    }

    /// Stores one file: reused from the parent, taken from its read-ahead thread (`ahead`), or
    /// read here.
    fn file(
        &mut self,
        child: &mut Child,
        ahead: Option<&std::sync::mpsc::Receiver<std::io::Result<ReadAhead>>>,
    ) -> Result<(), KopiaError> {
        if let Some(obj) = child.reused {
            child.entry.obj = obj;
            self.stats.cached_files += 1;
            self.done += u64::try_from(child.entry.size).unwrap_or(0);
            (self.progress)(self.done);
            return Ok(());
        }
        let before = self.done;
        let prefetched = match ahead {
            Some(read) => match read.recv() {
                Ok(Ok(ReadAhead::Bytes(bytes))) => Some(bytes),
                Ok(Ok(ReadAhead::Grew)) => None,
                Ok(Err(e)) => return Err(KopiaError::io(&child.path)(e)),
                Err(_) => {
                    return Err(KopiaError::Unsupported(
                        "the read-ahead thread stopped".into(),
                    ));
                }
            },
            None => None,
        };
        let (obj, length) = match prefetched {
            Some(bytes) => {
                let stored = self
                    .writer
                    .write_bytes(&bytes, None, false)
                    .map_err(|e| with_path(e, &child.path))?;
                (self.progress)(before + stored.1);
                stored
            }
            None => {
                let mut file =
                    std::fs::File::open(&child.path).map_err(KopiaError::io(&child.path))?;
                let mut counting = Counting {
                    inner: &mut file,
                    done: before,
                    progress: self.progress,
                };
                self.writer
                    .write_object(&mut counting, None, false)
                    .map_err(|e| with_path(e, &child.path))?
            }
        };
        child.entry.obj = obj;
        // What was read is what is recorded, even if the file grew.
        child.entry.size = i64::try_from(length).unwrap_or(i64::MAX);
        self.done = before + length;
        self.stats.non_cached_files += 1;
        Ok(())
    }
}

/// Whether a file is read ahead: it must be read, and is small.
fn read_ahead_wanted(child: &Child) -> bool {
    child.entry.kind == EntryType::File
        && child.reused.is_none()
        && u64::try_from(child.entry.size).is_ok_and(|size| size <= READ_AHEAD_MAX)
}

/// A read error names the file it came from.
fn with_path(e: KopiaError, path: &Path) -> KopiaError {
    match e {
        KopiaError::Io { source, .. } => KopiaError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    }
}

struct Counting<'a, R> {
    inner: &'a mut R,
    done: u64,
    progress: Progress<'a>,
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}
