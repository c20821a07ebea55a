//! The backup tarball, read once as a stream and sorted into per-type spool files on local disk.
//!
//! A tarball's entries come in no order a restore can use (Velero writes additional items, such as
//! a pod's claims, beside the pod), and the restore order puts CRDs first. So the stream is read to
//! its end before anything is created, which is also the only way to know it is not truncated or
//! corrupt: a bad tarball fails the restore before it touches the cluster. Only the selected items
//! are written, one compact JSON line each; memory holds one entry at a time, the backed-up
//! Namespace objects, and the claims/volumes/priority classes that other items may pull in.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use serde_json::Value;
use velero_archive::{ArchiveError, for_each_entry, parse_legacy_path};

use crate::selection::RestoreFilter;
use velero_api::kuberesource::NAMESPACES;

/// Types an item restored may bring with it even when the filters left them out (a claim's
/// volume, a pod's claims and priority class), as Velero's built-in actions do.
pub const ADDITIONAL_TYPES: &[&str] = &[
    "persistentvolumes",
    "persistentvolumeclaims",
    "priorityclasses.scheduling.k8s.io",
];

/// (type, backed-up namespace or "", name).
pub type ItemKey = (String, String, String);

/// One spooled item.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SpooledItem {
    /// The namespace directory it was backed up under; `None` for cluster-scoped items.
    pub namespace: Option<String>,
    pub name: String,
    pub item: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("the backup tarball has no metadata/version entry; it is not a Velero backup")]
    NotABackup,
    #[error("the backup tarball has format version {0:?}; this server reads 1.x")]
    UnsupportedFormat(String),
    #[error("writing the restore's scratch files under {dir}: {source}")]
    Scratch {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

struct TypeFile {
    path: PathBuf,
    writer: BufWriter<File>,
    count: u64,
}

/// What the stream left behind.
pub struct Spool {
    dir: tempfile::TempDir,
    files: BTreeMap<String, TypeFile>,
    /// Every type directory of the tarball, selected or not.
    pub types_in_backup: Vec<String>,
    /// Backed-up Namespace objects by name; a missing target namespace is created from these.
    pub namespaces: BTreeMap<String, Value>,
    /// Items of [`ADDITIONAL_TYPES`] the filters left out, for items that pull them in.
    pub additional: HashMap<ItemKey, Value>,
    /// Items that could not be decoded: (backed-up namespace, message).
    pub decode_errors: Vec<(Option<String>, String)>,
    pub format_version: String,
}

impl Spool {
    /// Reads the whole tarball from `source` (blocking I/O: run it off the async runtime).
    pub fn read(
        source: impl std::io::Read,
        filter: &RestoreFilter,
        scratch_parent: Option<&std::path::Path>,
    ) -> Result<Spool, SpoolError> {
        let scratch = |source: std::io::Error, dir: &str| SpoolError::Scratch {
            dir: dir.to_string(),
            source,
        };
        let parent = scratch_parent
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("velero-restore-")
            .tempdir_in(&parent)
            .map_err(|e| scratch(e, &parent.display().to_string()))?;
        let mut spool = Spool {
            dir,
            files: BTreeMap::new(),
            types_in_backup: Vec::new(),
            namespaces: BTreeMap::new(),
            additional: HashMap::new(),
            decode_errors: Vec::new(),
            format_version: String::new(),
        };
        let mut failure: Option<SpoolError> = None;
        for_each_entry(source, |path, data| {
            if path == velero_archive::VERSION_ENTRY {
                spool.format_version = String::from_utf8_lossy(&data).trim().to_string();
                return true;
            }
            match spool.take(&path, data, filter) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if spool.format_version.is_empty() {
            return Err(SpoolError::NotABackup);
        }
        if !spool.format_version.starts_with("1.") {
            return Err(SpoolError::UnsupportedFormat(spool.format_version));
        }
        let dir = spool.dir.path().display().to_string();
        for file in spool.files.values_mut() {
            file.writer.flush().map_err(|e| scratch(e, &dir))?;
        }
        Ok(spool)
    }

    fn take(
        &mut self,
        path: &str,
        data: Vec<u8>,
        filter: &RestoreFilter,
    ) -> Result<(), SpoolError> {
        let Some(item_path) = parse_legacy_path(path) else {
            return Ok(());
        };
        let gr = item_path.group_resource.to_string();
        if !self.types_in_backup.contains(&gr) {
            self.types_in_backup.push(gr.clone());
        }
        let namespace = item_path.namespace.map(str::to_string);
        let name = item_path.name.to_string();
        let item: Value = match serde_json::from_slice(&data) {
            Ok(v @ Value::Object(_)) => v,
            decoded => {
                let reason = match decoded {
                    Err(e) => e.to_string(),
                    Ok(_) => "not a JSON object".to_string(),
                };
                self.decode_errors
                    .push((namespace, format!("error decoding {path:?}: {reason}")));
                return Ok(());
            }
        };
        if gr == NAMESPACES && namespace.is_none() {
            self.namespaces.insert(name.clone(), item.clone());
        }
        let labels: BTreeMap<String, String> = item
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        let selected = filter.include_type(&gr)
            && filter.include_scope(&gr, namespace.as_deref())
            && (RestoreFilter::must_have(&gr) || filter.include_labels(&labels));
        if !selected {
            if ADDITIONAL_TYPES.contains(&gr.as_str()) {
                self.additional
                    .insert((gr, namespace.unwrap_or_default(), name), item);
            }
            return Ok(());
        }
        let dir = self.dir.path().to_path_buf();
        let index = self.files.len();
        let file = match self.files.entry(gr) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let path = dir.join(format!("{index}.jsonl"));
                let f = File::create(&path).map_err(|source| SpoolError::Scratch {
                    dir: dir.display().to_string(),
                    source,
                })?;
                e.insert(TypeFile {
                    path,
                    writer: BufWriter::with_capacity(64 * 1024, f),
                    count: 0,
                })
            }
        };
        let record = SpooledItem {
            namespace,
            name,
            item,
        };
        serde_json::to_writer(&mut file.writer, &record)
            .map_err(std::io::Error::from)
            .and_then(|()| file.writer.write_all(b"\n"))
            .map_err(|source| SpoolError::Scratch {
                dir: dir.display().to_string(),
                source,
            })?;
        file.count += 1;
        Ok(())
    }

    /// How many items of `group_resource` were selected.
    pub fn count(&self, group_resource: &str) -> u64 {
        self.files.get(group_resource).map_or(0, |f| f.count)
    }

    pub fn total(&self) -> u64 {
        self.files.values().map(|f| f.count).sum()
    }

    /// The selected items of one type, read back lazily.
    pub fn items(
        &self,
        group_resource: &str,
    ) -> Result<impl Iterator<Item = Result<SpooledItem, String>> + use<>, SpoolError> {
        let file = match self.files.get(group_resource) {
            Some(f) => Some(File::open(&f.path).map_err(|source| SpoolError::Scratch {
                dir: self.dir.path().display().to_string(),
                source,
            })?),
            None => None,
        };
        Ok(file.into_iter().flat_map(|f| {
            BufReader::new(f).lines().map(|line| {
                line.map_err(|e| e.to_string()).and_then(|l| {
                    serde_json::from_str::<SpooledItem>(&l).map_err(|e| e.to_string())
                })
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use velero_api::v1::RestoreSpec;

    fn tarball(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, &data[..]).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn filter(f: impl FnOnce(&mut RestoreSpec)) -> RestoreFilter {
        let mut spec = RestoreSpec::default();
        f(&mut spec);
        RestoreFilter::new(&spec, |_| None).unwrap()
    }

    fn obj(kind: &str, name: &str, labels: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "labels": labels}})).unwrap()
    }

    #[test]
    fn selected_items_are_spooled_per_type_and_the_rest_kept_when_pulled_in() {
        let tgz = tarball(&[
            ("metadata/version", b"1.1.0\n".to_vec()),
            (
                "resources/pods/namespaces/a/p1.json",
                obj("Pod", "p1", json!({"app": "web"})),
            ),
            (
                "resources/pods/v1-preferredversion/namespaces/a/p1.json",
                obj("Pod", "p1", json!({"app": "web"})),
            ),
            (
                "resources/pods/namespaces/a/p2.json",
                obj("Pod", "p2", json!({"app": "db"})),
            ),
            (
                "resources/pods/namespaces/b/p3.json",
                obj("Pod", "p3", json!({"app": "web"})),
            ),
            (
                "resources/namespaces/cluster/a.json",
                obj("Namespace", "a", json!({})),
            ),
            (
                "resources/persistentvolumes/cluster/pv1.json",
                obj("PersistentVolume", "pv1", json!({})),
            ),
            (
                "resources/configmaps/namespaces/a/broken.json",
                b"{not json".to_vec(),
            ),
        ]);
        let f = filter(|s| {
            s.included_namespaces = Some(vec!["a".into()]);
            s.label_selector =
                Some(velero_filters::selector::parse_label_selector("app=web").unwrap());
        });
        let spool = Spool::read(&tgz[..], &f, None).unwrap();
        assert_eq!(spool.format_version, "1.1.0");
        assert_eq!(spool.count("pods"), 1);
        let pods: Vec<SpooledItem> = spool.items("pods").unwrap().map(Result::unwrap).collect();
        assert_eq!(pods[0].name, "p1");
        assert_eq!(pods[0].namespace.as_deref(), Some("a"));
        // Cluster-scoped volumes are outside a namespace-filtered restore but a claim may pull
        // them in.
        assert_eq!(spool.count("persistentvolumes"), 0);
        assert!(spool.additional.contains_key(&(
            "persistentvolumes".into(),
            String::new(),
            "pv1".into()
        )));
        assert!(spool.namespaces.contains_key("a"));
        assert_eq!(spool.decode_errors.len(), 1);
        assert!(
            spool.decode_errors[0]
                .1
                .contains("resources/configmaps/namespaces/a/broken.json")
        );
        let mut types = spool.types_in_backup.clone();
        types.sort();
        assert_eq!(
            types,
            ["configmaps", "namespaces", "persistentvolumes", "pods"]
        );
    }

    #[test]
    fn bad_tarballs_fail_before_anything_is_returned() {
        let f = filter(|_| {});
        let good = tarball(&[
            ("metadata/version", b"1.1.0\n".to_vec()),
            (
                "resources/pods/namespaces/a/p1.json",
                obj("Pod", "p1", json!({})),
            ),
        ]);
        let truncated = &good[..good.len() / 2];
        assert!(matches!(
            Spool::read(truncated, &f, None),
            Err(SpoolError::Archive(_))
        ));
        assert!(matches!(
            Spool::read(&b"garbage"[..], &f, None),
            Err(SpoolError::Archive(_))
        ));
        let no_version = tarball(&[(
            "resources/pods/namespaces/a/p1.json",
            obj("Pod", "p1", json!({})),
        )]);
        assert!(matches!(
            Spool::read(&no_version[..], &f, None),
            Err(SpoolError::NotABackup)
        ));
        let future = tarball(&[("metadata/version", b"2.0.0\n".to_vec())]);
        assert!(matches!(
            Spool::read(&future[..], &f, None),
            Err(SpoolError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn entries_escaping_the_archive_are_refused() {
        // tar::Builder refuses to write `..`, so the header's name is set by hand.
        let mut header = tar::Header::new_gnu();
        let data = obj("Pod", "x", json!({}));
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.as_gnu_mut().unwrap().name[..28].copy_from_slice(b"resources/../../etc/x.json\0\0");
        header.set_cksum();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        builder.append(&header, &data[..]).unwrap();
        let tgz = builder.into_inner().unwrap().finish().unwrap();
        let err = Spool::read(&tgz[..], &filter(|_| {}), None).err().unwrap();
        assert!(
            matches!(err, SpoolError::Archive(ArchiveError::UnsafePath(_))),
            "{err}"
        );
    }
}
