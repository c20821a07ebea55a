//! The crate's errors. Each says which blob, content, object or file is at fault, so a damaged
//! repository can be located, and none carries the password or a key.

use std::path::PathBuf;

/// Why a blob store call failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("{operation} blob {id}: {message}")]
    Failed {
        operation: &'static str,
        id: String,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum KopiaError {
    /// The format blob did not authenticate under the password's key.
    #[error(
        "the password does not open the kopia repository (kopia.repository does not decrypt with it): use the password the repository was created with"
    )]
    WrongPassword,
    #[error("there is no kopia repository here (no kopia.repository blob)")]
    NotARepository,
    #[error(
        "a kopia repository already exists here (found blob {0}); refusing to create another over it"
    )]
    AlreadyExists(String),
    /// A repository this crate does not read or write (another algorithm, format version, a
    /// pending upgrade).
    #[error("unsupported kopia repository: {0}")]
    Unsupported(String),
    /// A blob that is not what its name says, or does not decrypt: the repository is damaged.
    #[error("blob {blob} is damaged: {reason}")]
    Damaged { blob: String, reason: String },
    #[error("content {0} is not in the repository's index")]
    ContentNotFound(String),
    #[error("object {id}: {reason}")]
    BadObject { id: String, reason: String },
    #[error("snapshot manifest {0} is not in the repository")]
    SnapshotNotFound(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

impl KopiaError {
    pub(crate) fn damaged(blob: impl Into<String>, reason: impl Into<String>) -> Self {
        KopiaError::Damaged {
            blob: blob.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KopiaError {
        let path = path.into();
        move |source| KopiaError::Io { path, source }
    }
}
