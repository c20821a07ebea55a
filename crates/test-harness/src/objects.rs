//! Creating arbitrary objects from JSON, as tests seed their fixtures.

use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{self, Scope};
use serde_json::Value;

/// Creates `object` (any kind the server serves, by its `apiVersion` and `kind`), waiting up to
/// 30 s for a just-created CRD's kind to be discoverable, and for a new namespace's default
/// ServiceAccount token, without which the API server refuses pods (HTTP 500, "retry after").
pub async fn create_object(client: &kube::Client, object: Value) -> anyhow::Result<()> {
    let api_version = object["apiVersion"]
        .as_str()
        .context("object without apiVersion")?
        .to_string();
    let kind = object["kind"]
        .as_str()
        .context("object without kind")?
        .to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (resource, caps) = loop {
        match discovery::pinned_kind(client, &gvk).await {
            Ok(found) => break found,
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("{api_version} {kind} is not served"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let api: Api<DynamicObject> = match (caps.scope, object["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    let object: DynamicObject = serde_json::from_value(object)?;
    loop {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status))
                if status.reason == "ServerTimeout" && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("creating a {kind}")),
        }
    }
}

/// The StorageClass of [`local_volume`]s: no provisioner, claims bind as soon as they are created.
pub const LOCAL_STORAGE_CLASS: &str = "velero-local";

/// A `local` PersistentVolume of class [`LOCAL_STORAGE_CLASS`] on [`crate::NODE_NAME`], backed by
/// the directory `path` of this machine (created, writable by any pod user), reclaimed by
/// `Retain` so that a deleted claim's data stays where it was. The class is created with the first
/// volume.
pub async fn local_volume(
    client: &kube::Client,
    name: &str,
    path: &std::path::Path,
    capacity: &str,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
    let classes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("storage.k8s.io", "v1", "StorageClass"),
            "storageclasses",
        ),
    );
    if classes.get_opt(LOCAL_STORAGE_CLASS).await?.is_none() {
        create_object(
            client,
            serde_json::json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": { "name": LOCAL_STORAGE_CLASS },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
            }),
        )
        .await?;
    }
    create_object(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": { "name": name },
            "spec": {
                "capacity": { "storage": capacity },
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": LOCAL_STORAGE_CLASS,
                "local": { "path": path },
                "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [{
                    "key": "kubernetes.io/hostname", "operator": "In", "values": [crate::NODE_NAME],
                }] }] } },
            },
        }),
    )
    .await
}

/// Marks the claim `namespace/name` Bound, as the PV binder would. A control plane without a node
/// runs no binder, and Velero (and velero-rs) take a claim's volume into a backup only when the
/// claim is Bound.
pub async fn bind_claim(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}/status");
    let status = serde_json::json!({"status": {"phase": "Bound",
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}});
    let request = http::Request::patch(path)
        .header("Content-Type", "application/merge-patch+json")
        .body(serde_json::to_vec(&status)?)?;
    client
        .request::<Value>(request)
        .await
        .with_context(|| format!("marking claim {namespace}/{name} Bound"))?;
    Ok(())
}
