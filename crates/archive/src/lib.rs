//! Velero's backup tarball, format 1.1.0 (spec section 4): a gzip-compressed tar of one JSON file per
//! item under `resources/`, plus `metadata/version`.
//!
//! This crate owns the entry names, so the writer (backup engine) and the reader (restore engine)
//! cannot disagree about them.

mod reader;
mod writer;

pub use reader::{ArchiveError, for_each_entry, read_all};
pub use velero_api::BACKUP_FORMAT_VERSION as FORMAT_VERSION;
pub use writer::TarballWriter;

/// Entry holding the format version; Velero writes it first.
pub const VERSION_ENTRY: &str = "metadata/version";

/// Contents of [`VERSION_ENTRY`].
pub fn version_file_contents() -> String {
    format!("{FORMAT_VERSION}\n")
}

/// Where one item sits in the tarball. `group_resource` is `resource.group` of the group the item
/// was listed under (`deployments.apps`, `pods`); `namespace` is `None` for cluster-scoped items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemPath<'a> {
    pub group_resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl ItemPath<'_> {
    fn scope(&self) -> String {
        match self.namespace {
            Some(ns) => format!("namespaces/{ns}/{}.json", self.name),
            None => format!("cluster/{}.json", self.name),
        }
    }

    /// The version-less path every restore without `EnableAPIGroupVersions` reads.
    pub fn legacy(&self) -> String {
        format!("resources/{}/{}", self.group_resource, self.scope())
    }

    /// The path under a version directory; `preferred` marks the server-preferred version, which
    /// Velero writes as `<version>-preferredversion`.
    pub fn versioned(&self, version: &str, preferred: bool) -> String {
        let suffix = if preferred { "-preferredversion" } else { "" };
        format!(
            "resources/{}/{version}{suffix}/{}",
            self.group_resource,
            self.scope()
        )
    }

    /// Every entry name Velero writes for one item: both copies for the preferred version, only the
    /// versioned one otherwise.
    pub fn entries(&self, version: &str, preferred: bool) -> Vec<String> {
        if preferred {
            vec![self.legacy(), self.versioned(version, true)]
        } else {
            vec![self.versioned(version, false)]
        }
    }
}

/// An entry name parsed back into an item: `resources/<gr>/namespaces/<ns>/<name>.json` or
/// `resources/<gr>/cluster/<name>.json`. Versioned copies (`resources/<gr>/<version>/...`) and
/// anything else answer `None`: a restore without `EnableAPIGroupVersions` reads only the
/// version-less copy, as Velero does, and formats 1.0 and 1.1.0 both have it.
pub fn parse_legacy_path(path: &str) -> Option<ItemPath<'_>> {
    let rest = path.strip_prefix("resources/")?;
    let (group_resource, rest) = rest.split_once('/')?;
    let (namespace, file) = if let Some(cluster) = rest.strip_prefix("cluster/") {
        (None, cluster)
    } else {
        let (ns, file) = rest.strip_prefix("namespaces/")?.split_once('/')?;
        (Some(ns), file)
    };
    let name = file.strip_suffix(".json")?;
    if group_resource.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    if namespace.is_some_and(str::is_empty) {
        return None;
    }
    Some(ItemPath {
        group_resource,
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_paths_parse_back_and_versioned_copies_do_not() {
        let item = ItemPath {
            group_resource: "deployments.apps",
            namespace: Some("shop"),
            name: "web",
        };
        assert_eq!(parse_legacy_path(&item.legacy()), Some(item.clone()));
        assert_eq!(parse_legacy_path(&item.versioned("v1", true)), None);
        assert_eq!(parse_legacy_path(&item.versioned("v1beta1", false)), None);
        let cluster = ItemPath {
            group_resource: "persistentvolumes",
            namespace: None,
            name: "pv-1",
        };
        assert_eq!(parse_legacy_path(&cluster.legacy()), Some(cluster.clone()));
        for bad in [
            "metadata/version",
            "resources/pods/namespaces//x.json",
            "resources/pods/namespaces/ns/x.yaml",
            "resources/pods/namespaces/ns/a/b.json",
            "resources//cluster/x.json",
        ] {
            assert_eq!(parse_legacy_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_follow_velero() {
        let pod = ItemPath {
            group_resource: "pods",
            namespace: Some("app"),
            name: "web-0",
        };
        assert_eq!(
            pod.entries("v1", true),
            [
                "resources/pods/namespaces/app/web-0.json",
                "resources/pods/v1-preferredversion/namespaces/app/web-0.json"
            ]
        );
        let crd = ItemPath {
            group_resource: "customresourcedefinitions.apiextensions.k8s.io",
            namespace: None,
            name: "backups.velero.io",
        };
        assert_eq!(
            crd.entries("v1beta1", false),
            [
                "resources/customresourcedefinitions.apiextensions.k8s.io/v1beta1/cluster/backups.velero.io.json"
            ]
        );
        assert_eq!(version_file_contents(), "1.1.0\n");
    }
}
