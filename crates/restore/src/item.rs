//! Velero's rules for one item on its way in, as pure functions over its JSON: what of its
//! metadata goes, the labels it gets, whether it is restored at all, what it brings along.

use serde_json::{Map, Value};
use velero_api::item::str_at;
use velero_api::kuberesource::{self, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES};
use velero_cluster::write::WriteError;

/// Velero's `resetMetadata`: what the API server owns goes; labels, annotations, finalizers and
/// managedFields stay.
pub fn reset_metadata(item: &mut Value) {
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "generateName",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            meta.remove(key);
        }
    }
}

pub(crate) fn add_restore_labels(item: &mut Value, backup: &str, restore: &str) {
    let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    labels[velero_api::labels::BACKUP_NAME] =
        Value::String(velero_api::labels::valid_label_value(backup));
    labels[velero_api::labels::RESTORE_NAME] =
        Value::String(velero_api::labels::valid_label_value(restore));
}

/// Completed pods and jobs are not restored; neither are mirror pods (the kubelet owns them).
pub(crate) fn skip_reason(group_resource: &str, item: &Value) -> Option<&'static str> {
    match group_resource {
        "pods" => {
            if matches!(str_at(item, "/status/phase"), Some("Succeeded" | "Failed")) {
                return Some("the pod has completed");
            }
            if item
                .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                .is_some()
            {
                return Some("it is a mirror pod");
            }
            None
        }
        "jobs.batch" if item.pointer("/status/completionTime").is_some() => {
            Some("the job has completed")
        }
        _ => None,
    }
}

/// A Service whose node port is taken may exist already: Velero treats it as existing.
pub(crate) fn port_taken(group_resource: &str, e: &WriteError) -> bool {
    group_resource == "services" && e.to_string().contains("provided port is already allocated")
}

/// (type, backed-up namespace, name) of the items an item brings with it.
/// What a backed-up item brings along (Velero's restore of additional items): a claim its volume,
/// a pod its claims and priority class, by the relations in `velero_api::kuberesource`.
pub(crate) fn additional_items(
    group_resource: &str,
    namespace: Option<&str>,
    item: &Value,
) -> Vec<(&'static str, Option<String>, String)> {
    let mut out = Vec::new();
    match group_resource {
        PERSISTENT_VOLUME_CLAIMS => {
            if let Some(volume) = kuberesource::claim_volume(item) {
                out.push((PERSISTENT_VOLUMES, None, volume.to_string()));
            }
        }
        kuberesource::PODS => {
            out.extend(kuberesource::pod_claims(item).map(|claim| {
                (
                    PERSISTENT_VOLUME_CLAIMS,
                    namespace.map(str::to_string),
                    claim.to_string(),
                )
            }));
            if let Some(class) = str_at(item, "/spec/priorityClassName").filter(|c| !c.is_empty()) {
                out.push((kuberesource::PRIORITY_CLASSES, None, class.to_string()));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_reset_keeps_what_velero_keeps() {
        let mut item = json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "1", "generation": 2,
            "creationTimestamp": "t", "selfLink": "s", "ownerReferences": [], "generateName": "a-",
            "labels": {"k": "v"}, "annotations": {"x": "y"}, "finalizers": ["f"], "managedFields": []}});
        reset_metadata(&mut item);
        assert_eq!(
            item,
            json!({"metadata": {"name": "a", "labels": {"k": "v"}, "annotations": {"x": "y"}, "finalizers": ["f"], "managedFields": []}})
        );
    }

    #[test]
    fn completed_and_mirror_pods_and_finished_jobs_are_skipped() {
        assert!(skip_reason("pods", &json!({"status": {"phase": "Succeeded"}})).is_some());
        assert!(skip_reason("pods", &json!({"status": {"phase": "Running"}})).is_none());
        assert!(
            skip_reason(
                "pods",
                &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})
            )
            .is_some()
        );
        assert!(skip_reason("jobs.batch", &json!({"status": {"completionTime": "t"}})).is_some());
        assert!(
            skip_reason(
                "deployments.apps",
                &json!({"status": {"phase": "Succeeded"}})
            )
            .is_none()
        );
    }

    #[test]
    fn pods_bring_claims_and_priority_classes_and_claims_bring_volumes() {
        let pod = json!({"spec": {"priorityClassName": "high", "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "e", "emptyDir": {}}]}});
        assert_eq!(
            additional_items("pods", Some("a"), &pod),
            vec![
                (
                    "persistentvolumeclaims",
                    Some("a".to_string()),
                    "data".to_string()
                ),
                (
                    "priorityclasses.scheduling.k8s.io",
                    None,
                    "high".to_string()
                )
            ]
        );
        let claim = json!({"spec": {"volumeName": "pv-1"}});
        assert_eq!(
            additional_items("persistentvolumeclaims", Some("a"), &claim),
            vec![("persistentvolumes", None, "pv-1".to_string())]
        );
    }
}
