//! An S3-compatible server on loopback: s3s serving a directory through s3s-fs, in-process.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::path::S3Path;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// An S3 server on `127.0.0.1:<free port>` that stores bucket `b`'s object `k` in the file
/// `root()/b/k`, and accepts only SigV4 requests signed with [`access_key`](Self::access_key) and
/// [`secret_key`](Self::secret_key). Path-style addressing only; any region is accepted.
/// Buckets must be created (with [`create_bucket`](Self::create_bucket) or S3 CreateBucket) before
/// objects are written to them, as on real S3.
///
/// The server runs as a task on the Tokio runtime that called [`start`](Self::start), so it stops
/// with that runtime at the latest. Dropping it stops the server and removes the directory.
pub struct S3Server {
    // Dropped after `Drop::drop` aborted the task, so no request writes into a removed directory.
    root: TempDir,
    addr: SocketAddr,
    access_key: String,
    secret_key: String,
    task: JoinHandle<()>,
}

impl fmt::Debug for S3Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Server")
            .field("endpoint", &self.endpoint())
            .field("root", &self.root.path())
            .finish_non_exhaustive()
    }
}

impl S3Server {
    /// Starts a server with an empty root directory and fresh random credentials. Must be called
    /// within a Tokio runtime.
    pub async fn start() -> anyhow::Result<S3Server> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// [`start`](Self::start) on another of this machine's addresses: a node's bridge address
    /// ([`ControlPlane::node_host_address`](crate::ControlPlane::node_host_address)), which its
    /// pods reach as well as the host does.
    pub async fn start_on(ip: std::net::IpAddr) -> anyhow::Result<S3Server> {
        let root = tempfile::Builder::new()
            .prefix("velero-rs-s3-")
            .tempdir()
            .context("creating the S3 server's root directory")?;
        let access_key = format!("velero{}", crate::random_hex(8)?);
        let secret_key = crate::random_hex(20)?;

        // s3s-fs's error type does not implement std::error::Error; keep its Debug text.
        let fs = s3s_fs::FileSystem::new(root.path()).map_err(|err| {
            anyhow!(
                "opening {} as the S3 server's storage: {err:?}",
                root.path().display()
            )
        })?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.as_str(),
        ));
        builder.set_access(BucketMustExist {
            root: root.path().to_owned(),
        });
        let service = builder.build();

        let listener = TcpListener::bind((ip, 0))
            .await
            .with_context(|| format!("binding the S3 server to {ip}:0"))?;
        let addr = listener
            .local_addr()
            .context("reading the S3 server's address")?;
        let task = tokio::spawn(serve(listener, service));
        tracing::debug!(%addr, root = %root.path().display(), "S3 server started");
        Ok(S3Server {
            root,
            addr,
            access_key,
            secret_key,
            task,
        })
    }

    /// `http://<address>:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The directory holding one subdirectory per bucket.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Creates bucket `name` (an empty directory under [`root`](Self::root)). Fails if it exists.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        // The S3 naming rules, simplified; they also keep `name` a single path component.
        ensure!(
            (3..=63).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'.')
                && !name.starts_with(['.', '-']),
            "invalid bucket name {name:?}: use 3-63 lowercase letters, digits, '-' and '.'"
        );
        let path = self.root.path().join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("creating bucket {name:?} at {}", path.display()))
    }

    /// An AWS shared credentials file (the format of `~/.aws/credentials`, which Velero's
    /// `cloud-credentials` secret holds) with this server's keys as the `default` profile.
    pub fn credentials_file(&self) -> String {
        format!(
            "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
            self.access_key, self.secret_key
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Aborting the accept loop also drops its JoinSet, which aborts every open connection.
        self.task.abort();
    }
}

/// Access control: signed requests only (s3s's default) and, unlike plain s3s-fs, which creates
/// missing buckets on PutObject, object requests only in existing buckets. Otherwise code that
/// forgets to create its bucket would pass here and fail against real S3.
struct BucketMustExist {
    root: PathBuf,
}

#[async_trait::async_trait]
impl S3Access for BucketMustExist {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        if let S3Path::Object { bucket, .. } = cx.s3_path() {
            let is_bucket = tokio::fs::metadata(self.root.join(&**bucket))
                .await
                .is_ok_and(|m| m.is_dir());
            if !is_bucket {
                return Err(s3_error!(NoSuchBucket));
            }
        }
        Ok(())
    }
}

async fn serve(listener: TcpListener, service: S3Service) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let connection = http
                        .serve_connection(TokioIo::new(socket), service.clone())
                        .into_owned();
                    connections.spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!("S3 connection failed: {err}");
                        }
                    });
                }
                Err(err) => {
                    // Typically EMFILE; back off instead of spinning until descriptors free up.
                    tracing::warn!("S3 server failed to accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow for the server's whole life.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buckets_are_directories_and_names_are_checked() {
        let server = S3Server::start().await.unwrap();
        server.create_bucket("velero-backups").unwrap();
        assert!(server.root().join("velero-backups").is_dir());
        assert!(server.create_bucket("velero-backups").is_err(), "exists");
        for bad in ["ab", "Upper", "a/b/c", "../escape", ".hidden"] {
            assert!(server.create_bucket(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn credentials_file_holds_the_keys() {
        let server = S3Server::start().await.unwrap();
        let expected = format!(
            "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
            server.access_key(),
            server.secret_key()
        );
        assert_eq!(server.credentials_file(), expected);
        assert!(server.endpoint().starts_with("http://127.0.0.1:"));
        let other = S3Server::start().await.unwrap();
        assert_ne!(server.secret_key(), other.secret_key());
        assert_ne!(server.endpoint(), other.endpoint());
    }
}
