//! Writing into a repository as one kopia session: contents deduplicated against the index and
//! sealed into `p`/`q` packs, objects split by the repository's splitter (tables for long ones),
//! manifests; then one index blob in the current epoch. Nothing written is visible to a reader
//! before [`Writer::flush`] puts the index, and a writer that stops before it leaves only packs
//! that maintenance removes later.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use serde_json::value::RawValue;

use crate::error::KopiaError;
use crate::id::{ContentId, ObjectId};
use crate::index::{self, Info};
use crate::manifest::{self, Entry};
use crate::pack::{self, PackWriter};
use crate::repo::Repository;
use crate::snapshot::{INDIRECT_STREAM, IndirectEntry, IndirectObject, Time};
use crate::splitter::Splitter;

/// The prefix of an object table when the object's own contents have none.
const TABLE_PREFIX: u8 = b'x';
const READ_BLOCK: usize = 1 << 20;

pub struct Writer<'r> {
    repo: &'r mut Repository,
    session: String,
    now: i64,
    data_pack: Option<PackWriter>,
    meta_pack: Option<PackWriter>,
    /// Index entries of the packs this session finished.
    entries: Vec<Info>,
    written: HashSet<ContentId>,
    manifests: Vec<Entry>,
    /// Bytes of new contents (before sealing), what the session added to the repository.
    pub added_bytes: u64,
}

impl<'r> Writer<'r> {
    pub fn new(repo: &'r mut Repository) -> Result<Self, KopiaError> {
        let now = jiff::Timestamp::now().as_second();
        Ok(Writer {
            session: pack::session_id(now)?,
            repo,
            now,
            data_pack: None,
            meta_pack: None,
            entries: Vec::new(),
            written: HashSet::new(),
            manifests: Vec::new(),
            added_bytes: 0,
        })
    }

    pub fn repository(&self) -> &Repository {
        self.repo
    }

    /// Stores `data` as a content unless the repository already has it; its ID either way.
    pub fn write_content(
        &mut self,
        data: &[u8],
        prefix: Option<u8>,
        compress: bool,
    ) -> Result<ContentId, KopiaError> {
        let id = ContentId::new(prefix, self.repo.cipher().hash(data));
        if self.written.contains(&id) || self.repo.contains(&id) {
            return Ok(id);
        }
        let metadata = id.is_metadata();
        let slot = if metadata {
            &mut self.meta_pack
        } else {
            &mut self.data_pack
        };
        let pack = match slot {
            Some(p) => p,
            None => slot.insert(PackWriter::new(metadata, &self.session)?),
        };
        pack.add(self.repo.cipher(), id, data, compress, self.now)?;
        self.written.insert(id);
        self.added_bytes += data.len() as u64;
        if pack.len() >= self.repo.max_pack_size() {
            self.finish_pack(metadata)?;
        }
        Ok(id)
    }

    fn finish_pack(&mut self, metadata: bool) -> Result<(), KopiaError> {
        let slot = if metadata {
            &mut self.meta_pack
        } else {
            &mut self.data_pack
        };
        let Some(pack) = slot.take().filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let finished = pack.finish(self.repo.cipher())?;
        self.repo.store.put(&finished.name, &finished.blob)?;
        self.entries.extend(finished.entries);
        Ok(())
    }

    /// Stores everything `reader` gives as one object, split as kopia splits it; its ID and
    /// length. Reads at most a chunk ahead, whatever the object's size.
    pub fn write_object(
        &mut self,
        reader: &mut dyn Read,
        prefix: Option<u8>,
        compress: bool,
    ) -> Result<(ObjectId, u64), KopiaError> {
        let mut splitter = Splitter::default();
        let mut chunk: Vec<u8> = Vec::with_capacity(READ_BLOCK);
        let mut block = vec![0u8; READ_BLOCK];
        let mut parts: Vec<IndirectEntry> = Vec::new();
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(KopiaError::Io {
                        path: "(object being written)".into(),
                        source: e,
                    });
                }
            };
            let mut rest = &block[..n];
            while let Some(cut) = splitter.next_boundary(rest) {
                chunk.extend_from_slice(&rest[..cut]);
                rest = &rest[cut..];
                self.part(&mut chunk, &mut parts, &mut total, prefix, compress)?;
            }
            chunk.extend_from_slice(rest);
        }
        // The rest is the last part; an empty object is one empty content.
        if !chunk.is_empty() || parts.is_empty() {
            self.part(&mut chunk, &mut parts, &mut total, prefix, compress)?;
        }
        if let [only] = parts.as_slice() {
            return Ok((only.object, total));
        }
        let mut table = serde_json::to_vec(&IndirectObject {
            stream: INDIRECT_STREAM.into(),
            entries: parts,
        })
        .map_err(|e| KopiaError::Unsupported(format!("encoding an object table: {e}")))?;
        table.push(b'\n');
        let (table_id, _) = self.write_object(
            &mut table.as_slice(),
            Some(prefix.unwrap_or(TABLE_PREFIX)),
            true,
        )?;
        let indirection = table_id
            .indirection
            .checked_add(1)
            .ok_or_else(|| KopiaError::Unsupported("an object nested 255 tables deep".into()))?;
        Ok((
            ObjectId {
                indirection,
                content: table_id.content,
            },
            total,
        ))
    }

    fn part(
        &mut self,
        chunk: &mut Vec<u8>,
        parts: &mut Vec<IndirectEntry>,
        total: &mut u64,
        prefix: Option<u8>,
        compress: bool,
    ) -> Result<(), KopiaError> {
        let id = self.write_content(chunk, prefix, compress)?;
        let length = chunk.len() as u64;
        parts.push(IndirectEntry {
            start: i64::try_from(*total).unwrap_or(i64::MAX),
            length: i64::try_from(length).unwrap_or(i64::MAX),
            object: ObjectId::direct(id),
        });
        *total += length;
        chunk.clear();
        Ok(())
    }

    /// Adds a manifest (saved at [`Writer::flush`]); its new ID.
    pub fn put_manifest(
        &mut self,
        labels: BTreeMap<String, String>,
        payload: &impl serde::Serialize,
    ) -> Result<String, KopiaError> {
        let data = serde_json::to_string(payload)
            .and_then(RawValue::from_string)
            .map_err(|e| KopiaError::Unsupported(format!("encoding a manifest: {e}")))?;
        let id = manifest::new_id()?;
        self.manifests.push(Entry {
            id: id.clone(),
            labels: Some(labels),
            modified: Time::now(),
            deleted: false,
            data: Some(data),
        });
        Ok(id)
    }

    /// Deletes a manifest (a deletion entry, as kopia records one).
    pub fn delete_manifest(&mut self, id: &str) {
        self.manifests.push(Entry {
            id: id.to_string(),
            labels: None,
            modified: Time::now(),
            deleted: true,
            data: None,
        });
    }

    /// Marks contents deleted: an index entry copying each one's place, with the deleted flag
    /// and a later timestamp (kopia's deletePreexistingContent).
    pub fn delete_contents(&mut self, ids: &[ContentId]) {
        for id in ids {
            if let Some(info) = self.repo.index.get(id).filter(|i| !i.deleted) {
                let mut deleted = info.clone();
                deleted.deleted = true;
                deleted.timestamp = self.now.max(info.timestamp + 1);
                self.entries.push(deleted);
            }
        }
    }

    /// Writes the pending manifests and packs, then the index blob that makes them visible, in
    /// the current write epoch; the repository's view then includes them.
    pub fn flush(mut self) -> Result<(), KopiaError> {
        if !self.manifests.is_empty() {
            let bytes = manifest::encode(&self.manifests)
                .map_err(|e| KopiaError::Unsupported(e.to_string()))?;
            self.manifests.clear();
            self.write_content(&bytes, Some(manifest::PREFIX), true)?;
        }
        self.finish_pack(false)?;
        self.finish_pack(true)?;
        if self.entries.is_empty() {
            return Ok(());
        }
        // One entry per content: a later one (a deletion) wins.
        let mut latest: BTreeMap<[u8; 17], Info> = BTreeMap::new();
        for info in self.entries.drain(..) {
            match latest.get(&info.content.key()) {
                Some(existing) if !info.supersedes(existing) => {}
                _ => {
                    latest.insert(info.content.key(), info);
                }
            }
        }
        let entries: Vec<Info> = latest.into_values().collect();
        let plain = index::build(&entries)
            .map_err(|e| KopiaError::Unsupported(format!("building the index: {e}")))?;
        let iv = self.repo.cipher().hash(&plain);
        let sealed = self.repo.cipher().encrypt(&iv, &plain)?;
        let mut epoch = self.write_epoch()?;
        loop {
            let name = format!(
                "{}{epoch}_{}-{}-c1",
                crate::epoch::UNCOMPACTED,
                crate::id::encode_hex(&iv),
                self.session
            );
            self.repo.store.put(&name, &sealed)?;
            // Kopia's safety check: if maintenance advanced two epochs meanwhile, it may have
            // compacted the epoch without this blob; write it again into the current one.
            let now_epoch = self.write_epoch()?;
            if now_epoch < epoch + 2 {
                break;
            }
            self.repo.store.delete(&name)?;
            epoch = now_epoch;
        }
        // Read back as any reader would: the index blob written is now part of the state.
        self.repo.refresh()
    }

    fn write_epoch(&self) -> Result<u64, KopiaError> {
        let markers = self.repo.store.list(crate::epoch::MARKER)?;
        Ok(markers
            .iter()
            .filter_map(|b| crate::epoch::epoch_of(&b.id))
            .max()
            .unwrap_or(0))
    }
}
