//! Velero's built-in backup item actions that bring other items into a backup
//! (`pkg/backup/actions/`: pod, persistent volume claim, service account), as pure functions over
//! an item's JSON. Hooks and pod volume backups join them here.

use serde_json::Value;
use velero_api::item::str_at;
use velero_api::kuberesource::{
    CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS,
    PRIORITY_CLASSES, SERVICE_ACCOUNTS, claim_volume, pod_claims,
};
use velero_api::labels;

/// An item another one brings along: its group-resource, namespace (`None` when cluster-scoped)
/// and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    pub group_resource: &'static str,
    pub namespace: Option<String>,
    pub name: String,
}

impl Related {
    fn new(group_resource: &'static str, namespace: Option<&str>, name: &str) -> Related {
        Related {
            group_resource,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

/// Whether items of the core type `resource` may bring others (the others bring none).
pub fn brings_additional_items(group: &str, resource: &str) -> bool {
    group.is_empty() && [PODS, PERSISTENT_VOLUME_CLAIMS, SERVICE_ACCOUNTS].contains(&resource)
}

/// A service account needs the cluster role bindings to find its own; only then.
pub fn needs_cluster_role_bindings(group: &str, resource: &str) -> bool {
    group.is_empty() && resource == SERVICE_ACCOUNTS
}

/// What `item`, of the core type `resource`, brings into the backup: a pod its claims and its
/// priority class; a claim its volume; a service account the cluster role bindings that name it
/// and their cluster roles (from `cluster_role_bindings`, every binding of the cluster).
pub fn additional_items(
    resource: &str,
    item: &Value,
    cluster_role_bindings: &[Value],
) -> Vec<Related> {
    let namespace = str_at(item, "/metadata/namespace");
    let mut out = Vec::new();
    match resource {
        r if r == PODS => {
            out.extend(
                pod_claims(item)
                    .map(|claim| Related::new(PERSISTENT_VOLUME_CLAIMS, namespace, claim)),
            );
            if let Some(class) = item
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                out.push(Related::new(PRIORITY_CLASSES, None, class));
            }
        }
        r if r == PERSISTENT_VOLUME_CLAIMS => {
            out.extend(
                bound_volume(item).map(|volume| Related::new(PERSISTENT_VOLUMES, None, volume)),
            );
        }
        r if r == SERVICE_ACCOUNTS => {
            let name = str_at(item, "/metadata/name").unwrap_or_default();
            for binding in cluster_role_bindings
                .iter()
                .filter(|b| names_service_account(b, name, namespace))
            {
                if let Some(binding_name) =
                    str_at(binding, "/metadata/name").filter(|n| !n.is_empty())
                {
                    out.push(Related::new(CLUSTER_ROLE_BINDINGS, None, binding_name));
                }
                if binding.pointer("/roleRef/kind").and_then(Value::as_str) == Some("ClusterRole")
                    && let Some(role) = binding
                        .pointer("/roleRef/name")
                        .and_then(Value::as_str)
                        .filter(|r| !r.is_empty())
                {
                    out.push(Related::new(CLUSTER_ROLES, None, role));
                }
            }
        }
        _ => {}
    }
    out
}

/// The volume of a claim that is Bound and names one; Velero's PVCAction brings no volume for a
/// claim in any other phase (pkg/backup/actions/backup_pv_action.go).
fn bound_volume(claim: &Value) -> Option<&str> {
    (claim.pointer("/status/phase").and_then(Value::as_str) == Some("Bound"))
        .then(|| claim_volume(claim))
        .flatten()
}

/// Velero's PVCAction on a Bound claim, before it is written: a `dataSource`/`dataSourceRef`
/// (left by an earlier restore from a snapshot) would make the restored claim wait for a
/// snapshot that is gone; a `selector` would tie it to the old volume, so it goes unless the
/// class is `""` (static binding, the one case a selector is the point); and Velero's own labels
/// from earlier restores and backups go. Returns whether the claim changed.
pub fn prepare_claim(claim: &mut Value, backup_name: &str) -> bool {
    if bound_volume(claim).is_none() {
        return false;
    }
    let before = claim.clone();
    let static_class = claim
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        == Some("");
    if let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("dataSource");
        spec.remove("dataSourceRef");
        if !static_class {
            spec.remove("selector");
        }
    }
    if let Some(selector_labels) = claim
        .pointer_mut("/spec/selector/matchLabels")
        .and_then(Value::as_object_mut)
    {
        selector_labels.retain(|key, _| !key.starts_with("velero.io/"));
    }
    if let Some(labels) = claim
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.retain(|key, value| match key.as_str() {
            labels::RESTORE_NAME
            | labels::VOLUME_SNAPSHOT_NAME
            | labels::MUST_INCLUDE_ADDITIONAL_ITEMS_ANNOTATION => false,
            labels::BACKUP_NAME => value.as_str() == Some(backup_name),
            _ => true,
        });
    }
    *claim != before
}

fn names_service_account(binding: &Value, name: &str, namespace: Option<&str>) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    && s.get("name").and_then(Value::as_str) == Some(name)
                    && s.get("namespace").and_then(Value::as_str) == namespace
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(related: &[Related]) -> Vec<(String, Option<String>, String)> {
        related
            .iter()
            .map(|r| {
                (
                    r.group_resource.to_string(),
                    r.namespace.clone(),
                    r.name.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_pod_brings_its_claims_and_priority_class() {
        let pod = json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {
            "priorityClassName": "high",
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "e", "emptyDir": {}}]}});
        assert_eq!(
            names(&additional_items(PODS, &pod, &[])),
            [
                (
                    "persistentvolumeclaims".into(),
                    Some("shop".into()),
                    "data".into()
                ),
                (
                    "priorityclasses.scheduling.k8s.io".into(),
                    None,
                    "high".into()
                ),
            ]
        );
    }

    #[test]
    fn a_claim_brings_its_volume_and_nothing_when_unbound() {
        let bound = json!({"metadata": {"name": "c", "namespace": "shop"},
            "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}});
        assert_eq!(
            names(&additional_items(PERSISTENT_VOLUME_CLAIMS, &bound, &[])),
            [("persistentvolumes".into(), None, "pv-1".into())]
        );
        // A claim that names a volume it is not bound to (yet) brings nothing, as in Velero.
        for phase in [json!("Pending"), json!("Lost"), Value::Null] {
            let claim = json!({"metadata": {"name": "c", "namespace": "shop"},
                "spec": {"volumeName": "pv-1"}, "status": {"phase": phase}});
            assert!(
                additional_items(PERSISTENT_VOLUME_CLAIMS, &claim, &[]).is_empty(),
                "{phase}"
            );
        }
        let pending = json!({"metadata": {"name": "c", "namespace": "shop"}, "spec": {}});
        assert!(additional_items(PERSISTENT_VOLUME_CLAIMS, &pending, &[]).is_empty());
    }

    #[test]
    fn a_bound_claim_is_stored_without_data_source_selector_and_stale_labels() {
        let claim = |class: Value, phase: &str| {
            json!({"metadata": {"name": "c", "namespace": "shop", "labels": {
                    "app": "db", "velero.io/restore-name": "r1", "velero.io/backup-name": "old",
                    "velero.io/volume-snapshot-name": "s", "backup.velero.io/must-include-additional-items": "true"}},
                "spec": {"volumeName": "pv-1", "storageClassName": class,
                    "dataSource": {"kind": "VolumeSnapshot", "name": "s"},
                    "dataSourceRef": {"kind": "VolumeSnapshot", "name": "s"},
                    "selector": {"matchLabels": {"tier": "db", "velero.io/x": "y"}}},
                "status": {"phase": phase}})
        };
        let mut bound = claim(json!("fast"), "Bound");
        assert!(prepare_claim(&mut bound, "nightly"));
        assert_eq!(bound["metadata"]["labels"], json!({"app": "db"}));
        assert_eq!(
            bound["spec"],
            json!({"volumeName": "pv-1", "storageClassName": "fast"})
        );

        // Class "": the selector is what binds the claim, so it stays (without Velero's labels).
        let mut manual = claim(json!(""), "Bound");
        manual["metadata"]["labels"]["velero.io/backup-name"] = json!("nightly");
        assert!(prepare_claim(&mut manual, "nightly"));
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"tier": "db"}})
        );
        assert_eq!(
            manual["metadata"]["labels"]["velero.io/backup-name"],
            "nightly"
        );

        // Not Bound: stored as it is.
        let mut pending = claim(json!("fast"), "Pending");
        let before = pending.clone();
        assert!(!prepare_claim(&mut pending, "nightly"));
        assert_eq!(pending, before);
    }

    #[test]
    fn a_service_account_brings_the_bindings_that_name_it_and_their_cluster_roles() {
        let sa = json!({"metadata": {"name": "app", "namespace": "shop"}});
        let bindings = [
            json!({"metadata": {"name": "app-admin"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]}),
            // Same name, other namespace: not ours.
            json!({"metadata": {"name": "other"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "elsewhere"}]}),
            json!({"metadata": {"name": "users"}, "roleRef": {"kind": "ClusterRole", "name": "edit"},
                   "subjects": [{"kind": "User", "name": "app"}]}),
        ];
        assert_eq!(
            names(&additional_items(SERVICE_ACCOUNTS, &sa, &bindings)),
            [
                (
                    "clusterrolebindings.rbac.authorization.k8s.io".into(),
                    None,
                    "app-admin".into()
                ),
                (
                    "clusterroles.rbac.authorization.k8s.io".into(),
                    None,
                    "admin".into()
                ),
            ]
        );
        assert!(brings_additional_items("", "pods"));
        assert!(!brings_additional_items("apps", "pods"));
        assert!(needs_cluster_role_bindings("", "serviceaccounts"));
    }
}
