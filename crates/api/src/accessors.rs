//! What call sites would otherwise derive again and again: a phase enum's wire string, a kind's
//! phase, a location's availability.

use crate::v1::{
    Backup, BackupPhase, BackupRepository, BackupRepositoryPhase, BackupStorageLocation,
    BackupStorageLocationPhase, DataPathPhase, DeleteBackupRequest, DeleteBackupRequestPhase,
    DownloadRequest, DownloadRequestPhase, PodVolumeBackup, PodVolumeRestore, Restore,
    RestorePhase, Schedule, SchedulePhase, ServerStatusRequest, ServerStatusRequestPhase,
    VolumeSnapshotLocation, VolumeSnapshotLocationPhase,
};
use crate::v2alpha1::{DataDownload, DataUpload};

/// `as_str()` and `Display` for enums whose JSON value is the variant's own name, as Velero's
/// phases are; a unit test holds every variant to its serde string.
macro_rules! wire_names {
    ($($name:ident { $($variant:ident),+ $(,)? })+) => {
        $(
            impl $name {
                /// The value as the API writes it.
                pub fn as_str(&self) -> &'static str {
                    match self {
                        $($name::$variant => stringify!($variant),)+
                    }
                }

                #[cfg(test)]
                const ALL: &'static [$name] = &[$($name::$variant),+];
            }

            impl std::fmt::Display for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(self.as_str())
                }
            }
        )+
    };
}

wire_names! {
    BackupPhase {
        New, Queued, ReadyToStart, FailedValidation, InProgress, WaitingForPluginOperations,
        WaitingForPluginOperationsPartiallyFailed, Finalizing, FinalizingPartiallyFailed,
        Completed, PartiallyFailed, Failed, Deleting,
    }
    RestorePhase {
        New, FailedValidation, InProgress, WaitingForPluginOperations,
        WaitingForPluginOperationsPartiallyFailed, Completed, PartiallyFailed, Failed, Finalizing,
        FinalizingPartiallyFailed, DryRunCompleted,
    }
    SchedulePhase { New, Enabled, FailedValidation }
    BackupStorageLocationPhase { Available, Unavailable }
    VolumeSnapshotLocationPhase { Available, Unavailable }
    DownloadRequestPhase { New, Processed }
    DeleteBackupRequestPhase { New, InProgress, Processed }
    ServerStatusRequestPhase { New, Processed }
    BackupRepositoryPhase { New, Ready, NotReady }
    DataPathPhase { New, Accepted, Prepared, InProgress, Canceling, Canceled, Completed, Failed }
}

/// `phase()` for every kind with a status: `None` until a controller has set one.
macro_rules! phase_of {
    ($($kind:ident => $phase:ident),+ $(,)?) => {
        $(
            impl $kind {
                /// `status.phase`, if set.
                pub fn phase(&self) -> Option<$phase> {
                    self.status.as_ref()?.phase
                }
            }
        )+
    };
}

phase_of! {
    Backup => BackupPhase,
    Restore => RestorePhase,
    Schedule => SchedulePhase,
    BackupStorageLocation => BackupStorageLocationPhase,
    VolumeSnapshotLocation => VolumeSnapshotLocationPhase,
    DownloadRequest => DownloadRequestPhase,
    DeleteBackupRequest => DeleteBackupRequestPhase,
    ServerStatusRequest => ServerStatusRequestPhase,
    BackupRepository => BackupRepositoryPhase,
    PodVolumeBackup => DataPathPhase,
    PodVolumeRestore => DataPathPhase,
    DataUpload => DataPathPhase,
    DataDownload => DataPathPhase,
}

impl BackupStorageLocation {
    /// Whether the last validation found the location usable.
    pub fn is_available(&self) -> bool {
        self.phase() == Some(BackupStorageLocationPhase::Available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(value: &impl serde::Serialize) -> String {
        serde_json::to_value(value)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    #[test]
    fn every_phase_names_itself_as_serde_writes_it() {
        macro_rules! check {
            ($($name:ident),+) => {
                $(for phase in $name::ALL {
                    assert_eq!(phase.as_str(), wire(phase), "{}", stringify!($name));
                    assert_eq!(phase.to_string(), phase.as_str());
                })+
            };
        }
        check!(
            BackupPhase,
            RestorePhase,
            SchedulePhase,
            BackupStorageLocationPhase,
            VolumeSnapshotLocationPhase,
            DownloadRequestPhase,
            DeleteBackupRequestPhase,
            ServerStatusRequestPhase,
            BackupRepositoryPhase,
            DataPathPhase
        );
    }

    #[test]
    fn phases_and_availability_read_the_status() {
        let mut bsl: BackupStorageLocation = serde_json::from_value(serde_json::json!({
            "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default"}, "spec": {"provider": "aws", "objectStorage": {"bucket": "b"}}
        }))
        .unwrap();
        assert_eq!(bsl.phase(), None);
        assert!(!bsl.is_available());
        bsl.status = Some(crate::v1::BackupStorageLocationStatus {
            phase: Some(BackupStorageLocationPhase::Available),
            ..Default::default()
        });
        assert!(bsl.is_available());
    }
}
