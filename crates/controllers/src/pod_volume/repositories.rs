//! Volume-data repositories as the server and the node agent reach them: the one of a volume
//! namespace in a location's store, opened with the password Secret, used on a blocking thread.

use velero_repository::{
    OpenMode, RepositoryError, RepositoryFormat, RepositoryLocation, VolumeRepository,
};

/// Why a repository could not be reached: its location, or the password Secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    #[error(transparent)]
    Location(#[from] crate::locations::LocationError),
    #[error(transparent)]
    Password(#[from] velero_podvolume::PasswordError),
}

/// The repository of `volume_namespace` in the location named `location` (of the server's
/// `namespace`), and the password Secret's password.
pub(crate) async fn find(
    client: &kube::Client,
    namespace: &str,
    location: &str,
    volume_namespace: &str,
    format: RepositoryFormat,
) -> Result<(RepositoryLocation, String), AccessError> {
    let bsl = crate::locations::get_location(client, namespace, location).await?;
    let store = crate::locations::open_store(client, namespace, &bsl).await?;
    let password = velero_podvolume::read_password(client, namespace).await?;
    Ok((
        velero_podvolume::repository_location(&store, volume_namespace, format),
        password,
    ))
}

/// How a repository is opened for one piece of work.
#[derive(Clone)]
pub(crate) enum Open {
    /// Create it when it has no config yet.
    OrInit,
    /// [`Open::OrInit`] for a backup, counting the bytes it reads.
    OrInitCounting(std::sync::Arc<velero_repository::ByteProgress>),
    /// It must exist (restores, forgetting, maintenance).
    Existing,
}

/// Runs `work` on the opened repository of `format` on a blocking thread (both formats block on
/// the store).
pub(crate) async fn with_repository<T: Send + 'static>(
    format: RepositoryFormat,
    location: RepositoryLocation,
    password: String,
    open: Open,
    work: impl FnOnce(VolumeRepository) -> Result<T, RepositoryError> + Send + 'static,
) -> Result<T, RepositoryError> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let (mode, progress) = match open {
            Open::OrInit => (OpenMode::OrCreate, None),
            Open::OrInitCounting(progress) => (OpenMode::OrCreate, Some(progress)),
            Open::Existing => (OpenMode::Existing, None),
        };
        let repo = VolumeRepository::open(format, &location, &password, runtime, mode, progress)?;
        work(repo)
    })
    .await
    .map_err(|e| RepositoryError::Invalid(format!("the repository task ended abnormally: {e}")))?
}
