//! The part of Velero's runtime scheme a strategic merge patch needs: which kinds are registered
//! at all, and which list fields of their types merge element by element.
//!
//! Velero looks the object's kind up in the scheme of its server (`pkg/cmd/server/server.go`:
//! velero.io v1 and v2alpha1, core v1, apps v1, batch v1, snapshot.storage.k8s.io v1 and
//! groupsnapshot.storage.k8s.io v1beta2) and fails the patch for any other kind, custom resources
//! included. The merge keys are the `patchStrategy:"merge"` / `patchMergeKey` struct tags of
//! k8s.io/api and apimachinery v0.36.0, the versions Velero builds with. Velero's own types and the
//! snapshot types carry no such tags, so only their `metadata` merges lists.

/// The fields of one Go struct that matter to a strategic merge: nested structs that lead to a
/// merging list, and the merging lists themselves. Any other field merges as a plain map (objects)
/// or is replaced (lists), which is what Go does for fields without a patch strategy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schema {
    fields: &'static [(&'static str, Field)],
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Object(Schema),
    /// `patchStrategy:"merge"`; `key` is the `patchMergeKey`, empty for a list of scalars, which
    /// merges as a set.
    MergeList {
        key: &'static str,
        elem: Schema,
    },
}

/// How a list field is patched.
#[derive(Debug, Clone, Copy)]
pub(super) struct ListMeta {
    /// `None`: the patch replaces the list. `Some(key)`: elements merge by `key` (`""` for scalars).
    pub merge_key: Option<&'static str>,
    pub elem: Schema,
}

impl Schema {
    pub(super) const OPAQUE: Schema = Schema { fields: &[] };

    fn field(self, name: &str) -> Option<Field> {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, kind)| *kind)
    }

    /// The schema of the object held by field `name`.
    pub(super) fn object(self, name: &str) -> Schema {
        match self.field(name) {
            Some(Field::Object(schema)) => schema,
            _ => Schema::OPAQUE,
        }
    }

    /// The strategy of the list held by field `name`.
    pub(super) fn list(self, name: &str) -> ListMeta {
        match self.field(name) {
            Some(Field::MergeList { key, elem }) => ListMeta {
                merge_key: Some(key),
                elem,
            },
            _ => ListMeta {
                merge_key: None,
                elem: Schema::OPAQUE,
            },
        }
    }
}

const fn object(fields: &'static [(&'static str, Field)]) -> Schema {
    Schema { fields }
}

const fn merge(key: &'static str) -> Field {
    Field::MergeList {
        key,
        elem: Schema::OPAQUE,
    }
}

const fn merge_of(key: &'static str, elem: Schema) -> Field {
    Field::MergeList { key, elem }
}

const OBJECT_META: Schema = object(&[("ownerReferences", merge("uid")), ("finalizers", merge(""))]);

const METADATA: (&str, Field) = ("metadata", Field::Object(OBJECT_META));

/// core/v1 Container; EphemeralContainer inlines the same tagged fields.
const CONTAINER: Schema = object(&[
    ("ports", merge("containerPort")),
    ("env", merge("name")),
    ("volumeMounts", merge("mountPath")),
    ("volumeDevices", merge("devicePath")),
]);

const POD_SPEC: Schema = object(&[
    ("volumes", merge("name")),
    ("initContainers", merge_of("name", CONTAINER)),
    ("containers", merge_of("name", CONTAINER)),
    ("ephemeralContainers", merge_of("name", CONTAINER)),
    ("imagePullSecrets", merge("name")),
    ("hostAliases", merge("ip")),
    ("topologySpreadConstraints", merge("topologyKey")),
    ("schedulingGates", merge("name")),
    ("resourceClaims", merge("name")),
]);

const POD_STATUS: Schema = object(&[
    ("conditions", merge("type")),
    ("hostIPs", merge("ip")),
    ("podIPs", merge("ip")),
    ("resourceClaimStatuses", merge("name")),
]);

const POD_TEMPLATE_SPEC: Schema = object(&[METADATA, ("spec", Field::Object(POD_SPEC))]);

/// A spec whose only merging lists are in its pod template.
const TEMPLATE_OWNER_SPEC: Schema = object(&[("template", Field::Object(POD_TEMPLATE_SPEC))]);

/// A status whose only merging list is `conditions`, keyed by `type`.
const CONDITIONS_STATUS: Schema = object(&[("conditions", merge("type"))]);

const METADATA_ONLY: Schema = object(&[METADATA]);

/// Deployment, ReplicaSet, DaemonSet, StatefulSet, Job and ReplicationController.
const WORKLOAD: Schema = object(&[
    METADATA,
    ("spec", Field::Object(TEMPLATE_OWNER_SPEC)),
    ("status", Field::Object(CONDITIONS_STATUS)),
]);

const POD: Schema = object(&[
    METADATA,
    ("spec", Field::Object(POD_SPEC)),
    ("status", Field::Object(POD_STATUS)),
]);

const POD_STATUS_RESULT: Schema = object(&[METADATA, ("status", Field::Object(POD_STATUS))]);

const POD_TEMPLATE: Schema = object(&[METADATA, ("template", Field::Object(POD_TEMPLATE_SPEC))]);

const CRON_JOB: Schema = object(&[
    METADATA,
    (
        "spec",
        Field::Object(object(&[(
            "jobTemplate",
            Field::Object(object(&[
                METADATA,
                ("spec", Field::Object(TEMPLATE_OWNER_SPEC)),
            ])),
        )])),
    ),
]);

const SERVICE: Schema = object(&[
    METADATA,
    ("spec", Field::Object(object(&[("ports", merge("port"))]))),
    ("status", Field::Object(CONDITIONS_STATUS)),
]);

const SERVICE_ACCOUNT: Schema = object(&[METADATA, ("secrets", merge("name"))]);

const NODE: Schema = object(&[
    METADATA,
    ("spec", Field::Object(object(&[("podCIDRs", merge(""))]))),
    (
        "status",
        Field::Object(object(&[
            ("conditions", merge("type")),
            ("addresses", merge("type")),
        ])),
    ),
]);

const WITH_CONDITIONS_STATUS: Schema =
    object(&[METADATA, ("status", Field::Object(CONDITIONS_STATUS))]);

const COMPONENT_STATUS: Schema = object(&[METADATA, ("conditions", merge("type"))]);

/// Registered by `metav1.AddToGroupVersion` in every group version of the scheme.
const COMMON_KINDS: &[&str] = &[
    "WatchEvent",
    "ListOptions",
    "GetOptions",
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
];

/// Registered without a version: the scheme finds them by kind alone, whatever the apiVersion.
const UNVERSIONED_KINDS: &[&str] = &[
    "Status",
    "APIVersions",
    "APIGroupList",
    "APIGroup",
    "APIResourceList",
];

const CORE_KINDS: &[(&str, Schema)] = &[
    ("Pod", POD),
    ("PodStatusResult", POD_STATUS_RESULT),
    ("PodTemplate", POD_TEMPLATE),
    ("ReplicationController", WORKLOAD),
    ("Service", SERVICE),
    ("ServiceProxyOptions", METADATA_ONLY),
    ("Endpoints", METADATA_ONLY),
    ("Node", NODE),
    ("NodeProxyOptions", METADATA_ONLY),
    ("Binding", METADATA_ONLY),
    ("Event", METADATA_ONLY),
    ("List", METADATA_ONLY),
    ("LimitRange", METADATA_ONLY),
    ("ResourceQuota", METADATA_ONLY),
    ("Namespace", WITH_CONDITIONS_STATUS),
    ("Secret", METADATA_ONLY),
    ("ServiceAccount", SERVICE_ACCOUNT),
    ("PersistentVolume", METADATA_ONLY),
    ("PersistentVolumeClaim", WITH_CONDITIONS_STATUS),
    ("PodAttachOptions", METADATA_ONLY),
    ("PodLogOptions", METADATA_ONLY),
    ("PodExecOptions", METADATA_ONLY),
    ("PodPortForwardOptions", METADATA_ONLY),
    ("PodProxyOptions", METADATA_ONLY),
    ("ComponentStatus", COMPONENT_STATUS),
    ("SerializedReference", METADATA_ONLY),
    ("RangeAllocation", METADATA_ONLY),
    ("ConfigMap", METADATA_ONLY),
];

/// Core kinds registered without a matching `…List` kind.
const KINDS_WITHOUT_LIST: &[&str] = &[
    "PodStatusResult",
    "ServiceProxyOptions",
    "NodeProxyOptions",
    "Binding",
    "List",
    "PodAttachOptions",
    "PodLogOptions",
    "PodExecOptions",
    "PodPortForwardOptions",
    "PodProxyOptions",
    "SerializedReference",
    "RangeAllocation",
];

const APPS_KINDS: &[(&str, Schema)] = &[
    ("Deployment", WORKLOAD),
    ("StatefulSet", WORKLOAD),
    ("DaemonSet", WORKLOAD),
    ("ReplicaSet", WORKLOAD),
    ("ControllerRevision", METADATA_ONLY),
];

const BATCH_KINDS: &[(&str, Schema)] = &[("Job", WORKLOAD), ("CronJob", CRON_JOB)];

const VELERO_V1_KINDS: &[(&str, Schema)] = &[
    ("Backup", METADATA_ONLY),
    ("Restore", METADATA_ONLY),
    ("Schedule", METADATA_ONLY),
    ("DownloadRequest", METADATA_ONLY),
    ("DeleteBackupRequest", METADATA_ONLY),
    ("PodVolumeBackup", METADATA_ONLY),
    ("PodVolumeRestore", METADATA_ONLY),
    ("BackupRepository", METADATA_ONLY),
    ("BackupStorageLocation", METADATA_ONLY),
    ("VolumeSnapshotLocation", METADATA_ONLY),
    ("ServerStatusRequest", METADATA_ONLY),
];

const VELERO_V2ALPHA1_KINDS: &[(&str, Schema)] = &[
    ("DataUpload", METADATA_ONLY),
    ("DataDownload", METADATA_ONLY),
];

const SNAPSHOT_KINDS: &[(&str, Schema)] = &[
    ("VolumeSnapshot", METADATA_ONLY),
    ("VolumeSnapshotContent", METADATA_ONLY),
    ("VolumeSnapshotClass", METADATA_ONLY),
];

const GROUP_SNAPSHOT_KINDS: &[(&str, Schema)] = &[
    ("VolumeGroupSnapshot", METADATA_ONLY),
    ("VolumeGroupSnapshotContent", METADATA_ONLY),
    ("VolumeGroupSnapshotClass", METADATA_ONLY),
];

/// The schema of `kind` in `api_version`, or `None` if Velero's scheme does not know the kind, in
/// which case Velero refuses the strategic patch.
pub(super) fn lookup(api_version: &str, kind: &str) -> Option<Schema> {
    if UNVERSIONED_KINDS.contains(&kind) {
        return Some(METADATA_ONLY);
    }
    let kinds = match api_version {
        "v1" => CORE_KINDS,
        "apps/v1" => APPS_KINDS,
        "batch/v1" => BATCH_KINDS,
        "velero.io/v1" => VELERO_V1_KINDS,
        "velero.io/v2alpha1" => VELERO_V2ALPHA1_KINDS,
        "snapshot.storage.k8s.io/v1" => SNAPSHOT_KINDS,
        "groupsnapshot.storage.k8s.io/v1beta2" => GROUP_SNAPSHOT_KINDS,
        _ => return None,
    };
    if COMMON_KINDS.contains(&kind) {
        return Some(METADATA_ONLY);
    }
    let find = |name: &str| kinds.iter().find(|(k, _)| *k == name).map(|(_, s)| *s);
    if let Some(schema) = find(kind) {
        return Some(schema);
    }
    // Every registered type comes with its list type; list items are replaced, never merged.
    kind.strip_suffix("List")
        .filter(|item| !KINDS_WITHOUT_LIST.contains(item) && find(item).is_some())
        .map(|_| METADATA_ONLY)
}
