//! Group-resource names of the built-in types the engines treat specially (Velero's
//! `pkg/kuberesource`), and the relations between a pod, its claims and their volumes that backup
//! and restore both follow.

use serde_json::Value;

pub const PODS: &str = "pods";
pub const PERSISTENT_VOLUME_CLAIMS: &str = "persistentvolumeclaims";
pub const PERSISTENT_VOLUMES: &str = "persistentvolumes";
pub const SERVICE_ACCOUNTS: &str = "serviceaccounts";
pub const NAMESPACES: &str = "namespaces";
pub const PRIORITY_CLASSES: &str = "priorityclasses.scheduling.k8s.io";
pub const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings.rbac.authorization.k8s.io";
pub const CLUSTER_ROLES: &str = "clusterroles.rbac.authorization.k8s.io";
pub const CUSTOM_RESOURCE_DEFINITIONS: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// The claims a pod's volumes name (`spec.volumes[].persistentVolumeClaim.claimName`).
pub fn pod_claims(pod: &Value) -> impl Iterator<Item = &str> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str())
        .filter(|name| !name.is_empty())
}

/// The volume a claim is bound to (`spec.volumeName`), if any.
pub fn claim_volume(claim: &Value) -> Option<&str> {
    claim
        .pointer("/spec/volumeName")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_names_its_claims_and_a_claim_its_volume() {
        let pod = json!({"spec": {"volumes": [
            {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "b", "emptyDir": {}},
            {"name": "c", "persistentVolumeClaim": {"claimName": ""}},
            {"name": "d", "persistentVolumeClaim": {"claimName": "logs"}},
        ]}});
        assert_eq!(pod_claims(&pod).collect::<Vec<_>>(), ["data", "logs"]);
        assert_eq!(pod_claims(&json!({})).count(), 0);
        assert_eq!(
            claim_volume(&json!({"spec": {"volumeName": "pv-1"}})),
            Some("pv-1")
        );
        assert_eq!(claim_volume(&json!({"spec": {}})), None);
    }
}
