//! Restore dry runs on a real API server: the plan names what the restore would create, update
//! and skip, with the API server's answer to each request sent with `dryRun=All` (quotas, CRD
//! schemas), and the cluster is left exactly as it was.

use crate::support;

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::{Value, json};
use velero_api::v1::RestorePhase;
use velero_test_harness::create_object;

use support::{backup, get, phase, restore, setup, wait_for};

/// Every object's resourceVersion under these list paths, by path and name.
async fn versions(client: &kube::Client, lists: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for list in lists {
        let items = get(client, list).await.unwrap_or(Value::Null);
        for item in items["items"].as_array().into_iter().flatten() {
            out.insert(
                format!(
                    "{list}/{}",
                    item["metadata"]["name"].as_str().unwrap_or_default()
                ),
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    out
}

fn plan_of(env: &support::Env, name: &str) -> anyhow::Result<Value> {
    support::gunzip_json(
        &env.bucket
            .join("restores")
            .join(name)
            .join(format!("restore-{name}-plan.json.gz")),
    )
}

/// The plan's entry for one item.
fn item<'a>(
    plan: &'a Value,
    resource: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<&'a Value> {
    plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["resource"] == resource && i["namespace"] == namespace && i["name"] == name)
        .with_context(|| format!("{resource} {namespace}/{name} in the plan: {plan:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_updates_creates_and_refusals_and_changes_nothing() -> anyhow::Result<()> {
    let env = setup().await?;
    let c = &env.client;
    create_object(c, json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 10}}}}}}}]}})).await?;
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await?;
    for object in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"color": "blue"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "shop"}, "type": "Opaque", "data": {"t": "c2VjcmV0"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"size": 3}}),
    ] {
        create_object(c, object).await?;
    }
    backup(c, "shop", json!({"includedNamespaces": ["shop"]})).await?;

    // The cluster drifts: an edit, a scale, a deletion, an addition.
    let patch = |path: &str, body: Value| {
        let (c, path) = (c.clone(), path.to_string());
        async move {
            let request = http::Request::patch(path)
                .header("Content-Type", "application/merge-patch+json")
                .body(serde_json::to_vec(&body)?)?;
            c.request::<Value>(request)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    patch(
        "/api/v1/namespaces/shop/configmaps/settings",
        json!({"data": {"color": "red"}}),
    )
    .await?;
    patch(
        "/apis/apps/v1/namespaces/shop/deployments/web",
        json!({"spec": {"replicas": 3}}),
    )
    .await?;
    support::delete(c, "/api/v1/namespaces/shop/secrets/token").await?;
    create_object(c, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "extra", "namespace": "shop"},
        "spec": {"ports": [{"port": 81}]}})).await?;
    // Let the controllers finish reacting to the scale before taking the before-picture.
    wait_for("the scaled deployment to settle", || async {
        let d = get(c, "/apis/apps/v1/namespaces/shop/deployments/web").await?;
        (d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["replicas"] == 3)
            .then_some(())
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let lists = [
        "/api/v1/namespaces",
        "/api/v1/namespaces/shop/configmaps",
        "/api/v1/namespaces/shop/secrets",
        "/api/v1/namespaces/shop/services",
        "/api/v1/namespaces/shop/serviceaccounts",
        "/api/v1/namespaces/shop/pods",
        "/apis/apps/v1/namespaces/shop/deployments",
        "/apis/apps/v1/namespaces/shop/replicasets",
        "/apis/example.com/v1/namespaces/shop/widgets",
    ];
    let before = versions(c, &lists).await;

    let done = restore(
        c,
        "plan",
        json!({"backupName": "shop", "existingResourcePolicy": "update", "dryRun": true}),
    )
    .await?;
    assert_eq!(
        phase(&done),
        Some(RestorePhase::DryRunCompleted),
        "{:?}",
        done.status
    );
    assert_eq!(
        versions(c, &lists).await,
        before,
        "a dry run changes nothing"
    );
    assert!(
        get(c, "/api/v1/namespaces/shop/secrets/token")
            .await
            .is_none()
    );

    let plan = plan_of(&env, "plan")?;
    let settings = item(&plan, "configmaps", "shop", "settings")?;
    assert_eq!(settings["action"], "update", "{settings:#}");
    assert_eq!(
        settings["changes"],
        json!([{"path": "data.color", "backup": "blue", "cluster": "red"}]),
        "{settings:#}"
    );
    let web = item(&plan, "deployments.apps", "shop", "web")?;
    assert_eq!(web["action"], "update", "{web:#}");
    assert!(
        web["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c == &json!({"path": "spec.replicas", "backup": 1, "cluster": 3})),
        "{web:#}"
    );
    assert!(web.get("refused").is_none(), "{web:#}");
    let token = item(&plan, "secrets", "shop", "token")?;
    assert_eq!(token["action"], "create", "{token:#}");
    assert!(token.get("refused").is_none(), "{token:#}");
    let widget = item(&plan, "widgets.example.com", "shop", "w1")?;
    assert_eq!(widget["action"], "skip", "{widget:#}");
    assert!(
        widget["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("same as the backed-up version"),
        "{widget:#}"
    );
    // Without the update policy an edited object is left alone, with its diff.
    let done = restore(
        c,
        "plan-none",
        json!({"backupName": "shop", "dryRun": true}),
    )
    .await?;
    assert_eq!(phase(&done), Some(RestorePhase::DryRunCompleted));
    let plan = plan_of(&env, "plan-none")?;
    let settings = item(&plan, "configmaps", "shop", "settings")?;
    assert_eq!(settings["action"], "skip", "{settings:#}");
    assert_eq!(settings["changes"][0]["path"], "data.color", "{settings:#}");
    assert_eq!(
        versions(c, &lists).await,
        before,
        "a dry run changes nothing"
    );

    // Into a namespace whose quota allows no more ConfigMaps, with a modifier that breaks the
    // Widget's schema: each refusal in the API server's words, and nothing created.
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tight"}}),
    )
    .await?;
    create_object(c, json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "few", "namespace": "tight"},
        "spec": {"hard": {"configmaps": "1"}}})).await?;
    wait_for("the quota's usage to be counted", || async {
        let q = get(c, "/api/v1/namespaces/tight/resourcequotas/few").await?;
        q["status"]["used"]["configmaps"].as_str().map(|_| ())
    })
    .await?;
    create_object(c, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "too-big", "namespace": "velero"},
        "data": {"rules.yaml": "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: widgets.example.com\n  patches:\n  - operation: replace\n    path: /spec/size\n    value: \"100\"\n"}})).await?;
    let tight_lists = [
        "/api/v1/namespaces/tight/configmaps",
        "/api/v1/namespaces/tight/secrets",
        "/apis/example.com/v1/namespaces/tight/widgets",
        "/apis/apps/v1/namespaces/tight/deployments",
    ];
    // The controller manager fills a new namespace in its own time (its root CA ConfigMap, the
    // default ServiceAccount's token); what it adds later must not pass for the restore's work.
    wait_for("the controller manager to fill namespace tight", || async {
        get(c, "/api/v1/namespaces/tight/configmaps/kube-root-ca.crt").await?;
        let secrets = get(c, "/api/v1/namespaces/tight/secrets").await?;
        secrets["items"]
            .as_array()?
            .iter()
            .any(|s| s["type"] == "kubernetes.io/service-account-token")
            .then_some(())
    })
    .await?;
    let tight_before = versions(c, &tight_lists).await;
    let done = restore(
        c,
        "refusals",
        json!({"backupName": "shop", "dryRun": true,
        "namespaceMapping": {"shop": "tight"},
        "resourceModifier": {"kind": "configmap", "name": "too-big"}}),
    )
    .await?;
    assert_eq!(
        phase(&done),
        Some(RestorePhase::DryRunCompleted),
        "{:?}",
        done.status
    );
    let plan = plan_of(&env, "refusals")?;
    let settings = item(&plan, "configmaps", "tight", "settings")?;
    assert_eq!(settings["action"], "create");
    assert!(
        settings["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("exceeded quota: few"),
        "{settings:#}"
    );
    let widget = item(&plan, "widgets.example.com", "tight", "w1")?;
    assert_eq!(widget["action"], "create");
    let refused = widget["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("spec.size") && refused.contains("10"),
        "{widget:#}"
    );
    let web = item(&plan, "deployments.apps", "tight", "web")?;
    assert!(web.get("refused").is_none(), "{web:#}");
    assert_eq!(
        versions(c, &tight_lists).await,
        tight_before,
        "nothing was created"
    );

    // A dry run of a schedule's newest backup is refused: its plan could be for another backup
    // than the real restore's.
    let done = restore(
        c,
        "from-schedule",
        json!({"scheduleName": "nightly", "dryRun": true}),
    )
    .await?;
    assert_eq!(phase(&done), Some(RestorePhase::FailedValidation));
    let errors = done
        .status
        .and_then(|s| s.validation_errors)
        .unwrap_or_default()
        .join("\n");
    assert!(errors.contains("a dry run needs a backup name"), "{errors}");
    Ok(())
}
