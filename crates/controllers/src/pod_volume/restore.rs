//! The server's half of restoring pod volumes (Velero's pkg/podvolume/restorer.go): once a pod
//! with backed-up volumes is created, one PodVolumeRestore per volume for the node agents, awaited
//! before the restore ends; their failures are the restore's errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::pod_volume::wait::Ended;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, PostParams};
use kube::{Client, Resource as _, ResourceExt};
use serde_json::Value;
use velero_api::labels;
use velero_api::v1::{
    DataPathPhase, PodVolumeRestore, PodVolumeRestoreSpec, Restore, UploaderType,
};
use velero_report::{Level, OperationLog, locked};
use velero_restore::pod_volumes::{PodVolumeRestorer, VolumeSnapshot};

pub(crate) struct Restorer {
    client: Client,
    namespace: String,
    restore: Restore,
    timeout: Duration,
    /// The one watch of this restore's PodVolumeRestores, opened for the first pod with volumes.
    ended: Arc<OnceLock<Ended<PodVolumeRestore>>>,
}

impl Restorer {
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        restore: &Restore,
        timeout: Duration,
    ) -> Self {
        Restorer {
            client,
            namespace: namespace.to_string(),
            restore: restore.clone(),
            timeout,
            ended: Arc::new(OnceLock::new()),
        }
    }
}

fn record(log: &Mutex<OperationLog>, level: Level, namespace: &str, message: &str) {
    locked(log).record(level, Some(namespace), message);
}

async fn create(
    client: &Client,
    namespace: &str,
    restore: &Restore,
    pod: &Value,
    source_namespace: &str,
    snapshot: &VolumeSnapshot,
) -> Result<String, crate::pod_volume::backup::CreateError> {
    let text = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let restore_name = restore.name_any();
    let restore_uid = restore.metadata.uid.clone().unwrap_or_default();
    let mut pvr = PodVolumeRestore::new(
        "",
        PodVolumeRestoreSpec {
            pod: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(text("/metadata/namespace")),
                name: Some(text("/metadata/name")),
                uid: Some(text("/metadata/uid")),
                ..Default::default()
            },
            volume: snapshot.volume.clone(),
            backup_storage_location: snapshot.location.clone(),
            repo_identifier: snapshot.repo_identifier.clone(),
            // The PodVolumeBackup's own: a restic-path backup restores from restic's repository
            // (an empty type is restic's, on backups from before the field existed).
            uploader_type: velero_podvolume::uploader_of(velero_podvolume::format_of(
                serde_json::from_value(Value::String(snapshot.uploader_type.clone()))
                    .unwrap_or(UploaderType::Unset),
            )),
            snapshot_id: snapshot.snapshot_id.clone(),
            source_namespace: source_namespace.to_string(),
            uploader_settings: None,
            cancel: None,
            snapshot_size: snapshot.size,
        },
    );
    pvr.metadata.name = None;
    pvr.metadata.generate_name = Some(format!("{restore_name}-"));
    pvr.metadata.namespace = Some(namespace.to_string());
    pvr.metadata.labels = Some(BTreeMap::from([
        (
            labels::RESTORE_NAME.to_string(),
            labels::valid_label_value(&restore_name),
        ),
        (labels::RESTORE_UID.to_string(), restore_uid.clone()),
        ("velero.io/pod-uid".to_string(), text("/metadata/uid")),
    ]));
    pvr.metadata.owner_references = restore.controller_owner_ref(&()).map(|o| vec![o]);
    let api: Api<PodVolumeRestore> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &pvr)
        .await
        .map(|created| created.name_any())
        .map_err(|source| crate::pod_volume::backup::CreateError {
            kind: "PodVolumeRestore",
            volume: snapshot.volume.clone(),
            source,
        })
}

impl PodVolumeRestorer for Restorer {
    fn restore(
        &self,
        pod: Value,
        source_namespace: String,
        volumes: Vec<VolumeSnapshot>,
        log: Arc<Mutex<OperationLog>>,
    ) -> futures::future::BoxFuture<'static, ()> {
        let (client, namespace, restore, timeout, ended) = (
            self.client.clone(),
            self.namespace.clone(),
            self.restore.clone(),
            self.timeout,
            self.ended.clone(),
        );
        Box::pin(async move {
            let target = pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let mut created = Vec::new();
            for snapshot in &volumes {
                match create(
                    &client,
                    &namespace,
                    &restore,
                    &pod,
                    &source_namespace,
                    snapshot,
                )
                .await
                {
                    Ok(name) => created.push((snapshot.volume.clone(), name)),
                    Err(e) => record(
                        &log,
                        Level::Error,
                        &target,
                        &format!("pod {target}/{pod_name}: {e}"),
                    ),
                }
            }
            let ended = ended.get_or_init(|| {
                let uid = restore.metadata.uid.clone().unwrap_or_default();
                Ended::watch(
                    Api::namespaced(client.clone(), &namespace),
                    &format!("{}={uid}", labels::RESTORE_UID),
                    PodVolumeRestore::phase,
                )
            });
            for (volume, name) in created {
                match ended.until_ended(&name, timeout).await {
                    Ok(pvr) if pvr.phase() == Some(DataPathPhase::Completed) => {
                        record(
                            &log,
                            Level::Info,
                            &target,
                            &format!(
                                "Restored volume {volume} of pod {target}/{pod_name} (PodVolumeRestore {name})"
                            ),
                        );
                    }
                    Ok(pvr) => {
                        let message = pvr.status.and_then(|s| s.message).unwrap_or_default();
                        record(
                            &log,
                            Level::Error,
                            &target,
                            &format!(
                                "pod volume restore failed: volume {volume} of pod {target}/{pod_name} (PodVolumeRestore {name}): {message}"
                            ),
                        );
                    }
                    Err(e) => record(
                        &log,
                        Level::Error,
                        &target,
                        &format!("pod {target}/{pod_name}: {e}"),
                    ),
                }
            }
        })
    }
}
