//! Velero's built-in restore item actions (`pkg/restore/actions/`) as pure functions on an item's JSON.
//!
//! Each one runs on the item after its metadata was reset and before resource modifiers, in the
//! order Velero registers them. Actions that need the cluster (the service-account token check)
//! get what they need handed in through [`ActionContext`].

use std::collections::{BTreeMap, BTreeSet};

use crate::pod_volumes::PodVolumeData;
use serde_json::{Map, Value};
use velero_hooks::restore::RestoreHooks;

/// Annotations the PV controller and provisioners put on claims; a restored claim must not carry
/// them or the controller believes it is already bound or provisioned.
const PVC_ANNOTATIONS_TO_DROP: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "velero.io/volume-snapshot-name",
    "velero.io/data-upload-name",
];

/// What the actions need beyond the item.
#[derive(Debug, Default)]
pub struct ActionContext<'a> {
    pub namespace_mapping: Option<&'a BTreeMap<String, String>>,
    pub preserve_node_ports: bool,
    /// The `velero.io/change-storage-class` ConfigMap's data: old class → new class.
    pub storage_classes: Option<&'a BTreeMap<String, String>>,
    /// The `velero.io/change-image-name` ConfigMap's rules: (old substring, new substring).
    pub image_rules: &'a [(String, String)],
    /// ServiceAccounts in the item's target namespace (for the token-secret check).
    pub service_accounts: Option<&'a BTreeSet<String>>,
    /// The Restore's hooks and the item's target namespace: a pod gets its restore hooks' init
    /// containers here (Velero's `velero.io/init-restore-hook` action). File-system restore's
    /// `restore-wait` container is inserted before them by the same seam.
    pub restore_hooks: Option<&'a RestoreHooks>,
    pub target_namespace: Option<&'a str>,
    /// The backup's pod volume snapshots, and the item's backed-up namespace: a pod with some
    /// gets the `restore-wait` init container first.
    pub pod_volumes: Option<&'a PodVolumeData>,
    pub source_namespace: Option<&'a str>,
}

/// An action's verdict on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Restore,
    /// Not restored, for this reason (logged).
    Skip(String),
    /// Not restored: an action could not prepare it (an error in the results, as a failing
    /// restore item action is in Velero).
    Fail(String),
}

/// Runs every built-in action that applies to `group_resource` on `item`.
pub fn apply_builtin(group_resource: &str, item: &mut Value, ctx: &ActionContext<'_>) -> Verdict {
    match group_resource {
        "jobs.batch" => job(item),
        "pods" => pod(item),
        "services" => service(item, ctx.preserve_node_ports),
        "serviceaccounts" => service_account(item),
        "secrets" => return secret(item, ctx.service_accounts),
        "rolebindings.rbac.authorization.k8s.io"
        | "clusterrolebindings.rbac.authorization.k8s.io" => {
            remap_subjects(item, ctx.namespace_mapping)
        }
        "customresourcedefinitions.apiextensions.k8s.io" => crd_preserve_fields(item),
        "mutatingwebhookconfigurations.admissionregistration.k8s.io"
        | "validatingwebhookconfigurations.admissionregistration.k8s.io" => webhook(item),
        "persistentvolumeclaims" => pvc(item),
        "apiservices.apiregistration.k8s.io"
            if label(item, "kube-aggregator.kubernetes.io/automanaged").is_some() =>
        {
            return Verdict::Skip("the APIService is managed by the API server".into());
        }
        _ => {}
    }
    if group_resource == "pods"
        && let (Some(volumes), Some(source)) = (ctx.pod_volumes, ctx.source_namespace)
        && let Err(e) = volumes.add_restore_wait(item, source)
    {
        return Verdict::Fail(e);
    }
    if group_resource == "pods"
        && let (Some(hooks), Some(namespace)) = (ctx.restore_hooks, ctx.target_namespace)
        && let Err(e) = hooks.add_init_containers(item, namespace)
    {
        return Verdict::Fail(e);
    }
    if let Some(map) = ctx.storage_classes {
        change_storage_class(group_resource, item, map);
    }
    if !ctx.image_rules.is_empty() {
        change_image_name(group_resource, item, ctx.image_rules);
    }
    Verdict::Restore
}

fn label<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    item.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn object_mut<'a>(item: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    item.pointer_mut(pointer)?.as_object_mut()
}

fn job(item: &mut Value) {
    for pointer in [
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        if let Some(labels) = object_mut(item, pointer) {
            labels.remove("controller-uid");
            labels.remove("batch.kubernetes.io/controller-uid");
        }
    }
}

fn pod(item: &mut Value) {
    let Some(spec) = object_mut(item, "/spec") else {
        return;
    };
    spec.remove("nodeName");
    spec.remove("priority");
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if sa.is_empty() {
        return;
    }
    // The token controller names the secret `<sa>-token-<random>`; the restored pod gets a new one
    // mounted by the service-account admission plugin.
    let prefix = format!("{sa}-token-");
    let named = |v: &Value| {
        v.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with(&prefix))
    };
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.retain(|v| !named(v));
    }
    for containers in ["containers", "initContainers"] {
        if let Some(list) = spec.get_mut(containers).and_then(Value::as_array_mut) {
            for c in list {
                if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                    mounts.retain(|m| !named(m));
                }
            }
        }
    }
}

/// Node ports the user set explicitly, from `kubectl apply`'s last-applied annotation: by port
/// name, or by node port value for unnamed ports.
fn explicit_node_ports(item: &Value) -> (BTreeSet<String>, BTreeSet<i64>) {
    let mut names = BTreeSet::new();
    let mut values = BTreeSet::new();
    let Some(applied) = item
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return (names, values);
    };
    for port in applied
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(node_port) = port.get("nodePort").and_then(Value::as_i64) else {
            continue;
        };
        match port.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => {
                names.insert(name.to_string());
            }
            _ => {
                values.insert(node_port);
            }
        }
    }
    (names, values)
}

fn service(item: &mut Value, preserve_node_ports: bool) {
    let (names, values) = explicit_node_ports(item);
    let has_last_applied_hc = item
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("healthCheckNodePort"));
    let Some(spec) = object_mut(item, "/spec") else {
        return;
    };
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    // A headless service keeps `None`: that is what makes it headless.
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    if preserve_node_ports {
        return;
    }
    if !has_last_applied_hc {
        spec.remove("healthCheckNodePort");
    }
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(port) = port.as_object_mut() else {
            continue;
        };
        let keep = match port.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => names.contains(name),
            _ => port
                .get("nodePort")
                .and_then(Value::as_i64)
                .is_some_and(|v| values.contains(&v)),
        };
        if !keep {
            port.remove("nodePort");
        }
    }
}

fn service_account(item: &mut Value) {
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let prefix = format!("{name}-token-");
    if let Some(secrets) = item.pointer_mut("/secrets").and_then(Value::as_array_mut)
        && let Some(index) = secrets.iter().position(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with(&prefix))
        })
    {
        secrets.remove(index);
    }
}

fn secret(item: &mut Value, service_accounts: Option<&BTreeSet<String>>) -> Verdict {
    if item.get("type").and_then(Value::as_str) != Some("kubernetes.io/service-account-token") {
        return Verdict::Restore;
    }
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(sa) = service_accounts
        .into_iter()
        .flatten()
        .find(|sa| name.starts_with(&format!("{sa}-token-")))
    {
        return Verdict::Skip(format!(
            "the token controller recreates the token secret of ServiceAccount {sa}"
        ));
    }
    if let Some(annotations) = object_mut(item, "/metadata/annotations") {
        annotations.remove("kubernetes.io/service-account.uid");
    }
    if let Some(data) = object_mut(item, "/data") {
        data.remove("token");
        data.remove("ca.crt");
    }
    Verdict::Restore
}

fn remap_subjects(item: &mut Value, mapping: Option<&BTreeMap<String, String>>) {
    let Some(mapping) = mapping.filter(|m| !m.is_empty()) else {
        return;
    };
    for subject in item
        .pointer_mut("/subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(ns) = subject.get("namespace").and_then(Value::as_str)
            && let Some(target) = mapping.get(ns)
        {
            subject["namespace"] = Value::String(target.clone());
        }
    }
}

fn crd_preserve_fields(item: &mut Value) {
    if item.get("apiVersion").and_then(Value::as_str) != Some("apiextensions.k8s.io/v1") {
        return;
    }
    let Some(spec) = object_mut(item, "/spec") else {
        return;
    };
    if spec.get("preserveUnknownFields").and_then(Value::as_bool) != Some(true) {
        return;
    }
    // v1 CRDs refuse preserveUnknownFields: true; the per-schema flag says the same thing.
    spec.insert("preserveUnknownFields".into(), Value::Bool(false));
    for version in spec
        .get_mut("versions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(schema) = version
            .pointer_mut("/schema/openAPIV3Schema")
            .and_then(Value::as_object_mut)
        {
            schema.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
    }
}

fn webhook(item: &mut Value) {
    if item.get("apiVersion").and_then(Value::as_str) != Some("admissionregistration.k8s.io/v1") {
        return;
    }
    for hook in item
        .pointer_mut("/webhooks")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let valid = matches!(
            hook.get("sideEffects").and_then(Value::as_str),
            Some("None" | "NoneOnDryRun")
        );
        if !valid && let Some(hook) = hook.as_object_mut() {
            hook.insert("sideEffects".into(), Value::String("None".into()));
        }
    }
}

fn pvc(item: &mut Value) {
    if let Some(annotations) = object_mut(item, "/metadata/annotations") {
        for key in PVC_ANNOTATIONS_TO_DROP {
            annotations.remove(*key);
        }
    }
}

fn change_storage_class(group_resource: &str, item: &mut Value, map: &BTreeMap<String, String>) {
    let remap = |class: &mut Value| {
        if let Some(new) = class.as_str().and_then(|c| map.get(c)) {
            *class = Value::String(new.clone());
        }
    };
    match group_resource {
        "persistentvolumeclaims" | "persistentvolumes" => {
            if let Some(class) = item.pointer_mut("/spec/storageClassName") {
                remap(class);
            }
        }
        "statefulsets.apps" => {
            for template in item
                .pointer_mut("/spec/volumeClaimTemplates")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(class) = template.pointer_mut("/spec/storageClassName") {
                    remap(class);
                }
            }
        }
        _ => {}
    }
}

fn change_image_name(group_resource: &str, item: &mut Value, rules: &[(String, String)]) {
    let pod_spec = match group_resource {
        "pods" => "/spec",
        "deployments.apps"
        | "statefulsets.apps"
        | "daemonsets.apps"
        | "replicasets.apps"
        | "replicationcontrollers"
        | "jobs.batch" => "/spec/template/spec",
        "cronjobs.batch" => "/spec/jobTemplate/spec/template/spec",
        _ => return,
    };
    let Some(spec) = object_mut(item, pod_spec) else {
        return;
    };
    for list in ["containers", "initContainers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            // The first rule that matches wins, as in Velero.
            if let Some((old, new)) = rules.iter().find(|(old, _)| image.contains(old.as_str())) {
                let replaced = image.replacen(old.as_str(), new, 1);
                container["image"] = Value::String(replaced);
            }
        }
    }
}

/// Parses the change-image-name ConfigMap's data: each value is `"<old>,<new>"`.
pub fn parse_image_rules(data: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    data.iter()
        .map(|(key, value)| match value.split_once(',') {
            Some((old, new)) if !old.is_empty() && !new.contains(',') => {
                Ok((old.to_string(), new.to_string()))
            }
            _ => Err(format!(
                "change-image-name rule {key:?} is {value:?}; write it as \"<old>,<new>\""
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(gr: &str, mut item: Value, ctx: &ActionContext<'_>) -> (Verdict, Value) {
        let verdict = apply_builtin(gr, &mut item, ctx);
        (verdict, item)
    }

    #[test]
    fn jobs_lose_their_controller_uid_labels() {
        let job = json!({"spec": {
            "selector": {"matchLabels": {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "app": "x"}},
            "template": {"metadata": {"labels": {"controller-uid": "u", "job-name": "j"}}}}});
        let (_, out) = run("jobs.batch", job, &ActionContext::default());
        assert_eq!(out["spec"]["selector"]["matchLabels"], json!({"app": "x"}));
        assert_eq!(
            out["spec"]["template"]["metadata"]["labels"],
            json!({"job-name": "j"})
        );
    }

    #[test]
    fn pods_lose_node_priority_and_token_volumes() {
        let pod = json!({"spec": {"nodeName": "n1", "priority": 5, "serviceAccountName": "app",
            "volumes": [{"name": "app-token-abcde"}, {"name": "data"}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "app-token-abcde"}, {"name": "data"}]}]}});
        let (verdict, out) = run("pods", pod, &ActionContext::default());
        assert_eq!(verdict, Verdict::Restore);
        assert!(out["spec"].get("nodeName").is_none());
        assert!(out["spec"].get("priority").is_none());
        assert_eq!(out["spec"]["volumes"], json!([{"name": "data"}]));
        assert_eq!(
            out["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "data"}])
        );
    }

    #[test]
    fn services_keep_headless_and_explicit_node_ports_only() {
        let last =
            json!({"spec": {"ports": [{"name": "http", "nodePort": 30080}, {"nodePort": 30090}]}})
                .to_string();
        let svc = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "metrics", "port": 81, "nodePort": 30081},
                {"port": 82, "nodePort": 30090}]}});
        let (_, out) = run("services", svc.clone(), &ActionContext::default());
        assert!(out["spec"].get("clusterIP").is_none());
        assert!(out["spec"].get("clusterIPs").is_none());
        let ports = out["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports[0]["nodePort"], 30080);
        assert!(ports[1].get("nodePort").is_none());
        assert_eq!(ports[2]["nodePort"], 30090);

        let ctx = ActionContext {
            preserve_node_ports: true,
            ..Default::default()
        };
        let (_, out) = run("services", svc, &ctx);
        assert_eq!(out["spec"]["ports"][1]["nodePort"], 30081);

        let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        let (_, out) = run("services", headless.clone(), &ActionContext::default());
        assert_eq!(out, headless);
    }

    #[test]
    fn token_secrets_of_existing_service_accounts_are_skipped_and_others_cleaned() {
        let sas: BTreeSet<String> = ["app".to_string()].into();
        let ctx = ActionContext {
            service_accounts: Some(&sas),
            ..Default::default()
        };
        let auto = json!({"type": "kubernetes.io/service-account-token", "metadata": {"name": "app-token-x1"}});
        assert!(matches!(run("secrets", auto, &ctx).0, Verdict::Skip(_)));
        let manual = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "manual", "annotations": {"kubernetes.io/service-account.uid": "u", "kubernetes.io/service-account.name": "app"}},
            "data": {"token": "t", "ca.crt": "c", "namespace": "n"}});
        let (verdict, out) = run("secrets", manual, &ctx);
        assert_eq!(verdict, Verdict::Restore);
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"kubernetes.io/service-account.name": "app"})
        );
        assert_eq!(out["data"], json!({"namespace": "n"}));
        let opaque =
            json!({"type": "Opaque", "metadata": {"name": "app-token-x"}, "data": {"token": "t"}});
        assert_eq!(
            run("secrets", opaque.clone(), &ctx),
            (Verdict::Restore, opaque)
        );
    }

    #[test]
    fn service_accounts_drop_their_first_token_secret() {
        let sa = json!({"metadata": {"name": "app"}, "secrets": [{"name": "other"}, {"name": "app-token-1"}, {"name": "app-token-2"}]});
        let (_, out) = run("serviceaccounts", sa, &ActionContext::default());
        assert_eq!(
            out["secrets"],
            json!([{"name": "other"}, {"name": "app-token-2"}])
        );
    }

    #[test]
    fn binding_subjects_follow_namespace_mappings() {
        let mapping: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        let ctx = ActionContext {
            namespace_mapping: Some(&mapping),
            ..Default::default()
        };
        let rb = json!({"subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "a"}, {"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "y", "namespace": "c"}]});
        let (_, out) = run("clusterrolebindings.rbac.authorization.k8s.io", rb, &ctx);
        assert_eq!(out["subjects"][0]["namespace"], "b");
        assert!(out["subjects"][1].get("namespace").is_none());
        assert_eq!(out["subjects"][2]["namespace"], "c");
    }

    #[test]
    fn v1_crds_move_preserve_unknown_fields_into_schemas() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "spec": {"preserveUnknownFields": true,
            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let (_, out) = run(
            "customresourcedefinitions.apiextensions.k8s.io",
            crd,
            &ActionContext::default(),
        );
        assert_eq!(out["spec"]["preserveUnknownFields"], false);
        assert_eq!(
            out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }

    #[test]
    fn webhooks_with_invalid_side_effects_get_none() {
        let hook = json!({"apiVersion": "admissionregistration.k8s.io/v1", "webhooks": [
            {"name": "a", "sideEffects": "Unknown"}, {"name": "b", "sideEffects": "NoneOnDryRun"}, {"name": "c"}]});
        let (_, out) = run(
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            hook,
            &ActionContext::default(),
        );
        let effects: Vec<&str> = out["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["sideEffects"].as_str().unwrap())
            .collect();
        assert_eq!(effects, ["None", "NoneOnDryRun", "None"]);
    }

    #[test]
    fn claims_lose_binding_annotations_and_change_class() {
        let classes: BTreeMap<String, String> = [("slow".to_string(), "fast".to_string())].into();
        let ctx = ActionContext {
            storage_classes: Some(&classes),
            ..Default::default()
        };
        let pvc = json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes", "keep": "1",
            "volume.kubernetes.io/selected-node": "n"}}, "spec": {"storageClassName": "slow", "volumeName": "pv1"}});
        let (_, out) = run("persistentvolumeclaims", pvc, &ctx);
        assert_eq!(out["metadata"]["annotations"], json!({"keep": "1"}));
        assert_eq!(out["spec"]["storageClassName"], "fast");
        let sts = json!({"spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "slow"}}, {"spec": {"storageClassName": "other"}}]}});
        let (_, out) = run("statefulsets.apps", sts, &ctx);
        assert_eq!(
            out["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "fast"
        );
        assert_eq!(
            out["spec"]["volumeClaimTemplates"][1]["spec"]["storageClassName"],
            "other"
        );
    }

    #[test]
    fn image_names_change_by_first_matching_rule() {
        let rules = parse_image_rules(&BTreeMap::from([
            ("1".to_string(), "docker.io/,registry.local/".to_string()),
            ("2".to_string(), "nginx,caddy".to_string()),
        ]))
        .unwrap();
        let ctx = ActionContext {
            image_rules: &rules,
            ..Default::default()
        };
        let deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "docker.io/library/nginx:1"}, {"name": "b", "image": "nginx:2"}]}}}});
        let (_, out) = run("deployments.apps", deploy, &ctx);
        let images = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(images[0]["image"], "registry.local/library/nginx:1");
        assert_eq!(images[1]["image"], "caddy:2");
        assert!(parse_image_rules(&BTreeMap::from([("x".into(), "no-comma".into())])).is_err());
    }

    #[test]
    fn automanaged_api_services_are_skipped() {
        let svc = json!({"metadata": {"labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}}});
        assert!(matches!(
            run(
                "apiservices.apiregistration.k8s.io",
                svc,
                &ActionContext::default()
            )
            .0,
            Verdict::Skip(_)
        ));
    }
}
