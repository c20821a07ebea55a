//! Sending rendered objects to the cluster, waiting for them, and taking them away again.

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
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

/// Waits until the server Deployment has all its replicas updated and available.
pub async fn wait_for_deployment_ready(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<(), ApplyError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let deployment = api
            .get_opt("velero")
            .await
            .map_err(kube_err("reading Deployment velero"))?;
        let ready = deployment.is_some_and(|d| {
            let want = d.spec.and_then(|s| s.replicas).unwrap_or(1);
            let status = d.status.unwrap_or_default();
            let available = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            available
                && status.updated_replicas.unwrap_or(0) >= want
                && status.available_replicas.unwrap_or(0) >= want
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::Timeout(
                timeout,
                format!(
                    "Deployment {namespace}/velero to be ready (check `kubectl -n {namespace} describe deployment velero`)"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
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
