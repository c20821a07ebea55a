//! Content and object IDs (kopia's repo/content/index/id.go and repo/object/objectid.go).

use std::fmt;

use crate::crypto::{ContentHash, HASH_BYTES};

/// A content: an optional one-letter prefix (`k` directories, `x` indirect-object tables, `m`
/// manifests) and the hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId {
    /// `0` for none, which sorts unprefixed contents first, as kopia's index orders them.
    prefix: u8,
    hash: ContentHash,
}

impl ContentId {
    pub fn new(prefix: Option<u8>, hash: ContentHash) -> Self {
        ContentId {
            prefix: prefix.unwrap_or(0),
            hash,
        }
    }

    pub fn prefix(&self) -> Option<u8> {
        (self.prefix != 0).then_some(self.prefix)
    }

    pub fn hash(&self) -> &ContentHash {
        &self.hash
    }

    /// The index key: the prefix byte (0 for none) and the hash.
    pub fn key(&self) -> [u8; HASH_BYTES + 1] {
        let mut key = [0u8; HASH_BYTES + 1];
        key[0] = self.prefix;
        key[1..].copy_from_slice(&self.hash);
        key
    }

    pub fn from_key(key: &[u8]) -> Option<Self> {
        let (&prefix, hash) = key.split_first()?;
        Some(ContentId {
            prefix,
            hash: hash.try_into().ok()?,
        })
    }

    /// `prefix + hex(hash)`: 32 or 33 characters; an odd length means a prefix.
    pub fn parse(text: &str) -> Option<Self> {
        let (prefix, hex) = if !text.len().is_multiple_of(2) {
            let first = *text.as_bytes().first()?;
            if !(b'g'..=b'z').contains(&first) {
                return None;
            }
            (first, &text[1..])
        } else {
            (0, text)
        };
        let bytes = decode_hex(hex)?;
        Some(ContentId {
            prefix,
            hash: bytes.try_into().ok()?,
        })
    }

    /// Whether it goes into a `q` pack (prefixed, metadata) rather than a `p` pack (file data).
    pub fn is_metadata(&self) -> bool {
        self.prefix != 0
    }
}

pub(crate) fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.prefix() {
            write!(f, "{}", char::from(p))?;
        }
        f.write_str(&encode_hex(&self.hash))
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

/// An object: a content (`direct`), or the table of its parts stored in another object,
/// `indirection` levels deep (`I…`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectId {
    pub indirection: u8,
    pub content: ContentId,
}

impl ObjectId {
    pub fn direct(content: ContentId) -> Self {
        ObjectId {
            indirection: 0,
            content,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let indirection = text.bytes().take_while(|&b| b == b'I').count();
        let rest = &text[indirection..];
        // The legacy object-compression marker `Z` never meets index v2 repositories; refuse it
        // rather than return unreadable bytes.
        let rest = rest.strip_prefix('D').unwrap_or(rest);
        Some(ObjectId {
            indirection: u8::try_from(indirection).ok()?,
            content: ContentId::parse(rest)?,
        })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.indirection {
            f.write_str("I")?;
        }
        write!(f, "{}", self.content)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ObjectId::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a kopia object ID: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_print_as_kopia_writes_them() {
        for text in [
            "a17cf60ae435538d08af78074db9cd2b",
            "k8039e2fe83bbd0cbf4b32f31e9f9652f",
            "mff9e309ebd6394f00566204adb503ebf",
        ] {
            assert_eq!(ContentId::parse(text).unwrap().to_string(), text);
        }
        let indirect = ObjectId::parse("Ix3da02e4e6fd8252fd31d9964200d38b0").unwrap();
        assert_eq!(indirect.indirection, 1);
        assert_eq!(indirect.content.prefix(), Some(b'x'));
        assert_eq!(indirect.to_string(), "Ix3da02e4e6fd8252fd31d9964200d38b0");
        assert!(ContentId::parse("Z3da02e4e6fd8252fd31d9964200d38b0a").is_none());
        assert!(ContentId::parse("xyz").is_none());
        let plain = ContentId::parse("a17cf60ae435538d08af78074db9cd2b").unwrap();
        let prefixed = ContentId::parse("k8039e2fe83bbd0cbf4b32f31e9f9652f").unwrap();
        assert!(plain.key() < prefixed.key());
        assert_eq!(ContentId::from_key(&prefixed.key()), Some(prefixed));
    }
}
