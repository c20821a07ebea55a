//! The server's half of file-system backup (Velero's pkg/podvolume/backupper.go): for each pod the
//! backup engine writes, the PodVolumeBackups of its chosen volumes, created for the pod's node
//! and awaited before the pod's post hooks; the repository of the pod's namespace made ready
//! first, once per backup.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pod_volume::repositories::Open;
use crate::pod_volume::wait::Ended;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource as _, ResourceExt};
use serde_json::{Value, json};
use velero_api::labels;
use velero_api::v1::{
    Backup, BackupRepository, BackupRepositoryPhase, BackupRepositorySpec, DataPathPhase,
    PodVolumeBackup, PodVolumeBackupSpec,
};
use velero_report::{Context, OperationLog, locked};
use velero_repository::RepositoryFormat;
use velero_resource_policies::ActionType;

/// Velero's default maintenance frequency of a new repository (`--default-repo-maintain-frequency`
/// unset): an hour for kopia's, a week for restic's (pkg/repository/maintenance).
fn maintenance_frequency(format: RepositoryFormat) -> Duration {
    match format {
        RepositoryFormat::Kopia => Duration::from_secs(3600),
        RepositoryFormat::Restic => Duration::from_secs(7 * 24 * 3600),
    }
}

/// Why a volume namespace's repository could not be made ready for a backup; the text goes into
/// the backup's log and the BackupRepository's status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RepositoryNotReady {
    #[error("reading BackupRepository {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating BackupRepository {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("repository {name} is not ready: {source}")]
    Init {
        name: String,
        #[source]
        source: InitError,
    },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error(transparent)]
    Password(#[from] velero_podvolume::PasswordError),
    #[error(transparent)]
    Repository(#[from] velero_repository::RepositoryError),
}

/// A PodVolumeBackup or PodVolumeRestore the API server refused.
#[derive(Debug, thiserror::Error)]
#[error("creating the {kind} of volume {volume}: {source}")]
pub(crate) struct CreateError {
    pub(crate) kind: &'static str,
    pub(crate) volume: String,
    #[source]
    pub(crate) source: kube::Error,
}

pub(crate) struct PodVolumeBackupper {
    /// The format new volume data is written in (`velero server --uploader-type`).
    format: RepositoryFormat,
    client: Client,
    namespace: String,
    backup: Backup,
    location: String,
    store: velero_storage::BackupStore,
    default_to_fs_backup: bool,
    timeout: Duration,
    /// The Backup's resource policies, whose volume policies decide before the annotations.
    policies: Option<velero_resource_policies::ResourcePolicies>,
    /// Per volume namespace: whether its repository is ready (or why not), decided once.
    repositories: tokio::sync::Mutex<HashMap<String, Result<(), Arc<RepositoryNotReady>>>>,
    /// Every PodVolumeBackup as it ended, for `<backup>-podvolumebackups.json.gz`.
    finished: Mutex<Vec<PodVolumeBackup>>,
    /// The one watch of this backup's PodVolumeBackups, opened when the first one is created.
    ended: std::sync::OnceLock<Ended<PodVolumeBackup>>,
}

/// The server's settings for pod volume backups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// `--fs-backup-timeout`: how long one volume's backup may take.
    pub(crate) timeout: Duration,
    /// `--uploader-type`: the format new volume data is written in.
    pub(crate) format: RepositoryFormat,
}

impl PodVolumeBackupper {
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        backup: &Backup,
        location: &str,
        store: &velero_storage::BackupStore,
        settings: Settings,
        policies: Option<velero_resource_policies::ResourcePolicies>,
    ) -> Self {
        let Settings { timeout, format } = settings;
        PodVolumeBackupper {
            format,
            client,
            namespace: namespace.to_string(),
            backup: backup.clone(),
            location: location.to_string(),
            store: store.clone(),
            default_to_fs_backup: backup.spec.default_volumes_to_fs_backup == Some(true),
            timeout,
            policies,
            repositories: tokio::sync::Mutex::new(HashMap::new()),
            finished: Mutex::new(Vec::new()),
            ended: std::sync::OnceLock::new(),
        }
    }

    fn ended(&self) -> &Ended<PodVolumeBackup> {
        self.ended.get_or_init(|| {
            let uid = self.backup.metadata.uid.clone().unwrap_or_default();
            Ended::watch(
                Api::namespaced(self.client.clone(), &self.namespace),
                &format!("{}={uid}", labels::BACKUP_UID),
                PodVolumeBackup::phase,
            )
        })
    }

    /// The PodVolumeBackups that ended, in the order they did.
    pub(crate) fn finished(&self) -> Vec<PodVolumeBackup> {
        locked(&self.finished).clone()
    }

    /// `<backup>-volumeinfo.json.gz` entries for the PodVolumeBackups (Velero's
    /// `generateVolumeInfoFromPVB`): method, result, times, the snapshot, and the claim and
    /// volume behind a claim-backed one.
    pub(crate) async fn volume_info(&self) -> Vec<Value> {
        let mut entries = Vec::new();
        for pvb in self.finished() {
            let status = pvb.status.clone().unwrap_or_default();
            let pod = &pvb.spec.pod;
            let uploader = serde_json::to_value(pvb.spec.uploader_type).unwrap_or(Value::Null);
            let mut entry = json!({
                "backupMethod": "PodVolumeBackup",
                "snapshotDataMoved": false,
                "preserveLocalSnapshot": false,
                "skipped": false,
                "startTimestamp": status.start_timestamp,
                "completionTimestamp": status.completion_timestamp,
                "result": if status.phase == Some(DataPathPhase::Completed) { "succeeded" } else { "failed" },
                "pvbInfo": {
                    "snapshotHandle": status.snapshot_id.clone().unwrap_or_default(),
                    "size": status.progress.as_ref().and_then(|p| p.total_bytes).unwrap_or(0),
                    "incrementalSize": status.incremental_bytes.unwrap_or(0),
                    "uploaderType": uploader,
                    "volumeName": pvb.spec.volume,
                    "podName": pod.name.clone().unwrap_or_default(),
                    "podNamespace": pod.namespace.clone().unwrap_or_default(),
                    "nodeName": pvb.spec.node,
                },
            });
            let claim = pvb
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(labels::PVC_NAME))
                .cloned();
            if let Some(claim) = claim {
                let namespace = pod.namespace.clone().unwrap_or_default();
                let claims: Api<PersistentVolumeClaim> =
                    Api::namespaced(self.client.clone(), &namespace);
                let volume = claims
                    .get_opt(&claim)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| c.spec?.volume_name);
                let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> =
                    Api::all(self.client.clone());
                let pv = match &volume {
                    Some(name) => pvs.get_opt(name).await.ok().flatten(),
                    None => None,
                };
                entry["pvcName"] = json!(claim);
                entry["pvcNamespace"] = json!(namespace);
                if let Some(pv) = pv {
                    entry["pvName"] = json!(pv.name_any());
                    entry["pvInfo"] = json!({
                        "reclaimPolicy": pv.spec.and_then(|s| s.persistent_volume_reclaim_policy).unwrap_or_default(),
                        "labels": pv.metadata.labels.unwrap_or_default(),
                    });
                }
            }
            entries.push(entry);
        }
        entries
    }

    /// The BackupRepository of `volume_namespace` exists and its repository is initialised, so
    /// that node agents only ever open it (two agents initialising one would write two configs).
    async fn ensure_repository(
        &self,
        volume_namespace: &str,
    ) -> Result<(), Arc<RepositoryNotReady>> {
        let mut known = self.repositories.lock().await;
        if let Some(result) = known.get(volume_namespace) {
            return result.clone();
        }
        let result = self
            .prepare_repository(volume_namespace)
            .await
            .map_err(Arc::new);
        known.insert(volume_namespace.to_string(), result.clone());
        result
    }

    async fn prepare_repository(&self, volume_namespace: &str) -> Result<(), RepositoryNotReady> {
        let name = velero_podvolume::repository_name(volume_namespace, &self.location, self.format);
        let api: Api<BackupRepository> = Api::namespaced(self.client.clone(), &self.namespace);
        let found = api
            .get_opt(&name)
            .await
            .map_err(|source| RepositoryNotReady::Read {
                name: name.clone(),
                source,
            })?;
        if found.is_none() {
            let mut repo = BackupRepository::new(
                &name,
                BackupRepositorySpec {
                    volume_namespace: volume_namespace.to_string(),
                    backup_storage_location: self.location.clone(),
                    repository_type: velero_podvolume::uploader_of(self.format),
                    restic_identifier: self.repository_identifier(volume_namespace),
                    maintenance_frequency: maintenance_frequency(self.format).into(),
                    repository_config: None,
                },
            );
            repo.metadata.namespace = Some(self.namespace.clone());
            repo.metadata.labels = Some(BTreeMap::from([
                (
                    labels::VOLUME_NAMESPACE.to_string(),
                    labels::valid_label_value(volume_namespace),
                ),
                (
                    labels::STORAGE_LOCATION.to_string(),
                    labels::valid_label_value(&self.location),
                ),
                (
                    labels::REPOSITORY_TYPE.to_string(),
                    self.format.directory().to_string(),
                ),
            ]));
            match api.create(&PostParams::default(), &repo).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(source) => return Err(RepositoryNotReady::Create { name, source }),
            }
        }
        let initialised = self.initialise(volume_namespace).await;
        let status = match &initialised {
            Ok(()) => {
                json!({ "status": { "phase": BackupRepositoryPhase::Ready, "message": null } })
            }
            Err(e) => {
                let message = e.to_string();
                json!({ "status": { "phase": BackupRepositoryPhase::NotReady, "message": message } })
            }
        };
        if let Err(e) = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::warn!(repository = %name, "recording the repository's phase: {e}");
        }
        initialised.map_err(|source| RepositoryNotReady::Init { name, source })
    }

    /// Velero's repository identifier: the restic repository's key prefix inside the location;
    /// none for kopia, whose repositories Velero finds by their labels.
    fn repository_identifier(&self, volume_namespace: &str) -> Option<String> {
        (self.format == RepositoryFormat::Restic).then(|| {
            velero_podvolume::repository_location(&self.store, volume_namespace, self.format)
                .root
                .to_string()
        })
    }

    async fn initialise(&self, volume_namespace: &str) -> Result<(), InitError> {
        let password = velero_podvolume::ensure_password(&self.client, &self.namespace).await?;
        let location =
            velero_podvolume::repository_location(&self.store, volume_namespace, self.format);
        crate::pod_volume::repositories::with_repository(
            self.format,
            location,
            password,
            Open::OrInit,
            |_| Ok(()),
        )
        .await?;
        Ok(())
    }

    async fn claim_uid(&self, namespace: &str, claim: &str) -> Option<String> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(claim)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.metadata.uid)
    }

    /// Velero's `newPodVolumeBackup`.
    async fn create(
        &self,
        pod: &Value,
        volume: &velero_podvolume::VolumeChoice,
    ) -> Result<PodVolumeBackup, CreateError> {
        let text = |p: &str| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (pod_ns, pod_name, pod_uid) = (
            text("/metadata/namespace"),
            text("/metadata/name"),
            text("/metadata/uid"),
        );
        let backup_name = self.backup.name_any();
        let backup_uid = self.backup.metadata.uid.clone().unwrap_or_default();
        let mut tags = BTreeMap::from([
            ("backup".to_string(), backup_name.clone()),
            ("backup-uid".to_string(), backup_uid.clone()),
            ("pod".to_string(), pod_name.clone()),
            ("pod-uid".to_string(), pod_uid.clone()),
            ("ns".to_string(), pod_ns.clone()),
            ("volume".to_string(), volume.name.clone()),
        ]);
        let mut pvb_labels = BTreeMap::from([
            (
                labels::BACKUP_NAME.to_string(),
                labels::valid_label_value(&backup_name),
            ),
            (labels::BACKUP_UID.to_string(), backup_uid.clone()),
        ]);
        let mut annotations = BTreeMap::new();
        if let Some(claim) = &volume.claim {
            if let Some(uid) = self.claim_uid(&pod_ns, claim).await {
                tags.insert("pvc-uid".to_string(), uid.clone());
                pvb_labels.insert(labels::PVC_UID.to_string(), uid);
            }
            annotations.insert(labels::PVC_NAME.to_string(), claim.clone());
        }
        let mut pvb = PodVolumeBackup::new(
            "",
            PodVolumeBackupSpec {
                node: text("/spec/nodeName"),
                pod: ObjectReference {
                    kind: Some("Pod".into()),
                    namespace: Some(pod_ns.clone()),
                    name: Some(pod_name.clone()),
                    uid: Some(pod_uid),
                    ..Default::default()
                },
                volume: volume.name.clone(),
                backup_storage_location: self.location.clone(),
                repo_identifier: self.repository_identifier(&pod_ns).unwrap_or_default(),
                uploader_type: velero_podvolume::uploader_of(self.format),
                tags: Some(tags),
                uploader_settings: None,
                cancel: None,
            },
        );
        pvb.metadata.name = None;
        pvb.metadata.generate_name = Some(format!("{backup_name}-"));
        pvb.metadata.namespace = Some(self.namespace.clone());
        pvb.metadata.labels = Some(pvb_labels);
        pvb.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        pvb.metadata.owner_references = self.backup.controller_owner_ref(&()).map(|o| vec![o]);
        let api: Api<PodVolumeBackup> = Api::namespaced(self.client.clone(), &self.namespace);
        api.create(&PostParams::default(), &pvb)
            .await
            .map_err(|source| CreateError {
                kind: "PodVolumeBackup",
                volume: volume.name.clone(),
                source,
            })
    }

    /// The volume policy action of each of the pod's candidate volumes that a policy matches,
    /// looked up as Velero's `ShouldPerformFSBackup` does: a claim's volume by its
    /// PersistentVolume and claim, other volumes by their source. A claim whose
    /// PersistentVolume cannot be read and that no policy matches is an error, and the volume is
    /// not backed up.
    async fn policy_actions(
        &self,
        policies: &velero_resource_policies::ResourcePolicies,
        pod: &Value,
        log: &Mutex<OperationLog>,
        ctx: Context<'_>,
    ) -> HashMap<String, ActionType> {
        use velero_resource_policies::VolumeFacts;
        let ns = ctx.namespace.unwrap_or_default();
        let mut actions = HashMap::new();
        for volume in velero_podvolume::candidate_volumes(pod) {
            let name = volume["name"].as_str().unwrap_or_default().to_string();
            let facts = match volume
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                None => Ok(VolumeFacts::from_pod_volume(volume)),
                Some(claim) => self.claim_facts(ns, claim, volume).await,
            };
            let action = match &facts {
                Ok(facts) | Err((facts, _)) => policies.volume_action(facts),
            };
            match (action, facts) {
                (Some(action), _) => {
                    actions.insert(name, action);
                }
                (None, Err((_, problem))) => {
                    locked(log).error(
                        &format!("Error deciding whether to back up pod volume {name}"),
                        &problem,
                        ctx,
                    );
                    actions.insert(name, ActionType::Skip);
                }
                (None, Ok(_)) => {}
            }
        }
        actions
    }

    /// What the volume policies see of a claim-backed volume: its PersistentVolume and claim, or,
    /// with the reason, the pod volume and whatever of the claim could be read.
    async fn claim_facts(
        &self,
        namespace: &str,
        claim: &str,
        volume: &Value,
    ) -> Result<
        velero_resource_policies::VolumeFacts,
        (velero_resource_policies::VolumeFacts, String),
    > {
        use velero_resource_policies::VolumeFacts;
        let pod_volume = VolumeFacts::from_pod_volume(volume);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let found = match claims.get(claim).await {
            Ok(found) => found,
            Err(e) => return Err((pod_volume, format!("getting PVC {namespace}/{claim}: {e}"))),
        };
        let claim_json = serde_json::to_value(&found).unwrap_or(Value::Null);
        let Some(pv_name) = found
            .spec
            .and_then(|s| s.volume_name)
            .filter(|n| !n.is_empty())
        else {
            return Err((
                pod_volume.with_claim(&claim_json),
                format!("PVC {namespace}/{claim} is not bound to a PersistentVolume"),
            ));
        };
        let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(self.client.clone());
        match pvs.get(&pv_name).await {
            Ok(pv) => Ok(VolumeFacts::from_persistent_volume(
                &serde_json::to_value(&pv).unwrap_or(Value::Null),
            )
            .with_claim(&claim_json)),
            Err(e) => Err((
                pod_volume.with_claim(&claim_json),
                format!("getting PersistentVolume {pv_name} of PVC {namespace}/{claim}: {e}"),
            )),
        }
    }

    async fn back_up_pod(&self, pod: &Value, log: &Mutex<OperationLog>) {
        let text = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let (ns, name) = (text("/metadata/namespace"), text("/metadata/name"));
        let ctx = Context {
            namespace: Some(ns),
            resource: Some("pods"),
            name: Some(name),
        };
        let actions = match &self.policies {
            Some(policies) => self.policy_actions(policies, pod, log, ctx).await,
            None => HashMap::new(),
        };
        let volumes = velero_podvolume::volumes_to_back_up(pod, self.default_to_fs_backup, &|v| {
            actions.get(v).copied()
        });
        if volumes.is_empty() {
            return;
        }
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        if text("/status/phase") != "Running" {
            locked(log).warn(
                &format!("Skip pod volume backup of volumes {names:?}: the pod is not running (phase {:?})", text("/status/phase")),
                ctx,
            );
            return;
        }
        if let Err(e) = self.ensure_repository(ns).await {
            locked(log).error("Error backing up pod volumes", &e.to_string(), ctx);
            return;
        }
        let mut created = Vec::new();
        for volume in &volumes {
            match self.create(pod, volume).await {
                Ok(pvb) => created.push((volume.name.clone(), pvb.name_any())),
                Err(e) => locked(log).error("Error backing up pod volume", &e.to_string(), ctx),
            }
        }
        for (volume, pvb_name) in created {
            match self.ended().until_ended(&pvb_name, self.timeout).await {
                Ok(pvb) => {
                    let status = pvb.status.clone().unwrap_or_default();
                    if status.phase == Some(DataPathPhase::Completed) {
                        locked(log).info(
                            &format!(
                                "Pod volume backup {pvb_name} of volume {volume} completed: snapshot {}",
                                status.snapshot_id.clone().unwrap_or_default()
                            ),
                            ctx,
                        );
                    } else {
                        let message = status.message.clone().unwrap_or_default();
                        locked(log).error(
                            &format!(
                                "Error backing up pod volume {volume} (PodVolumeBackup {pvb_name})"
                            ),
                            &message,
                            ctx,
                        );
                    }
                    locked(&self.finished).push(pvb);
                }
                Err(e) => locked(log).error(
                    &format!("Error backing up pod volume {volume}"),
                    &e.to_string(),
                    ctx,
                ),
            }
        }
    }
}

impl velero_backup::engine::PodVolumes for PodVolumeBackupper {
    fn back_up<'a>(
        &'a self,
        pod: &'a Value,
        log: &'a Mutex<OperationLog>,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(self.back_up_pod(pod, log))
    }
}
