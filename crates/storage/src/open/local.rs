//! `local`: a directory as the bucket.

use std::sync::Arc;

use object_store::TagSet;
use object_store::local::LocalFileSystem;

use super::{DEFAULT_PART_SIZE, Opened};
use crate::config::LocationConfig;
use crate::error::{ErrorContext, StorageError};

/// A directory as the bucket. Empty directories left by deletions are removed, so a deleted
/// backup does not keep showing up as a `backups/<name>/` prefix.
pub(super) fn local(cfg: &LocationConfig) -> Result<Opened, StorageError> {
    let dir = cfg.bucket.trim();
    if dir.is_empty() {
        return Err(StorageError::InvalidConfig(
            "objectStorage.bucket (the directory) is required for provider local".into(),
        ));
    }
    let local_err = |err: &dyn std::fmt::Display| StorageError::Local {
        path: dir.to_string(),
        cause: err.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| local_err(&e))?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| local_err(&e))?
        .with_automatic_cleanup(true);
    Ok(Opened {
        store: Arc::new(store),
        signer: None,
        tags: TagSet::default(),
        part_size: DEFAULT_PART_SIZE,
        context: ErrorContext {
            endpoint: dir.to_string(),
            setting: "bucket",
            bucket: dir.to_string(),
            region: None,
        },
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::open;
    use crate::open::tests::cfg;

    #[test]
    fn local_creates_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/velero");
        let opened = open(&cfg("velero.io/local", path.to_str().unwrap(), &[])).unwrap();
        assert!(path.is_dir());
        assert!(opened.signer.is_none());
        let err = open(&cfg("local", "", &[])).err().unwrap();
        assert!(matches!(err, StorageError::InvalidConfig(_)), "{err}");
    }
}
