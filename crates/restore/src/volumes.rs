//! Persistent volumes and their claims when the backup holds no volume data (Velero's
//! `pkg/restore/restore.go`, `pv_restorer.go`): a volume whose reclaim policy is Delete is left to
//! dynamic provisioning (its claim loses `spec.volumeName`); a Retain one is restored as it was
//! (`handleSkippedPVHasRetainPolicy`), bound again to its (possibly remapped) claim. It keeps its
//! name even when a claim comes from a remapped namespace while the original still exists:
//! Velero gives a volume a new name only when it is made anew from a native snapshot, since a
//! second PersistentVolume for the same disk would let two claims write to it. File-system
//! restores of pod volumes plug in here.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;
use velero_report::locked;

use crate::selection::RestoreFilter;

/// What the restore decided about volumes, which their claims (restored later) follow.
#[derive(Default)]
pub(crate) struct Volumes {
    /// Volumes left to dynamic provisioning: their claims lose `spec.volumeName`.
    provision: Mutex<HashSet<String>>,
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
    pub(crate) fn prepare_volume(
        &self,
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

    /// Points a claim at what became of its volume: none when it is provisioned anew.
    pub(crate) fn prepare_claim(&self, claim: &mut Value) {
        let Some(volume) = velero_api::kuberesource::claim_volume(claim).map(str::to_string) else {
            return;
        };
        if locked(&self.provision).contains(&volume)
            && let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("volumeName");
        }
    }
}
