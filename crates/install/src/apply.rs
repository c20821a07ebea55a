//! Sending rendered objects to the cluster, waiting for them, and taking them away again.

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::{self, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// Field manager of everything `velero install` applies (the same as Velero's CLI).
const FIELD_MANAGER: &str = "velero-cli";

/// What applying one object did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// `Kind/name`, as Velero prints it.
    pub id: String,
    pub change: Change,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{id}: {message}")]
    Object { id: String, message: String },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("{what} cannot become ready: {problem}")]
    NotReady { what: String, problem: String },
    #[error("{context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },
}

fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> ApplyError {
    let context = context.into();
    move |source| ApplyError::Kube { context, source }
}

fn id_of(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Server-side applies every object in order (CRDs are waited for before anything else), printing
/// Velero's progress lines to `out`. Applying the same objects again changes nothing.
pub async fn apply(
    client: &Client,
    objects: &[Value],
    out: &mut (dyn Write + Send),
) -> Result<Vec<ApplyOutcome>, ApplyError> {
    let (crds, others): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|o| o["kind"] == "CustomResourceDefinition");
    let mut outcomes = Vec::with_capacity(objects.len());
    for object in &crds {
        outcomes.push(apply_one(client, object, out).await?);
    }
    if !crds.is_empty() {
        let _ = writeln!(out, "Waiting for resources to be ready in cluster...");
        let names: Vec<String> = crds
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        wait_for_crds_established(client, &names, Duration::from_secs(60)).await?;
    }
    for object in &others {
        outcomes.push(apply_one(client, object, out).await?);
    }
    Ok(outcomes)
}

async fn apply_one(
    client: &Client,
    object: &Value,
    out: &mut (dyn Write + Send),
) -> Result<ApplyOutcome, ApplyError> {
    let id = id_of(object);
    let fail = |message: String| ApplyError::Object {
        id: id.clone(),
        message,
    };
    let _ = writeln!(out, "{id}: attempting to apply resource");
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = discovery::pinned_kind(client, &gvk).await.map_err(|e| {
        fail(format!(
            "the cluster does not serve {api_version} {kind}: {e}"
        ))
    })?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .ok_or_else(|| fail("namespaced object without a namespace".into()))?;
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let before = api
        .get_opt(name)
        .await
        .map_err(|e| fail(format!("reading the current object: {e}")))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api
        .patch(name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| fail(format!("applying: {e}")))?;
    let change = match before {
        None => Change::Created,
        Some(before) if comparable(&before) == comparable(&after) => Change::Unchanged,
        Some(_) => Change::Configured,
    };
    let word = match change {
        Change::Created => "created",
        Change::Configured => "applied",
        Change::Unchanged => "unchanged",
    };
    let _ = writeln!(out, "{id}: {word}");
    Ok(ApplyOutcome { id, change })
}

/// An object without what the server and controllers change on their own (status, versions,
/// field ownership): the resource version alone cannot tell whether an apply changed anything,
/// since a controller may write status between two applies.
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for volatile in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(volatile);
        }
    }
    value
}

/// Waits until every named CRD is Established and its names accepted.
pub async fn wait_for_crds_established(
    client: &Client,
    names: &[String],
    timeout: Duration,
) -> Result<(), ApplyError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    for name in names {
        loop {
            let crd = api
                .get_opt(name)
                .await
                .map_err(kube_err(format!("reading CRD {name}")))?;
            let ready = crd
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|conds| {
                    ["Established", "NamesAccepted"]
                        .iter()
                        .all(|t| conds.iter().any(|c| c.type_ == *t && c.status == "True"))
                });
            if ready {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::Timeout(
                    timeout,
                    format!("CRD {name} to be established"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// A workload `velero install` waits for with `--wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The server Deployment `velero` (pods labelled `deploy=velero`).
    Server,
    /// The node-agent DaemonSet (pods labelled `name=node-agent`).
    NodeAgent,
}

impl Workload {
    /// Kind and name.
    fn object(self) -> (&'static str, &'static str) {
        match self {
            Workload::Server => ("Deployment", "velero"),
            Workload::NodeAgent => ("DaemonSet", "node-agent"),
        }
    }

    fn describe(self, namespace: &str) -> String {
        let (kind, name) = self.object();
        format!("{kind} {namespace}/{name}")
    }

    fn pod_selector(self) -> &'static str {
        match self {
            Workload::Server => "deploy=velero",
            Workload::NodeAgent => "name=node-agent",
        }
    }
}

/// Container states that do not go away by waiting: the image cannot be had, or the container
/// cannot be created or keeps crashing.
const HOPELESS_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// Waits until `workload` is ready: the Deployment Available with every replica updated and
/// available, or every scheduled DaemonSet pod available. Fails at once, naming the pod, container
/// and reason, when one of its pods is in a state waiting cannot mend (an image that cannot be
/// pulled, a crash loop), where Velero would wait out its timeout.
pub async fn wait_for_ready(
    client: &Client,
    namespace: &str,
    workload: Workload,
    timeout: Duration,
) -> Result<(), ApplyError> {
    let what = workload.describe(namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ready = match workload {
            Workload::Server => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                api.get_opt(workload.object().1)
                    .await
                    .map_err(kube_err(format!("reading {what}")))?
                    .is_some_and(|d| deployment_ready(&d))
            }
            Workload::NodeAgent => {
                let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
                api.get_opt(workload.object().1)
                    .await
                    .map_err(kube_err(format!("reading {what}")))?
                    .is_some_and(|d| daemon_set_ready(&d))
            }
        };
        if ready {
            return Ok(());
        }
        let list = pods
            .list(&ListParams::default().labels(workload.pod_selector()))
            .await
            .map_err(kube_err(format!("listing the pods of {what}")))?;
        if let Some(problem) = list.items.iter().find_map(pod_problem) {
            return Err(ApplyError::NotReady { what, problem });
        }
        if tokio::time::Instant::now() >= deadline {
            let (kind, name) = workload.object();
            let kind = kind.to_lowercase();
            return Err(ApplyError::Timeout(
                timeout,
                format!(
                    "{what} to be ready (check `kubectl -n {namespace} describe {kind} {name}` and its pods' events)"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `kubectl rollout status`'s rule: the controller has seen the current spec, every replica runs it,
/// no pod of an older template is left, and all are available. (An old pod still serving must not
/// make a rollout to a broken image look finished.)
fn deployment_ready(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return false;
    };
    let updated = status.updated_replicas.unwrap_or(0);
    d.metadata.generation.is_some()
        && status.observed_generation >= d.metadata.generation
        && updated >= want
        && status.replicas.unwrap_or(0) == updated
        && status.available_replicas.unwrap_or(0) >= updated
}

fn daemon_set_ready(d: &DaemonSet) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    // The controller has seen the current spec, placed its pods, and every one is available.
    d.metadata.generation.is_some()
        && status.observed_generation >= d.metadata.generation
        && status.desired_number_scheduled > 0
        && status.number_available.unwrap_or(0) == status.desired_number_scheduled
        && status.updated_number_scheduled.unwrap_or(0) == status.desired_number_scheduled
}

/// `pod <name>: container <c> (image <i>): <Reason>: <message>` for a container stuck for good.
fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    containers.into_iter().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        HOPELESS_REASONS.contains(&reason).then(|| {
            let mut problem = format!(
                "pod {}: container {} (image {}): {reason}",
                pod.name_any(),
                c.name,
                c.image
            );
            if let Some(message) = waiting.message.as_deref().filter(|m| !m.is_empty()) {
                problem.push_str(": ");
                problem.push_str(message);
            }
            if reason.contains("Image") {
                problem.push_str(
                    " (the node cannot get this image: push it to a registry the nodes can pull \
                     from, or import it on every node, and pass it with --image)",
                );
            }
            problem
        })
    })
}

/// Removes what `velero install` created: Velero objects' finalizers (so nothing blocks on a
/// server that is going away), the namespace, the ClusterRoleBinding and the CRDs.
pub async fn uninstall(
    client: &Client,
    namespace: &str,
    wait: Option<Duration>,
    out: &mut (dyn Write + Send),
) -> Result<(), ApplyError> {
    release_finalizers(client, namespace).await?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(namespace, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.is_not_found() => {
            let _ = writeln!(
                out,
                "Velero namespace {namespace:?} does not exist, skipping."
            );
        }
        Err(e) => return Err(kube_err(format!("deleting namespace {namespace}"))(e)),
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = crate::cluster_role_binding_name(namespace);
    match bindings.delete(&binding, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.is_not_found() => {}
        Err(e) => {
            return Err(kube_err(format!("deleting ClusterRoleBinding {binding}"))(
                e,
            ));
        }
    }
    if let Some(timeout) = wait {
        let _ = writeln!(
            out,
            "Waiting for Velero namespace {namespace:?} to be deleted"
        );
        let deadline = tokio::time::Instant::now() + timeout;
        while namespaces
            .get_opt(namespace)
            .await
            .map_err(kube_err(format!("reading namespace {namespace}")))?
            .is_some()
        {
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::Timeout(
                    timeout,
                    format!("namespace {namespace} to be deleted"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = writeln!(out, "Velero namespace {namespace:?} deleted");
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let selector = format!("{}={}", crate::COMPONENT_LABEL.0, crate::COMPONENT_LABEL.1);
    crds.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&selector),
    )
    .await
    .map_err(kube_err("deleting the Velero CRDs"))?;
    let _ = writeln!(out, "Velero CRDs deleted");
    let _ = writeln!(out, "Velero uninstalled ⛵");
    Ok(())
}

/// Restores carry a finalizer that only a running server removes; without the server they would
/// keep the namespace in Terminating forever.
async fn release_finalizers(client: &Client, namespace: &str) -> Result<(), ApplyError> {
    let gvk = GroupVersionKind::gvk(velero_api::GROUP, "v1", "Restore");
    let Ok((resource, _)) = discovery::pinned_kind(client, &gvk).await else {
        return Ok(()); // CRDs already gone: nothing can hold a finalizer.
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let restores = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(e)) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(kube_err("listing restores")(e)),
    };
    for restore in restores {
        if restore.finalizers().is_empty() {
            continue;
        }
        let patch = json!({ "metadata": { "finalizers": null } });
        api.patch(
            &restore.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(kube_err(format!(
            "releasing finalizers of restore {}",
            restore.name_any()
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, status: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "velero", "generation": generation},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_rollout_is_ready_only_without_old_pods() {
        let done = json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(deployment_ready(&deployment(2, done)));
        // The new pod cannot start (bad image) while the old one still serves.
        let stuck = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(!deployment_ready(&deployment(2, stuck)));
        let unseen = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(!deployment_ready(&deployment(2, unseen)));
        let starting = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1});
        assert!(!deployment_ready(&deployment(1, starting)));
    }

    #[test]
    fn stuck_containers_are_named_with_their_reason() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "velero-1"},
            "status": {"containerStatuses": [{
                "name": "velero", "image": "velero-rs:nope", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
            }]},
        }))
        .unwrap();
        let problem = pod_problem(&pod).unwrap();
        assert!(
            problem.contains(
                "pod velero-1: container velero (image velero-rs:nope): ImagePullBackOff"
            ),
            "{problem}"
        );
        assert!(problem.contains("--image"), "{problem}");
        let creating: Pod = serde_json::from_value(json!({
            "metadata": {"name": "velero-2"},
            "status": {"containerStatuses": [{
                "name": "velero", "image": "velero-rs:v1", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}},
            }]},
        }))
        .unwrap();
        assert_eq!(pod_problem(&creating), None);
    }
}
