//! An open repository: its index and manifests loaded, contents and objects read by ID,
//! snapshots listed and restored. Writing is in [`crate::writer`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::blob::BlobStore;
use crate::crypto::ContentCipher;
use crate::epoch::Epochs;
use crate::error::KopiaError;
use crate::format::{self, Keys};
use crate::id::{ContentId, ObjectId};
use crate::index::{self, Info};
use crate::manifest::{self, Manifests};
use crate::pack;
use crate::snapshot::{
    DIRECTORY_STREAM, DirManifest, INDIRECT_STREAM, IndirectObject, Snapshot, SourceInfo,
};

/// Labels every snapshot manifest carries.
pub const SNAPSHOT_TYPE: &str = "snapshot";

pub struct Repository {
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) keys: Keys,
    pub(crate) epochs: Epochs,
    /// Every content the index knows, deleted ones included (a deleted content still reads;
    /// kopia drops it from reads only past the deletion watermark).
    pub(crate) index: HashMap<ContentId, Info>,
    pub(crate) manifests: Manifests,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("contents", &self.index.len())
            .field("write_epoch", &self.epochs.write_epoch)
            .finish_non_exhaustive()
    }
}

/// A snapshot manifest and its ID.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotEntry {
    pub id: String,
    pub snapshot: Snapshot,
}

impl Repository {
    /// Opens the repository in `store` with `password`.
    pub fn open(store: Arc<dyn BlobStore>, password: &str) -> Result<Self, KopiaError> {
        let keys = format::open(&*store, password)?;
        let mut repo = Repository {
            store,
            keys,
            epochs: Epochs::default(),
            index: HashMap::new(),
            manifests: Manifests::default(),
        };
        repo.refresh()?;
        Ok(repo)
    }

    /// Creates a repository with kopia's defaults in an empty `store`, and opens it.
    pub fn create(store: Arc<dyn BlobStore>, password: &str) -> Result<Self, KopiaError> {
        let keys = format::create(&*store, password)?;
        Ok(Repository {
            store,
            keys,
            epochs: Epochs::default(),
            index: HashMap::new(),
            manifests: Manifests::default(),
        })
    }

    /// The repository's unique ID (`kopia.repository`'s `uniqueID`).
    pub fn unique_id(&self) -> &[u8] {
        &self.keys.unique_id
    }

    pub fn cipher(&self) -> &ContentCipher {
        &self.keys.cipher
    }

    pub fn max_pack_size(&self) -> usize {
        match usize::try_from(self.keys.config.max_pack_size) {
            Ok(0) | Err(_) => usize::try_from(format::DEFAULT_MAX_PACK_SIZE).unwrap_or(20 << 20),
            Ok(n) => n,
        }
    }

    /// Reads the index and the manifests again, as they are in the store now.
    pub fn refresh(&mut self) -> Result<(), KopiaError> {
        let listing = self.store.list("x")?;
        self.epochs = Epochs::from_listing(&listing);
        let mut merged: HashMap<ContentId, Info> = HashMap::new();
        for blob in &self.epochs.index_blobs {
            for info in self.read_index_blob(blob)? {
                index::merge(&mut merged, info);
            }
        }
        let watermark = self.epochs.deletion_watermark;
        merged.retain(|_, info| !(info.deleted && info.timestamp <= watermark));
        self.index = merged;
        self.load_manifests()
    }

    /// An index of `entries`, sealed as kopia seals index blobs: what to store, and the hash that
    /// names the blob (its IV).
    pub(crate) fn seal_index(&self, entries: &[Info]) -> Result<([u8; 16], Vec<u8>), KopiaError> {
        let plain = index::build(entries)
            .map_err(|e| KopiaError::Unsupported(format!("building an index: {e}")))?;
        let iv = self.cipher().hash(&plain);
        let sealed = self.cipher().encrypt(&iv, &plain)?;
        Ok((iv, sealed))
    }

    pub(crate) fn read_index_blob(&self, id: &str) -> Result<Vec<Info>, KopiaError> {
        let sealed = self.store.get(id)?;
        let iv = blob_iv(id).ok_or_else(|| KopiaError::damaged(id, "its name holds no hash"))?;
        let plain = self
            .cipher()
            .decrypt(&iv, &sealed)
            .ok_or_else(|| KopiaError::damaged(id, "it does not decrypt"))?;
        index::parse(&plain).map_err(|e| KopiaError::damaged(id, e.to_string()))
    }

    fn load_manifests(&mut self) -> Result<(), KopiaError> {
        let mut manifests = Manifests::default();
        let ids: Vec<ContentId> = self
            .index
            .values()
            .filter(|i| !i.deleted && i.content.prefix() == Some(manifest::PREFIX))
            .map(|i| i.content)
            .collect();
        for id in ids {
            let bytes = self.content(&id)?;
            let entries = manifest::decode(&bytes)
                .map_err(|e| KopiaError::damaged(format!("content {id}"), e.to_string()))?;
            manifests.merge(entries);
        }
        self.manifests = manifests;
        Ok(())
    }

    pub fn contains(&self, id: &ContentId) -> bool {
        self.index.get(id).is_some_and(|i| !i.deleted)
    }

    /// A content's bytes.
    pub fn content(&self, id: &ContentId) -> Result<Vec<u8>, KopiaError> {
        let info = self
            .index
            .get(id)
            .ok_or_else(|| KopiaError::ContentNotFound(id.to_string()))?;
        let sealed = self.store.get_range(
            &info.pack,
            u64::from(info.pack_offset),
            u64::from(info.packed_length),
        )?;
        pack::open_content(self.cipher(), info, &sealed)
    }

    /// An object's bytes, part by part (each at most one content), to `sink`.
    pub fn read_object(
        &self,
        id: &ObjectId,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), KopiaError>,
    ) -> Result<(), KopiaError> {
        if id.indirection == 0 {
            return sink(&self.content(&id.content)?);
        }
        for part in self.indirect_entries(id)? {
            self.read_object(&part.object, sink)?;
        }
        Ok(())
    }

    /// A whole object in memory (directories, tables, symlink targets: small ones).
    pub fn object_bytes(&self, id: &ObjectId) -> Result<Vec<u8>, KopiaError> {
        let mut out = Vec::new();
        self.read_object(id, &mut |part| {
            out.extend_from_slice(part);
            Ok(())
        })?;
        Ok(out)
    }

    pub(crate) fn indirect_entries(
        &self,
        id: &ObjectId,
    ) -> Result<Vec<crate::snapshot::IndirectEntry>, KopiaError> {
        let table_id = ObjectId {
            indirection: id.indirection - 1,
            content: id.content,
        };
        let table: IndirectObject = serde_json::from_slice(&self.object_bytes(&table_id)?)
            .map_err(|e| KopiaError::BadObject {
                id: id.to_string(),
                reason: format!("its table: {e}"),
            })?;
        if table.stream != INDIRECT_STREAM {
            return Err(KopiaError::BadObject {
                id: id.to_string(),
                reason: format!("its table is a {:?} stream", table.stream),
            });
        }
        Ok(table.entries)
    }

    /// A directory object.
    pub fn directory(&self, id: &ObjectId) -> Result<DirManifest, KopiaError> {
        let dir: DirManifest =
            serde_json::from_slice(&self.object_bytes(id)?).map_err(|e| KopiaError::BadObject {
                id: id.to_string(),
                reason: format!("not a directory: {e}"),
            })?;
        if dir.stream != DIRECTORY_STREAM {
            return Err(KopiaError::BadObject {
                id: id.to_string(),
                reason: format!("a {:?} stream, not a directory", dir.stream),
            });
        }
        Ok(dir)
    }

    /// The complete snapshots (not checkpoints) of `source`, or of every source, oldest first.
    pub fn snapshots(&self, source: Option<&SourceInfo>) -> Result<Vec<SnapshotEntry>, KopiaError> {
        let mut labels = vec![("type", SNAPSHOT_TYPE)];
        if let Some(s) = source {
            labels.extend([
                ("hostname", s.host.as_str()),
                ("username", s.user_name.as_str()),
                ("path", s.path.as_str()),
            ]);
        }
        let mut found = Vec::new();
        for entry in self.manifests.find(&labels) {
            let snapshot = parse_snapshot(entry)?;
            if snapshot.incomplete.is_empty() {
                found.push(SnapshotEntry {
                    id: entry.id.clone(),
                    snapshot,
                });
            }
        }
        found.sort_by_key(|s| s.snapshot.start_time);
        Ok(found)
    }

    /// One snapshot manifest by ID.
    pub fn snapshot(&self, id: &str) -> Result<Snapshot, KopiaError> {
        let entry = self
            .manifests
            .get(id)
            .filter(|e| {
                e.labels
                    .as_ref()
                    .and_then(|l| l.get("type"))
                    .is_some_and(|t| t == SNAPSHOT_TYPE)
            })
            .ok_or_else(|| KopiaError::SnapshotNotFound(id.to_string()))?;
        parse_snapshot(entry)
    }
}

fn parse_snapshot(entry: &manifest::Entry) -> Result<Snapshot, KopiaError> {
    let data = entry.data.as_ref().map(|d| d.get()).unwrap_or("null");
    serde_json::from_str(data).map_err(|e| KopiaError::BadObject {
        id: format!("snapshot manifest {}", entry.id),
        reason: e.to_string(),
    })
}

/// An index, session or log blob's IV: the 32 hex characters before the first `-` of its name.
pub(crate) fn blob_iv(id: &str) -> Option<[u8; 16]> {
    let head = id.split('-').next()?;
    let hex = head.get(head.len().checked_sub(32)?..)?;
    crate::id::decode_hex(hex)?.try_into().ok()
}
