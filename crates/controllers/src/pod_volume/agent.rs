//! The node agent's half of file-system backup (Velero's pkg/controller/pod_volume_backup_controller.go):
//! every PodVolumeBackup for this node is run here, from the kubelet's directory of the pod's
//! volume into the namespace's repository in the backup storage location.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{DataPathPhase, PodVolumeBackup, PodVolumeRestore};
use velero_repository::{
    RepositoryError, RepositoryFormat, RepositoryLocation, SnapshotInfo, VolumeSource,
};

use crate::pod_volume::repositories::{Open, with_repository};

/// Volumes of one node backed up at once. Velero runs one (`loadConcurrency`); reading is cheap
/// next to hashing and compressing, which use every core anyway.
const CONCURRENT_VOLUMES: usize = 2;

pub(crate) struct AgentCtx {
    pub(crate) client: Client,
    pub(crate) namespace: String,
    pub(crate) node: String,
    pub(crate) host_pods: PathBuf,
    pub(crate) slots: tokio::sync::Semaphore,
}

impl AgentCtx {
    pub(crate) fn new(client: Client, namespace: &str, node: &str, host_pods: &Path) -> Self {
        AgentCtx {
            client,
            namespace: namespace.to_string(),
            node: node.to_string(),
            host_pods: host_pods.to_path_buf(),
            slots: tokio::sync::Semaphore::new(CONCURRENT_VOLUMES),
        }
    }
}

/// Why a reconcile of the agent failed (it is retried): the status of the PodVolumeBackup or
/// PodVolumeRestore could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    #[error(transparent)]
    Status(#[from] crate::operation::OperationError),
    /// A bug: the node's slots were closed while the agent runs.
    #[error("the node's data-path slots are closed")]
    Slots(#[from] tokio::sync::AcquireError),
}

/// Why the agent could not move a volume's data. The message becomes the PodVolumeBackup's or
/// PodVolumeRestore's `status.message`, so each names the object or path to look at.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataPathError {
    #[error("getting {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("pod {pod} has no volume {volume}")]
    NoVolume { pod: String, volume: String },
    #[error("claim {0} is not bound")]
    Unbound(String),
    #[error(
        "reading {}: {source} (is the pod on this node, and --kubelet-root-dir the kubelet's?)",
        dir.display()
    )]
    HostDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("expected one directory {name} under {}, found {found}", dir.display())]
    VolumeDirs {
        name: String,
        dir: PathBuf,
        found: usize,
    },
    #[error(transparent)]
    Access(#[from] crate::pod_volume::repositories::AccessError),
    #[error("repository of namespace {namespace} in backup storage location {location}: {source}")]
    Repository {
        location: String,
        namespace: String,
        #[source]
        source: RepositoryError,
    },
    #[error("the PodVolumeRestore has no velero.io/restore-uid label")]
    NoRestoreUid,
    #[error("writing the done-marker into {}: {source}", dir.display())]
    Marker {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn read(what: String) -> impl FnOnce(kube::Error) -> DataPathError {
    move |source| DataPathError::Read { what, source }
}

/// Velero's node agent at start: this node's volume backups and restores that a previous agent
/// left running are Failed (nothing resumes them), so their backups and restores end.
pub(crate) async fn fail_interrupted(ctx: &AgentCtx) {
    let running = |phase: Option<DataPathPhase>| {
        matches!(
            phase,
            Some(DataPathPhase::InProgress | DataPathPhase::Accepted | DataPathPhase::Prepared)
        )
    };
    let backups: Api<PodVolumeBackup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let reason = "found a podvolumebackup with status \"InProgress\" during the server starting, mark it as \"Failed\"";
    let mine = |p: &PodVolumeBackup| p.spec.node == ctx.node && running(p.phase());
    if let Err(e) = crate::fail_interrupted_with(&backups, mine, "message", reason).await {
        tracing::warn!("marking interrupted PodVolumeBackups Failed: {e}");
    }
    let restores: Api<PodVolumeRestore> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let reason = "found a podvolumerestore with status \"InProgress\" during the server starting, mark it as \"Failed\"";
    let mine = |p: &PodVolumeRestore| {
        let status = p.status.as_ref();
        status.and_then(|s| s.node.as_deref()) == Some(ctx.node.as_str())
            && running(status.and_then(|s| s.phase))
    };
    if let Err(e) = crate::fail_interrupted_with(&restores, mine, "message", reason).await {
        tracing::warn!("marking interrupted PodVolumeRestores Failed: {e}");
    }
}

pub(crate) async fn run(ctx: Arc<AgentCtx>) {
    let api: Api<PodVolumeBackup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    crate::run_controller("pod volume backup", crate::controller(api), ctx, reconcile).await;
}

async fn reconcile(pvb: Arc<PodVolumeBackup>, ctx: Arc<AgentCtx>) -> Result<Action, AgentError> {
    let phase = pvb.phase();
    if pvb.spec.node != ctx.node || !matches!(phase, None | Some(DataPathPhase::New)) {
        return Ok(Action::await_change());
    }
    let api: Api<PodVolumeBackup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = pvb.name_any();
    run_data_path(&ctx, &api, &name, "pod volume backup", async {
        let started = std::time::Instant::now();
        let (path, snap) = back_up(&ctx, &pvb).await?;
        tracing::info!(pvb = %name, snapshot = %snap.id, bytes = snap.total_bytes, added = snap.added_bytes, elapsed = ?started.elapsed(), "pod volume backed up");
        let bytes = i64::try_from(snap.total_bytes).unwrap_or(i64::MAX);
        Ok(json!({
            "path": path.display().to_string(),
            "snapshotID": snap.id,
            "progress": { "totalBytes": bytes, "bytesDone": bytes },
            "incrementalBytes": i64::try_from(snap.added_bytes).unwrap_or(i64::MAX),
        }))
    })
    .await
}

/// Velero's data path for one PodVolumeBackup or PodVolumeRestore: InProgress on this node, a
/// slot among the node's concurrent volumes, the work, then Completed with the status fields the
/// work returns, or Failed with its message.
async fn run_data_path<K>(
    ctx: &AgentCtx,
    api: &Api<K>,
    name: &str,
    what: &str,
    work: impl std::future::Future<Output = Result<serde_json::Value, DataPathError>>,
) -> Result<Action, AgentError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let start = json!({ "status": { "phase": DataPathPhase::InProgress, "startTimestamp": crate::now(), "node": ctx.node } });
    crate::operation::patch(api, name, start).await?;
    let _slot = ctx.slots.acquire().await?;
    let status = match work.await {
        Ok(mut fields) => {
            fields["phase"] = json!(DataPathPhase::Completed);
            fields["completionTimestamp"] = json!(crate::now());
            fields
        }
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(name, "{what} failed: {message}");
            json!({ "phase": DataPathPhase::Failed, "message": message, "completionTimestamp": crate::now() })
        }
    };
    crate::operation::patch(api, name, json!({ "status": status })).await?;
    Ok(Action::await_change())
}

/// The directory the kubelet keeps a pod volume in: `<pods>/<uid>/volumes/<plugin>/<name>`, where
/// the name is the PersistentVolume's for a claim, and CSI volumes keep their data in `mount`
/// (Velero's `GetVolumeDirectory` and `SingleGlob`).
async fn volume_dir(
    ctx: &AgentCtx,
    pod_ref: &k8s_openapi::api::core::v1::ObjectReference,
    volume_name: &str,
) -> Result<PathBuf, DataPathError> {
    let (ns, pod_name) = (
        pod_ref.namespace.clone().unwrap_or_default(),
        pod_ref.name.clone().unwrap_or_default(),
    );
    let uid = pod_ref.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = pods
        .get(&pod_name)
        .await
        .map_err(read(format!("pod {ns}/{pod_name}")))?;
    let volume = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| v.name == volume_name)
        .ok_or_else(|| DataPathError::NoVolume {
            pod: format!("{ns}/{pod_name}"),
            volume: volume_name.to_string(),
        })?;
    let (dir_name, csi) = match &volume.persistent_volume_claim {
        Some(claim) => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            let pvc = claims
                .get(&claim.claim_name)
                .await
                .map_err(read(format!("claim {ns}/{}", claim.claim_name)))?;
            let pv_name = pvc
                .spec
                .and_then(|s| s.volume_name)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| DataPathError::Unbound(format!("{ns}/{}", claim.claim_name)))?;
            let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
            let pv = pvs
                .get(&pv_name)
                .await
                .map_err(read(format!("volume {pv_name}")))?;
            let csi = pv.spec.as_ref().is_some_and(|s| s.csi.is_some());
            (pv_name, csi)
        }
        None => (volume.name.clone(), volume.csi.is_some()),
    };
    let volumes = ctx.host_pods.join(&uid).join("volumes");
    let entries = std::fs::read_dir(&volumes).map_err(|source| DataPathError::HostDir {
        dir: volumes.clone(),
        source,
    })?;
    let found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|plugin| plugin.path().join(&dir_name))
        .filter(|p| p.is_dir())
        .collect();
    let [dir] = found.as_slice() else {
        return Err(DataPathError::VolumeDirs {
            name: dir_name,
            dir: volumes,
            found: found.len(),
        });
    };
    Ok(if csi { dir.join("mount") } else { dir.clone() })
}

async fn repository(
    ctx: &AgentCtx,
    location: &str,
    volume_namespace: &str,
    format: RepositoryFormat,
) -> Result<(RepositoryLocation, String), DataPathError> {
    Ok(crate::pod_volume::repositories::find(
        &ctx.client,
        &ctx.namespace,
        location,
        volume_namespace,
        format,
    )
    .await?)
}

/// Names the repository and the location in an error of the data path, so that the volume's
/// status says where to look.
fn in_repository(
    location: &str,
    volume_namespace: &str,
) -> impl FnOnce(RepositoryError) -> DataPathError {
    let (location, namespace) = (location.to_string(), volume_namespace.to_string());
    move |source| DataPathError::Repository {
        location,
        namespace,
        source,
    }
}

async fn back_up(
    ctx: &AgentCtx,
    pvb: &PodVolumeBackup,
) -> Result<(PathBuf, SnapshotInfo), DataPathError> {
    let path = volume_dir(ctx, &pvb.spec.pod, &pvb.spec.volume).await?;
    let ns = pvb.spec.pod.namespace.clone().unwrap_or_default();
    let format = velero_podvolume::format_of(pvb.spec.uploader_type);
    let (location, password) =
        repository(ctx, &pvb.spec.backup_storage_location, &ns, format).await?;
    let tags: Vec<String> = pvb
        .spec
        .tags
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let claim = pvb
        .annotations()
        .get(velero_api::labels::PVC_NAME)
        .filter(|c| !c.is_empty())
        .cloned();
    let volume = VolumeSource {
        pod_namespace: ns.clone(),
        pod_name: pvb.spec.pod.name.clone().unwrap_or_default(),
        // Velero's kopia source names the claim, so a new pod of the same claim finds its parent.
        volume: claim.unwrap_or_else(|| pvb.spec.volume.clone()),
        host: "velero".into(),
        // restic: a claim's previous snapshot is the parent whatever pod mounted it (Velero's
        // getParentSnapshot by pvc-uid).
        parent_tag: tags.iter().find(|t| t.starts_with("pvc-uid=")).cloned(),
        tags,
    };
    let source = path.clone();
    let progress = Arc::new(velero_repository::ByteProgress::default());
    let reporter = report_progress::<PodVolumeBackup>(ctx, &pvb.name_any(), progress.clone());
    let counting = progress.clone();
    let snapshot = with_repository(
        format,
        location,
        password,
        Open::OrInitCounting(progress),
        move |repo| {
            repo.backup(&source, &volume, &counting)
                .map(|(_, snap)| snap)
        },
    )
    .await
    .map_err(in_repository(&pvb.spec.backup_storage_location, &ns));
    reporter.abort();
    let snapshot = snapshot?;
    Ok((path, snapshot))
}

/// Reports `progress` into the object's `status.progress` (bytesDone/totalBytes) every second
/// while its data moves, as Velero's node agent does, until the returned task is aborted.
fn report_progress<K>(
    ctx: &AgentCtx,
    name: &str,
    progress: Arc<velero_repository::ByteProgress>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = name.to_string();
    tokio::spawn(async move {
        let mut last = (0, 0);
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let (done, total) = progress.get();
            if (done, total) != last {
                last = (done, total);
                let body =
                    json!({ "status": { "progress": { "bytesDone": done, "totalBytes": total } } });
                if let Err(e) = crate::operation::patch(&api, &name, body).await {
                    tracing::debug!("reporting the progress of {name}: {e}");
                }
            }
        }
    })
}

/// What the PodVolumeRestore controller reads: the agent, and this node's pods as its watch of
/// them last saw them.
struct RestoreCtx {
    agent: Arc<AgentCtx>,
    pods: Store<Pod>,
}

/// The PodVolumeRestore controller, woken by its PodVolumeRestores and by changes to the pods on
/// this node (Velero's `findVolumeRestoresForPod` watch): a restore waits for its pod's
/// restore-wait container on one watch of the node's pods, with no request per waiting volume.
pub(crate) async fn run_restores(agent: Arc<AgentCtx>) {
    let api: Api<PodVolumeRestore> = Api::namespaced(agent.client.clone(), &agent.namespace);
    let on_node = watcher::Config::default().fields(&format!("spec.nodeName={}", agent.node));
    let (pods, writer) = reflector::store();
    let pod_changes = reflector::reflector(
        writer,
        watcher::watcher(Api::<Pod>::all(agent.client.clone()), on_node).default_backoff(),
    )
    .touched_objects();
    let controller = crate::controller(api);
    let restores = controller.store();
    let controller = controller.watches_stream(pod_changes, move |pod: Pod| {
        let uid = pod.metadata.uid;
        restores
            .state()
            .into_iter()
            .filter(|pvr| uid.is_some() && pvr.spec.pod.uid == uid)
            .map(|pvr| ObjectRef::from_obj(&*pvr))
            .collect::<Vec<_>>()
    });
    let ctx = Arc::new(RestoreCtx { agent, pods });
    crate::run_controller("pod volume restore", controller, ctx, reconcile_restore).await;
}

/// Whether the pod's `restore-wait` init container runs: the volume is mounted and the app has not
/// started (Velero's `isInitContainerRunning`).
fn waiting_for_data(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.name == velero_restore::pod_volumes::RESTORE_WAIT
                && c.state.as_ref().is_some_and(|s| s.running.is_some())
        })
}

async fn reconcile_restore(
    pvr: Arc<PodVolumeRestore>,
    restore_ctx: Arc<RestoreCtx>,
) -> Result<Action, AgentError> {
    let phase = pvr.phase();
    if !matches!(phase, None | Some(DataPathPhase::New)) {
        return Ok(Action::await_change());
    }
    let pod_ns = pvr.spec.pod.namespace.clone().unwrap_or_default();
    let pod_name = pvr.spec.pod.name.clone().unwrap_or_default();
    // A pod not (yet) on this node, or whose helper does not run yet: its next change on this
    // node wakes the restore again.
    let Some(pod) = restore_ctx
        .pods
        .get(&ObjectRef::new(&pod_name).within(&pod_ns))
        .filter(|pod| pod.metadata.uid == pvr.spec.pod.uid)
    else {
        return Ok(Action::await_change());
    };
    if !waiting_for_data(&pod) {
        return Ok(Action::await_change());
    }
    let ctx = &restore_ctx.agent;
    let api: Api<PodVolumeRestore> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = pvr.name_any();
    run_data_path(ctx, &api, &name, "pod volume restore", async {
        restore(ctx, &pvr).await?;
        tracing::info!(pvr = %name, "pod volume restored");
        let size = pvr.spec.snapshot_size.unwrap_or(0);
        Ok(json!({ "progress": { "totalBytes": size, "bytesDone": size } }))
    })
    .await
}

/// The snapshot's files into the volume, then the done-marker `.velero/<restore-uid>` the
/// restore helper waits for.
async fn restore(ctx: &AgentCtx, pvr: &PodVolumeRestore) -> Result<(), DataPathError> {
    let dir = volume_dir(ctx, &pvr.spec.pod, &pvr.spec.volume).await?;
    let format = velero_podvolume::format_of(pvr.spec.uploader_type);
    let (location, password) = repository(
        ctx,
        &pvr.spec.backup_storage_location,
        &pvr.spec.source_namespace,
        format,
    )
    .await?;
    let restore_uid = pvr
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(velero_api::labels::RESTORE_UID))
        .cloned()
        .ok_or(DataPathError::NoRestoreUid)?;
    let (snapshot, target) = (pvr.spec.snapshot_id.clone(), dir.clone());
    let progress = Arc::new(velero_repository::ByteProgress::default());
    let reporter = report_progress::<PodVolumeRestore>(ctx, &pvr.name_any(), progress.clone());
    let restored = with_repository(format, location, password, Open::Existing, move |repo| {
        repo.restore(&snapshot, &target, &progress).map(|_| ())
    })
    .await
    .map_err(in_repository(
        &pvr.spec.backup_storage_location,
        &pvr.spec.source_namespace,
    ));
    reporter.abort();
    restored?;
    // The helper runs as the app's user, not root, and removes the markers once it sees them all.
    use std::os::unix::fs::PermissionsExt as _;
    let markers = dir.join(".velero");
    std::fs::create_dir_all(&markers)
        .and_then(|()| std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o777)))
        .and_then(|()| std::fs::write(markers.join(&restore_uid), b""))
        .map_err(|source| DataPathError::Marker {
            dir: markers,
            source,
        })
}
