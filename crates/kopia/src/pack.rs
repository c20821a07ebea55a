//! Pack blobs (kopia's repo/content/content_manager.go and content_index_recovery.go): contents
//! sealed one after another behind a 32-byte random preamble, padding to 4 KiB, then the pack's
//! own index (for `kopia index recover`) and a postamble that locates it.

use std::sync::Arc;

use crate::compression;
use crate::crypto::{self, ContentCipher};
use crate::error::KopiaError;
use crate::id::{ContentId, encode_hex};
use crate::index::{self, Info};

const PREAMBLE: usize = 32;
const PAD_TO: usize = 4096;
/// Index entries' format version: what kopia writes for format versions 2 and 3.
pub const CONTENT_FORMAT_VERSION: u8 = 3;

/// A content's stored bytes as the index describes them.
pub fn open_content(
    cipher: &ContentCipher,
    info: &Info,
    sealed: &[u8],
) -> Result<Vec<u8>, KopiaError> {
    let plain = cipher.decrypt(info.content.hash(), sealed).ok_or_else(|| {
        KopiaError::damaged(
            &*info.pack,
            format!(
                "content {} at offset {} does not decrypt",
                info.content, info.pack_offset
            ),
        )
    })?;
    let data = compression::decompress(info.compression, plain)
        .map_err(|e| KopiaError::damaged(&*info.pack, format!("content {}: {e}", info.content)))?;
    if data.len() != info.original_length as usize {
        return Err(KopiaError::damaged(
            &*info.pack,
            format!(
                "content {} is {} bytes, its index entry says {}",
                info.content,
                data.len(),
                info.original_length
            ),
        ));
    }
    Ok(data)
}

/// A session's ID (`s` + 16 random hex + kopia's 30-day months since 2000), which names its packs
/// and index blobs.
pub fn session_id(now: i64) -> Result<String, KopiaError> {
    let random: [u8; 8] = crypto::random()?;
    // 2000-01-01T00:00:00Z in unix seconds, and kopia's month of 720 hours.
    let months = (now - 946_684_800).max(0) / (720 * 3600);
    Ok(format!("s{}{months:x}", encode_hex(&random)))
}

/// A pack being filled: contents appended sealed, finished into one blob.
pub struct PackWriter {
    name: Arc<str>,
    data: Vec<u8>,
    entries: Vec<Info>,
}

impl PackWriter {
    /// A new `p` (file data) or `q` (metadata) pack of `session`.
    pub fn new(metadata: bool, session: &str) -> Result<Self, KopiaError> {
        let random: [u8; 16] = crypto::random()?;
        let name = format!(
            "{}{}-{session}",
            if metadata { 'q' } else { 'p' },
            encode_hex(&random)
        );
        let preamble: [u8; PREAMBLE] = crypto::random()?;
        Ok(PackWriter {
            name: Arc::from(name.as_str()),
            data: preamble.to_vec(),
            entries: Vec::new(),
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Bytes so far (kopia finishes a pack once this reaches the repository's pack size).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes room for `bytes` more, so filling a data pack does not copy it as it grows.
    pub fn reserve(&mut self, bytes: usize) {
        self.data.reserve(bytes);
    }

    /// Seals `data` (already hashed as `id`) into the pack, compressed with zstd when `compress`
    /// and that is smaller; returns its index entry.
    pub fn add(
        &mut self,
        cipher: &ContentCipher,
        id: ContentId,
        data: &[u8],
        compress: bool,
        timestamp: i64,
    ) -> Result<Info, KopiaError> {
        let compressed = if compress {
            compression::compress_zstd_fastest(data)
        } else {
            None
        };
        let (payload, compression) = match &compressed {
            Some(c) => (c.as_slice(), compression::ZSTD_FASTEST),
            None => (data, 0),
        };
        let too_long = |what: &str| KopiaError::Unsupported(format!("a content {what}"));
        let offset =
            u32::try_from(self.data.len()).map_err(|_| too_long("beyond 4 GiB into a pack"))?;
        let sealed = cipher.encrypt_into(id.hash(), payload, &mut self.data)?;
        let info = Info {
            content: id,
            pack: self.name.clone(),
            pack_offset: offset,
            packed_length: u32::try_from(sealed).map_err(|_| too_long("of more than 4 GiB"))?,
            original_length: u32::try_from(data.len())
                .map_err(|_| too_long("of more than 4 GiB"))?,
            timestamp,
            deleted: false,
            compression,
            format_version: CONTENT_FORMAT_VERSION,
        };
        self.entries.push(info.clone());
        Ok(info)
    }

    /// The finished blob and its index entries: padding, the sealed local index, the postamble.
    pub fn finish(mut self, cipher: &ContentCipher) -> Result<FinishedPack, KopiaError> {
        let pad = PAD_TO - self.data.len() % PAD_TO;
        let padding = random_bytes(pad)?;
        self.data.extend_from_slice(&padding);
        let mut local = index::build(&self.entries)
            .map_err(|e| KopiaError::Unsupported(format!("pack {}: {e}", self.name)))?;
        let tail: [u8; 32] = crypto::random()?;
        local.extend_from_slice(&tail);
        let iv = cipher.hash(&local);
        let sealed = cipher.encrypt(&iv, &local)?;
        let local_offset = self.data.len();
        self.data.extend_from_slice(&sealed);
        let mut postamble = Vec::with_capacity(64);
        uvarint(&mut postamble, 1);
        uvarint(&mut postamble, iv.len() as u64);
        postamble.extend_from_slice(&iv);
        uvarint(&mut postamble, local_offset as u64);
        uvarint(&mut postamble, sealed.len() as u64);
        let crc = crc32fast::hash(&postamble);
        postamble.extend_from_slice(&crc.to_be_bytes());
        let length = u8::try_from(postamble.len())
            .map_err(|_| KopiaError::Unsupported("a pack postamble over 255 bytes".into()))?;
        postamble.push(length);
        self.data.extend_from_slice(&postamble);
        Ok(FinishedPack {
            name: self.name,
            blob: self.data,
            entries: self.entries,
        })
    }
}

/// A pack ready to store, and the index entries of its contents.
pub struct FinishedPack {
    pub name: Arc<str>,
    pub blob: Vec<u8>,
    pub entries: Vec<Info>,
}

fn random_bytes(n: usize) -> Result<Vec<u8>, KopiaError> {
    let mut out = vec![0u8; n];
    getrandom::fill(&mut out).map_err(|e| KopiaError::Random(e.to_string()))?;
    Ok(out)
}

fn uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value.to_le_bytes()[0] | 0x80);
        value >>= 7;
    }
    out.push(value.to_le_bytes()[0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_holds_its_contents_and_its_own_index() {
        let cipher = ContentCipher::new([1; 32], [2; 32]);
        let mut pack = PackWriter::new(false, "s0123456789abcdef147").unwrap();
        assert!(pack.name().starts_with('p'));
        let data: Vec<Vec<u8>> = vec![b"hello world\n".to_vec(), vec![7; 5000], Vec::new()];
        for d in &data {
            let id = ContentId::new(None, cipher.hash(d));
            pack.add(&cipher, id, d, false, 1_796_604_249).unwrap();
        }
        let FinishedPack {
            name,
            blob,
            entries,
        } = pack.finish(&cipher).unwrap();
        assert_eq!(entries.len(), 3);
        for (e, d) in entries.iter().zip(&data) {
            assert_eq!(e.pack, name);
            let at = e.pack_offset as usize;
            let sealed = &blob[at..at + e.packed_length as usize];
            assert_eq!(&open_content(&cipher, e, sealed).unwrap(), d);
        }
        // The postamble finds the local index, which lists the same entries.
        let n = usize::from(*blob.last().unwrap());
        let post = &blob[blob.len() - 1 - n..blob.len() - 1];
        assert_eq!(
            crc32fast::hash(&post[..post.len() - 4]).to_be_bytes(),
            post[post.len() - 4..]
        );
        assert_eq!(&post[..2], &[1, 16]);
        let iv: [u8; 16] = post[2..18].try_into().unwrap();
        let (offset, rest) = read_uvarint(&post[18..]);
        let (length, _) = read_uvarint(rest);
        assert_eq!(offset % 4096, 0);
        let (offset, length) = (
            usize::try_from(offset).unwrap(),
            usize::try_from(length).unwrap(),
        );
        let local = cipher.decrypt(&iv, &blob[offset..offset + length]).unwrap();
        assert_eq!(index::parse(&local).unwrap().len(), 3);
        // Another key does not open it.
        let other = ContentCipher::new([1; 32], [9; 32]);
        let e = &entries[0];
        let sealed = &blob[e.pack_offset as usize..][..e.packed_length as usize];
        assert!(open_content(&other, e, sealed).is_err());
    }

    fn read_uvarint(mut b: &[u8]) -> (u64, &[u8]) {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[0];
            b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return (v, b);
            }
            shift += 7;
        }
    }

    #[test]
    fn session_ids_count_kopia_months() {
        // 2026-12-07 is 327 thirty-day months after 2000-01-01.
        let id = session_id(1_796_604_249).unwrap();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with('s') && id.ends_with("147"), "{id}");
    }
}
