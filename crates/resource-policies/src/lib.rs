//! Velero's backup resource policies (internal/resourcepolicies): a ConfigMap, named by a
//! Backup's `spec.resourcePolicy`, whose single data entry holds YAML such as
//!
//! ```yaml
//! version: v1
//! volumePolicies:
//! - conditions:
//!     capacity: "10Gi,100Gi"        # "min,max", either side may be empty
//!     storageClass: [gp2, gp3]
//!     nfs: {server: 10.0.0.1}        # {} matches every NFS volume
//!     csi: {driver: ebs.csi.aws.com} # {} matches every CSI volume
//!     volumeTypes: [emptyDir, local]
//!     pvcLabels: {app: db}
//!     pvcPhase: [Bound]
//!   action:
//!     type: fs-backup                # skip | snapshot | fs-backup | custom
//! includeExcludePolicy:
//!   excludedNamespaceScopedResources: [events]
//! ```
//!
//! The first volume policy whose conditions all hold decides what happens to a volume. Parsing
//! and validation follow Velero's: unknown keys, a version other than `v1`, an unknown action,
//! a capacity range upside down, a CSI attribute filter without a driver and `*` or overlapping
//! entries in the include/exclude policy are refused, and the Backup fails validation.

mod quantity;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub use quantity::{Quantity, QuantityError};

/// The only version Velero accepts.
const SUPPORTED_VERSION: &str = "v1";

/// What a matching volume policy does with a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionType {
    Skip,
    Snapshot,
    FsBackup,
    Custom,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::Skip => "skip",
            ActionType::Snapshot => "snapshot",
            ActionType::FsBackup => "fs-backup",
            ActionType::Custom => "custom",
        }
    }
}

/// A ConfigMap that cannot be used; the Backup fails validation with this message.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "the resource policies ConfigMap must have exactly one entry in data, holding the policies as YAML, but it has {count}"
    )]
    DataKeys { count: usize },
    #[error("failed to decode yaml data into resource policies: {0}")]
    Decode(String),
    #[error("incompatible version number {0} with supported version {SUPPORTED_VERSION}")]
    Version(String),
    #[error(
        "volumePolicies[{index}]: invalid action type {0:?} (use skip, snapshot, fs-backup or custom)",
        kind
    )]
    Action { index: usize, kind: String },
    #[error("volumePolicies[{index}]: wrong format of capacity {capacity:?}: {problem}")]
    Capacity {
        index: usize,
        capacity: String,
        problem: String,
    },
    #[error(
        "volumePolicies[{index}]: csi driver should not be empty when filtering by volume attributes"
    )]
    CsiDriver { index: usize },
    #[error("includeExcludePolicy: {0}")]
    IncludeExclude(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicies {
    #[serde(default)]
    version: String,
    #[serde(default)]
    volume_policies: Vec<RawVolumePolicy>,
    #[serde(default)]
    include_exclude_policy: Option<IncludeExcludePolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolumePolicy {
    #[serde(default)]
    conditions: Conditions,
    action: RawAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(rename = "type", default)]
    kind: String,
    /// Handed to custom actions' plugins; unused by velero-rs itself.
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Conditions {
    #[serde(default)]
    capacity: Option<String>,
    #[serde(default)]
    storage_class: Vec<String>,
    #[serde(default)]
    nfs: Option<Nfs>,
    #[serde(default)]
    csi: Option<Csi>,
    #[serde(default)]
    volume_types: Vec<String>,
    #[serde(default)]
    pvc_labels: BTreeMap<String, String>,
    #[serde(default)]
    pvc_phase: Vec<String>,
}

/// An NFS source, in a condition or a volume.
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Nfs {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub path: String,
}

/// A CSI source, in a condition or a volume.
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Csi {
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub volume_attributes: Option<BTreeMap<String, String>>,
}

/// Resource types added to a backup's new-style filters where the Backup says nothing about
/// them (Velero's `ScopeIncludesExcludes.CombineWithPolicy`).
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IncludeExcludePolicy {
    #[serde(default)]
    pub included_cluster_scoped_resources: Vec<String>,
    #[serde(default)]
    pub excluded_cluster_scoped_resources: Vec<String>,
    #[serde(default)]
    pub included_namespace_scoped_resources: Vec<String>,
    #[serde(default)]
    pub excluded_namespace_scoped_resources: Vec<String>,
}

impl IncludeExcludePolicy {
    fn validate(&self) -> Result<(), PolicyError> {
        for (includes, excludes) in [
            (
                &self.included_cluster_scoped_resources,
                &self.excluded_cluster_scoped_resources,
            ),
            (
                &self.included_namespace_scoped_resources,
                &self.excluded_namespace_scoped_resources,
            ),
        ] {
            if includes.iter().chain(excludes).any(|r| r == "*") {
                return Err(PolicyError::IncludeExclude(
                    "cannot use '*' in includes or excludes filters in the policy".into(),
                ));
            }
            if let Some(both) = excludes.iter().find(|e| includes.contains(e)) {
                return Err(PolicyError::IncludeExclude(format!(
                    "excludes list cannot contain an item in the includes list: {both}"
                )));
            }
        }
        Ok(())
    }
}

/// An inclusive capacity range; a zero bound is open (Velero's `capacity.isInRange`).
#[derive(Debug, Clone, Copy)]
struct Capacity {
    lower: Quantity,
    upper: Quantity,
}

impl Capacity {
    fn parse(text: Option<&str>) -> Result<Capacity, String> {
        let text = text.filter(|t| !t.is_empty()).unwrap_or(",");
        let (lower, upper) = text
            .split_once(',')
            .filter(|(_, upper)| !upper.contains(','))
            .ok_or("expected \"min,max\"")?;
        let bound = |b: &str| match b.trim() {
            "" => Ok(Quantity::ZERO),
            b => Quantity::parse(b).map_err(|e| e.to_string()),
        };
        let range = Capacity {
            lower: bound(lower)?,
            upper: bound(upper)?,
        };
        if range.upper >= range.lower || (!range.lower.is_zero() && range.upper.is_zero()) {
            Ok(range)
        } else {
            Err("the minimum is larger than the maximum".into())
        }
    }

    fn contains(self, size: Quantity) -> bool {
        match (self.lower.is_zero(), self.upper.is_zero()) {
            (true, _) if self.upper >= size => true,
            (_, true) if self.lower <= size => true,
            (false, false) => self.lower <= size && size <= self.upper,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct VolumePolicy {
    conditions: Conditions,
    capacity: Capacity,
    action: ActionType,
}

/// A resource policies ConfigMap, validated.
#[derive(Debug, Clone, Default)]
pub struct ResourcePolicies {
    volume_policies: Vec<VolumePolicy>,
    include_exclude: Option<IncludeExcludePolicy>,
}

impl ResourcePolicies {
    /// Parses and validates the `data` of the ConfigMap.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self, PolicyError> {
        let [yaml] = data.values().collect::<Vec<_>>()[..] else {
            return Err(PolicyError::DataKeys { count: data.len() });
        };
        Self::from_yaml(yaml)
    }

    pub fn from_yaml(yaml: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicies =
            serde_saphyr::from_str(yaml).map_err(|e| PolicyError::Decode(e.to_string()))?;
        if raw.version != SUPPORTED_VERSION {
            return Err(PolicyError::Version(raw.version));
        }
        let mut volume_policies = Vec::new();
        for (index, policy) in raw.volume_policies.into_iter().enumerate() {
            let action = match policy.action.kind.as_str() {
                "skip" => ActionType::Skip,
                "snapshot" => ActionType::Snapshot,
                "fs-backup" => ActionType::FsBackup,
                "custom" => ActionType::Custom,
                other => {
                    return Err(PolicyError::Action {
                        index,
                        kind: other.to_string(),
                    });
                }
            };
            let capacity =
                Capacity::parse(policy.conditions.capacity.as_deref()).map_err(|problem| {
                    PolicyError::Capacity {
                        index,
                        capacity: policy.conditions.capacity.clone().unwrap_or_default(),
                        problem,
                    }
                })?;
            if policy
                .conditions
                .csi
                .as_ref()
                .is_some_and(|c| c.driver.is_empty() && c.volume_attributes.is_some())
            {
                return Err(PolicyError::CsiDriver { index });
            }
            volume_policies.push(VolumePolicy {
                conditions: policy.conditions,
                capacity,
                action,
            });
        }
        if let Some(p) = &raw.include_exclude_policy {
            p.validate()?;
        }
        Ok(ResourcePolicies {
            volume_policies,
            include_exclude: raw.include_exclude_policy,
        })
    }

    /// The action of the first volume policy whose conditions all hold for `volume`, if any.
    pub fn volume_action(&self, volume: &VolumeFacts) -> Option<ActionType> {
        self.volume_policies
            .iter()
            .find(|p| p.matches(volume))
            .map(|p| p.action)
    }

    pub fn include_exclude(&self) -> Option<&IncludeExcludePolicy> {
        self.include_exclude.as_ref()
    }
}

impl VolumePolicy {
    fn matches(&self, v: &VolumeFacts) -> bool {
        let c = &self.conditions;
        self.capacity.contains(v.capacity)
            && (c.storage_class.is_empty()
                || v.storage_class
                    .as_ref()
                    .is_some_and(|s| c.storage_class.contains(s)))
            && c.nfs
                .as_ref()
                .is_none_or(|want| nfs_matches(want, v.nfs.as_ref()))
            && c.csi
                .as_ref()
                .is_none_or(|want| csi_matches(want, v.csi.as_ref()))
            && (c.volume_types.is_empty()
                || v.volume_type
                    .as_ref()
                    .is_some_and(|t| c.volume_types.contains(t)))
            && (c.pvc_labels.is_empty()
                || v.pvc_labels.as_ref().is_some_and(|labels| {
                    c.pvc_labels
                        .iter()
                        .all(|(k, val)| labels.get(k) == Some(val))
                }))
            && (c.pvc_phase.is_empty()
                || v.pvc_phase
                    .as_ref()
                    .is_some_and(|p| c.pvc_phase.contains(p)))
    }
}

fn nfs_matches(want: &Nfs, have: Option<&Nfs>) -> bool {
    let Some(have) = have else { return false };
    (want.server.is_empty() || want.server == have.server)
        && (want.path.is_empty() || want.path == have.path)
}

fn csi_matches(want: &Csi, have: Option<&Csi>) -> bool {
    let Some(have) = have else { return false };
    if want.driver.is_empty() {
        return true;
    }
    if want.driver != have.driver {
        return false;
    }
    let wanted = want.volume_attributes.clone().unwrap_or_default();
    let present = have.volume_attributes.clone().unwrap_or_default();
    wanted.is_empty()
        || (!present.is_empty() && wanted.iter().all(|(k, v)| present.get(k) == Some(v)))
}

/// The volume types Velero's `volumeTypes` condition names (internal/resourcepolicies/
/// volume_types_conditions.go), as they appear as keys of a PersistentVolume's spec or of a pod
/// volume.
const VOLUME_TYPES: [&str; 29] = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flocker",
    "flexVolume",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
    "secret",
    "downwardAPI",
    "configMap",
    "projected",
    "ephemeral",
    "emptyDir",
];

/// What the conditions look at, gathered from a PersistentVolume and its claim, or from a pod
/// volume (and its claim when its PersistentVolume cannot be read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeFacts {
    pub capacity: Quantity,
    pub storage_class: Option<String>,
    pub nfs: Option<Nfs>,
    pub csi: Option<Csi>,
    pub volume_type: Option<String>,
    pub pvc_labels: Option<BTreeMap<String, String>>,
    pub pvc_phase: Option<String>,
}

fn source_type(source: &Value) -> Option<String> {
    // The API spells StorageOS `storageos`; Velero's condition name is `storageOS`.
    VOLUME_TYPES
        .iter()
        .find(|t| source.get(**t).is_some())
        .map(|t| if *t == "storageos" { "storageOS" } else { t }.to_string())
}

fn nfs_of(source: &Value) -> Option<Nfs> {
    let nfs = source.get("nfs")?;
    let text = |k: &str| nfs[k].as_str().unwrap_or_default().to_string();
    Some(Nfs {
        server: text("server"),
        path: text("path"),
    })
}

fn csi_of(source: &Value) -> Option<Csi> {
    let csi = source.get("csi")?;
    Some(Csi {
        driver: csi["driver"].as_str().unwrap_or_default().to_string(),
        volume_attributes: serde_json::from_value(csi["volumeAttributes"].clone()).ok(),
    })
}

impl VolumeFacts {
    /// From a PersistentVolume (as JSON): capacity, class, source and type.
    pub fn from_persistent_volume(pv: &Value) -> VolumeFacts {
        let spec = &pv["spec"];
        VolumeFacts {
            capacity: spec
                .pointer("/capacity/storage")
                .and_then(Value::as_str)
                .and_then(|s| Quantity::parse(s).ok())
                .unwrap_or_default(),
            storage_class: spec["storageClassName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            nfs: nfs_of(spec),
            csi: csi_of(spec),
            volume_type: source_type(spec),
            ..VolumeFacts::default()
        }
    }

    /// From a volume of a pod spec (as JSON): only its source and type.
    pub fn from_pod_volume(volume: &Value) -> VolumeFacts {
        VolumeFacts {
            nfs: nfs_of(volume),
            csi: csi_of(volume),
            volume_type: source_type(volume),
            ..VolumeFacts::default()
        }
    }

    /// Adds the claim's labels and phase.
    pub fn with_claim(mut self, claim: &Value) -> VolumeFacts {
        self.pvc_labels = claim
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok())
            .filter(|l| !l.is_empty());
        self.pvc_phase = claim
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .map(str::to_string);
        self
    }
}

#[cfg(test)]
mod tests;
