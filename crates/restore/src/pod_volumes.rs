//! Pod volumes restored from file-system backups (Velero's pkg/restore/actions/pod_volume_restore_action.go
//! and pkg/podvolume/restorer.go): the `restore-wait` init container a restored pod gets first,
//! and the seam through which the server creates the pod's PodVolumeRestores once it exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use velero_report::OperationLog;

/// Velero's name for the init container that holds a pod until its volumes are restored.
pub const RESTORE_WAIT: &str = "restore-wait";
/// The name Velero used before.
const RESTORE_WAIT_LEGACY: &str = "restic-wait";
const DEFAULT_COMMAND: &str = "/velero-restore-helper";

/// One backed-up volume of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSnapshot {
    pub volume: String,
    pub snapshot_id: String,
    pub location: String,
    pub repo_identifier: String,
    pub uploader_type: String,
    pub size: Option<i64>,
}

/// The restore helper's image and command (Velero's `velero.io/pod-volume-restore` plugin
/// ConfigMap, else the server's own image).
#[derive(Clone, Debug, Default)]
pub struct RestoreHelper {
    pub image: Option<String>,
    pub command: Option<String>,
}

/// Creates a restored pod's PodVolumeRestores and waits for them; given the pod as created, its
/// backed-up namespace and volumes, and the restore's log.
pub trait PodVolumeRestorer: Send + Sync {
    fn restore(
        &self,
        pod: Value,
        source_namespace: String,
        volumes: Vec<VolumeSnapshot>,
        log: Arc<Mutex<OperationLog>>,
    ) -> futures::future::BoxFuture<'static, ()>;
}

/// The backup's pod volume snapshots, by (backed-up namespace, pod name).
#[derive(Clone, Debug, Default)]
pub struct PodVolumeData {
    by_pod: HashMap<(String, String), Vec<VolumeSnapshot>>,
    /// (namespace, claim) of every claim a pod volume backup read: their volumes are provisioned
    /// anew and filled from the backup, not restored.
    claims: std::collections::HashSet<(String, String)>,
    pub helper: RestoreHelper,
    /// The Restore's UID: the helper's argument and the name of each volume's done-marker.
    pub restore_uid: String,
}

impl PodVolumeData {
    /// From the PodVolumeBackups of `<backup>-podvolumebackups.json.gz`: those that completed
    /// with a snapshot (Velero's `GetVolumeBackupsForPod`).
    pub fn new(pvbs: &[Value], helper: RestoreHelper, restore_uid: &str) -> Self {
        let mut by_pod: HashMap<(String, String), Vec<VolumeSnapshot>> = HashMap::new();
        let mut claims = std::collections::HashSet::new();
        for pvb in pvbs {
            let text = |p: &str| {
                pvb.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            if let Some(claim) = pvb
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(velero_api::labels::PVC_NAME))
                .and_then(Value::as_str)
            {
                claims.insert((text("/spec/pod/namespace"), claim.to_string()));
            }
            let snapshot_id = text("/status/snapshotID");
            if snapshot_id.is_empty() || text("/status/phase") != "Completed" {
                continue;
            }
            by_pod
                .entry((text("/spec/pod/namespace"), text("/spec/pod/name")))
                .or_default()
                .push(VolumeSnapshot {
                    volume: text("/spec/volume"),
                    snapshot_id,
                    location: text("/spec/backupStorageLocation"),
                    repo_identifier: text("/spec/repoIdentifier"),
                    uploader_type: text("/spec/uploaderType"),
                    size: pvb
                        .pointer("/status/progress/totalBytes")
                        .and_then(Value::as_i64),
                });
        }
        PodVolumeData {
            by_pod,
            claims,
            helper,
            restore_uid: restore_uid.to_string(),
        }
    }

    /// Whether a pod volume backup read the claim `name` in `namespace` (Velero's
    /// `hasPodVolumeBackup` for the claim a volume is bound to).
    pub fn backed_up_claim(&self, namespace: &str, name: &str) -> bool {
        self.claims
            .contains(&(namespace.to_string(), name.to_string()))
    }

    /// The snapshots of the volumes `pod` still has.
    pub fn for_pod(&self, source_namespace: &str, pod: &Value) -> Vec<VolumeSnapshot> {
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let volumes: Vec<&str> = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        self.by_pod
            .get(&(source_namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .filter(|s| volumes.contains(&s.volume.as_str()))
            .cloned()
            .collect()
    }

    /// The pod-volume-restore action: any old restore-wait container out, and for a pod with
    /// backed-up volumes a new one first, mounting each of them at `/restores/<volume>`.
    pub fn add_restore_wait(
        &self,
        pod: &mut Value,
        source_namespace: &str,
    ) -> Result<usize, String> {
        let snapshots = self.for_pod(source_namespace, pod);
        let first_container_security = pod.pointer("/spec/containers/0/securityContext").cloned();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(0);
        };
        let mut init: Vec<Value> = match spec.remove("initContainers") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        init.retain(|c| c["name"] != RESTORE_WAIT && c["name"] != RESTORE_WAIT_LEGACY);
        if !snapshots.is_empty() {
            let image = self.helper.image.clone().ok_or_else(|| {
                "no image for the restore-wait container: the server's Deployment velero was not found; name one in the velero.io/pod-volume-restore plugin ConfigMap (key image)".to_string()
            })?;
            let mounts: Vec<Value> = snapshots
                .iter()
                .map(
                    |s| json!({ "name": s.volume, "mountPath": format!("/restores/{}", s.volume) }),
                )
                .collect();
            let command = self
                .helper
                .command
                .clone()
                .unwrap_or_else(|| DEFAULT_COMMAND.to_string());
            let mut container = json!({
                "name": RESTORE_WAIT,
                "image": image,
                "command": [command],
                "args": [self.restore_uid],
                "env": [
                    { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                    { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                ],
                "resources": {
                    "requests": { "cpu": "100m", "memory": "128Mi" },
                    "limits": { "cpu": "100m", "memory": "128Mi" },
                },
                "volumeMounts": mounts,
            });
            // Velero's default: the first container's security context, else a non-root one.
            container["securityContext"] = first_container_security.unwrap_or_else(|| {
                json!({ "runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": false })
            });
            init.insert(0, container);
        }
        if !init.is_empty() {
            spec.insert("initContainers".into(), Value::Array(init));
        }
        Ok(snapshots.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvb(pod: &str, volume: &str, phase: &str, snapshot: &str) -> Value {
        json!({"spec": {"pod": {"namespace": "src", "name": pod}, "volume": volume, "backupStorageLocation": "default"},
               "status": {"phase": phase, "snapshotID": snapshot}})
    }

    #[test]
    fn restore_wait_goes_first_with_the_backed_up_volumes() {
        let data = PodVolumeData::new(
            &[
                pvb("web", "data", "Completed", "s1"),
                pvb("web", "gone", "Completed", "s2"),
                pvb("web", "cache", "Failed", ""),
                pvb("other", "data", "Completed", "s3"),
            ],
            RestoreHelper {
                image: Some("velero-rs/velero:v0.1.0".into()),
                command: None,
            },
            "uid-1",
        );
        let mut pod = json!({"metadata": {"name": "web"}, "spec": {
            "volumes": [{"name": "data"}, {"name": "cache"}],
            "initContainers": [{"name": "restore-wait"}, {"name": "own"}],
            "containers": [{"name": "app"}]}});
        assert_eq!(data.add_restore_wait(&mut pod, "src"), Ok(1));
        let init = &pod["spec"]["initContainers"];
        assert_eq!(init.as_array().map(Vec::len), Some(2), "{init}");
        assert_eq!(init[0]["name"], "restore-wait");
        assert_eq!(init[0]["args"], json!(["uid-1"]));
        assert_eq!(init[0]["command"], json!(["/velero-restore-helper"]));
        assert_eq!(
            init[0]["volumeMounts"],
            json!([{"name": "data", "mountPath": "/restores/data"}])
        );
        assert_eq!(init[1]["name"], "own");

        // Another namespace's pod of the same name has no volumes here.
        let mut elsewhere = json!({"metadata": {"name": "web"}, "spec": {"volumes": [{"name": "data"}], "containers": []}});
        assert_eq!(data.add_restore_wait(&mut elsewhere, "dst"), Ok(0));
        assert!(elsewhere["spec"].get("initContainers").is_none());

        let with_claim = PodVolumeData::new(
            &[
                json!({"metadata": {"annotations": {"velero.io/pvc-name": "data-web-0"}},
                     "spec": {"pod": {"namespace": "src", "name": "web-0"}, "volume": "data"},
                     "status": {"phase": "Failed"}}),
            ],
            RestoreHelper::default(),
            "u",
        );
        assert!(with_claim.backed_up_claim("src", "data-web-0"));
        assert!(!with_claim.backed_up_claim("dst", "data-web-0"));

        let no_image = PodVolumeData::new(
            &[pvb("web", "data", "Completed", "s1")],
            RestoreHelper::default(),
            "u",
        );
        let mut pod = json!({"metadata": {"name": "web"}, "spec": {"volumes": [{"name": "data"}], "containers": []}});
        assert!(no_image.add_restore_wait(&mut pod, "src").is_err());
    }
}
