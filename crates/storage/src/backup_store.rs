//! The operations Velero performs on a location (Velero's `pkg/persistence/object_store.go`), over any object_store.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, TagSet};
use tokio::io::AsyncRead;

use crate::config::LocationConfig;
use crate::error::{ErrorContext, StorageError, classify};
use crate::layout::{BackupFile, Layout, RestoreFile};
use crate::open::{DEFAULT_PART_SIZE, open};
use crate::upload::Upload;

/// How long download URLs stay valid (Velero's `DownloadURLTTL`).
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(10 * 60);

/// An object's content, streamed. Errors are `std::io::Error`s wrapping a [`StorageError`]
/// (see [`BackupStore::io_error`]).
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// How many deletions run at once when a backup or restore is deleted.
const DELETE_CONCURRENCY: usize = 8;

/// Velero's backup store: a location's object store seen through its [`Layout`].
///
/// Keys are full object keys as [`Layout`] makes them (prefix included). Clones share the client.
#[derive(Clone)]
pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    signer: Option<Arc<dyn Signer>>,
    tags: TagSet,
    part_size: usize,
    context: ErrorContext,
}

/// Shows the store and prefix only: the store's own `Debug` may print credentials.
impl fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupStore")
            .field("store", &self.store.to_string())
            .field("root", &self.layout.root())
            .finish_non_exhaustive()
    }
}

impl BackupStore {
    /// Opens a location (see [`open_store`](crate::open_store)) with everything that goes with
    /// it: its prefix, URL signing, `tagging`, the Azure block size.
    pub fn open(cfg: &LocationConfig) -> Result<BackupStore, StorageError> {
        let opened = open(cfg)?;
        Ok(BackupStore {
            store: opened.store,
            layout: Layout::new(&cfg.prefix),
            signer: opened.signer,
            tags: opened.tags,
            part_size: opened.part_size,
            context: opened.context,
        })
    }

    /// A backup store over any object store (e.g. `InMemory` in tests). It cannot sign download
    /// URLs and writes no tags.
    pub fn new(store: Arc<dyn ObjectStore>, layout: Layout) -> BackupStore {
        let context = ErrorContext {
            endpoint: store.to_string(),
            setting: "the location's config",
            bucket: store.to_string(),
            region: None,
        };
        BackupStore {
            store,
            layout,
            signer: None,
            tags: TagSet::default(),
            part_size: DEFAULT_PART_SIZE,
            context,
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn err(&self, err: object_store::Error, key: Option<&str>) -> StorageError {
        classify(&err, &self.context, key)
    }

    /// Classifies an I/O error from this store's [`writer`](Self::writer) or
    /// [`get_object`](Self::get_object) reader into a [`StorageError`].
    pub fn io_error(&self, err: &std::io::Error, key: &str) -> StorageError {
        StorageError::from_io(err, &self.context, Some(key))
    }

    fn path(key: &str) -> Result<Path, StorageError> {
        Path::parse(key).map_err(|err| StorageError::InvalidKey {
            key: key.to_string(),
            cause: err.to_string(),
        })
    }

    /// A "directory" as object_store names it: no trailing `/`; `None` for the bucket root.
    fn dir(prefix: &str) -> Result<Option<Path>, StorageError> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            Ok(None)
        } else {
            Self::path(trimmed).map(Some)
        }
    }

    /// Backup and restore names become one path segment; refuse anything that would address
    /// another directory.
    fn check_name(name: &str) -> Result<(), StorageError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(StorageError::InvalidKey {
                key: name.to_string(),
                cause: "a backup or restore name must be one non-empty path segment".into(),
            });
        }
        Ok(())
    }

    /// Velero's `IsValid`: the location is reachable and its prefix holds no directories but
    /// Velero's own. Objects directly under the prefix are allowed.
    pub async fn is_valid(&self) -> Result<(), StorageError> {
        let root = Self::dir(self.layout.root())?;
        let listing = self
            .store
            .list_with_delimiter(root.as_ref())
            .await
            .map_err(|e| self.err(e, None))?;
        let dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .map(|p| format!("{p}/"))
            .collect();
        self.layout.validate_top_level(&dirs)?;
        Ok(())
    }

    /// The names of the backups under `backups/`, whether complete or not (check with
    /// [`backup_exists`](Self::backup_exists)).
    pub async fn list_backups(&self) -> Result<Vec<String>, StorageError> {
        let prefix = self.layout.backups_prefix();
        let listing = self
            .store
            .list_with_delimiter(Self::dir(&prefix)?.as_ref())
            .await
            .map_err(|e| self.err(e, None))?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.as_ref().strip_prefix(prefix.as_str()).map(str::to_string))
            .filter(|name| !name.is_empty())
            .collect())
    }

    /// Whether `velero-backup.json` exists: Velero's definition of a (complete) backup.
    pub async fn backup_exists(&self, backup: &str) -> Result<bool, StorageError> {
        Self::check_name(backup)?;
        self.object_exists(&self.layout.backup_metadata(backup))
            .await
    }

    /// The content of `velero-backup.json` (the Backup as JSON).
    pub async fn get_backup_metadata(&self, backup: &str) -> Result<Vec<u8>, StorageError> {
        Self::check_name(backup)?;
        let key = self.layout.backup_metadata(backup);
        let result = self
            .store
            .get(&Self::path(&key)?)
            .await
            .map_err(|e| self.err(e, Some(&key)))?;
        let bytes = result.bytes().await.map_err(|e| self.err(e, Some(&key)))?;
        Ok(bytes.to_vec())
    }

    fn put_options(&self, mode: PutMode) -> PutOptions {
        PutOptions {
            mode,
            tags: self.tags.clone(),
            ..PutOptions::default()
        }
    }

    /// Writes (or replaces) an object in one request. For big objects use
    /// [`writer`](Self::writer).
    pub async fn put_object(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.store
            .put_opts(
                &Self::path(key)?,
                data.into(),
                self.put_options(PutMode::Overwrite),
            )
            .await
            .map_err(|e| self.err(e, Some(key)))?;
        Ok(())
    }

    /// Writes an object unless one exists; returns whether it wrote. Atomic where the store has
    /// conditional writes (S3 `If-None-Match`, GCS generation match, Azure, local files); on an
    /// S3-compatible store without them this falls back to check-then-write, which can race.
    pub async fn put_object_if_absent(&self, key: &str, data: Bytes) -> Result<bool, StorageError> {
        let path = Self::path(key)?;
        match self
            .store
            .put_opts(
                &path,
                data.clone().into(),
                self.put_options(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                if self.object_exists(key).await? {
                    return Ok(false);
                }
                self.put_object(key, data).await?;
                Ok(true)
            }
            Err(e) => Err(self.err(e, Some(key))),
        }
    }

    /// A streaming writer for big objects (the backup tarball): it buffers one part, switches to
    /// a multipart upload when the data outgrows it, and uploads parts concurrently.
    ///
    /// Write with `tokio::io::AsyncWriteExt` (or [`BufWriter::put`]), then call `shutdown()`:
    /// only that completes the upload; until then the object does not exist. If writing fails, or
    /// the caller gives up, call [`Upload::abort`] to delete the parts already uploaded (safe
    /// after a failed `shutdown()` too). A writer dropped without
    /// either leaves an incomplete multipart upload, invisible but billed on S3 until a lifecycle
    /// rule (AbortIncompleteMultipartUpload) removes it. Errors are `std::io::Error`s; turn them
    /// into a [`StorageError`] with [`io_error`](Self::io_error).
    pub fn writer(&self, key: &str) -> Result<Upload, StorageError> {
        let writer = BufWriter::with_capacity(self.store.clone(), Self::path(key)?, self.part_size);
        Ok(Upload::new(if self.tags.is_empty() {
            writer
        } else {
            writer.with_tags(self.tags.clone())
        }))
    }

    /// Streams an object. Fails with [`StorageError::NotFound`] before returning if it does not
    /// exist; later failures (a dropped connection that retries could not resume) surface as
    /// I/O errors from the reader.
    pub async fn get_object(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let result = self
            .store
            .get(&Self::path(key)?)
            .await
            .map_err(|e| self.err(e, Some(key)))?;
        let context = self.context.clone();
        let key = key.to_string();
        let stream = result
            .into_stream()
            .map_err(move |err| std::io::Error::other(classify(&err, &context, Some(&key))));
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    /// Whether an object exists (a HEAD request). Velero checks optional files this way first.
    pub async fn object_exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.store.head(&Self::path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(e, Some(key))),
        }
    }

    /// Every key under `dir` (a directory of the layout, with trailing `/`), sorted.
    async fn list_keys(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        let mut keys: Vec<String> = self
            .store
            .list(Self::dir(dir)?.as_ref())
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| self.err(e, None))?;
        // object_store lists by path segments, but make sure nothing outside `dir` is returned:
        // the result is used for deletion.
        keys.retain(|k| k.starts_with(dir));
        keys.sort();
        Ok(keys)
    }

    async fn delete_keys(&self, keys: Vec<String>) -> Result<(), StorageError> {
        let results: Vec<Result<(), StorageError>> = futures::stream::iter(keys)
            .map(|key| async move {
                match self.store.delete(&Self::path(&key)?).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.err(e, Some(&key))),
                }
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let mut failed = results.into_iter().filter_map(Result::err);
        match (failed.next(), failed.count()) {
            (None, _) => Ok(()),
            (Some(first), 0) => Err(first),
            (Some(first), more) => Err(StorageError::Other(format!(
                "{} objects could not be deleted; the first: {first}",
                more + 1
            ))),
        }
    }

    /// Uploads a backup's files beside its tarball, then `velero-backup.json` **last** (Velero's
    /// `PutBackup`): the metadata's presence says the backup is whole, so it is written only once
    /// everything else is there. If an upload fails, what was written for the backup (the tarball
    /// included) is removed again, so no half-written backup can look complete, and the error is
    /// returned. Used by completed and failed backups alike; a failed one has fewer files.
    pub async fn put_backup(
        &self,
        backup: &str,
        files: BackupFiles,
        metadata: Bytes,
    ) -> Result<(), StorageError> {
        Self::check_name(backup)?;
        let uploads = files
            .into_entries()
            .map(|(file, data)| (self.layout.backup_file(backup, file), data))
            .chain([(self.layout.backup_metadata(backup), metadata)]);
        for (key, data) in uploads {
            if let Err(err) = self.put_object(&key, data).await {
                if let Err(cleanup) = self.delete_backup(backup).await {
                    tracing::warn!(backup, %cleanup, "removing a backup whose upload failed");
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Uploads a restore's files under `restores/<restore>/` (Velero's `PutRestoreLog`,
    /// `PutRestoreResults`, ...). If one fails, the restore's files are removed again.
    pub async fn put_restore(
        &self,
        restore: &str,
        files: RestoreFiles,
    ) -> Result<(), StorageError> {
        Self::check_name(restore)?;
        for (file, data) in files.into_entries() {
            let key = self.layout.restore_file(restore, file);
            if let Err(err) = self.put_object(&key, data).await {
                if let Err(cleanup) = self.delete_restore(restore).await {
                    tracing::warn!(restore, %cleanup, "removing a restore's files after a failed upload");
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Deletes every object under `backups/<backup>/` and nothing else (Velero's `DeleteBackup`).
    pub async fn delete_backup(&self, backup: &str) -> Result<(), StorageError> {
        Self::check_name(backup)?;
        let keys = self.list_keys(&self.layout.backup_dir(backup)).await?;
        self.delete_keys(keys).await
    }

    /// Deletes every object under `restores/<restore>/` (Velero's `DeleteRestore`).
    pub async fn delete_restore(&self, restore: &str) -> Result<(), StorageError> {
        Self::check_name(restore)?;
        let keys = self.list_keys(&self.layout.restore_dir(restore)).await?;
        self.delete_keys(keys).await
    }

    /// The keys of a restore's files (logs, results, resource list, ...), sorted.
    pub async fn list_restore_files(&self, restore: &str) -> Result<Vec<String>, StorageError> {
        Self::check_name(restore)?;
        self.list_keys(&self.layout.restore_dir(restore)).await
    }

    /// A pre-signed GET URL for `key`, valid for `ttl` (Velero uses [`DOWNLOAD_URL_TTL`]), for
    /// DownloadRequests. `None` for stores that cannot sign (local directories): serve those
    /// files another way. With `publicUrl` set, S3 URLs point there.
    pub async fn download_url(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StorageError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(Method::GET, &Self::path(key)?, ttl)
            .await
            .map_err(|e| self.err(e, Some(key)))?;
        Ok(Some(url.to_string()))
    }
}

/// What [`BackupStore::put_backup`] writes beside the tarball, already encoded (the log as gzipped
/// text, the others as gzipped JSON). A file left `None` is not written: a failed backup has only
/// its log and results.
#[derive(Debug, Default, Clone)]
pub struct BackupFiles {
    pub log: Option<Bytes>,
    pub results: Option<Bytes>,
    pub resource_list: Option<Bytes>,
    pub volume_snapshots: Option<Bytes>,
    pub pod_volume_backups: Option<Bytes>,
    pub item_operations: Option<Bytes>,
    pub volume_info: Option<Bytes>,
}

impl BackupFiles {
    fn into_entries(self) -> impl Iterator<Item = (BackupFile, Bytes)> {
        [
            (BackupFile::Log, self.log),
            (BackupFile::Results, self.results),
            (BackupFile::ResourceList, self.resource_list),
            (BackupFile::VolumeSnapshots, self.volume_snapshots),
            (BackupFile::PodVolumeBackups, self.pod_volume_backups),
            (BackupFile::ItemOperations, self.item_operations),
            (BackupFile::VolumeInfo, self.volume_info),
        ]
        .into_iter()
        .filter_map(|(file, data)| Some((file, data?)))
    }
}

/// What [`BackupStore::put_restore`] writes, encoded as for [`BackupFiles`].
#[derive(Debug, Default, Clone)]
pub struct RestoreFiles {
    pub log: Option<Bytes>,
    pub results: Option<Bytes>,
    pub resource_list: Option<Bytes>,
    pub item_operations: Option<Bytes>,
    pub volume_info: Option<Bytes>,
    pub plan: Option<Bytes>,
}

impl RestoreFiles {
    fn into_entries(self) -> impl Iterator<Item = (RestoreFile, Bytes)> {
        [
            (RestoreFile::Log, self.log),
            (RestoreFile::Results, self.results),
            (RestoreFile::ResourceList, self.resource_list),
            (RestoreFile::ItemOperations, self.item_operations),
            (RestoreFile::VolumeInfo, self.volume_info),
            (RestoreFile::Plan, self.plan),
        ]
        .into_iter()
        .filter_map(|(file, data)| Some((file, data?)))
    }
}
