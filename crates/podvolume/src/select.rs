//! Which volumes of a pod get a file-system backup (Velero's `ShouldPerformFSBackup` without
//! volume policies, internal/volumehelper/volume_policy_helper.go, and the legacy annotations of
//! pkg/util/podvolume).

use serde_json::Value;
use velero_api::labels::{BACKUP_VOLUMES_ANNOTATION, BACKUP_VOLUMES_EXCLUDES_ANNOTATION};

/// A pod volume chosen for backup, and the claim behind it when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeChoice {
    pub name: String,
    pub claim: Option<String>,
}

fn annotation_list(pod: &Value, key: &str) -> Vec<String> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Volume types whose content comes from the cluster or the node, never backed up.
fn never_backed_up(volume: &Value) -> bool {
    [
        "hostPath",
        "secret",
        "configMap",
        "projected",
        "downwardAPI",
    ]
    .iter()
    .any(|t| volume.get(*t).is_some())
        || volume["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("default-token"))
}

/// The volumes of `pod` to back up: those named in `backup.velero.io/backup-volumes`, or with
/// `default_to_fs_backup` every volume not named in `backup.velero.io/backup-volumes-excludes`,
/// minus the kinds that are never backed up.
pub fn volumes_to_back_up(pod: &Value, default_to_fs_backup: bool) -> Vec<VolumeChoice> {
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<String> = if default_to_fs_backup {
        let excluded = annotation_list(pod, BACKUP_VOLUMES_EXCLUDES_ANNOTATION);
        volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .filter(|n| !excluded.iter().any(|e| e == n))
            .map(str::to_string)
            .collect()
    } else {
        annotation_list(pod, BACKUP_VOLUMES_ANNOTATION)
    };
    wanted
        .iter()
        .filter_map(|name| volumes.iter().find(|v| v["name"] == name.as_str()))
        .filter(|v| !never_backed_up(v))
        .map(|v| VolumeChoice {
            name: v["name"].as_str().unwrap_or_default().to_string(),
            claim: v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"annotations": annotations}, "spec": {"volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
            {"name": "cache", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "c"}},
            {"name": "host", "hostPath": {"path": "/var"}},
            {"name": "default-token-abcde", "secret": {"secretName": "t"}},
        ]}})
    }

    fn names(choices: &[VolumeChoice]) -> Vec<&str> {
        choices.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn opt_in_names_volumes_and_opt_out_excludes_them() {
        let p = pod(json!({"backup.velero.io/backup-volumes": "cache, data,missing,config"}));
        let chosen = volumes_to_back_up(&p, false);
        assert_eq!(names(&chosen), ["cache", "data"]);
        assert_eq!(chosen[1].claim.as_deref(), Some("data-0"));
        assert!(volumes_to_back_up(&pod(json!({})), false).is_empty());

        let p = pod(json!({"backup.velero.io/backup-volumes-excludes": "cache"}));
        assert_eq!(names(&volumes_to_back_up(&p, true)), ["data"]);
        assert_eq!(
            names(&volumes_to_back_up(&pod(json!({})), true)),
            ["data", "cache"]
        );
    }
}
