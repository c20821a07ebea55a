//! `BackupRepository` (velero.io/v1): one kopia repository per (volume namespace, location, type).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pod_volume::UploaderType;
use crate::Duration;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "velero.io",
    version = "v1",
    kind = "BackupRepository",
    namespaced,
    plural = "backuprepositories",
    status = "BackupRepositoryStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Repository Type",
        type_ = "string",
        json_path = ".spec.repositoryType"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositorySpec {
    pub volume_namespace: String,
    pub backup_storage_location: String,
    #[serde(default)]
    pub repository_type: UploaderType,
    /// Deprecated (restic only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restic_identifier: Option<String>,
    pub maintenance_frequency: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_config: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupRepositoryPhase {
    New,
    Ready,
    NotReady,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MaintenanceResult {
    Succeeded,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositoryStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupRepositoryPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_maintenance_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_maintenance: Option<Vec<BackupRepositoryMaintenanceStatus>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositoryMaintenanceStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<MaintenanceResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
