//! The objects of an install, built as Velero's `pkg/install` builds them.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use velero_api::v1;

use crate::{COMPONENT_LABEL, CREDENTIALS_KEY, CREDENTIALS_SECRET, InstallOptions, Resources};

const SERVICE_ACCOUNT: &str = "velero";
const NODE_AGENT: &str = "node-agent";
const LOCAL_LOCATION_VOLUME: &str = "local-backups";
const METRICS_PORT: u16 = 8085;

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(COMPONENT_LABEL.0.to_string(), COMPONENT_LABEL.1.to_string())])
}

fn meta(namespace: Option<&str>, name: &str) -> Value {
    let mut m = json!({ "name": name, "labels": labels() });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// Serializes one of our typed objects; these are plain data and always serialize.
fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

impl InstallOptions {
    /// Everything the install creates, CRDs first, in the order it is applied.
    pub fn render(&self) -> Vec<Value> {
        let mut objects: Vec<Value> = velero_api::crds()
            .iter()
            .map(|crd| {
                let mut v = to_value(crd);
                v["apiVersion"] = json!("apiextensions.k8s.io/v1");
                v["kind"] = json!("CustomResourceDefinition");
                v
            })
            .collect();
        if self.crds_only {
            return objects;
        }
        let ns = self.namespace.as_str();
        objects.push(self.namespace_object());
        let service_account = match &self.service_account_name {
            Some(name) => name.clone(),
            None => {
                objects.push(self.cluster_role_binding());
                objects.push(self.service_account());
                SERVICE_ACCOUNT.to_string()
            }
        };
        if let Some(data) = &self.secret_data {
            objects.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta(Some(ns), CREDENTIALS_SECRET),
                "type": "Opaque",
                "data": { CREDENTIALS_KEY: k8s_openapi::ByteString(data.clone()) },
            }));
        }
        if !self.no_default_backup_location {
            objects.push(self.backup_storage_location());
        }
        if self.use_volume_snapshots {
            objects.push(self.volume_snapshot_location());
        }
        objects.push(self.deployment(&service_account));
        if self.use_node_agent {
            objects.push(self.node_agent(&service_account));
        }
        objects
    }

    /// A `local` location's directory, which the pods mount from their node (a single-node
    /// cluster, or a directory every node shares): `(volume, mount)`.
    fn local_location_volume(&self) -> Option<(Value, Value)> {
        let local = self.provider.as_deref().and_then(crate::normalize_provider) == Some("local");
        let dir = self.bucket.as_deref().filter(|b| !b.is_empty())?;
        if !local || self.no_default_backup_location {
            return None;
        }
        Some((
            json!({ "name": LOCAL_LOCATION_VOLUME, "hostPath": { "path": dir, "type": "DirectoryOrCreate" } }),
            // The same path inside as outside, so the location's bucket names it in both places.
            json!({ "name": LOCAL_LOCATION_VOLUME, "mountPath": dir }),
        ))
    }

    /// The credentials Secret's volume, mount and the variables that point every provider's SDK
    /// at it, when there is a Secret.
    fn credentials(&self) -> Option<(Value, Value, Vec<Value>)> {
        self.secret_data.as_ref()?;
        let env = [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AZURE_CREDENTIALS_FILE",
            "ALIBABA_CLOUD_CREDENTIALS_FILE",
        ]
        .iter()
        .map(|var| json!({ "name": var, "value": "/credentials/cloud" }))
        .collect();
        Some((
            json!({ "name": CREDENTIALS_SECRET, "secret": { "secretName": CREDENTIALS_SECRET, "defaultMode": 0o444 } }),
            json!({ "name": CREDENTIALS_SECRET, "mountPath": "/credentials" }),
            env,
        ))
    }

    /// The node-agent DaemonSet as Velero's `pkg/install/daemonset.go` renders it: `velero
    /// node-agent server` on every Linux node as root, the kubelet's `pods` and `plugins`
    /// directories mounted with HostToContainer propagation (so volumes mounted after the agent
    /// started are visible), privileged only with `--privileged-node-agent`.
    fn node_agent(&self, service_account: &str) -> Value {
        let root = self.kubelet_root_dir.trim_end_matches('/');
        let mut volumes = vec![
            json!({ "name": "host-pods", "hostPath": { "path": format!("{root}/pods") } }),
            json!({ "name": "host-plugins", "hostPath": { "path": format!("{root}/plugins") } }),
            json!({ "name": "scratch", "emptyDir": {} }),
        ];
        let mut mounts = vec![
            json!({ "name": "host-pods", "mountPath": "/host_pods", "mountPropagation": "HostToContainer" }),
            json!({ "name": "host-plugins", "mountPath": "/var/lib/kubelet/plugins", "mountPropagation": "HostToContainer" }),
            json!({ "name": "scratch", "mountPath": "/scratch" }),
        ];
        let mut env = vec![
            json!({ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }),
            json!({ "name": "VELERO_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } }),
            json!({ "name": "VELERO_SCRATCH_DIR", "value": "/scratch" }),
            // velero-rs: the agent checks that it sees its own pod's directory under /host_pods,
            // which proves --kubelet-root-dir right.
            json!({ "name": "POD_UID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.uid" } } }),
        ];
        if let Some((volume, mount)) = self.local_location_volume() {
            volumes.push(volume);
            mounts.push(mount);
        }
        if let Some((volume, mount, vars)) = self.credentials() {
            volumes.push(volume);
            mounts.push(mount);
            env.extend(vars);
        }
        let mut args = vec!["node-agent".to_string(), "server".to_string()];
        if !self.features.is_empty() {
            args.push(format!("--features={}", self.features.join(",")));
        }
        let mut pod_labels = self.pod_labels.clone();
        pod_labels.extend(labels());
        pod_labels.insert("name".into(), NODE_AGENT.into());
        pod_labels.insert("role".into(), NODE_AGENT.into());
        let mut template_meta = json!({ "labels": pod_labels });
        if !self.pod_annotations.is_empty() {
            template_meta["annotations"] = json!(self.pod_annotations);
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta(Some(&self.namespace), NODE_AGENT),
            "spec": {
                "selector": { "matchLabels": { "name": NODE_AGENT } },
                "template": {
                    "metadata": template_meta,
                    "spec": {
                        "serviceAccountName": service_account,
                        "securityContext": { "runAsUser": 0 },
                        "affinity": linux_only(),
                        "volumes": volumes,
                        "containers": [{
                            "name": NODE_AGENT,
                            "image": self.image,
                            "imagePullPolicy": pull_policy(&self.image),
                            "command": ["/velero"],
                            "args": args,
                            "ports": [{ "name": "metrics", "containerPort": METRICS_PORT }],
                            "securityContext": { "privileged": self.privileged_node_agent },
                            "volumeMounts": mounts,
                            "env": env,
                            "resources": resources(&self.node_agent_resources),
                        }],
                    },
                },
            },
        })
    }

    /// The objects as a `List`, the shape `velero install --dry-run -o yaml` prints and
    /// `kubectl apply -f -` accepts.
    pub fn render_list(&self) -> Value {
        json!({ "apiVersion": "v1", "kind": "List", "items": self.render() })
    }

    fn namespace_object(&self) -> Value {
        let mut m = meta(None, &self.namespace);
        // The server and node agent need privileged pods (host paths for file-system backup).
        for mode in ["enforce", "audit", "warn"] {
            m["labels"][format!("pod-security.kubernetes.io/{mode}")] = json!("privileged");
            m["labels"][format!("pod-security.kubernetes.io/{mode}-version")] = json!("latest");
        }
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": m })
    }

    fn cluster_role_binding(&self) -> Value {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(None, &crate::cluster_role_binding_name(&self.namespace)),
            "subjects": [{ "kind": "ServiceAccount", "namespace": self.namespace, "name": SERVICE_ACCOUNT }],
            "roleRef": { "kind": "ClusterRole", "name": "cluster-admin", "apiGroup": "rbac.authorization.k8s.io" },
        })
    }

    fn service_account(&self) -> Value {
        let mut m = meta(Some(&self.namespace), SERVICE_ACCOUNT);
        if !self.service_account_annotations.is_empty() {
            m["annotations"] = json!(self.service_account_annotations);
        }
        json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": m })
    }

    fn provider(&self) -> String {
        self.provider.clone().unwrap_or_default()
    }

    fn backup_storage_location(&self) -> Value {
        let mut bsl = v1::BackupStorageLocation::new(
            "default",
            v1::BackupStorageLocationSpec {
                provider: self.provider(),
                config: (!self.backup_location_config.is_empty())
                    .then(|| self.backup_location_config.clone()),
                object_storage: v1::ObjectStorageLocation {
                    bucket: self.bucket.clone().unwrap_or_default(),
                    prefix: self.prefix.clone().filter(|p| !p.is_empty()),
                    ca_cert: self.ca_cert.clone().map(k8s_openapi::ByteString),
                    ca_cert_ref: None,
                },
                default: Some(true),
                ..Default::default()
            },
        );
        bsl.metadata.namespace = Some(self.namespace.clone());
        bsl.metadata.labels = Some(labels());
        to_value(&bsl)
    }

    fn volume_snapshot_location(&self) -> Value {
        let mut vsl = v1::VolumeSnapshotLocation::new(
            "default",
            v1::VolumeSnapshotLocationSpec {
                provider: self.provider(),
                config: (!self.snapshot_location_config.is_empty())
                    .then(|| self.snapshot_location_config.clone()),
                credential: None,
            },
        );
        vsl.metadata.namespace = Some(self.namespace.clone());
        vsl.metadata.labels = Some(labels());
        to_value(&vsl)
    }

    fn server_args(&self) -> Vec<String> {
        let mut args = vec!["server".to_string()];
        if !self.features.is_empty() {
            args.push(format!("--features={}", self.features.join(",")));
        }
        let flags = [
            (
                self.default_volumes_to_fs_backup,
                "--default-volumes-to-fs-backup=true",
            ),
            (
                self.default_snapshot_move_data,
                "--default-snapshot-move-data=true",
            ),
            (
                self.schedule_skip_immediately,
                "--schedule-skip-immediately=true",
            ),
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| f.to_string()),
        );
        if let Some(u) = &self.uploader_type {
            args.push(format!("--uploader-type={u}"));
        }
        if self.restore_only {
            args.push("--restore-only".into());
        }
        let durations = [
            (
                "--default-repo-maintain-frequency",
                self.default_repo_maintain_frequency,
            ),
            (
                "--garbage-collection-frequency",
                self.garbage_collection_frequency,
            ),
            ("--fs-backup-timeout", self.pod_volume_operation_timeout),
        ];
        for (flag, value) in durations {
            if let Some(d) = value.filter(|d| d.as_nanos() > 0) {
                args.push(format!("{flag}={d}"));
            }
        }
        for (flag, value) in [
            ("--item-block-worker-count", self.item_block_worker_count),
            ("--concurrent-backups", self.concurrent_backups),
        ] {
            if let Some(n) = value.filter(|n| *n > 0) {
                args.push(format!("{flag}={n}"));
            }
        }
        args
    }

    fn deployment(&self, service_account: &str) -> Value {
        let pull_policy = pull_policy(&self.image);
        let mut pod_labels = labels();
        pod_labels.extend(self.pod_labels.clone());
        pod_labels.insert("deploy".into(), "velero".into());
        let mut annotations = BTreeMap::from([
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            ("prometheus.io/port".to_string(), METRICS_PORT.to_string()),
            ("prometheus.io/path".to_string(), "/metrics".to_string()),
        ]);
        annotations.extend(self.pod_annotations.clone());

        let mut env = vec![
            json!({ "name": "VELERO_SCRATCH_DIR", "value": "/scratch" }),
            json!({ "name": "VELERO_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } }),
            // Names the pod in the local provider's download URLs (the API server proxies to it).
            json!({ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }),
            json!({ "name": "LD_LIBRARY_PATH", "value": "/plugins" }),
        ];
        let mut mounts = vec![
            json!({ "name": "plugins", "mountPath": "/plugins" }),
            json!({ "name": "scratch", "mountPath": "/scratch" }),
        ];
        let mut volumes = vec![
            json!({ "name": "plugins", "emptyDir": {} }),
            json!({ "name": "scratch", "emptyDir": {} }),
        ];
        if let Some((volume, mount, vars)) = self.credentials() {
            volumes.push(volume);
            mounts.push(mount);
            env.extend(vars);
        }
        if let Some((volume, mount)) = self.local_location_volume() {
            volumes.push(volume);
            mounts.push(mount);
        }
        let init_containers: Vec<Value> = self
            .plugins
            .iter()
            .map(|image| {
                json!({
                    "name": plugin_container_name(image),
                    "image": image,
                    "imagePullPolicy": pull_policy,
                    "volumeMounts": [{ "name": "plugins", "mountPath": "/target" }],
                })
            })
            .collect();
        let mut pod_spec = json!({
            "restartPolicy": "Always",
            "serviceAccountName": service_account,
            "affinity": linux_only(),
            "containers": [{
                "name": "velero",
                "image": self.image,
                "imagePullPolicy": pull_policy,
                "command": ["/velero"],
                "args": self.server_args(),
                "ports": [{ "name": "metrics", "containerPort": METRICS_PORT }],
                "env": env,
                "volumeMounts": mounts,
                "resources": resources(&self.resources),
            }],
            "volumes": volumes,
        });
        if !init_containers.is_empty() {
            pod_spec["initContainers"] = json!(init_containers);
        }
        if let Some(pc) = &self.server_priority_class_name {
            pod_spec["priorityClassName"] = json!(pc);
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(Some(&self.namespace), "velero"),
            "spec": {
                "selector": { "matchLabels": { "deploy": "velero" } },
                "template": {
                    "metadata": { "labels": pod_labels, "annotations": annotations },
                    "spec": pod_spec,
                },
            },
        })
    }
}

/// Velero pulls every time unless the image is pinned to a tag other than latest.
fn pull_policy(image: &str) -> &'static str {
    match image.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" && !tag.contains('/') => "IfNotPresent",
        _ => "Always",
    }
}

fn linux_only() -> Value {
    json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
        { "matchExpressions": [{ "key": "kubernetes.io/os", "operator": "NotIn", "values": ["windows"] }] }
    ] } } })
}

/// Requests and limits, leaving out the ones that are "0" (unbounded), as Velero does.
fn resources(r: &Resources) -> Value {
    let pick = |pairs: [(&str, &str); 2]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .filter(|(_, v)| *v != "0" && !v.is_empty())
            .map(|(k, v)| (k.to_string(), canonical_quantity(v)))
            .collect()
    };
    let mut out = json!({});
    let requests = pick([("cpu", &r.cpu_request), ("memory", &r.mem_request)]);
    let limits = pick([("cpu", &r.cpu_limit), ("memory", &r.mem_limit)]);
    if !requests.is_empty() {
        out["requests"] = json!(requests);
    }
    if !limits.is_empty() {
        out["limits"] = json!(limits);
    }
    out
}

/// The API server stores quantities in canonical form (`1000m` becomes `1`); writing them that way
/// keeps `kubectl apply` of our output from seeing a change on every run, as Go's Quantity does.
fn canonical_quantity(value: &str) -> String {
    if let Some(millis) = value.strip_suffix('m').and_then(|n| n.parse::<u64>().ok())
        && millis % 1000 == 0
    {
        return (millis / 1000).to_string();
    }
    value.to_string()
}

/// Velero names a plugin's init container after the last path element of its image, without tag
/// or digest, with characters a container name cannot hold replaced by `-`.
fn plugin_container_name(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let name = last.split(':').next().unwrap_or(last);
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> InstallOptions {
        InstallOptions {
            provider: Some("aws".into()),
            bucket: Some("backups".into()),
            prefix: Some("cluster-a".into()),
            backup_location_config: [("region".to_string(), "minio".to_string())].into(),
            secret_data: Some(b"[default]\naws_access_key_id=a\n".to_vec()),
            ..Default::default()
        }
    }

    fn kinds(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn renders_velero_objects_in_apply_order() {
        let objects = options().render();
        let names = kinds(&objects);
        assert_eq!(names.len(), 13 + 7);
        assert!(
            names[..13]
                .iter()
                .all(|n| n.starts_with("CustomResourceDefinition/"))
        );
        assert_eq!(
            &names[13..],
            [
                "Namespace/velero",
                "ClusterRoleBinding/velero",
                "ServiceAccount/velero",
                "Secret/cloud-credentials",
                "BackupStorageLocation/default",
                "VolumeSnapshotLocation/default",
                "Deployment/velero",
            ]
        );
        for o in &objects {
            assert_eq!(
                o["metadata"]["labels"]["component"], "velero",
                "{}",
                o["kind"]
            );
        }
    }

    #[test]
    fn location_secret_and_deployment_carry_the_options() {
        let objects = options().render();
        let find = |kind: &str| objects.iter().find(|o| o["kind"] == kind).unwrap().clone();
        let bsl = find("BackupStorageLocation");
        assert_eq!(bsl["spec"]["provider"], "aws");
        assert_eq!(bsl["spec"]["default"], true);
        assert_eq!(
            bsl["spec"]["objectStorage"],
            json!({"bucket": "backups", "prefix": "cluster-a"})
        );
        assert_eq!(bsl["spec"]["config"], json!({"region": "minio"}));
        let secret = find("Secret");
        assert_eq!(
            secret["data"]["cloud"],
            "W2RlZmF1bHRdCmF3c19hY2Nlc3Nfa2V5X2lkPWEK"
        );
        let deploy = find("Deployment");
        let container = &deploy["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["command"], json!(["/velero"]));
        assert_eq!(container["args"], json!(["server"]));
        assert!(
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "AWS_SHARED_CREDENTIALS_FILE")
        );
        assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(container["resources"]["limits"]["cpu"], "1");
        assert_eq!(
            deploy["spec"]["template"]["metadata"]["labels"]["deploy"],
            "velero"
        );
    }

    #[test]
    fn another_namespace_gets_its_own_binding_and_no_secret_means_no_mount() {
        let objects = InstallOptions {
            namespace: "backup-system".into(),
            secret_data: None,
            no_secret: true,
            use_volume_snapshots: false,
            ..options()
        }
        .render();
        let names = kinds(&objects);
        assert!(names.contains(&"ClusterRoleBinding/velero-backup-system".to_string()));
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("Secret/") || n.starts_with("VolumeSnapshotLocation/"))
        );
        let deploy = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(deploy["metadata"]["namespace"], "backup-system");
        assert_eq!(
            deploy["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn node_agent_is_velero_s_daemon_set() {
        let objects = InstallOptions {
            use_node_agent: true,
            kubelet_root_dir: "/data/kubelet/".into(),
            image: "velero-rs:v1".into(),
            ..options()
        }
        .render();
        assert_eq!(kinds(&objects).last().unwrap(), "DaemonSet/node-agent");
        let ds = objects.last().unwrap();
        assert_eq!(
            ds["spec"]["selector"]["matchLabels"],
            json!({"name": "node-agent"})
        );
        let pod = &ds["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"]["role"], "node-agent");
        assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 0);
        assert_eq!(pod["spec"]["serviceAccountName"], "velero");
        assert_eq!(
            pod["spec"]["volumes"][0],
            json!({"name": "host-pods", "hostPath": {"path": "/data/kubelet/pods"}})
        );
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["args"], json!(["node-agent", "server"]));
        assert_eq!(container["image"], "velero-rs:v1");
        assert_eq!(container["imagePullPolicy"], "IfNotPresent");
        assert_eq!(container["securityContext"]["privileged"], false);
        assert_eq!(
            container["volumeMounts"][0],
            json!({"name": "host-pods", "mountPath": "/host_pods", "mountPropagation": "HostToContainer"})
        );
        let env: Vec<&str> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(env.contains(&"NODE_NAME") && env.contains(&"AWS_SHARED_CREDENTIALS_FILE"));
        // Unbounded unless asked, as Velero's.
        assert_eq!(container["resources"], json!({}));
    }

    #[test]
    fn a_local_location_is_mounted_where_its_path_says() {
        let objects = InstallOptions {
            provider: Some("local".into()),
            bucket: Some("/srv/backups".into()),
            secret_data: None,
            no_secret: true,
            use_node_agent: true,
            ..options()
        }
        .render();
        for kind in ["Deployment", "DaemonSet"] {
            let spec =
                &objects.iter().find(|o| o["kind"] == kind).unwrap()["spec"]["template"]["spec"];
            let volume = spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "local-backups")
                .unwrap_or_else(|| panic!("{kind} has no local-backups volume"));
            assert_eq!(
                volume["hostPath"],
                json!({"path": "/srv/backups", "type": "DirectoryOrCreate"})
            );
            let mounts = spec["containers"][0]["volumeMounts"].as_array().unwrap();
            assert!(
                mounts
                    .iter()
                    .any(|m| m["name"] == "local-backups" && m["mountPath"] == "/srv/backups"),
                "{kind}: {mounts:?}"
            );
        }
        // Object-store providers mount nothing from the node.
        let aws = options().render();
        assert!(
            !serde_json::to_string(&aws)
                .unwrap()
                .contains("local-backups")
        );
    }

    #[test]
    fn crds_only_is_just_the_crds() {
        let objects = InstallOptions {
            crds_only: true,
            ..Default::default()
        }
        .render();
        assert_eq!(objects.len(), 13);
    }

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(canonical_quantity("1000m"), "1");
        assert_eq!(canonical_quantity("500m"), "500m");
        assert_eq!(canonical_quantity("512Mi"), "512Mi");
    }

    #[test]
    fn plugin_names_follow_velero() {
        assert_eq!(
            plugin_container_name("velero/velero-plugin-for-aws:v1.12.0"),
            "velero-plugin-for-aws"
        );
        assert_eq!(
            plugin_container_name("registry:5000/my_plugin@sha256:abc"),
            "my-plugin"
        );
    }
}
