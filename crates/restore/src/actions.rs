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
    /// The `velero.io/change-storage-class` ConfigMap's mapping.
    pub storage_classes: Option<&'a StorageClassMapping>,
    /// The `velero.io/change-image-name` ConfigMap's rules.
    pub image_rules: Option<&'a ImageRules>,
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
        "services" => {
            if let Err(e) = service(item, ctx.preserve_node_ports) {
                return Verdict::Fail(e);
            }
        }
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
    if let Some(mapping) = ctx.storage_classes
        && let Err(e) = change_storage_class(group_resource, item, mapping)
    {
        return Verdict::Fail(e);
    }
    if let Some(rules) = ctx.image_rules {
        change_image_name(group_resource, item, rules);
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

const LAST_APPLIED: &str =
    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";

/// `kubectl apply`'s record of what the user wrote, parsed; an annotation that is not JSON is an
/// error for the item, as in Velero.
fn last_applied(item: &Value) -> Result<Option<Value>, String> {
    let Some(text) = item.pointer(LAST_APPLIED).and_then(Value::as_str) else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| {
        format!(
            "the annotation kubectl.kubernetes.io/last-applied-configuration is not JSON ({e}); fix or remove it, or restore with --preserve-nodeports"
        )
    })
}

/// The managedFields entries' `fieldsV1`, the server-side apply record of who set what.
fn managed_fields(item: &Value) -> impl Iterator<Item = &Value> {
    item.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("fieldsV1"))
}

/// Velero's ServiceAction (pkg/restore/actions/service_action.go): the cluster IP goes (unless
/// headless), and node ports the API server allocated go too, so the new cluster allocates its
/// own; ports the user chose are kept. What the user chose comes from the last-applied
/// annotation when there is one (a port with a positive `nodePort` there: by name, or by value
/// for an unnamed port; absent or `null` means allocated), else from managedFields (a port
/// whose `f:nodePort` some manager owns, keyed by port and protocol).
fn service(item: &mut Value, preserve_node_ports: bool) -> Result<(), String> {
    if item.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None")
        && let Some(spec) = object_mut(item, "/spec")
    {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    // An ExternalName Service has no node ports, and Velero reads nothing more of it.
    if preserve_node_ports
        || item.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")
    {
        return Ok(());
    }
    let applied = last_applied(item)?;
    delete_node_ports(item, applied.as_ref())?;
    delete_health_check_node_port(item, applied.as_ref())
}

/// The node ports the user chose, as opposed to those the API server allocated.
enum ChosenPorts {
    /// From the last-applied configuration: by port name, and by value for unnamed ports.
    Applied {
        names: BTreeSet<String>,
        values: BTreeSet<i64>,
    },
    /// From managedFields: the server-side apply keys of the ports whose `f:nodePort` a manager
    /// owns.
    Owned(BTreeSet<String>),
}

impl ChosenPorts {
    fn keeps(&self, port: &Map<String, Value>) -> bool {
        match self {
            ChosenPorts::Applied { names, values } => {
                match port.get("name").and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => names.contains(name),
                    _ => port
                        .get("nodePort")
                        .and_then(Value::as_i64)
                        .is_some_and(|v| values.contains(&v)),
                }
            }
            ChosenPorts::Owned(keys) => {
                // The key server-side apply gives a port: `k:{"port":80,"protocol":"TCP"}`.
                let key = format!(
                    r#"k:{{"port":{},"protocol":"{}"}}"#,
                    port.get("port").and_then(Value::as_i64).unwrap_or_default(),
                    port.get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
                keys.contains(&key)
            }
        }
    }
}

fn delete_node_ports(item: &mut Value, applied: Option<&Value>) -> Result<(), String> {
    let chosen = match applied {
        Some(applied) => {
            let (names, values) = explicit_node_ports(applied)?;
            ChosenPorts::Applied { names, values }
        }
        None => ChosenPorts::Owned(
            managed_fields(item)
                .filter_map(|fields| fields.pointer("/f:spec/f:ports")?.as_object())
                .flat_map(|ports| ports.iter())
                .filter(|(_, port)| port.get("f:nodePort").is_some())
                .map(|(key, _)| key.clone())
                .collect(),
        ),
    };
    for port in item
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if !chosen.keeps(port) {
            port.remove("nodePort");
        }
    }
    Ok(())
}

/// The node ports the last-applied configuration sets: by port name, and by value for ports
/// without a name. Go reads every JSON number as a float and also takes a number written as a
/// string; anything else (`null` among them) is no node port.
fn explicit_node_ports(applied: &Value) -> Result<(BTreeSet<String>, BTreeSet<i64>), String> {
    let mut names = BTreeSet::new();
    let mut values = BTreeSet::new();
    let ports = match applied.pointer("/spec/ports") {
        None | Some(Value::Null) => return Ok((names, values)),
        Some(Value::Array(ports)) => ports,
        Some(other) => {
            return Err(format!(
                "spec.ports in the annotation kubectl.kubernetes.io/last-applied-configuration is {other}, not a list of ports"
            ));
        }
    };
    for port in ports.iter().filter_map(Value::as_object) {
        let node_port = match port.get("nodePort") {
            // Go reads JSON numbers as float64 and takes `int(f)`: the fraction goes.
            #[allow(clippy::cast_possible_truncation)]
            Some(Value::Number(n)) => n.as_f64().map_or(0, |f| f as i64),
            Some(Value::String(text)) => text.parse::<i64>().map_err(|_| {
                format!(
                    "nodePort {text:?} in the annotation kubectl.kubernetes.io/last-applied-configuration is not a number"
                )
            })?,
            _ => 0,
        };
        if node_port <= 0 {
            continue;
        }
        match port.get("name") {
            // Velero files a port with a name key under that name, even an empty one, so an
            // unnamed port of the Service never matches it.
            Some(name) => {
                names.insert(name.as_str().unwrap_or_default().to_string());
            }
            None => {
                values.insert(node_port);
            }
        }
    }
    Ok((names, values))
}

/// Only a LoadBalancer Service with `externalTrafficPolicy: Local` has a health check node port;
/// it is kept when the last-applied configuration sets it (non-zero) or a manager owns it.
fn delete_health_check_node_port(item: &mut Value, applied: Option<&Value>) -> Result<(), String> {
    let spec = |field: &str| item.pointer(&format!("/spec/{field}")).cloned();
    if spec("externalTrafficPolicy")
        .as_ref()
        .and_then(Value::as_str)
        != Some("Local")
        || spec("type").as_ref().and_then(Value::as_str) != Some("LoadBalancer")
        || spec("healthCheckNodePort")
            .as_ref()
            .and_then(Value::as_f64)
            .unwrap_or_default()
            == 0.0
    {
        return Ok(());
    }
    if let Some(applied) = applied {
        match applied.pointer("/spec/healthCheckNodePort") {
            None => {}
            Some(Value::Number(n)) if n.as_f64() != Some(0.0) => return Ok(()),
            Some(Value::Number(_)) => {}
            // Go's NestedFloat64 refuses anything but a number, `null` included.
            Some(other) => {
                return Err(format!(
                    "spec.healthCheckNodePort in the annotation kubectl.kubernetes.io/last-applied-configuration is {other}, not a number"
                ));
            }
        }
    }
    let owned = managed_fields(item).any(|fields| {
        fields
            .pointer("/f:spec/f:healthCheckNodePort")
            .is_some_and(Value::is_object)
    });
    if !owned && let Some(spec) = object_mut(item, "/spec") {
        spec.remove("healthCheckNodePort");
    }
    Ok(())
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

/// The `velero.io/change-storage-class` ConfigMap's mapping (old class → new class), with what
/// the cluster said of each class it maps to.
#[derive(Debug, Clone, Default)]
pub struct StorageClassMapping {
    map: BTreeMap<String, String>,
    /// Classes the mapping names that the cluster could not give: new class → why.
    unavailable: BTreeMap<String, String>,
}

impl StorageClassMapping {
    /// Looks up every class the mapping maps to, once per restore; Velero looks one up for every
    /// item it changes (`isStorageClassExist`), with the same outcome.
    pub async fn resolve(client: &kube::Client, map: BTreeMap<String, String>) -> Self {
        let reader = velero_cluster::api::ApiReader::new(client.clone());
        let mut unavailable = BTreeMap::new();
        for new in map.values().collect::<BTreeSet<_>>() {
            let path = format!("/apis/storage.k8s.io/v1/storageclasses/{new}");
            let why = match reader.get(&path).await {
                Ok(_) => continue,
                Err(kube::Error::Api(status)) => status.message,
                Err(e) => e.to_string(),
            };
            unavailable.insert(new.clone(), why);
        }
        StorageClassMapping { map, unavailable }
    }

    /// The mapping as the cluster has every class it names (tests and plans).
    pub fn new(map: BTreeMap<String, String>) -> Self {
        StorageClassMapping {
            map,
            unavailable: BTreeMap::new(),
        }
    }

    /// The class `class` becomes, `None` when the mapping does not name it; an error when the
    /// class it maps to does not exist, so the item is not restored with a class no provisioner
    /// serves (a claim that would never bind).
    fn target(&self, class: &str) -> Result<Option<&str>, String> {
        let Some(new) = self.map.get(class).filter(|_| !class.is_empty()) else {
            return Ok(None);
        };
        match self.unavailable.get(new) {
            None => Ok(Some(new)),
            Some(why) => Err(format!(
                "error getting storage class {new} from API: {why}; create it or change the velero.io/change-storage-class ConfigMap's entry {class}: {new}"
            )),
        }
    }
}

/// Velero's ChangeStorageClassAction (pkg/restore/actions/change_storageclass_action.go): a
/// claim's, a volume's or a StatefulSet's claim templates' class is mapped; mapping to a class
/// the cluster lacks fails the item.
fn change_storage_class(
    group_resource: &str,
    item: &mut Value,
    mapping: &StorageClassMapping,
) -> Result<(), String> {
    let remap = |class: &mut Value| -> Result<(), String> {
        if let Some(new) = class
            .as_str()
            .map(|c| mapping.target(c))
            .transpose()?
            .flatten()
        {
            *class = Value::String(new.to_string());
        }
        Ok(())
    };
    match group_resource {
        "persistentvolumeclaims" | "persistentvolumes" => {
            if let Some(class) = item.pointer_mut("/spec/storageClassName") {
                remap(class)?;
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
                    remap(class)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn change_image_name(group_resource: &str, item: &mut Value, rules: &ImageRules) {
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
            if let Some(image) = container.get("image").and_then(Value::as_str)
                && let Some(replaced) = rules.rewrite(image)
            {
                container["image"] = Value::String(replaced);
            }
        }
    }
}

/// The change-image-name ConfigMap's rules, read as Velero reads them
/// (pkg/restore/actions/change_image_name_action.go, `isImageReplaceRuleExist`): each value is
/// `<old part>,<new part>`, split at the first comma, each part trimmed of spaces.
#[derive(Debug, Clone, Default)]
pub struct ImageRules {
    /// (old part, new part), in key order; the first rule whose old part the image contains
    /// wins (Velero goes through a Go map, in no fixed order).
    rules: Vec<(String, String)>,
    warnings: Vec<String>,
}

impl ImageRules {
    pub fn parse(data: &BTreeMap<String, String>) -> Self {
        let mut parsed = ImageRules::default();
        for (key, value) in data {
            let Some((old, new)) = value.split_once(',') else {
                // Velero passes over such a value without a word.
                parsed.warnings.push(format!(
                    "change-image-name rule {key:?} is {value:?}, which has no comma: it is not used; write it as \"<old>,<new>\""
                ));
                continue;
            };
            let (old, new_trimmed) = (old.trim(), new.trim());
            if old.is_empty() || new.is_empty() {
                // Velero would put the new part between every two characters of every image
                // (an empty old part), or needs something after the comma.
                parsed.warnings.push(format!(
                    "change-image-name rule {key:?} is {value:?}: it needs text before and after the comma and is not used; write it as \"<old>,<new>\""
                ));
                continue;
            }
            parsed
                .rules
                .push((old.to_string(), new_trimmed.to_string()));
        }
        parsed
    }

    /// What the restore log should say about rules that are not used.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The image after the first rule that matches it: every occurrence of the old part
    /// replaced, as Velero's `strings.Replace(..., -1)` does.
    fn rewrite(&self, image: &str) -> Option<String> {
        if image.is_empty() {
            return None;
        }
        self.rules
            .iter()
            .find(|(old, _)| image.contains(old.as_str()))
            .map(|(old, new)| image.replace(old.as_str(), new))
    }
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

    fn node_ports(out: &Value) -> Vec<Option<i64>> {
        out["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p.get("nodePort").and_then(Value::as_i64))
            .collect()
    }

    #[test]
    fn node_ports_follow_the_parsed_last_applied_configuration() {
        let svc = |last: Value| {
            json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last.to_string()}},
                "spec": {"type": "NodePort", "ports": [
                    {"name": "http", "port": 80, "nodePort": 30080},
                    {"name": "zero", "port": 81, "nodePort": 30081},
                    {"name": "text", "port": 82, "nodePort": 30082},
                    {"port": 83, "nodePort": 30083}]}})
        };
        // null and 0 are "allocate one"; a number in a string counts; "healthCheckNodePort"
        // in the text is no node port; a key named "" is not an unnamed port.
        let last = json!({"metadata": {"annotations": {"note": "nodePort healthCheckNodePort"}},
            "spec": {"ports": [{"name": "http", "nodePort": null}, {"name": "zero", "nodePort": 0},
                {"name": "text", "nodePort": "30082"}, {"name": "", "nodePort": 30083}]}});
        let (verdict, out) = run("services", svc(last), &ActionContext::default());
        assert_eq!(verdict, Verdict::Restore);
        assert_eq!(node_ports(&out), [None, None, Some(30082), None]);

        let last = json!({"spec": {"ports": [{"name": "http", "nodePort": 30080.0}, {"nodePort": 30083}]}});
        let (_, out) = run("services", svc(last), &ActionContext::default());
        assert_eq!(node_ports(&out), [Some(30080), None, None, Some(30083)]);

        // An annotation Velero cannot read fails the item instead of guessing.
        let mut broken = svc(json!({}));
        broken["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!("{not json");
        assert!(matches!(
            run("services", broken.clone(), &ActionContext::default()).0,
            Verdict::Fail(_)
        ));
        // Velero never reads it for an ExternalName Service, nor with --preserve-nodeports.
        let mut external = broken.clone();
        external["spec"] = json!({"type": "ExternalName", "externalName": "db.example.com"});
        assert_eq!(
            run("services", external, &ActionContext::default()).0,
            Verdict::Restore
        );
        let preserve = ActionContext {
            preserve_node_ports: true,
            ..Default::default()
        };
        assert_eq!(run("services", broken, &preserve).0, Verdict::Restore);
        let (verdict, _) = run(
            "services",
            svc(json!({"spec": {"ports": [{"name": "text", "nodePort": "x"}]}})),
            &ActionContext::default(),
        );
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
    }

    #[test]
    fn node_ports_follow_managed_fields_without_the_annotation() {
        let fields = |ports: Value| json!({"f:spec": {"f:ports": ports}});
        let svc = json!({"metadata": {"managedFields": [
                {"manager": "kubectl", "operation": "Apply", "fieldsV1": fields(json!({
                    r#"k:{"port":80,"protocol":"TCP"}"#: {".": {}, "f:nodePort": {}, "f:port": {}},
                    r#"k:{"port":81,"protocol":"TCP"}"#: {".": {}, "f:port": {}}}))},
                {"manager": "other", "operation": "Update", "fieldsV1": fields(json!({
                    r#"k:{"port":53,"protocol":"UDP"}"#: {"f:nodePort": {}}}))}]},
            "spec": {"type": "NodePort", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                {"name": "admin", "port": 81, "protocol": "TCP", "nodePort": 30081},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30054}]}});
        let (_, out) = run("services", svc, &ActionContext::default());
        assert_eq!(node_ports(&out), [Some(30080), None, Some(30053), None]);
    }

    #[test]
    fn health_check_node_ports_are_kept_only_where_velero_keeps_them() {
        let svc = |last: Option<Value>, managed: Value| {
            let mut svc = json!({"metadata": {"managedFields": managed},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "ports": []}});
            if let Some(last) = last {
                svc["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/last-applied-configuration": last.to_string()});
            }
            svc
        };
        let hc = |out: &Value| out["spec"].get("healthCheckNodePort").cloned();
        let ctx = ActionContext::default();
        assert_eq!(hc(&run("services", svc(None, json!([])), &ctx).1), None);
        let set = Some(json!({"spec": {"healthCheckNodePort": 31000}}));
        assert_eq!(
            hc(&run("services", svc(set, json!([])), &ctx).1),
            Some(json!(31000))
        );
        let owned = json!([{"fieldsV1": {"f:spec": {"f:healthCheckNodePort": {}}}}]);
        assert_eq!(
            hc(&run("services", svc(Some(json!({})), owned), &ctx).1),
            Some(json!(31000))
        );
        let zero = Some(json!({"spec": {"healthCheckNodePort": 0}}));
        assert_eq!(hc(&run("services", svc(zero, json!([])), &ctx).1), None);
        // Go's NestedFloat64 refuses a null.
        let null = Some(json!({"spec": {"healthCheckNodePort": null}}));
        assert!(matches!(
            run("services", svc(null, json!([])), &ctx).0,
            Verdict::Fail(_)
        ));
        // Other Services keep theirs untouched.
        let mut cluster = svc(None, json!([]));
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        assert_eq!(hc(&run("services", cluster, &ctx).1), Some(json!(31000)));
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
        let classes = StorageClassMapping::new([("slow".to_string(), "fast".to_string())].into());
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
    fn mapping_to_a_missing_storage_class_fails_the_item() {
        let mapping = StorageClassMapping {
            map: [
                ("slow".to_string(), "gone".to_string()),
                ("std".to_string(), "fast".to_string()),
            ]
            .into(),
            unavailable: [(
                "gone".to_string(),
                "storageclasses.storage.k8s.io \"gone\" not found".to_string(),
            )]
            .into(),
        };
        let ctx = ActionContext {
            storage_classes: Some(&mapping),
            ..Default::default()
        };
        for (gr, item) in [
            (
                "persistentvolumeclaims",
                json!({"spec": {"storageClassName": "slow"}}),
            ),
            (
                "persistentvolumes",
                json!({"spec": {"storageClassName": "slow"}}),
            ),
            (
                "statefulsets.apps",
                json!({"spec": {"volumeClaimTemplates": [
                {"spec": {"storageClassName": "std"}}, {"spec": {"storageClassName": "slow"}}]}}),
            ),
        ] {
            let Verdict::Fail(why) = run(gr, item, &ctx).0 else {
                panic!("{gr} must fail");
            };
            assert!(why.starts_with("error getting storage class gone from API: storageclasses.storage.k8s.io \"gone\" not found"), "{why}");
        }
        // Classes the mapping does not name, or maps to one that exists, are fine.
        let (verdict, out) = run(
            "persistentvolumeclaims",
            json!({"spec": {"storageClassName": "std"}}),
            &ctx,
        );
        assert_eq!(
            (verdict, &out["spec"]["storageClassName"]),
            (Verdict::Restore, &json!("fast"))
        );
        let (verdict, _) = run(
            "persistentvolumeclaims",
            json!({"spec": {"storageClassName": "other"}}),
            &ctx,
        );
        assert_eq!(verdict, Verdict::Restore);
    }

    #[test]
    fn image_names_change_by_first_matching_rule() {
        let rules = ImageRules::parse(&BTreeMap::from([
            ("1".to_string(), "docker.io/,registry.local/".to_string()),
            ("2".to_string(), "nginx,caddy".to_string()),
        ]));
        let ctx = ActionContext {
            image_rules: Some(&rules),
            ..Default::default()
        };
        let deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "docker.io/library/nginx:1"}, {"name": "b", "image": "nginx:2"}]}}}});
        let (_, out) = run("deployments.apps", deploy, &ctx);
        let images = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(images[0]["image"], "registry.local/library/nginx:1");
        assert_eq!(images[1]["image"], "caddy:2");
    }

    #[test]
    fn image_rules_are_split_and_trimmed_as_velero_does() {
        let rules = ImageRules::parse(&BTreeMap::from([
            (
                "a-spaces".to_string(),
                "1.1.1.1:5000  ,  2.2.2.2:3000".to_string(),
            ),
            ("b-no-comma".to_string(), "nothing-here".to_string()),
            ("c-empty-old".to_string(), " ,x".to_string()),
            ("d-commas".to_string(), "old/app , new/app,v2".to_string()),
        ]));
        assert_eq!(
            rules.rewrite("1.1.1.1:5000/abc:test").as_deref(),
            Some("2.2.2.2:3000/abc:test")
        );
        // Every occurrence, and everything after the first comma.
        assert_eq!(
            rules.rewrite("old/app-old/app").as_deref(),
            Some("new/app,v2-new/app,v2")
        );
        assert_eq!(rules.rewrite("busybox"), None);
        let warnings = rules.warnings().join("\n");
        assert!(
            warnings.contains("b-no-comma") && warnings.contains("c-empty-old"),
            "{warnings}"
        );
        assert_eq!(rules.warnings().len(), 2);
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
