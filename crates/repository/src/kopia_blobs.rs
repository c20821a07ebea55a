//! Kopia's blob store over a location's `object_store`: blob `<id>` at key
//! `<location prefix>kopia/<namespace>/<id>`, as Velero's kopia repositories are laid out (its
//! unified repository provider puts kopia's own storage prefix there).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use velero_kopia::{BlobError, BlobMeta, BlobStore};

pub(crate) struct ObjectStoreBlobs {
    store: Arc<dyn ObjectStore>,
    root: Path,
    runtime: tokio::runtime::Handle,
}

impl ObjectStoreBlobs {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        root: Path,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        ObjectStoreBlobs {
            store,
            root,
            runtime,
        }
    }

    fn path(&self, id: &str) -> Path {
        self.root.clone().join(id)
    }

    fn fail(operation: &'static str, id: &str, e: object_store::Error) -> BlobError {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound(id.to_string()),
            other => BlobError::Failed {
                operation,
                id: id.to_string(),
                message: other.to_string(),
            },
        }
    }
}

impl BlobStore for ObjectStoreBlobs {
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        // Names before the prefix cannot match: S3 and GCS skip them server-side (listing the
        // index blobs `x…` need not page through every pack `p…`/`q…` first). The offset is
        // exclusive, and no blob is named as bare as a prefix.
        let listing = if prefix.is_empty() {
            self.store.list(Some(&self.root))
        } else {
            self.store
                .list_with_offset(Some(&self.root), &self.root.clone().join(prefix))
        };
        let listed: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(listing.try_collect())
            .map_err(|e| Self::fail("list", prefix, e))?;
        let mut blobs: Vec<BlobMeta> = listed
            .into_iter()
            .filter_map(|meta| {
                // Only the blobs directly under the root: kopia's names have no `/`.
                let id = meta.location.prefix_match(&self.root)?.collect::<Vec<_>>();
                let [name] = id.as_slice() else {
                    return None;
                };
                let id = name.as_ref().to_string();
                id.starts_with(prefix).then(|| BlobMeta {
                    id,
                    length: meta.size,
                    timestamp: meta.last_modified.timestamp(),
                })
            })
            .collect();
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn get(&self, id: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(id);
        self.runtime
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| Self::fail("read", id, e))
    }

    fn get_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>, BlobError> {
        let path = self.path(id);
        self.runtime
            .block_on(self.store.get_range(&path, offset..offset + length))
            .map(|b| b.to_vec())
            .map_err(|e| Self::fail("read", id, e))
    }

    fn put(&self, id: &str, data: Vec<u8>) -> Result<(), BlobError> {
        let path = self.path(id);
        let payload = PutPayload::from(bytes::Bytes::from(data));
        self.runtime
            .block_on(self.store.put(&path, payload))
            .map(|_| ())
            .map_err(|e| Self::fail("write", id, e))
    }

    fn delete(&self, id: &str) -> Result<(), BlobError> {
        let path = self.path(id);
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::fail("delete", id, e)),
        }
    }
}
