//! Persistent volumes and their claims when the backup holds no volume data (Velero's
//! `pkg/restore/restore.go`, `pv_restorer.go`): a volume whose reclaim policy is Delete is left to
//! dynamic provisioning (its claim loses `spec.volumeName`); a Retain one is restored as it was,
//! bound again to its (possibly remapped) claim, and cloned under a new name when a claim comes
//! from a remapped namespace while the original volume still exists. File-system restores of pod
//! volumes plug in here.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Value, json};
use velero_cluster::write::ApiWriter;
use velero_report::locked;

use crate::selection::RestoreFilter;

/// What the restore decided about volumes, which their claims (restored later) follow.
#[derive(Default)]
pub(crate) struct Volumes {
    /// Volumes left to dynamic provisioning: their claims lose `spec.volumeName`.
    provision: Mutex<HashSet<String>>,
    /// Volumes restored under a new name because the old one is taken: old → new.
    renamed: Mutex<HashMap<String, String>>,
}

/// What to do with a backed-up persistent volume.
pub(crate) enum VolumeVerdict {
    Restore(Value),
    /// Not restored; the reason is for the restore's log.
    LeaveToProvisioning(String),
}

impl Volumes {
    /// Prepares the backed-up volume `item` named `name`; `from_pod_volume_backup` when its claim's
    /// data was backed up file by file (Velero provisions such a volume anew and fills it).
    pub(crate) async fn prepare_volume(
        &self,
        writer: &ApiWriter,
        filter: &RestoreFilter,
        name: &str,
        from_pod_volume_backup: bool,
        mut item: Value,
    ) -> VolumeVerdict {
        if from_pod_volume_backup {
            locked(&self.provision).insert(name.to_string());
            return VolumeVerdict::LeaveToProvisioning(format!(
                "Dynamically re-provisioning persistent volume {name} because it has a pod volume backup to be restored"
            ));
        }
        if item
            .pointer("/spec/persistentVolumeReclaimPolicy")
            .and_then(Value::as_str)
            == Some("Delete")
        {
            locked(&self.provision).insert(name.to_string());
            return VolumeVerdict::LeaveToProvisioning(format!(
                "Not restoring persistent volume {name}: its reclaim policy is Delete and it has no backup, so its claim is provisioned anew"
            ));
        }
        if let Some(claim_ns) = item
            .pointer("/spec/claimRef/namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let mapped = filter.target_namespace(&claim_ns).to_string();
            if mapped != claim_ns {
                item["spec"]["claimRef"]["namespace"] = Value::String(mapped);
                // A volume claimed from a remapped namespace is cloned under a new name when the
                // original still exists (the original claim may still use it).
                let exists = writer
                    .get_opt(&format!("/api/v1/persistentvolumes/{name}"))
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                if exists {
                    let new_name = format!("velero-clone-{}", uuid::Uuid::new_v4());
                    item["metadata"]["name"] = Value::String(new_name.clone());
                    let annotations = item["metadata"]
                        .as_object_mut()
                        .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
                    if let Some(Value::Object(a)) = annotations {
                        a.insert(
                            velero_api::labels::ORIGINAL_PV_NAME_ANNOTATION.into(),
                            Value::String(name.to_string()),
                        );
                    }
                    locked(&self.renamed).insert(name.to_string(), new_name);
                }
            }
        }
        if let Some(claim) = item
            .pointer_mut("/spec/claimRef")
            .and_then(Value::as_object_mut)
        {
            claim.remove("uid");
            claim.remove("resourceVersion");
        }
        if let Some(a) = item
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove("pv.kubernetes.io/bind-completed");
            a.remove("pv.kubernetes.io/bound-by-controller");
        }
        VolumeVerdict::Restore(item)
    }

    /// Points a claim at what became of its volume: none (provisioned anew) or its new name.
    pub(crate) fn prepare_claim(&self, claim: &mut Value) {
        let Some(volume) = velero_api::kuberesource::claim_volume(claim).map(str::to_string) else {
            return;
        };
        if locked(&self.provision).contains(&volume) {
            if let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("volumeName");
            }
        } else if let Some(new) = locked(&self.renamed).get(&volume).cloned() {
            claim["spec"]["volumeName"] = Value::String(new);
        }
    }
}
