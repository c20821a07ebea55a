//! `PodVolumeBackup` and `PodVolumeRestore` (velero.io/v1): file-level backup of one pod volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::DataMoveOperationProgress;

/// Which data mover moved the bytes; empty on records written before the field existed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UploaderType {
    #[serde(rename = "kopia")]
    Kopia,
    #[serde(rename = "restic")]
    Restic,
    #[default]
    #[serde(rename = "")]
    Unset,
}

impl UploaderType {
    /// The value as the API writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            UploaderType::Kopia => "kopia",
            UploaderType::Restic => "restic",
            UploaderType::Unset => "",
        }
    }
}

/// Phases shared by PodVolumeBackup, PodVolumeRestore, DataUpload and DataDownload.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DataPathPhase {
    New,
    Accepted,
    Prepared,
    InProgress,
    Canceling,
    Canceled,
    Completed,
    Failed,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "velero.io",
    version = "v1",
    kind = "PodVolumeBackup",
    namespaced,
    status = "PodVolumeBackupStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "PodVolumeBackup status such as New/InProgress"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTimestamp",
        description = "Time duration since this PodVolumeBackup was started"
    ),
    printcolumn(
        name = "Bytes Done",
        type_ = "integer",
        format = "int64",
        json_path = ".status.progress.bytesDone",
        description = "Completed bytes"
    ),
    printcolumn(
        name = "Total Bytes",
        type_ = "integer",
        format = "int64",
        json_path = ".status.progress.totalBytes",
        description = "Total bytes"
    ),
    printcolumn(
        name = "Incremental Bytes",
        type_ = "integer",
        format = "int64",
        priority = "10",
        json_path = ".status.incrementalBytes",
        description = "Incremental bytes"
    ),
    printcolumn(
        name = "Storage Location",
        type_ = "string",
        json_path = ".spec.backupStorageLocation",
        description = "Name of the Backup Storage Location where this backup should be stored"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time duration since this PodVolumeBackup was created"
    ),
    printcolumn(
        name = "Node",
        type_ = "string",
        json_path = ".status.node",
        description = "Name of the node where the PodVolumeBackup is processed"
    ),
    printcolumn(
        name = "Uploader",
        type_ = "string",
        json_path = ".spec.uploaderType",
        description = "The type of the uploader to handle data transfer"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeBackupSpec {
    pub node: String,
    pub pod: ObjectReference,
    pub volume: String,
    pub backup_storage_location: String,
    pub repo_identifier: String,
    #[serde(default)]
    pub uploader_type: UploaderType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploader_settings: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeBackupStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<DataPathPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(rename = "snapshotID", skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<DataMoveOperationProgress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_timestamp: Option<Time>,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "velero.io",
    version = "v1",
    kind = "PodVolumeRestore",
    namespaced,
    status = "PodVolumeRestoreStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "PodVolumeRestore status such as New/InProgress"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTimestamp",
        description = "Time duration since this PodVolumeRestore was started"
    ),
    printcolumn(
        name = "Bytes Done",
        type_ = "integer",
        format = "int64",
        json_path = ".status.progress.bytesDone",
        description = "Completed bytes"
    ),
    printcolumn(
        name = "Total Bytes",
        type_ = "integer",
        format = "int64",
        json_path = ".status.progress.totalBytes",
        description = "Total bytes"
    ),
    printcolumn(
        name = "Storage Location",
        type_ = "string",
        json_path = ".spec.backupStorageLocation",
        description = "Name of the Backup Storage Location where the backup data is stored"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time duration since this PodVolumeRestore was created"
    ),
    printcolumn(
        name = "Node",
        type_ = "string",
        json_path = ".status.node",
        description = "Name of the node where the PodVolumeRestore is processed"
    ),
    printcolumn(
        name = "Uploader Type",
        type_ = "string",
        json_path = ".spec.uploaderType",
        description = "The type of the uploader to handle data transfer"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeRestoreSpec {
    pub pod: ObjectReference,
    pub volume: String,
    pub backup_storage_location: String,
    pub repo_identifier: String,
    #[serde(default)]
    pub uploader_type: UploaderType,
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    pub source_namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploader_settings: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_size: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeRestoreStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<DataPathPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<DataMoveOperationProgress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_timestamp: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}
