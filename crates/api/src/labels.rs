//! Label and annotation keys Velero reads and writes (`pkg/apis/velero/v1/labels_annotations.go`), and its label-value shortening.

use sha2::{Digest, Sha256};

pub const BACKUP_NAME: &str = "velero.io/backup-name";
pub const BACKUP_UID: &str = "velero.io/backup-uid";
pub const RESTORE_NAME: &str = "velero.io/restore-name";
pub const RESTORE_UID: &str = "velero.io/restore-uid";
pub const SCHEDULE_NAME: &str = "velero.io/schedule-name";
pub const STORAGE_LOCATION: &str = "velero.io/storage-location";
pub const EXCLUDE_FROM_BACKUP: &str = "velero.io/exclude-from-backup";
pub const PVC_UID: &str = "velero.io/pvc-uid";
pub const PVC_NAME: &str = "velero.io/pvc-name";
pub const VOLUME_NAMESPACE: &str = "velero.io/volume-namespace";
pub const REPOSITORY_TYPE: &str = "velero.io/repository-type";
pub const ASYNC_OPERATION_ID: &str = "velero.io/async-operation-id";
pub const GC_FAILURE: &str = "velero.io/gc-failure";
pub const VOLUME_SNAPSHOT_NAME: &str = "velero.io/volume-snapshot-name";
pub const VOLUME_GROUP: &str = "velero.io/volume-group";
pub const PLUGIN_CONFIG: &str = "velero.io/plugin-config";
pub const RESOURCE_USAGE: &str = "velero.io/resource-usage";

pub const SKIP_FROM_BACKUP_ANNOTATION: &str = "velero.io/skip-from-backup";
pub const MUST_INCLUDE_ADDITIONAL_ITEMS_ANNOTATION: &str =
    "backup.velero.io/must-include-additional-items";
pub const BACKUP_VOLUMES_ANNOTATION: &str = "backup.velero.io/backup-volumes";
pub const BACKUP_VOLUMES_EXCLUDES_ANNOTATION: &str = "backup.velero.io/backup-volumes-excludes";
pub const POD_VOLUME_TIMEOUT_ANNOTATION: &str = "velero.io/pod-volume-timeout";
pub const SOURCE_CLUSTER_GITVERSION_ANNOTATION: &str = "velero.io/source-cluster-k8s-gitversion";
pub const SOURCE_CLUSTER_MAJOR_VERSION_ANNOTATION: &str =
    "velero.io/source-cluster-k8s-major-version";
pub const SOURCE_CLUSTER_MINOR_VERSION_ANNOTATION: &str =
    "velero.io/source-cluster-k8s-minor-version";
pub const RESOURCE_TIMEOUT_ANNOTATION: &str = "velero.io/resource-timeout";
pub const RESTORE_STATUS_ANNOTATION: &str = "velero.io/restore-status";
pub const ORIGINAL_PV_NAME_ANNOTATION: &str = "velero.io/original-pv-name";
pub const DATA_UPLOAD_NAME_ANNOTATION: &str = "velero.io/data-upload-name";
pub const CSI_VOLUME_SNAPSHOT_CLASS: &str = "velero.io/csi-volumesnapshot-class";

/// Longest value Kubernetes accepts for a label.
pub const MAX_LABEL_VALUE_LEN: usize = 63;

/// The label selector for the backups a schedule created. Velero writes the schedule's name as it
/// is, which for a name over 63 characters is not a valid label value, so such a schedule cannot
/// create backups in Velero; velero-rs labels (and so selects) those with [`valid_label_value`],
/// which leaves every name Velero can use unchanged.
pub fn schedule_selector(schedule: &str) -> String {
    format!("{SCHEDULE_NAME}={}", valid_label_value(schedule))
}

/// Velero's `label.GetValidName`: a name longer than a label value may be is cut to 57 characters and
/// suffixed with the first 6 hex digits of its SHA-256, so that two long names stay distinct and the
/// same name always maps to the same value (backups are looked up by this label).
pub fn valid_label_value(name: &str) -> String {
    if name.len() <= MAX_LABEL_VALUE_LEN {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    // Velero cuts at a byte offset; names are DNS labels, so ASCII, but stay on a char boundary anyway.
    let mut cut = MAX_LABEL_VALUE_LEN - 6;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &name[..cut], &hex[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(
            valid_label_value("nightly-20260101000000"),
            "nightly-20260101000000"
        );
        let exactly = "a".repeat(63);
        assert_eq!(valid_label_value(&exactly), exactly);
    }

    #[test]
    fn long_names_are_cut_and_hashed() {
        let long = "a".repeat(64);
        let got = valid_label_value(&long);
        assert_eq!(got.len(), 63);
        assert_eq!(&got[..57], &long[..57]);
        // sha256("a" x 64) starts with ffe054...
        assert_eq!(&got[57..], "ffe054");
        assert_ne!(valid_label_value(&"a".repeat(65)), got);
        // A data-upload operation ID (du-<backup uid>.<pvc uid>) is the common long case.
        assert_eq!(
            valid_label_value(
                "du-0c2b0ec8-6b33-4c34-b1cf-a5aa9d6d94e1.3ab0d9a7-c2a2-4a2c-9aa3-1f6ab3d5c0b9"
            ),
            "du-0c2b0ec8-6b33-4c34-b1cf-a5aa9d6d94e1.3ab0d9a7-c2a2-4a2f3bc66"
        );
    }
}
