//! Install against a real kube-apiserver: the CRDs are accepted and established, Velero manifests
//! round-trip through them, applying twice changes nothing, and uninstall removes everything.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::discovery;
use serde_json::{Value, json};
use velero_api::manifest::VeleroObject;
use velero_install::{Change, InstallOptions};
use velero_test_harness::ControlPlane;
use velero_test_harness::manifests::{prune_nulls, sample_manifests};

async fn dynamic_api(client: &kube::Client, object: &Value) -> Api<DynamicObject> {
    let (group, version) = object["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let (resource, _) = discovery::pinned_kind(client, &gvk)
        .await
        .expect("kind is served");
    Api::namespaced_with(
        client.clone(),
        object["metadata"]["namespace"].as_str().unwrap(),
        &resource,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_established_and_velero_manifests_round_trip() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;

    let crds_only = InstallOptions {
        crds_only: true,
        ..Default::default()
    };
    let mut log = Vec::new();
    let outcomes = velero_install::apply(&client, &crds_only.render(), &mut log).await?;
    assert_eq!(outcomes.len(), 13);
    assert!(outcomes.iter().all(|o| o.change == Change::Created));

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let listed = crds
        .list(&ListParams::default().labels("component=velero"))
        .await?;
    assert_eq!(listed.items.len(), 13);
    for crd in &listed.items {
        let conditions = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == wanted && c.status == "True"),
                "{:?} is not {wanted}: {conditions:?}",
                crd.metadata.name
            );
        }
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "velero"}}))?,
        )
        .await?;

    for (file, manifest) in sample_manifests()? {
        let api = dynamic_api(&client, &manifest).await;
        let object: DynamicObject = serde_json::from_value(manifest.clone())?;
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{file} was rejected by the CRD: {e}"));
        let name = manifest["metadata"]["name"].as_str().unwrap();
        let stored = serde_json::to_value(api.get(name).await?)?;

        let want = prune_nulls(&manifest);
        let got = prune_nulls(&stored);
        // Velero keeps spec-less objects valid by defaulting spec to {}.
        let want_spec = want.get("spec").cloned().unwrap_or(json!({}));
        assert_eq!(got["spec"], want_spec, "{file}: spec");
        assert_eq!(got.get("status"), want.get("status"), "{file}: status");
        for field in ["labels", "annotations"] {
            assert_eq!(
                got["metadata"].get(field),
                want["metadata"].get(field),
                "{file}: {field}"
            );
        }
        // And our types read what the API server returns.
        let typed = VeleroObject::from_value(stored.clone())
            .unwrap_or_else(|e| panic!("{file}: stored object does not read: {e}"));
        assert_eq!(typed, VeleroObject::from_value(stored)?);
    }

    // A manifest that breaks Velero's schema is refused by the API server with the field named.
    let bad = json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "bad-phase", "namespace": "velero"},
        "spec": {}, "status": {"phase": "Sleeping"}
    });
    let api = dynamic_api(&client, &bad).await;
    let err = api
        .create(&PostParams::default(), &serde_json::from_value(bad)?)
        .await
        .expect_err("an unknown phase must be rejected");
    assert!(err.to_string().contains("status.phase"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_twice_changes_nothing_and_uninstall_removes_everything() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    let options = InstallOptions {
        provider: Some("aws".into()),
        bucket: Some("velero-backups".into()),
        prefix: Some("cluster-a".into()),
        backup_location_config: [("region".to_string(), "minio".to_string())].into(),
        snapshot_location_config: [("region".to_string(), "minio".to_string())].into(),
        secret_data: Some(
            b"[default]\naws_access_key_id=minio\naws_secret_access_key=minio123\n".to_vec(),
        ),
        ..Default::default()
    };
    options.validate()?;
    let objects = options.render();

    let mut first_log = Vec::new();
    let first = velero_install::apply(&client, &objects, &mut first_log).await?;
    assert!(
        first.iter().all(|o| o.change == Change::Created),
        "{first:?}"
    );
    let printed = String::from_utf8(first_log)?;
    assert!(printed.contains("Deployment/velero: attempting to apply resource"));
    assert!(printed.contains("BackupStorageLocation/default: created"));

    let mut second_log = Vec::new();
    let second = velero_install::apply(&client, &objects, &mut second_log).await?;
    let changed: Vec<_> = second
        .iter()
        .filter(|o| o.change != Change::Unchanged)
        .collect();
    assert!(changed.is_empty(), "a second install changed {changed:?}");

    let secret: Api<Secret> = Api::namespaced(client.clone(), "velero");
    let data = secret
        .get("cloud-credentials")
        .await?
        .data
        .unwrap_or_default();
    assert!(String::from_utf8(data["cloud"].0.clone())?.contains("aws_access_key_id=minio"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "velero");
    let deployment = deployments.get("velero").await?;
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(container.args.as_deref(), Some(&["server".to_string()][..]));
    let bsl_api = dynamic_api(&client, &json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"namespace": "velero"}})).await;
    let bsl = serde_json::to_value(bsl_api.get("default").await?)?;
    assert_eq!(
        bsl["spec"]["objectStorage"],
        json!({"bucket": "velero-backups", "prefix": "cluster-a"})
    );

    let mut log = Vec::new();
    velero_install::uninstall(&client, "velero", Some(Duration::from_secs(120)), &mut log).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt("velero").await?.is_none());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    assert!(bindings.get_opt("velero").await?.is_none());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // CRD deletion is asynchronous; the objects are gone once the API server has finished.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = crds
            .list(&ListParams::default().labels("component=velero"))
            .await?
            .items
            .len();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} Velero CRDs left after uninstall"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(String::from_utf8(log)?.contains("Velero uninstalled"));
    Ok(())
}
