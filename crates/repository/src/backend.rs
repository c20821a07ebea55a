//! rustic_core's storage traits over an `object_store` location, so a repository lives in the
//! same bucket (and under the same provider, credentials and prefix) as the backups, at the
//! `restic/<namespace>/` prefix where Velero's restic path keeps it.
//!
//! rustic_core calls these from its own worker threads and expects blocking calls; each call
//! blocks on the Tokio runtime the repository was opened from. Callers therefore run repository
//! operations on blocking threads (`spawn_blocking`), never on the runtime's workers.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

pub(crate) struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    root: Path,
    runtime: tokio::runtime::Handle,
}

impl ObjectStoreBackend {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        root: Path,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        ObjectStoreBackend {
            store,
            root,
            runtime,
        }
    }

    /// restic's layout: `config`, `keys/<id>`, `snapshots/<id>`, `index/<id>`, and packs under
    /// `data/<first two hex digits>/<id>`.
    fn path(&self, tpe: FileType, id: &Id) -> Path {
        let hex = id.to_hex();
        let hex = hex.as_str();
        match tpe {
            FileType::Config => self.root.clone().join("config"),
            FileType::Pack => self.root.clone().join("data").join(&hex[..2]).join(hex),
            other => self.root.clone().join(other.dirname()).join(hex),
        }
    }

    fn fail(what: &str, path: &Path, err: object_store::Error) -> Box<RusticError> {
        let kind = ErrorKind::Backend;
        RusticError::with_source(
            kind,
            format!("{what} {path} in the backup storage location"),
            err,
        )
    }
}

impl ReadBackend for ObjectStoreBackend {
    fn location(&self) -> String {
        format!("velero:{}", self.root)
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let path = self.root.clone().join("config");
            return match self.runtime.block_on(self.store.head(&path)) {
                Ok(meta) => Ok(vec![(
                    Id::default(),
                    u32::try_from(meta.size).unwrap_or(u32::MAX),
                )]),
                Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                Err(e) => Err(Self::fail("reading", &path, e)),
            };
        }
        let dir = self.root.clone().join(tpe.dirname());
        let listed: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(Some(&dir)).try_collect())
            .map_err(|e| Self::fail("listing", &dir, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                let id: Id = name.parse().ok()?;
                Some((id, u32::try_from(meta.size).unwrap_or(u32::MAX)))
            })
            .collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let path = self.path(tpe, id);
        self.runtime
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map_err(|e| Self::fail("reading", &path, e))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let path = self.path(tpe, id);
        let range = u64::from(offset)..u64::from(offset) + u64::from(length);
        self.runtime
            .block_on(self.store.get_range(&path, range))
            .map_err(|e| Self::fail("reading", &path, e))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.path(tpe, id).to_string()
    }
}

impl WriteBackend for ObjectStoreBackend {
    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = self.path(tpe, id);
        let payload: PutPayload = content.into_vec().into_iter().collect();
        self.runtime
            .block_on(self.store.put(&path, payload))
            .map(|_| ())
            .map_err(|e| Self::fail("writing", &path, e))
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let path = self.path(tpe, id);
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::fail("removing", &path, e)),
        }
    }
}
