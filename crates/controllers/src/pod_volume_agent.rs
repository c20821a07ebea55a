//! The node agent's half of file-system backup (Velero's pkg/controller/pod_volume_backup_controller.go):
//! every PodVolumeBackup for this node is run here, from the kubelet's directory of the pod's
//! volume into the namespace's repository in the backup storage location.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{DataPathPhase, PodVolumeBackup};
use velero_repository::{RepositoryLocation, SnapshotInfo, VolumeRepository};

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

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AgentError(String);

pub(crate) async fn run(ctx: Arc<AgentCtx>) {
    let api: Api<PodVolumeBackup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    crate::run_controller("pod volume backup", api, ctx, reconcile).await;
}

async fn reconcile(pvb: Arc<PodVolumeBackup>, ctx: Arc<AgentCtx>) -> Result<Action, AgentError> {
    let phase = pvb.status.as_ref().and_then(|s| s.phase);
    if pvb.spec.node != ctx.node || !matches!(phase, None | Some(DataPathPhase::New)) {
        return Ok(Action::await_change());
    }
    let name = pvb.name_any();
    let api: Api<PodVolumeBackup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let patch = |body: serde_json::Value| {
        let api = api.clone();
        let name = name.clone();
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map_err(|e| AgentError(format!("updating PodVolumeBackup {name}: {e}")))
        }
    };
    patch(json!({ "status": { "phase": DataPathPhase::InProgress, "startTimestamp": crate::now(), "node": ctx.node } })).await?;
    let _slot = ctx
        .slots
        .acquire()
        .await
        .map_err(|e| AgentError(e.to_string()))?;
    let started = std::time::Instant::now();
    let body = match back_up(&ctx, &pvb).await {
        Ok((path, snap)) => {
            tracing::info!(pvb = %name, snapshot = %snap.id, bytes = snap.total_bytes, added = snap.added_bytes, elapsed = ?started.elapsed(), "pod volume backed up");
            let bytes = i64::try_from(snap.total_bytes).unwrap_or(i64::MAX);
            json!({ "status": {
                "phase": DataPathPhase::Completed,
                "path": path.display().to_string(),
                "snapshotID": snap.id,
                "progress": { "totalBytes": bytes, "bytesDone": bytes },
                "incrementalBytes": i64::try_from(snap.added_bytes).unwrap_or(i64::MAX),
                "completionTimestamp": crate::now(),
            } })
        }
        Err(message) => {
            tracing::warn!(pvb = %name, "pod volume backup failed: {message}");
            json!({ "status": { "phase": DataPathPhase::Failed, "message": message, "completionTimestamp": crate::now() } })
        }
    };
    patch(body).await?;
    Ok(Action::await_change())
}

/// The directory the kubelet keeps a pod volume in: `<pods>/<uid>/volumes/<plugin>/<name>`, where
/// the name is the PersistentVolume's for a claim, and CSI volumes keep their data in `mount`
/// (Velero's `GetVolumeDirectory` and `SingleGlob`).
async fn volume_dir(ctx: &AgentCtx, pvb: &PodVolumeBackup) -> Result<PathBuf, String> {
    let pod_ref = &pvb.spec.pod;
    let (ns, pod_name) = (
        pod_ref.namespace.clone().unwrap_or_default(),
        pod_ref.name.clone().unwrap_or_default(),
    );
    let uid = pod_ref.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = pods
        .get(&pod_name)
        .await
        .map_err(|e| format!("getting pod {ns}/{pod_name}: {e}"))?;
    let volume = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| v.name == pvb.spec.volume)
        .ok_or_else(|| format!("pod {ns}/{pod_name} has no volume {}", pvb.spec.volume))?;
    let (dir_name, csi) = match &volume.persistent_volume_claim {
        Some(claim) => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            let pvc = claims
                .get(&claim.claim_name)
                .await
                .map_err(|e| format!("getting claim {ns}/{}: {e}", claim.claim_name))?;
            let pv_name = pvc
                .spec
                .and_then(|s| s.volume_name)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("claim {ns}/{} is not bound", claim.claim_name))?;
            let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
            let pv = pvs
                .get(&pv_name)
                .await
                .map_err(|e| format!("getting volume {pv_name}: {e}"))?;
            let csi = pv.spec.as_ref().is_some_and(|s| s.csi.is_some());
            (pv_name, csi)
        }
        None => (volume.name.clone(), volume.csi.is_some()),
    };
    let volumes = ctx.host_pods.join(&uid).join("volumes");
    let entries = std::fs::read_dir(&volumes).map_err(|e| {
        format!(
            "reading {}: {e} (is the pod on this node, and --kubelet-root-dir the kubelet's?)",
            volumes.display()
        )
    })?;
    let found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|plugin| plugin.path().join(&dir_name))
        .filter(|p| p.is_dir())
        .collect();
    let [dir] = found.as_slice() else {
        return Err(format!(
            "expected one directory {dir_name} under {}, found {}",
            volumes.display(),
            found.len()
        ));
    };
    Ok(if csi { dir.join("mount") } else { dir.clone() })
}

async fn back_up(ctx: &AgentCtx, pvb: &PodVolumeBackup) -> Result<(PathBuf, SnapshotInfo), String> {
    let path = volume_dir(ctx, pvb).await?;
    let bsl = crate::locations::get_location(
        &ctx.client,
        &ctx.namespace,
        &pvb.spec.backup_storage_location,
    )
    .await
    .map_err(|e| e.to_string())?;
    let store = crate::locations::open_store(&ctx.client, &ctx.namespace, &bsl)
        .await
        .map_err(|e| e.to_string())?;
    let ns = pvb.spec.pod.namespace.clone().unwrap_or_default();
    let location = RepositoryLocation {
        store: store.store().clone(),
        root: format!(
            "{}{}",
            store.layout().root(),
            velero_podvolume::repository_prefix(&ns)
        )
        .into(),
        cache_dir: None,
    };
    let password = velero_podvolume::read_password(&ctx.client, &ctx.namespace)
        .await
        .map_err(|e| e.to_string())?;
    let tags: Vec<String> = pvb
        .spec
        .tags
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let runtime = tokio::runtime::Handle::current();
    let source = path.clone();
    let snapshot = tokio::task::spawn_blocking(move || {
        let repo = VolumeRepository::open_or_init(&location, &password, runtime)?;
        repo.backup(&source, "velero", &tags, None)
            .map(|(_, snap)| snap)
    })
    .await
    .map_err(|e| format!("the backup task ended abnormally: {e}"))?
    .map_err(|e| e.to_string())?;
    Ok((path, snapshot))
}
