//! The one error type of the repository crate: what went wrong, with the location named, in a
//! form that fits a PodVolumeBackup's or PodVolumeRestore's one-line status message.

use rustic_core::RusticError;

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The password does not open any key of the repository.
    #[error(
        "the repository at {location} does not accept the password in Secret velero-repo-credentials (key repository-password): restore that Secret as it was when the repository was created"
    )]
    WrongPassword { location: String },
    /// rustic_core's own Display spreads over many lines with guidance meant for its CLI; the
    /// one-line form fits a PodVolumeBackup's status message.
    #[error("{context}: {}", source.display_log().trim_start_matches("Error: "))]
    Rustic {
        context: String,
        #[source]
        source: Box<RusticError>,
    },
    /// No repository at the location (nothing was ever backed up from that namespace there).
    #[error("there is no repository at {0} in the backup storage location")]
    Missing(String),
    #[error("the kopia repository at {location}: {source}")]
    Kopia {
        location: String,
        #[source]
        source: velero_kopia::KopiaError,
    },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn rustic(
    context: impl Into<String>,
) -> impl FnOnce(Box<RusticError>) -> RepositoryError {
    let context = context.into();
    move |source| RepositoryError::Rustic { context, source }
}
