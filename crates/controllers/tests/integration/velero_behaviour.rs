//! Cases from Velero's own unit-test tables, and our own beside them, run as a user runs them: real
//! backups and restores on a real API server. Each block is one behaviour where Velero's source
//! (v1.18.1) decides what happens, and the comment names the file.

use crate::support;

use anyhow::Context as _;
use serde_json::{Value, json};
use velero_api::v1::RestorePhase;
use velero_test_harness::create_object;

use support::{backup, delete_all, get, phase, restore, restore_files, setup};

const NS: &str = "vb";

/// Every message of one kind (`errors` or `warnings`) in a restore's or backup's results.
fn messages(results: &Value, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let section = &results[kind];
    for list in [&section["velero"], &section["cluster"]] {
        out.extend(
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(String::from)),
        );
    }
    for list in section["namespaces"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        out.extend(
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(String::from)),
        );
    }
    out
}

fn has(messages: &[String], needle: &str) -> bool {
    messages.iter().any(|m| m.contains(needle))
}

async fn apply(client: &kube::Client, object: Value) -> anyhow::Result<()> {
    create_object(client, object).await.map(|_| ())
}

/// Server-side apply, so managedFields say which node ports the manager set.
async fn server_side_apply(
    client: &kube::Client,
    path: &str,
    object: &Value,
) -> anyhow::Result<Value> {
    let request = http::Request::patch(format!("{path}?fieldManager=ops-team&force=true"))
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(object)?)?;
    Ok(client.request::<Value>(request).await?)
}

fn node_port(service: &Value, port: i64) -> Option<i64> {
    service["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"] == port)?
        .get("nodePort")?
        .as_i64()
}

/// A NodePort Service in another namespace holding `port`, so that a restore which wrongly keeps
/// an allocated node port fails, and one that clears it gets another.
async fn occupy(client: &kube::Client, name: &str, port: i64) -> anyhow::Result<()> {
    apply(
        client,
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": name},
            "ports": [{"port": 80, "nodePort": port}]}}),
    )
    .await
}

/// pkg/backup/actions/backup_pv_action.go: a claim brings its volume only when it is Bound, and a
/// bound claim is stored without dataSource/dataSourceRef, without its selector unless its class
/// is "", and without stale Velero labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bound_claims_bring_their_volumes_and_are_stored_clean() -> anyhow::Result<()> {
    let env = setup().await?;
    let client = &env.client;
    apply(
        client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    let pv = |name: &str, claim: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"disk": name}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                "hostPath": {"path": format!("/tmp/{name}")},
                "claimRef": {"namespace": NS, "name": claim}}})
    };
    // Reserved for a claim that does not exist: the claim naming it stays Pending.
    apply(client, pv("pv-reserved", "someone-else")).await?;
    apply(client, pv("pv-bound", "bound")).await?;
    apply(client, pv("pv-selected", "selected")).await?;
    apply(client, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "waiting", "namespace": NS},
        "spec": {"storageClassName": "", "volumeName": "pv-reserved", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}})).await?;
    apply(client, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "bound", "namespace": NS,
            "labels": {"app": "db", "velero.io/restore-name": "last-week", "velero.io/backup-name": "older"}},
        "spec": {"storageClassName": "", "volumeName": "pv-bound", "accessModes": ["ReadWriteOnce"],
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed"},
            "resources": {"requests": {"storage": "1Gi"}}}})).await?;
    apply(client, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "selected", "namespace": NS},
        "spec": {"storageClassName": "", "volumeName": "pv-selected", "accessModes": ["ReadWriteOnce"],
            "selector": {"matchLabels": {"disk": "pv-selected"}},
            "resources": {"requests": {"storage": "1Gi"}}}})).await?;
    // A control plane without a node runs no binder: bind the two as it would.
    for claim in ["bound", "selected"] {
        velero_test_harness::bind_claim(client, NS, claim).await?;
    }
    let waiting = get(
        client,
        &format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/waiting"),
    )
    .await
    .context("claim waiting")?;
    assert_eq!(waiting["status"]["phase"], "Pending", "{waiting}");

    backup(client, "claims", json!({"includedNamespaces": [NS]})).await?;
    let (log, _, entries) = support::backup_files(&env, "claims")?;
    let item = |path: &str| -> Option<Value> {
        entries
            .get(path)
            .and_then(|b| serde_json::from_slice(b).ok())
    };
    let volume = |name: &str| item(&format!("resources/persistentvolumes/cluster/{name}.json"));
    assert!(
        volume("pv-bound").is_some() && volume("pv-selected").is_some(),
        "{:?}",
        entries.keys()
    );
    assert!(
        volume("pv-reserved").is_none(),
        "a Pending claim's volume is not backed up, as Velero does not: {:?}\n{log}",
        entries.keys()
    );
    let claim = |name: &str| {
        item(&format!(
            "resources/persistentvolumeclaims/namespaces/{NS}/{name}.json"
        ))
        .with_context(|| format!("claim {name} in the tarball"))
    };
    let bound = claim("bound")?;
    assert_eq!(bound["metadata"]["labels"], json!({"app": "db"}), "{bound}");
    assert!(
        bound["spec"].get("dataSource").is_none() && bound["spec"].get("dataSourceRef").is_none(),
        "{bound}"
    );
    // Class "": a statically bound claim keeps the selector that binds it.
    assert_eq!(
        claim("selected")?["spec"]["selector"],
        json!({"matchLabels": {"disk": "pv-selected"}})
    );
    // A claim that is not Bound is stored as it is.
    assert_eq!(claim("waiting")?["spec"]["volumeName"], "pv-reserved");
    Ok(())
}

/// Restore behaviours from pkg/restore/actions (service, change-storage-class, change-image-name)
/// and internal/resourcemodifiers, in one backup and one restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_follow_velero_item_actions_and_modifiers() -> anyhow::Result<()> {
    let env = setup().await?;
    let client = &env.client;
    apply(
        client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;

    // Services (service_action.go). The last-applied annotation is parsed: a null nodePort is an
    // allocated one, a number in a string counts, and the word "healthCheckNodePort" in its text
    // keeps nothing.
    let last_applied = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "applied", "namespace": NS, "annotations": {"note": "healthCheckNodePort"}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "nodePort": 30180},
                      {"name": "admin", "port": 81, "nodePort": null},
                      {"name": "text", "port": 82, "nodePort": "30182"}]}});
    let mut applied = last_applied.clone();
    applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!(last_applied.to_string());
    applied["spec"]["ports"][1]
        .as_object_mut()
        .map(|p| p.remove("nodePort"));
    applied["spec"]["ports"][2]["nodePort"] = json!(30182);
    apply(client, applied).await?;
    // Server-side apply: managedFields say port 90's node port was chosen, not port 91's.
    server_side_apply(
        client,
        &format!("/api/v1/namespaces/{NS}/services/ssa"),
        &json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ssa", "namespace": NS},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "chosen", "port": 90, "nodePort": 30190, "protocol": "TCP"},
                      {"name": "allocated", "port": 91, "protocol": "TCP"}]}}),
    )
    .await?;
    // A null healthCheckNodePort in last-applied: Velero's NestedFloat64 refuses it.
    let null_hc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "null-hc", "namespace": NS},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": null,
            "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let mut with_null = null_hc.clone();
    with_null["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": null_hc.to_string()});
    with_null["spec"]
        .as_object_mut()
        .map(|s| s.remove("healthCheckNodePort"));
    apply(client, with_null).await?;
    let service =
        async |name: &str| get(client, &format!("/api/v1/namespaces/{NS}/services/{name}")).await;
    let before_applied = service("applied").await.context("service applied")?;
    let before_ssa = service("ssa").await.context("service ssa")?;
    let allocated_admin = node_port(&before_applied, 81).context("admin node port")?;
    let allocated_hc = before_applied["spec"]["healthCheckNodePort"]
        .as_i64()
        .context("health check port")?;
    let allocated_ssa = node_port(&before_ssa, 91).context("allocated node port")?;

    // Claims and a StatefulSet whose class the change-storage-class ConfigMap maps
    // (change_storageclass_action.go): to a class that exists, or to one that does not.
    apply(
        client,
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "fast"}, "provisioner": "example.com/none"}),
    )
    .await?;
    for (name, class) in [("to-missing", "standard"), ("to-fast", "slow")] {
        apply(
            client,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}),
        )
        .await?;
    }
    let pod_template = json!({"metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "registry.old:5000/db:1"}]}});
    apply(
        client,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": NS},
        "spec": {"serviceName": "db", "replicas": 0, "selector": {"matchLabels": {"app": "db"}},
            "template": pod_template,
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    )
    .await?;
    // change_image_name_action.go trims the parts around the comma.
    apply(
        client,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.old:5000/web:2"}]}}}}),
    )
    .await?;
    // ConfigMaps for the resource modifiers.
    for name in ["cm-broken", "cm-bare", "cm-patched"] {
        apply(
            client,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS}, "data": {"k": "v"}}),
        )
        .await?;
    }

    backup(client, "tables", json!({"includedNamespaces": [NS]})).await?;
    delete_all(client, &[format!("/api/v1/namespaces/{NS}")]).await?;
    // The node ports the API server allocated are taken by someone else now.
    occupy(client, "hold-admin", allocated_admin).await?;
    occupy(client, "hold-hc", allocated_hc).await?;
    occupy(client, "hold-ssa", allocated_ssa).await?;

    let plugin_labels =
        |action: &str| json!({"velero.io/plugin-config": "", action: "RestoreItemAction"});
    apply(client, json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "classes", "namespace": "velero", "labels": plugin_labels("velero.io/change-storage-class")},
        "data": {"standard": "missing-class", "slow": "fast"}})).await?;
    apply(client, json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "images", "namespace": "velero", "labels": plugin_labels("velero.io/change-image-name")},
        "data": {"case1": "registry.old:5000  ,  registry.new:3000", "note": "no comma here"}})).await?;
    let rules = "version: v1\nresourceModifierRules:\n\
        - conditions: {groupResource: configmaps, resourceNameRegex: '^cm-broken$'}\n  mergePatches: [{patchData: '{\"a\"::1}'}]\n\
        - conditions: {groupResource: configmaps, resourceNameRegex: '^cm-bare$'}\n\
        - conditions: {groupResource: configmaps, resourceNameRegex: '^cm-(broken|bare|patched)$'}\n  mergePatches: [{patchData: '{\"data\": {\"patched\": \"yes\"}}'}]\n";
    apply(
        client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "modifiers", "namespace": "velero"}, "data": {"rules.yaml": rules}}),
    )
    .await?;

    let done = restore(
        client,
        "tables-1",
        json!({"backupName": "tables",
        "resourceModifier": {"kind": "ConfigMap", "name": "modifiers"}}),
    )
    .await?;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(
        phase(&done),
        Some(RestorePhase::PartiallyFailed),
        "{status:?}"
    );
    let (_, results) = restore_files(&env, "tables-1")?;
    let errors = messages(&results, "errors");
    let warnings = messages(&results, "warnings");

    // 1. A patch go-yaml cannot parse fails the item; it is restored without the rule's patch.
    assert!(
        has(&errors, "did not find expected node content"),
        "{errors:#?}"
    );
    // 2. A rule with conditions and no patches is accepted; what it matches gets Velero's error.
    assert!(has(&errors, "no patch data found"), "{errors:#?}");
    let cm = async |name: &str| {
        get(
            client,
            &format!("/api/v1/namespaces/{NS}/configmaps/{name}"),
        )
        .await
    };
    for name in ["cm-broken", "cm-bare", "cm-patched"] {
        let restored = cm(name).await.with_context(|| format!("{name} restored"))?;
        assert_eq!(
            restored["data"]["patched"], "yes",
            "the other rule still applies to {name}"
        );
    }
    let log = support::gunzip_text(
        &env.bucket
            .join("restores/tables-1/restore-tables-1-logs.gz"),
    )?;
    assert!(
        log.contains("resourceModifierRules[1] has conditions and no patches"),
        "{log}"
    );

    // 3. Node ports: chosen ones kept, allocated ones (null in last-applied, or not owned in
    // managedFields) given up, so the held ports did not stop the restore.
    let applied = service("applied").await.context("applied restored")?;
    assert_eq!(node_port(&applied, 80), Some(30180), "{applied}");
    assert_eq!(
        node_port(&applied, 82),
        Some(30182),
        "a number in a string counts: {applied}"
    );
    assert_ne!(node_port(&applied, 81), Some(allocated_admin), "{applied}");
    assert_ne!(
        applied["spec"]["healthCheckNodePort"].as_i64(),
        Some(allocated_hc),
        "{applied}"
    );
    let ssa = service("ssa").await.context("ssa restored")?;
    assert_eq!(
        node_port(&ssa, 90),
        Some(30190),
        "owned in managedFields: {ssa}"
    );
    assert_ne!(node_port(&ssa, 91), Some(allocated_ssa), "{ssa}");
    assert!(
        service("null-hc").await.is_none(),
        "Velero fails a null healthCheckNodePort"
    );
    assert!(
        has(
            &errors,
            "healthCheckNodePort in the annotation kubectl.kubernetes.io/last-applied-configuration is null"
        ),
        "{errors:#?}"
    );

    // 4. A class mapped to one that does not exist fails the item instead of leaving a claim
    // that never binds; a class mapped to one that exists is changed.
    let claim = async |name: &str| {
        get(
            client,
            &format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}"),
        )
        .await
    };
    assert!(
        claim("to-missing").await.is_none(),
        "not restored with a missing class"
    );
    assert!(
        get(
            client,
            &format!("/apis/apps/v1/namespaces/{NS}/statefulsets/db")
        )
        .await
        .is_none()
    );
    assert!(
        has(
            &errors,
            "error getting storage class missing-class from API"
        ),
        "{errors:#?}"
    );
    assert_eq!(
        claim("to-fast").await.context("to-fast")?["spec"]["storageClassName"],
        "fast"
    );

    // 6. Spaces around the comma are trimmed; a value without one is passed over with a warning.
    let web = get(
        client,
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/web"),
    )
    .await
    .context("web")?;
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.new:3000/web:2"
    );
    assert!(
        has(&warnings, "change-image-name rule \"note\""),
        "{warnings:#?}"
    );
    Ok(())
}
