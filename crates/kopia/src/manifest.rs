//! Kopia's manifest store (repo/manifest): labelled JSON entries (snapshots, policies, maintenance
//! parameters) kept in `m` contents, each a gzipped `{"entries":[…]}`; an entry with `deleted`
//! hides every older one with its ID.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::snapshot::Time;

/// Manifests are contents with this prefix.
pub const PREFIX: u8 = b'm';

/// One manifest entry as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub modified: Time,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub data: Option<Box<RawValue>>,
}

#[derive(Serialize, Deserialize)]
struct Content {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest content: {0}")]
pub struct ManifestError(String);

/// The entries of one manifest content's bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, ManifestError> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| ManifestError(format!("gzip: {e}")))?;
    let content: Content =
        serde_json::from_slice(&json).map_err(|e| ManifestError(e.to_string()))?;
    Ok(content.entries)
}

/// A manifest content holding `entries`: gzip of the JSON kopia's encoder writes.
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, ManifestError> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        entries: &'a [Entry],
    }
    let mut json =
        serde_json::to_vec(&Borrowed { entries }).map_err(|e| ManifestError(e.to_string()))?;
    json.push(b'\n');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)
        .and_then(|()| gz.finish())
        .map_err(|e| ManifestError(format!("gzip: {e}")))
}

/// The live manifests of a repository: per ID the latest entry, deleted ones dropped.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    latest: HashMap<String, Entry>,
}

impl Manifests {
    /// Adds the entries of one content; an entry replaces another with its ID only when strictly
    /// newer, as kopia merges them.
    pub fn merge(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            match self.latest.get(&entry.id) {
                Some(existing) if existing.modified >= entry.modified => {}
                _ => {
                    self.latest.insert(entry.id.clone(), entry);
                }
            }
        }
    }

    /// Live entries whose labels include every one of `labels`.
    pub fn find(&self, labels: &[(&str, &str)]) -> Vec<&Entry> {
        let mut found: Vec<&Entry> = self
            .latest
            .values()
            .filter(|e| !e.deleted)
            .filter(|e| {
                let have = e.labels.as_ref();
                labels
                    .iter()
                    .all(|(k, v)| have.and_then(|l| l.get(*k)).is_some_and(|x| x == v))
            })
            .collect();
        found.sort_by(|a, b| (a.modified, &a.id).cmp(&(b.modified, &b.id)));
        found
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.latest.get(id).filter(|e| !e.deleted)
    }
}

/// A new manifest ID: 16 random bytes in hex.
pub fn new_id() -> Result<String, crate::KopiaError> {
    let random: [u8; 16] = crate::crypto::random()?;
    Ok(crate::id::encode_hex(&random))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, seconds: i64, deleted: bool) -> Entry {
        Entry {
            id: id.into(),
            labels: (!deleted).then(|| BTreeMap::from([("type".into(), "snapshot".into())])),
            modified: Time { seconds, nanos: 0 },
            deleted,
            data: (!deleted).then(|| RawValue::from_string("{\"a\":1}".into()).unwrap()),
        }
    }

    #[test]
    fn contents_round_trip_and_deletions_hide_older_entries() {
        let bytes = encode(&[entry("a", 10, false), entry("b", 10, false)]).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        let mut all = Manifests::default();
        all.merge(decode(&bytes).unwrap());
        assert_eq!(all.find(&[("type", "snapshot")]).len(), 2);
        all.merge(vec![entry("a", 11, true)]);
        // An older copy arriving later does not bring it back.
        all.merge(vec![entry("a", 9, false)]);
        let left: Vec<&str> = all
            .find(&[("type", "snapshot")])
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(left, ["b"]);
        assert!(all.get("a").is_none());
        assert!(decode(b"not gzip").is_err());
        let deleted = serde_json::to_string(&entry("a", 11, true)).unwrap();
        assert_eq!(
            deleted,
            r#"{"id":"a","labels":null,"modified":"1970-01-01T00:00:11Z","deleted":true,"data":null}"#
        );
    }
}
