//! File-system backup of pod volumes (Velero's pkg/podvolume and internal/volumehelper): which
//! volumes of a pod are backed up, the repository each goes to, its password, and the
//! PodVolumeBackups the node agents run.

mod password;
mod select;

pub use password::{PASSWORD_KEY, PASSWORD_SECRET, PasswordError, ensure_password, read_password};
pub use select::{VolumeChoice, candidate_volumes, volumes_to_back_up};

/// Velero's name of the repository of a volume namespace in a location (`<ns>-<bsl>-<type>`).
pub fn repository_name(volume_namespace: &str, location: &str) -> String {
    format!("{volume_namespace}-{location}-restic")
}

/// Where a volume namespace's repository lives under the location's prefix: `restic/<ns>`,
/// Velero's restic path.
pub fn repository_prefix(volume_namespace: &str) -> String {
    format!("restic/{volume_namespace}")
}

/// The repository of `volume_namespace` in a location's `store`: `<prefix>restic/<namespace>`,
/// without a local cache (node agents and the server keep nothing between operations).
pub fn repository_location(
    store: &velero_storage::BackupStore,
    volume_namespace: &str,
) -> velero_repository::RepositoryLocation {
    velero_repository::RepositoryLocation {
        store: store.store().clone(),
        root: format!(
            "{}{}",
            store.layout().root(),
            repository_prefix(volume_namespace)
        )
        .into(),
        cache_dir: None,
    }
}
