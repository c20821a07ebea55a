//! Which volumes of a pod get a file-system backup (Velero's `ShouldPerformFSBackup`,
//! internal/volumehelper/volume_policy_helper.go: volume policies first, then the legacy
//! annotations of pkg/util/podvolume).

use serde_json::Value;
use velero_api::labels::{BACKUP_VOLUMES_ANNOTATION, BACKUP_VOLUMES_EXCLUDES_ANNOTATION};
use velero_resource_policies::ActionType;

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

/// The volumes of `pod` a policy or the legacy rules may pick: every volume but the kinds that
/// are never backed up. Their volume policies are looked up for these before
/// [`volumes_to_back_up`] decides.
pub fn candidate_volumes(pod: &Value) -> Vec<&Value> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| !never_backed_up(v))
        .collect()
}

/// The volumes of `pod` to back up, in the pod's order. A volume whose policy action
/// (`policy_action`, by volume name) is `fs-backup` is backed up and one with any other action is
/// not; for the rest, the legacy rules: the volumes named in `backup.velero.io/backup-volumes`,
/// or with `default_to_fs_backup` every volume not named in
/// `backup.velero.io/backup-volumes-excludes`. Never the kinds of [`never_backed_up`].
pub fn volumes_to_back_up(
    pod: &Value,
    default_to_fs_backup: bool,
    policy_action: &dyn Fn(&str) -> Option<ActionType>,
) -> Vec<VolumeChoice> {
    let opted_in = annotation_list(pod, BACKUP_VOLUMES_ANNOTATION);
    let opted_out = annotation_list(pod, BACKUP_VOLUMES_EXCLUDES_ANNOTATION);
    candidate_volumes(pod)
        .into_iter()
        .filter_map(|v| {
            let name = v["name"].as_str()?;
            let chosen = match policy_action(name) {
                Some(action) => action == ActionType::FsBackup,
                None if default_to_fs_backup => !opted_out.iter().any(|e| e == name),
                None => opted_in.iter().any(|e| e == name),
            };
            chosen.then(|| VolumeChoice {
                name: name.to_string(),
                claim: v
                    .pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
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

    fn no_policy(_: &str) -> Option<ActionType> {
        None
    }

    #[test]
    fn opt_in_names_volumes_and_opt_out_excludes_them() {
        let volumes_to_back_up = |p: &Value, default| volumes_to_back_up(p, default, &no_policy);
        let p = pod(json!({"backup.velero.io/backup-volumes": "cache, data,missing,config"}));
        let chosen = volumes_to_back_up(&p, false);
        assert_eq!(names(&chosen), ["data", "cache"]);
        assert_eq!(chosen[0].claim.as_deref(), Some("data-0"));
        assert!(volumes_to_back_up(&pod(json!({})), false).is_empty());

        let p = pod(json!({"backup.velero.io/backup-volumes-excludes": "cache"}));
        assert_eq!(names(&volumes_to_back_up(&p, true)), ["data"]);
        assert_eq!(
            names(&volumes_to_back_up(&pod(json!({})), true)),
            ["data", "cache"]
        );
    }

    #[test]
    fn a_matching_policy_overrides_the_annotations() {
        let p = pod(json!({"backup.velero.io/backup-volumes": "cache"}));
        let policy = |name: &str| match name {
            "data" => Some(ActionType::FsBackup),
            "cache" => Some(ActionType::Skip),
            "config" | "host" => Some(ActionType::FsBackup),
            _ => None,
        };
        assert_eq!(names(&volumes_to_back_up(&p, false, &policy)), ["data"]);
        let p = pod(json!({}));
        let snapshot = |_: &str| Some(ActionType::Snapshot);
        assert!(volumes_to_back_up(&p, true, &snapshot).is_empty());
    }
}
