//! Index format v2 (kopia's repo/content/index/index_v2.go): where each content is, in which pack,
//! how long, compressed how, and whether it was deleted. Index blobs are sealed like contents,
//! their IV being the hash in their name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::id::ContentId;

/// One content's index entry (kopia's `index.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub content: ContentId,
    pub pack: Arc<str>,
    pub pack_offset: u32,
    pub packed_length: u32,
    pub original_length: u32,
    pub timestamp: i64,
    pub deleted: bool,
    pub compression: u32,
    pub format_version: u8,
}

impl Info {
    /// Kopia's merge rule (index/merged.go): the later timestamp wins, then a live entry over a
    /// deleted one, then the greater pack name.
    pub fn supersedes(&self, other: &Info) -> bool {
        (self.timestamp, !self.deleted, &*self.pack)
            > (other.timestamp, !other.deleted, &*other.pack)
    }
}

/// Adds `info` to `index` unless the entry already there supersedes it: how kopia merges the
/// entries of several index blobs, and the entries of one session.
pub fn merge(index: &mut HashMap<ContentId, Info>, info: Info) {
    match index.get(&info.content) {
        Some(existing) if !info.supersedes(existing) => {}
        _ => {
            index.insert(info.content, info);
        }
    }
}

const VERSION: u8 = 2;
const HEADER: usize = 17;
const KEY_SIZE: usize = 17;
const DELETED: u32 = 0x8000_0000;
const MAX_OFFSET: u32 = 1 << 30;

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Why an index does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index v2: {0}")]
pub struct IndexError(String);

fn bad<T>(what: impl Into<String>) -> Result<T, IndexError> {
    Err(IndexError(what.into()))
}

/// Every entry of an index v2 buffer, in key order.
pub fn parse(data: &[u8]) -> Result<Vec<Info>, IndexError> {
    if data.len() < HEADER {
        return bad("shorter than its header");
    }
    if data[0] != VERSION {
        return bad(format!("version {} (not 2)", data[0]));
    }
    let key_size = usize::from(data[1]);
    if key_size == 255 {
        return Ok(Vec::new());
    }
    let entry_size = usize::from(be16(&data[2..]));
    let count = be32(&data[4..]) as usize;
    let pack_count = be32(&data[8..]) as usize;
    let format_count = usize::from(data[12]);
    let base_timestamp = i64::from(be32(&data[13..]));
    if key_size <= 1 || !(16..=19).contains(&entry_size) || key_size + entry_size > 256 {
        return bad(format!("key size {key_size}, entry size {entry_size}"));
    }
    let stride = key_size + entry_size;
    let packs_at = count
        .checked_mul(stride)
        .and_then(|n| n.checked_add(HEADER))
        .filter(|&n| n <= data.len())
        .ok_or_else(|| IndexError("entries run past the end".into()))?;
    let formats_at = packs_at + 5 * pack_count;
    if formats_at + 6 * format_count > data.len() {
        return bad("pack or format tables run past the end");
    }
    let mut packs: Vec<Arc<str>> = Vec::with_capacity(pack_count);
    for i in 0..pack_count {
        let at = packs_at + 5 * i;
        let len = usize::from(data[at]);
        let offset = be32(&data[at + 1..]) as usize;
        let name = data
            .get(offset..offset + len)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| IndexError(format!("pack name {i} is outside the index")))?;
        packs.push(Arc::from(name));
    }
    let formats: Vec<(u32, u8, u8)> = (0..format_count)
        .map(|i| {
            let at = formats_at + 6 * i;
            (be32(&data[at..]), data[at + 4], data[at + 5])
        })
        .collect();
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = HEADER + i * stride;
        let content = ContentId::from_key(&data[at..at + key_size])
            .ok_or_else(|| IndexError(format!("entry {i} has a {key_size}-byte key")))?;
        let v = &data[at + key_size..at + stride];
        let offset_word = be32(&v[4..]);
        let mut original = be24(&v[8..]);
        let mut packed = be24(&v[11..]);
        let mut pack_index = usize::from(be16(&v[14..]));
        let format_index = if entry_size >= 17 {
            usize::from(v[16])
        } else {
            0
        };
        if entry_size >= 18 {
            pack_index |= usize::from(v[17]) << 16;
        }
        if entry_size >= 19 {
            original |= u32::from(v[18] >> 4) << 24;
            packed |= u32::from(v[18] & 0x0f) << 24;
        }
        let pack = packs
            .get(pack_index)
            .cloned()
            .ok_or_else(|| IndexError(format!("entry {i} names pack #{pack_index}")))?;
        let (compression, format_version, key_id) = formats
            .get(format_index)
            .copied()
            .unwrap_or((0xFFFF, 0xFF, 0xFF));
        if key_id != 0 {
            return bad(format!("entry {i} uses encryption key {key_id}"));
        }
        entries.push(Info {
            content,
            pack,
            pack_offset: offset_word & !DELETED,
            packed_length: packed,
            original_length: original,
            timestamp: base_timestamp + i64::from(be32(v)),
            deleted: offset_word & DELETED != 0,
            compression,
            format_version,
        });
    }
    Ok(entries)
}

/// `n` in the narrower type an index field has, or why not.
fn fit<T, N>(n: N, what: &str) -> Result<T, IndexError>
where
    T: TryFrom<N>,
    N: Copy + std::fmt::Display,
{
    T::try_from(n).map_err(|_| IndexError(format!("{what} {n} does not fit index v2")))
}

/// An index v2 buffer for `entries` (one per content; the caller merged duplicates), built as
/// kopia builds a stable index shard: entries by key, packs and formats in order of first use.
pub fn build(entries: &[Info]) -> Result<Vec<u8>, IndexError> {
    if entries.is_empty() {
        return bad("an index needs at least one entry");
    }
    let mut sorted: Vec<&Info> = entries.iter().collect();
    sorted.sort_by_key(|e| e.content.key());
    let mut packs: Vec<&str> = Vec::new();
    let mut pack_of: HashMap<&str, usize> = HashMap::new();
    let mut formats: Vec<(u32, u8)> = Vec::new();
    let mut long = false;
    for e in &sorted {
        if !pack_of.contains_key(&*e.pack) {
            pack_of.insert(&e.pack, packs.len());
            packs.push(&e.pack);
        }
        if !formats.contains(&(e.compression, e.format_version)) {
            formats.push((e.compression, e.format_version));
        }
        long |= e.original_length >= 1 << 24 || e.packed_length >= 1 << 24;
        if e.original_length >= 1 << 28 || e.packed_length >= 1 << 28 {
            return bad(format!("content {} is too long for index v2", e.content));
        }
        if e.pack_offset >= MAX_OFFSET {
            return bad(format!("content {} is too far into its pack", e.content));
        }
        if e.timestamp < 0 || e.timestamp > i64::from(u32::MAX) {
            return bad(format!(
                "content {} has timestamp {}",
                e.content, e.timestamp
            ));
        }
    }
    if formats.len() > 255 || packs.len() >= 1 << 24 {
        return bad("too many formats or packs for one index");
    }
    let entry_size = if long {
        19
    } else if packs.len() > 1 << 16 {
        18
    } else if formats.len() > 1 {
        17
    } else {
        16
    };
    let stride = KEY_SIZE + entry_size;
    let packs_at = HEADER + sorted.len() * stride;
    let names_at = packs_at + 5 * packs.len() + 6 * formats.len();
    let mut out = Vec::with_capacity(names_at + packs.iter().map(|p| p.len()).sum::<usize>());
    out.push(VERSION);
    out.push(fit(KEY_SIZE, "key size")?);
    out.extend_from_slice(&fit::<u16, _>(entry_size, "entry size")?.to_be_bytes());
    out.extend_from_slice(&fit::<u32, _>(sorted.len(), "entry count")?.to_be_bytes());
    out.extend_from_slice(&fit::<u32, _>(packs.len(), "pack count")?.to_be_bytes());
    out.push(fit(formats.len(), "format count")?);
    out.extend_from_slice(&0u32.to_be_bytes());
    for e in &sorted {
        out.extend_from_slice(&e.content.key());
        let mut v = [0u8; 19];
        v[0..4].copy_from_slice(&fit::<u32, _>(e.timestamp, "timestamp")?.to_be_bytes());
        let offset = e.pack_offset | if e.deleted { DELETED } else { 0 };
        v[4..8].copy_from_slice(&offset.to_be_bytes());
        v[8..11].copy_from_slice(&e.original_length.to_be_bytes()[1..]);
        v[11..14].copy_from_slice(&e.packed_length.to_be_bytes()[1..]);
        let pack = pack_of[&*e.pack].to_be_bytes();
        // Low 16 bits of the pack's number, its next 8 in byte 17.
        let [.., p2, p1, p0] = pack;
        v[14] = p1;
        v[15] = p0;
        let format = formats
            .iter()
            .position(|f| *f == (e.compression, e.format_version))
            .unwrap_or(0);
        v[16] = fit(format, "format index")?;
        v[17] = p2;
        let high = |n: u32| n.to_be_bytes()[0];
        v[18] = (high(e.original_length) << 4) | high(e.packed_length);
        out.extend_from_slice(&v[..entry_size]);
    }
    let mut name_offset = names_at;
    for p in &packs {
        out.push(fit(p.len(), "pack name length")?);
        out.extend_from_slice(&fit::<u32, _>(name_offset, "pack name offset")?.to_be_bytes());
        name_offset += p.len();
    }
    for (compression, version) in &formats {
        out.extend_from_slice(&compression.to_be_bytes());
        out.push(*version);
        out.push(0);
    }
    for p in &packs {
        out.extend_from_slice(p.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        crate::id::decode_hex(&s.replace([' ', '\n'], "")).unwrap()
    }

    /// The 115-byte index `kopia repository create` wrote: one manifest content.
    #[test]
    fn reads_and_rebuilds_an_index_kopia_wrote() {
        let index = unhex(
            "02 11 0010 00000001 00000001 01 00000000
             6d ff9e309ebd6394f00566204adb503ebf
             6b160159 00000020 000286 0002a2 0000
             36 0000003d
             00000000 03 00",
        );
        let mut index = index;
        index.extend_from_slice(b"qfe1a2dc9e76d64f72fa9bb5c9748b7d6-s6e3c9345d05f7054147");
        assert_eq!(index.len(), 115);
        let entries = parse(&index).unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.content.to_string(), "mff9e309ebd6394f00566204adb503ebf");
        assert_eq!(e.timestamp, 1796604249);
        assert_eq!(
            (e.pack_offset, e.original_length, e.packed_length),
            (32, 646, 674)
        );
        assert_eq!(
            &*e.pack,
            "qfe1a2dc9e76d64f72fa9bb5c9748b7d6-s6e3c9345d05f7054147"
        );
        assert_eq!((e.compression, e.format_version, e.deleted), (0, 3, false));
        assert_eq!(build(&entries).unwrap(), index);
    }

    #[test]
    fn wide_entries_round_trip() {
        let content = |i: u8| {
            ContentId::new(
                if i.is_multiple_of(2) {
                    None
                } else {
                    Some(b'k')
                },
                [i; 16],
            )
        };
        let entries: Vec<Info> = (0..6u8)
            .map(|i| Info {
                content: content(i),
                pack: Arc::from(format!("p{i:032}-s0").as_str()),
                pack_offset: u32::from(i) * 1000,
                packed_length: if i == 3 { (1 << 25) + 7 } else { 40 },
                original_length: if i == 3 { (1 << 26) + 3 } else { 12 },
                timestamp: 1_796_604_249 + i64::from(i),
                deleted: i == 4,
                compression: if i.is_multiple_of(2) { 0 } else { 0x1101 },
                format_version: 3,
            })
            .collect();
        let index = build(&entries).unwrap();
        assert_eq!(index[3], 19, "a long content widens every entry");
        let mut back = parse(&index).unwrap();
        back.sort_by_key(|e| e.content.key());
        let mut expected = entries.clone();
        expected.sort_by_key(|e| e.content.key());
        assert_eq!(back, expected);
    }

    #[test]
    fn damaged_indexes_are_refused() {
        assert!(parse(&[2, 17, 0, 16]).is_err());
        let mut index = unhex("02 11 0010 00000009 00000001 01 00000000");
        index.extend_from_slice(&[0; 40]);
        assert!(parse(&index).is_err());
    }
}
