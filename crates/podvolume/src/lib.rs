//! File-system backup of pod volumes (Velero's pkg/podvolume and internal/volumehelper): which
//! volumes of a pod are backed up, the repository each goes to, its password, and the
//! PodVolumeBackups the node agents run.

mod password;
mod select;

pub use password::{PASSWORD_KEY, PASSWORD_SECRET, PasswordError, ensure_password, read_password};
pub use select::{VolumeChoice, candidate_volumes, volumes_to_back_up};

pub use velero_repository::RepositoryFormat;

/// The repository format of a PodVolumeBackup's or PodVolumeRestore's `uploaderType`: an empty
/// one is restic's, as on records Velero wrote before the field existed (Velero's
/// `getUploaderTypeOrDefault`).
pub fn format_of(uploader: velero_api::v1::UploaderType) -> RepositoryFormat {
    match uploader {
        velero_api::v1::UploaderType::Kopia => RepositoryFormat::Kopia,
        velero_api::v1::UploaderType::Restic | velero_api::v1::UploaderType::Unset => {
            RepositoryFormat::Restic
        }
    }
}

/// The uploader type that writes `format`.
pub fn uploader_of(format: RepositoryFormat) -> velero_api::v1::UploaderType {
    match format {
        RepositoryFormat::Kopia => velero_api::v1::UploaderType::Kopia,
        RepositoryFormat::Restic => velero_api::v1::UploaderType::Restic,
    }
}

/// Velero's name of the repository of a volume namespace in a location (`<ns>-<bsl>-<type>`).
pub fn repository_name(volume_namespace: &str, location: &str, format: RepositoryFormat) -> String {
    format!("{volume_namespace}-{location}-{}", format.directory())
}

/// Where a volume namespace's repository lives under the location's prefix: `kopia/<ns>` or
/// `restic/<ns>`, as Velero keeps them.
pub fn repository_prefix(volume_namespace: &str, format: RepositoryFormat) -> String {
    format!("{}/{volume_namespace}", format.directory())
}

/// The repository of `volume_namespace` in a location's `store`, without a local cache (node
/// agents and the server keep nothing between operations).
pub fn repository_location(
    store: &velero_storage::BackupStore,
    volume_namespace: &str,
    format: RepositoryFormat,
) -> velero_repository::RepositoryLocation {
    velero_repository::RepositoryLocation {
        store: store.store().clone(),
        root: format!(
            "{}{}",
            store.layout().root(),
            repository_prefix(volume_namespace, format)
        )
        .into(),
        cache_dir: None,
    }
}
