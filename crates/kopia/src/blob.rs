//! Where a repository's blobs live. Everything above talks to a [`BlobStore`]; velero-repository
//! implements it over the backup locations' object stores (keys `<prefix>/kopia/<namespace>/<id>`),
//! and [`FsBlobStore`] is kopia's own `filesystem` layout, so a directory that `kopia repository
//! create filesystem` made opens here as it is.
//!
//! The calls block: the repository runs on blocking threads, as rustic_core does for restic's
//! format.

use std::path::{Path, PathBuf};

use crate::error::BlobError;

/// A blob as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub id: String,
    pub length: u64,
    /// Unix seconds of its last write (the store's modification time): kopia's epoch and garbage
    /// collection decisions read it.
    pub timestamp: i64,
}

pub trait BlobStore: Send + Sync {
    /// Every blob whose ID starts with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError>;
    fn get(&self, id: &str) -> Result<Vec<u8>, BlobError>;
    /// `length` bytes from `offset`.
    fn get_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>, BlobError>;
    /// Writes the whole blob at once (a reader never sees part of it). Takes the bytes, so a
    /// store that keeps them (an upload) needs no copy of a 20 MiB pack.
    fn put(&self, id: &str, data: Vec<u8>) -> Result<(), BlobError>;
    /// Removes it; removing a blob that is not there is not an error.
    fn delete(&self, id: &str) -> Result<(), BlobError>;
}

/// Kopia's sharding of a filesystem repository (`.shards`): IDs longer than 20 characters go into
/// nested directories named by their first characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Shards {
    default: Vec<usize>,
    #[serde(rename = "maxNonShardedLength")]
    unsharded_length: usize,
}

const SHARDS_FILE: &str = ".shards";
const BLOB_SUFFIX: &str = ".f";

/// A kopia `filesystem` repository: blob `<id>` in `<root>/<shards…>/<rest>.f`.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    shards: Shards,
}

fn failed(operation: &'static str, id: &str) -> impl FnOnce(std::io::Error) -> BlobError {
    let id = id.to_string();
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BlobError::NotFound(id)
        } else {
            BlobError::Failed {
                operation,
                id,
                message: e.to_string(),
            }
        }
    }
}

impl FsBlobStore {
    /// Opens the directory, reading its `.shards`; a directory without one is sharded as kopia
    /// shards a new repository and the file is written, as kopia does.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        let path = root.join(SHARDS_FILE);
        let shards = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BlobError::Failed {
                operation: "read",
                id: SHARDS_FILE.into(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Kopia assumes [3,3] for an existing repository without the file, and writes
                // [1,3] for a new one; an empty directory is a new one.
                let empty = std::fs::read_dir(root)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(true);
                let shards = Shards {
                    default: if empty { vec![1, 3] } else { vec![3, 3] },
                    unsharded_length: 20,
                };
                std::fs::create_dir_all(root).map_err(failed("create", SHARDS_FILE))?;
                let mut text = serde_json::to_vec(&shards).unwrap_or_default();
                text.push(b'\n');
                std::fs::write(&path, text).map_err(failed("write", SHARDS_FILE))?;
                shards
            }
            Err(e) => return Err(failed("read", SHARDS_FILE)(e)),
        };
        Ok(FsBlobStore {
            root: root.to_path_buf(),
            shards,
        })
    }

    fn path_of(&self, id: &str) -> PathBuf {
        let mut dir = self.root.clone();
        let mut rest = id;
        if id.len() > self.shards.unsharded_length {
            for &size in &self.shards.default {
                if rest.len() <= size {
                    break;
                }
                let (shard, tail) = rest.split_at(size);
                dir.push(shard);
                rest = tail;
            }
        }
        dir.join(format!("{rest}{BLOB_SUFFIX}"))
    }

    fn walk(&self, dir: &Path, id_so_far: &str, out: &mut Vec<BlobMeta>) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                self.walk(&entry.path(), &format!("{id_so_far}{name}"), out)?;
            } else if let Some(stem) = name.strip_suffix(BLOB_SUFFIX) {
                let timestamp = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0);
                out.push(BlobMeta {
                    id: format!("{id_so_far}{stem}"),
                    length: meta.len(),
                    timestamp,
                });
            }
        }
        Ok(())
    }
}

impl BlobStore for FsBlobStore {
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let mut all = Vec::new();
        self.walk(&self.root, "", &mut all)
            .map_err(failed("list", prefix))?;
        all.retain(|b| b.id.starts_with(prefix));
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    fn get(&self, id: &str) -> Result<Vec<u8>, BlobError> {
        std::fs::read(self.path_of(id)).map_err(failed("read", id))
    }

    fn get_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>, BlobError> {
        use std::io::{Read as _, Seek as _};
        let mut file = std::fs::File::open(self.path_of(id)).map_err(failed("read", id))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(failed("read", id))?;
        let mut out = vec![0u8; usize::try_from(length).unwrap_or(usize::MAX)];
        file.read_exact(&mut out).map_err(failed("read", id))?;
        Ok(out)
    }

    fn put(&self, id: &str, data: Vec<u8>) -> Result<(), BlobError> {
        let path = self.path_of(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed("write", id))?;
        }
        // Written aside and renamed, so a reader never sees half a blob.
        let suffix: [u8; 4] = crate::crypto::random().map_err(|e| BlobError::Failed {
            operation: "write",
            id: id.to_string(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension(format!(
            "f.tmp.{:02x}{:02x}{:02x}{:02x}",
            suffix[0], suffix[1], suffix[2], suffix[3]
        ));
        std::fs::write(&tmp, data).map_err(failed("write", id))?;
        std::fs::rename(&tmp, &path).map_err(failed("write", id))
    }

    fn delete(&self, id: &str) -> Result<(), BlobError> {
        match std::fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed("delete", id)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sharded_as_kopia_shards_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let shards = std::fs::read_to_string(dir.path().join(".shards")).unwrap();
        assert_eq!(shards, "{\"default\":[1,3],\"maxNonShardedLength\":20}\n");
        let pack = "p60c8ce18a9f6e0b84803859a37425a17-s770ba41e0462162e147";
        assert_eq!(
            store.path_of(pack),
            dir.path()
                .join("p/60c/8ce18a9f6e0b84803859a37425a17-s770ba41e0462162e147.f")
        );
        assert_eq!(
            store.path_of("kopia.repository"),
            dir.path().join("kopia.repository.f")
        );
        store.put(pack, b"data".to_vec()).unwrap();
        store.put("kopia.repository", b"{}".to_vec()).unwrap();
        let listed: Vec<String> = store.list("").unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(listed, ["kopia.repository", pack]);
        assert_eq!(store.get_range(pack, 1, 2).unwrap(), b"at");
        store.delete(pack).unwrap();
        store.delete(pack).unwrap();
        assert!(matches!(store.get(pack), Err(BlobError::NotFound(_))));
    }
}
