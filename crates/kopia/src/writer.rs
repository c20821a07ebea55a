//! Writing into a repository as one kopia session: contents deduplicated against the index and
//! sealed into `p`/`q` packs, objects split by the repository's splitter (tables for long ones),
//! manifests; then one index blob in the current epoch. Nothing written is visible to a reader
//! before [`Writer::flush`] puts the index, and a writer that stops before it leaves only packs
//! that maintenance removes later.

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Finished packs go to the store from a thread of their own while the next fills.
    uploads: Option<Uploader>,
    /// Bytes of new contents (before sealing), what the session added to the repository.
    pub added_bytes: u64,
}

/// Stores finished packs in the background, one at a time; at most one waits, so memory stays
/// within two packs whatever the volume.
struct Uploader {
    queue: std::sync::mpsc::SyncSender<(String, Vec<u8>)>,
    done: std::thread::JoinHandle<Result<(), KopiaError>>,
}

impl Uploader {
    fn start(store: std::sync::Arc<dyn crate::blob::BlobStore>) -> Self {
        let (queue, packs) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(1);
        let done = std::thread::spawn(move || {
            for (name, blob) in packs {
                store.put(&name, blob)?;
            }
            Ok(())
        });
        Uploader { queue, done }
    }

    /// Waits for every pack sent so far to be stored.
    fn finish(self) -> Result<(), KopiaError> {
        drop(self.queue);
        self.done
            .join()
            .map_err(|_| KopiaError::Unsupported("the pack upload thread panicked".into()))?
    }
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
            uploads: None,
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
            None => {
                let mut pack = PackWriter::new(metadata, &self.session)?;
                if !metadata {
                    // Untouched capacity costs no memory until written.
                    pack.reserve(self.repo.max_pack_size() + (1 << 20));
                }
                slot.insert(pack)
            }
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
        let store = self.repo.store.clone();
        let uploads = self.uploads.get_or_insert_with(|| Uploader::start(store));
        if uploads
            .queue
            .send((finished.name.to_string(), finished.blob))
            .is_err()
        {
            // The uploader stopped at an error: it says which.
            if let Some(stopped) = self.uploads.take() {
                stopped.finish()?;
            }
            return Err(KopiaError::Unsupported(
                "the pack upload thread stopped".into(),
            ));
        }
        self.entries.extend(finished.entries);
        Ok(())
    }

    /// Stores everything `reader` gives as one object, split as kopia splits it; its ID and
    /// length. Reads at most a few chunks ahead, whatever the object's size. An object longer than
    /// a read block is split on this thread while another hashes and seals its chunks.
    pub fn write_object(
        &mut self,
        reader: &mut dyn Read,
        prefix: Option<u8>,
        compress: bool,
    ) -> Result<(ObjectId, u64), KopiaError> {
        let block = read_first_block(reader)?;
        let first = block.len();
        if first < READ_BLOCK {
            // All of it in one block (most files): no thread.
            return self.write_bytes(&block, prefix, compress);
        }
        let mut splitter = Splitter::default();
        let (chunks, sealed) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let writer = &mut *self;
        let (mut parts, mut total) = std::thread::scope(|scope| {
            let sealing = scope.spawn(move || -> Result<_, KopiaError> {
                let (mut parts, mut total) = (Vec::new(), 0u64);
                for chunk in sealed {
                    writer.part(&chunk, &mut parts, &mut total, prefix, compress)?;
                }
                Ok((parts, total))
            });
            let split = split_into(reader, &mut splitter, block, first, &chunks);
            drop(chunks);
            let sealed = sealing
                .join()
                .map_err(|_| KopiaError::Unsupported("the sealing thread panicked".into()))?;
            // When sealing failed, splitting stopped because of it: its error is the cause.
            // Otherwise a reading error is.
            match (split, sealed) {
                (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
                (Ok(()), Ok(done)) => Ok(done),
            }
        })?;
        if parts.is_empty() {
            self.part(&[], &mut parts, &mut total, prefix, compress)?;
        }
        self.finish_object(parts, total, prefix)
    }

    /// Stores bytes already in memory (a file read ahead, a directory listing) as one object, as
    /// [`write_object`](Self::write_object) does; a short one is split where it lies, so its
    /// chunks reach the pack without another copy.
    pub fn write_bytes(
        &mut self,
        data: &[u8],
        prefix: Option<u8>,
        compress: bool,
    ) -> Result<(ObjectId, u64), KopiaError> {
        if data.len() >= READ_BLOCK {
            return self.write_object(&mut &data[..], prefix, compress);
        }
        let mut splitter = Splitter::default();
        let (mut parts, mut total) = (Vec::new(), 0u64);
        let mut start = 0;
        while let Some(cut) = splitter.next_boundary(&data[start..]) {
            self.part(
                &data[start..start + cut],
                &mut parts,
                &mut total,
                prefix,
                compress,
            )?;
            start += cut;
        }
        if start < data.len() || parts.is_empty() {
            self.part(&data[start..], &mut parts, &mut total, prefix, compress)?;
        }
        self.finish_object(parts, total, prefix)
    }

    /// The object made of `parts`: the one content itself, or a table of them (stored as an
    /// object in turn).
    fn finish_object(
        &mut self,
        parts: Vec<IndirectEntry>,
        total: u64,
        prefix: Option<u8>,
    ) -> Result<(ObjectId, u64), KopiaError> {
        if let [only] = parts.as_slice() {
            return Ok((only.object, total));
        }
        let mut table = serde_json::to_vec(&IndirectObject {
            stream: INDIRECT_STREAM.into(),
            entries: parts,
        })
        .map_err(|e| KopiaError::Unsupported(format!("encoding an object table: {e}")))?;
        table.push(b'\n');
        let (table_id, _) = self.write_bytes(&table, Some(prefix.unwrap_or(TABLE_PREFIX)), true)?;
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
        chunk: &[u8],
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
        let manifests = std::mem::take(&mut self.manifests);
        if !manifests.is_empty() {
            let bytes =
                manifest::encode(&manifests).map_err(|e| KopiaError::Unsupported(e.to_string()))?;
            self.write_content(&bytes, Some(manifest::PREFIX), true)?;
        }
        self.finish_pack(false)?;
        self.finish_pack(true)?;
        // Every pack stored before the index that names them.
        if let Some(uploads) = self.uploads.take() {
            uploads.finish()?;
        }
        if self.entries.is_empty() {
            return Ok(());
        }
        // One entry per content: a later one (a deletion) wins.
        let mut latest = HashMap::new();
        for info in self.entries.drain(..) {
            index::merge(&mut latest, info);
        }
        let entries: Vec<Info> = latest.into_values().collect();
        let (iv, sealed) = self.repo.seal_index(&entries)?;
        let mut epoch = self.write_epoch()?;
        loop {
            let name = format!(
                "{}{epoch}_{}-{}-c1",
                crate::epoch::UNCOMPACTED,
                crate::id::encode_hex(&iv),
                self.session
            );
            self.repo.store.put(&name, sealed.clone())?;
            // Kopia's safety check: if maintenance advanced two epochs meanwhile, it may have
            // compacted the epoch without this blob; write it again into the current one.
            let now_epoch = self.write_epoch()?;
            if now_epoch < epoch + 2 {
                break;
            }
            self.repo.store.delete(&name)?;
            epoch = now_epoch;
        }
        // What was written joins the repository's view as it would after a refresh, without
        // reading every index blob and manifest again.
        for info in entries {
            index::merge(&mut self.repo.index, info);
        }
        self.repo.manifests.merge(manifests);
        Ok(())
    }

    fn write_epoch(&self) -> Result<u64, KopiaError> {
        Ok(crate::epoch::write_epoch(
            &self.repo.store.list(crate::epoch::MARKER)?,
        ))
    }
}

/// What a first read reserves: most files fit, and a larger one grows the buffer as it is read.
const FIRST_CAPACITY: usize = 64 << 10;

/// Up to a read block of the object's first bytes, in a buffer that grows with what is read: a
/// small file costs about its own size, where a zeroed block per file cost a megabyte of memset
/// each (30,000 small files: 30 GB written to memory for nothing).
fn read_first_block(reader: &mut dyn Read) -> Result<Vec<u8>, KopiaError> {
    let mut block = Vec::with_capacity(FIRST_CAPACITY);
    reader
        .take(READ_BLOCK as u64)
        .read_to_end(&mut block)
        .map_err(|source| KopiaError::Io {
            path: "(object being written)".into(),
            source,
        })?;
    Ok(block)
}

/// Fills `block` from `reader` as far as it goes; how many bytes it holds (less only at the end).
fn read_full(reader: &mut dyn Read, block: &mut [u8]) -> Result<usize, KopiaError> {
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(KopiaError::Io {
                    path: "(object being written)".into(),
                    source: e,
                });
            }
        }
    }
    Ok(filled)
}

/// Splits what `reader` gives (after the `first` bytes already in `block`) into chunks, sent to
/// `chunks` in order; the last one too, even when empty but for an empty object.
fn split_into(
    reader: &mut dyn Read,
    splitter: &mut Splitter,
    mut block: Vec<u8>,
    first: usize,
    chunks: &std::sync::mpsc::SyncSender<Vec<u8>>,
) -> Result<(), KopiaError> {
    let stopped = || KopiaError::Unsupported("the sealing thread stopped".into());
    let mut chunk: Vec<u8> = Vec::with_capacity(Splitter::max_chunk());
    let mut filled = first;
    loop {
        let mut rest = &block[..filled];
        while let Some(cut) = splitter.next_boundary(rest) {
            chunk.extend_from_slice(&rest[..cut]);
            rest = &rest[cut..];
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(Splitter::max_chunk()));
            chunks.send(full).map_err(|_| stopped())?;
        }
        chunk.extend_from_slice(rest);
        filled = read_full(reader, &mut block)?;
        if filled == 0 {
            break;
        }
    }
    if !chunk.is_empty() {
        chunks.send(chunk).map_err(|_| stopped())?;
    }
    Ok(())
}
