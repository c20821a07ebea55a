//! Reading Velero manifests of any kind.

use serde_json::Value;

use crate::{v1, v2alpha1};

/// A Velero object of any kind, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum VeleroObject {
    Backup(v1::Backup),
    Restore(v1::Restore),
    Schedule(v1::Schedule),
    BackupStorageLocation(v1::BackupStorageLocation),
    VolumeSnapshotLocation(v1::VolumeSnapshotLocation),
    DeleteBackupRequest(v1::DeleteBackupRequest),
    DownloadRequest(v1::DownloadRequest),
    ServerStatusRequest(v1::ServerStatusRequest),
    PodVolumeBackup(v1::PodVolumeBackup),
    PodVolumeRestore(v1::PodVolumeRestore),
    BackupRepository(v1::BackupRepository),
    DataUpload(v2alpha1::DataUpload),
    DataDownload(v2alpha1::DataDownload),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "not a Velero object: apiVersion {api_version:?}, kind {kind:?} (expected velero.io/v1 or velero.io/v2alpha1)"
    )]
    NotVelero { api_version: String, kind: String },
    #[error("invalid {kind} {name:?}: {source}")]
    Invalid {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl VeleroObject {
    /// Types a JSON object by its `apiVersion` and `kind`.
    pub fn from_value(mut value: Value) -> Result<VeleroObject, ManifestError> {
        // The API server defaults a missing spec to {} (see the CRDs); files get the same treatment.
        if let Some(object) = value.as_object_mut() {
            object
                .entry("spec")
                .or_insert_with(|| Value::Object(Default::default()));
        }
        let field = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let invalid = |source| ManifestError::Invalid {
            kind: kind.clone(),
            name: name.clone(),
            source,
        };
        macro_rules! typed {
            ($variant:ident) => {
                serde_json::from_value(value.clone())
                    .map(VeleroObject::$variant)
                    .map_err(invalid)
            };
        }
        match (api_version.as_str(), kind.as_str()) {
            ("velero.io/v1", "Backup") => typed!(Backup),
            ("velero.io/v1", "Restore") => typed!(Restore),
            ("velero.io/v1", "Schedule") => typed!(Schedule),
            ("velero.io/v1", "BackupStorageLocation") => typed!(BackupStorageLocation),
            ("velero.io/v1", "VolumeSnapshotLocation") => typed!(VolumeSnapshotLocation),
            ("velero.io/v1", "DeleteBackupRequest") => typed!(DeleteBackupRequest),
            ("velero.io/v1", "DownloadRequest") => typed!(DownloadRequest),
            ("velero.io/v1", "ServerStatusRequest") => typed!(ServerStatusRequest),
            ("velero.io/v1", "PodVolumeBackup") => typed!(PodVolumeBackup),
            ("velero.io/v1", "PodVolumeRestore") => typed!(PodVolumeRestore),
            ("velero.io/v1", "BackupRepository") => typed!(BackupRepository),
            ("velero.io/v2alpha1", "DataUpload") => typed!(DataUpload),
            ("velero.io/v2alpha1", "DataDownload") => typed!(DataDownload),
            _ => Err(ManifestError::NotVelero { api_version, kind }),
        }
    }

    /// The object as JSON, as it goes over the wire.
    pub fn to_value(&self) -> Value {
        let result = match self {
            VeleroObject::Backup(o) => serde_json::to_value(o),
            VeleroObject::Restore(o) => serde_json::to_value(o),
            VeleroObject::Schedule(o) => serde_json::to_value(o),
            VeleroObject::BackupStorageLocation(o) => serde_json::to_value(o),
            VeleroObject::VolumeSnapshotLocation(o) => serde_json::to_value(o),
            VeleroObject::DeleteBackupRequest(o) => serde_json::to_value(o),
            VeleroObject::DownloadRequest(o) => serde_json::to_value(o),
            VeleroObject::ServerStatusRequest(o) => serde_json::to_value(o),
            VeleroObject::PodVolumeBackup(o) => serde_json::to_value(o),
            VeleroObject::PodVolumeRestore(o) => serde_json::to_value(o),
            VeleroObject::BackupRepository(o) => serde_json::to_value(o),
            VeleroObject::DataUpload(o) => serde_json::to_value(o),
            VeleroObject::DataDownload(o) => serde_json::to_value(o),
        };
        // Serializing plain data structs into a Value cannot fail: no maps with non-string keys.
        result.unwrap_or(Value::Null)
    }
}
