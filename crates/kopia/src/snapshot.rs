//! Directories and snapshots as kopia stores them (snapshot/manifest.go, fs/entry.go): directory
//! objects (`kopia:directory` JSON, prefix `k`), their entries and summaries, and the snapshot
//! manifest that names a source and its root.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::ObjectId;

pub const DIRECTORY_STREAM: &str = "kopia:directory";
pub const INDIRECT_STREAM: &str = "kopia:indirect";

/// Go's `FileMode` bits kopia keeps beside the permissions (not the Unix ones).
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// Kopia's mode string (`"0755"`, setuid as Go's bit: `"040000755"`) from Unix mode bits.
pub fn mode_string(unix_mode: u32) -> String {
    let mut go = unix_mode & 0o777;
    if unix_mode & 0o4000 != 0 {
        go |= GO_SETUID;
    }
    if unix_mode & 0o2000 != 0 {
        go |= GO_SETGID;
    }
    if unix_mode & 0o1000 != 0 {
        go |= GO_STICKY;
    }
    format!("0{go:o}")
}

/// Unix mode bits from kopia's mode string (Go's `strconv.ParseUint(s, 0, 32)`).
pub fn unix_mode(mode: &str) -> Option<u32> {
    let go = if let Some(hex) = mode.strip_prefix("0x").or_else(|| mode.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if mode.len() > 1 && mode.starts_with('0') {
        u32::from_str_radix(&mode[1..], 8).ok()?
    } else {
        mode.parse().ok()?
    };
    let mut unix = go & 0o777;
    if go & GO_SETUID != 0 {
        unix |= 0o4000;
    }
    if go & GO_SETGID != 0 {
        unix |= 0o2000;
    }
    if go & GO_STICKY != 0 {
        unix |= 0o1000;
    }
    Some(unix)
}

/// A time as Go's `time.Time` marshals it: RFC 3339, UTC, nanoseconds with trailing zeros cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Time {
    pub seconds: i64,
    pub nanos: u32,
}

impl Time {
    pub fn now() -> Self {
        let now = jiff::Timestamp::now();
        Time {
            seconds: now.as_second(),
            nanos: u32::try_from(now.subsec_nanosecond()).unwrap_or(0),
        }
    }

    pub fn from_system(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Time {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(before) => {
                let d = before.duration();
                let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    seconds -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Time { seconds, nanos }
            }
        }
    }

    pub fn to_system(self) -> std::time::SystemTime {
        let base = std::time::UNIX_EPOCH;
        let nanos = std::time::Duration::from_nanos(u64::from(self.nanos));
        if self.seconds >= 0 {
            base + std::time::Duration::from_secs(self.seconds.unsigned_abs()) + nanos
        } else {
            base - std::time::Duration::from_secs(self.seconds.unsigned_abs()) + nanos
        }
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ts = jiff::Timestamp::from_second(self.seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        write!(f, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S"))?;
        if self.nanos > 0 {
            let digits = format!("{:09}", self.nanos);
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let ts: jiff::Timestamp = text
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("time {text:?}: {e}")))?;
        Ok(Time {
            seconds: ts.as_second(),
            nanos: u32::try_from(ts.subsec_nanosecond()).unwrap_or(0),
        })
    }
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryType {
    #[serde(rename = "f")]
    File,
    #[serde(rename = "d")]
    Directory,
    #[serde(rename = "s")]
    Symlink,
}

/// One entry of a directory object (kopia's `snapshot.DirEntry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    pub mode: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size: i64,
    pub mtime: Time,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    pub obj: ObjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summ: Option<DirectorySummary>,
}

/// What a directory holds, recursively (kopia's `fs.DirectorySummary`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectorySummary {
    pub size: i64,
    pub files: i64,
    pub symlinks: i64,
    pub dirs: i64,
    #[serde(rename = "maxTime")]
    pub max_time: Time,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incomplete: String,
    #[serde(rename = "numFailed", default)]
    pub num_failed: i64,
    #[serde(
        rename = "numIgnoredErrors",
        default,
        skip_serializing_if = "is_zero_i64"
    )]
    pub num_ignored_errors: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<serde_json::Value>,
}

/// A directory object's JSON (`kopia:directory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirManifest {
    pub stream: String,
    /// `null` for an empty directory, as kopia writes it.
    pub entries: Option<Vec<DirEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<DirectorySummary>,
}

impl DirManifest {
    /// Kopia's order: directories first, then the rest, each by name (bytewise).
    pub fn new(mut entries: Vec<DirEntry>, summary: DirectorySummary) -> Self {
        entries.sort_by(|a, b| {
            let dir = |e: &DirEntry| e.kind != EntryType::Directory;
            (dir(a), a.name.as_bytes()).cmp(&(dir(b), b.name.as_bytes()))
        });
        DirManifest {
            stream: DIRECTORY_STREAM.into(),
            entries: (!entries.is_empty()).then_some(entries),
            summary: Some(summary),
        }
    }

    pub fn entries(&self) -> &[DirEntry] {
        self.entries.as_deref().unwrap_or_default()
    }
}

/// A snapshot's source: whose, from which host, of which path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceInfo {
    pub host: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total_size: i64,
    pub excluded_total_size: i64,
    pub file_count: i64,
    pub cached_files: i64,
    pub non_cached_files: i64,
    pub dir_count: i64,
    pub excluded_file_count: i64,
    pub excluded_dir_count: i64,
    pub ignored_error_count: i64,
    pub error_count: i64,
}

/// A snapshot manifest's payload (kopia's `snapshot.Manifest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Always empty where it is stored; the manifest entry's ID is the snapshot's.
    #[serde(default)]
    pub id: String,
    pub source: SourceInfo,
    #[serde(default)]
    pub description: String,
    pub start_time: Time,
    pub end_time: Time,
    #[serde(default)]
    pub stats: Stats,
    /// Non-empty for a checkpoint of an unfinished snapshot, which is no restore point.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incomplete: String,
    pub root_entry: DirEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<String>,
}

/// The seek table of an object split into parts (`kopia:indirect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndirectObject {
    pub stream: String,
    pub entries: Vec<IndirectEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndirectEntry {
    #[serde(rename = "s", default, skip_serializing_if = "is_zero_i64")]
    pub start: i64,
    #[serde(rename = "l", default, skip_serializing_if = "is_zero_i64")]
    pub length: i64,
    #[serde(rename = "o")]
    pub object: ObjectId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_times_read_and_print_as_kopia_writes_them() {
        assert_eq!(mode_string(0o755), "0755");
        assert_eq!(mode_string(0o4755), "040000755");
        assert_eq!(mode_string(0o1777), "04000777");
        assert_eq!(unix_mode("040000755"), Some(0o4755));
        assert_eq!(unix_mode("04000777"), Some(0o1777));
        assert_eq!(unix_mode("0644"), Some(0o644));
        let t: Time = serde_json::from_str("\"2026-12-07T00:44:17.776163786Z\"").unwrap();
        assert_eq!(t.to_string(), "2026-12-07T00:44:17.776163786Z");
        let whole: Time = serde_json::from_str("\"2024-01-02T03:04:05Z\"").unwrap();
        assert_eq!(whole.to_string(), "2024-01-02T03:04:05Z");
        let trimmed = Time {
            seconds: whole.seconds,
            nanos: 123_400_000,
        };
        assert_eq!(trimmed.to_string(), "2024-01-02T03:04:05.1234Z");
        assert_eq!(Time::from_system(trimmed.to_system()), trimmed);
        let old = Time {
            seconds: -5,
            nanos: 250,
        };
        assert_eq!(Time::from_system(old.to_system()), old);
    }

    #[test]
    fn a_directory_kopia_wrote_reads_and_writes_back_the_same() {
        let json = r#"{"stream":"kopia:directory","entries":[{"name":"sub","type":"d","mode":"0755","mtime":"2026-12-07T00:44:17.776163786Z","obj":"k1ad038f4718346a92f7e5c2c9718eecc","summ":{"size":5012,"files":2,"symlinks":0,"dirs":1,"maxTime":"2026-12-07T00:44:17.768163786Z","numFailed":0}},{"name":"big.bin","type":"f","mode":"0644","size":12582912,"mtime":"2026-12-07T00:44:18.732163746Z","obj":"Ix3da02e4e6fd8252fd31d9964200d38b0"},{"name":"empty","type":"f","mode":"0644","mtime":"2026-12-07T00:44:18.772163744Z","obj":"c91d5433bc9b51fa68df6fccc9f0dd02"},{"name":"hello.txt","type":"f","mode":"0644","size":12,"mtime":"2024-01-02T03:04:05.123456789Z","obj":"a17cf60ae435538d08af78074db9cd2b"},{"name":"link","type":"s","mode":"0777","size":9,"mtime":"2026-12-07T00:44:17.772163786Z","obj":"1a752f80eeb1e6e9342528037e8d6ea3"}],"summary":{"size":12587936,"files":5,"symlinks":1,"dirs":2,"maxTime":"2026-12-07T00:44:18.772163744Z","numFailed":0}}"#;
        let dir: DirManifest = serde_json::from_str(json).unwrap();
        assert_eq!(dir.entries().len(), 5);
        assert_eq!(dir.entries()[4].kind, EntryType::Symlink);
        assert_eq!(serde_json::to_string(&dir).unwrap(), json);
        let rebuilt = DirManifest::new(
            dir.entries().iter().rev().cloned().collect(),
            dir.summary.clone().unwrap(),
        );
        assert_eq!(rebuilt, dir);
        let empty = DirManifest::new(Vec::new(), DirectorySummary::default());
        assert!(
            serde_json::to_string(&empty)
                .unwrap()
                .contains("\"entries\":null")
        );
    }
}
