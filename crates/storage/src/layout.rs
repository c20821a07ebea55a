//! Object keys, exactly as Velero's `object_store_layout.go` names them.

/// Top-level "directories" Velero may find under a location's prefix. Anything else there means the
/// prefix is shared with another tool, and the location is reported Unavailable.
pub const RESERVED_TOP_LEVEL_DIRS: &[&str] = &[
    "backups", "restores", "restic", "metadata", "plugins", "kopia",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("bucket {0:?} must not contain a '/': put the path part into the location's prefix")]
    BucketWithSlash(String),
    #[error("backup store contains invalid top-level directories: {0:?}")]
    ForeignDirectories(Vec<String>),
}

/// The files Velero keeps beside a backup's tarball and `velero-backup.json`
/// (`backups/<B>/<B>-<kind>.gz`, Velero's `object_store_layout.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackupFile {
    /// `<B>-logs.gz`: the backup's log, gzipped text.
    Log,
    /// `<B>-results.gz`: warnings and errors per namespace.
    Results,
    ResourceList,
    VolumeSnapshots,
    PodVolumeBackups,
    ItemOperations,
    VolumeInfo,
    CsiVolumeSnapshots,
    CsiVolumeSnapshotContents,
    CsiVolumeSnapshotClasses,
}

impl BackupFile {
    fn kind(self) -> &'static str {
        match self {
            BackupFile::Log => "logs",
            BackupFile::Results => "results",
            BackupFile::ResourceList => "resource-list.json",
            BackupFile::VolumeSnapshots => "volumesnapshots.json",
            BackupFile::PodVolumeBackups => "podvolumebackups.json",
            BackupFile::ItemOperations => "itemoperations.json",
            BackupFile::VolumeInfo => "volumeinfo.json",
            BackupFile::CsiVolumeSnapshots => "csi-volumesnapshots.json",
            BackupFile::CsiVolumeSnapshotContents => "csi-volumesnapshotcontents.json",
            BackupFile::CsiVolumeSnapshotClasses => "csi-volumesnapshotclasses.json",
        }
    }
}

/// The files of a restore under `restores/<R>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestoreFile {
    Log,
    Results,
    ResourceList,
    ItemOperations,
    VolumeInfo,
    /// A dry run's plan, `restore-<R>-plan.json.gz` (velero-rs; Velero has no such file).
    Plan,
}

/// The key space of one backup storage location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// Velero trims `/` from both ends of the prefix; an empty prefix means the bucket root.
    pub fn new(prefix: &str) -> Layout {
        let prefix = prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Layout { root }
    }

    /// Validates a bucket name the way Velero does: no `/`, except in S3 access point ARNs.
    pub fn check_bucket(bucket: &str) -> Result<String, LayoutError> {
        let bucket = bucket.trim_matches('/');
        if bucket.contains('/') && !bucket.starts_with("arn:aws:s3:") {
            return Err(LayoutError::BucketWithSlash(bucket.to_string()));
        }
        Ok(bucket.to_string())
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn backups_prefix(&self) -> String {
        format!("{}backups/", self.root)
    }

    pub fn backup_dir(&self, backup: &str) -> String {
        format!("{}backups/{backup}/", self.root)
    }

    /// `velero-backup.json`: written last, its presence means the backup is complete.
    pub fn backup_metadata(&self, backup: &str) -> String {
        format!("{}velero-backup.json", self.backup_dir(backup))
    }

    pub fn backup_contents(&self, backup: &str) -> String {
        format!("{}{backup}.tar.gz", self.backup_dir(backup))
    }

    /// `<B>-<kind>.gz`: the log and the gzipped JSON files beside the tarball.
    pub fn backup_file(&self, backup: &str, file: BackupFile) -> String {
        format!("{}{backup}-{}.gz", self.backup_dir(backup), file.kind())
    }

    pub fn restore_dir(&self, restore: &str) -> String {
        format!("{}restores/{restore}/", self.root)
    }

    /// `restore-<R>-logs.gz`, `restore-<R>-results.gz`, ...: Velero's restore files carry a
    /// `restore-` prefix, except the volume info, which does not.
    pub fn restore_file(&self, restore: &str, file: RestoreFile) -> String {
        let dir = self.restore_dir(restore);
        match file {
            RestoreFile::Log => format!("{dir}restore-{restore}-logs.gz"),
            RestoreFile::Results => format!("{dir}restore-{restore}-results.gz"),
            RestoreFile::ResourceList => format!("{dir}restore-{restore}-resource-list.json.gz"),
            RestoreFile::ItemOperations => {
                format!("{dir}restore-{restore}-itemoperations.json.gz")
            }
            RestoreFile::VolumeInfo => format!("{dir}{restore}-volumeinfo.json.gz"),
            RestoreFile::Plan => format!("{dir}restore-{restore}-plan.json.gz"),
        }
    }

    /// Velero's `IsValid`: given the common prefixes under the root (as a delimiter listing returns
    /// them, with trailing `/`), fail when any is not one of Velero's own, naming up to three.
    pub fn validate_top_level(&self, common_prefixes: &[String]) -> Result<(), LayoutError> {
        let foreign: Vec<String> = common_prefixes
            .iter()
            .map(|p| {
                p.strip_prefix(&self.root)
                    .unwrap_or(p)
                    .trim_end_matches('/')
                    .to_string()
            })
            .filter(|dir| !RESERVED_TOP_LEVEL_DIRS.contains(&dir.as_str()))
            .take(3)
            .collect();
        if foreign.is_empty() {
            Ok(())
        } else {
            Err(LayoutError::ForeignDirectories(foreign))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_follow_velero() {
        let l = Layout::new("/cluster-a/");
        assert_eq!(
            l.backup_metadata("b1"),
            "cluster-a/backups/b1/velero-backup.json"
        );
        assert_eq!(l.backup_contents("b1"), "cluster-a/backups/b1/b1.tar.gz");
        let backup_keys = [
            (BackupFile::Log, "b1-logs.gz"),
            (BackupFile::Results, "b1-results.gz"),
            (BackupFile::ResourceList, "b1-resource-list.json.gz"),
            (BackupFile::VolumeSnapshots, "b1-volumesnapshots.json.gz"),
            (BackupFile::PodVolumeBackups, "b1-podvolumebackups.json.gz"),
            (BackupFile::ItemOperations, "b1-itemoperations.json.gz"),
            (BackupFile::VolumeInfo, "b1-volumeinfo.json.gz"),
            (
                BackupFile::CsiVolumeSnapshots,
                "b1-csi-volumesnapshots.json.gz",
            ),
            (
                BackupFile::CsiVolumeSnapshotContents,
                "b1-csi-volumesnapshotcontents.json.gz",
            ),
            (
                BackupFile::CsiVolumeSnapshotClasses,
                "b1-csi-volumesnapshotclasses.json.gz",
            ),
        ];
        for (file, name) in backup_keys {
            assert_eq!(
                l.backup_file("b1", file),
                format!("cluster-a/backups/b1/{name}")
            );
        }
        let restore_keys = [
            (RestoreFile::Log, "restore-r1-logs.gz"),
            (RestoreFile::Results, "restore-r1-results.gz"),
            (
                RestoreFile::ResourceList,
                "restore-r1-resource-list.json.gz",
            ),
            (
                RestoreFile::ItemOperations,
                "restore-r1-itemoperations.json.gz",
            ),
            (RestoreFile::VolumeInfo, "r1-volumeinfo.json.gz"),
        ];
        for (file, name) in restore_keys {
            assert_eq!(
                l.restore_file("r1", file),
                format!("cluster-a/restores/r1/{name}")
            );
        }
        assert_eq!(Layout::new("").backups_prefix(), "backups/");
    }

    #[test]
    fn foreign_directories_are_named() {
        let l = Layout::new("p");
        let dirs = |d: &[&str]| d.iter().map(|s| format!("p/{s}/")).collect::<Vec<_>>();
        assert_eq!(
            l.validate_top_level(&dirs(&["backups", "kopia", "metadata"])),
            Ok(())
        );
        assert_eq!(
            l.validate_top_level(&dirs(&["backups", "photos", "a", "b", "c"])),
            Err(LayoutError::ForeignDirectories(vec![
                "photos".into(),
                "a".into(),
                "b".into()
            ]))
        );
    }

    #[test]
    fn buckets() {
        assert_eq!(Layout::check_bucket("/velero/"), Ok("velero".into()));
        assert!(Layout::check_bucket("velero/x").is_err());
        assert!(Layout::check_bucket("arn:aws:s3::123:accesspoint/m.mrap").is_ok());
    }

    proptest! {
        /// Whatever slashes surround the prefix, every key is rooted at `<prefix>/` exactly once.
        #[test]
        fn prefix_is_normalised(prefix in "/{0,2}[a-z]{1,8}(/[a-z]{1,8})?/{0,2}", backup in "[a-z0-9-]{1,20}") {
            let l = Layout::new(&prefix);
            let key = l.backup_metadata(&backup);
            let trimmed = prefix.trim_matches('/');
            let expected = format!("{trimmed}/backups/{backup}/");
            prop_assert!(key.starts_with(&expected), "{} does not start with {}", key, expected);
            prop_assert!(!key.contains("//"));
        }
    }
}
