//! DownloadRequests: a URL from which the CLI fetches a backup's or restore's files.
//!
//! Object stores sign their own URLs. The `local` provider has nobody to sign one, so this server
//! serves those files itself at `/download` on its HTTP listener (`--metrics-address`), behind an
//! HMAC-signed query that expires with the request, as an object store's URL does. The URL's base
//! is where the CLI reaches this process: `http://<host>:<port>` when the server runs outside the
//! cluster, or, inside it, the API server's proxy path to this pod
//! (`/api/v1/namespaces/<ns>/pods/http:<pod>:<port>/proxy`), which the CLI requests with its
//! kubeconfig credentials, so no port needs exposing.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{Backup, DownloadRequest, DownloadRequestPhase, DownloadTargetKind, Restore};
use velero_storage::{BackupFile, Layout, RestoreFile};

use crate::locations;

/// How long a download URL stays valid (Velero's `DownloadURLTTL`).
pub const URL_TTL: Duration = Duration::from_secs(600);

struct Ctx {
    client: Client,
    namespace: String,
    local: Option<Arc<LocalDownloads>>,
}

/// Runs the controller; `local` serves the `local` provider's files (without it, they are
/// handed out as `file://` paths, readable only where the server's directory is).
pub async fn run_download_controller(
    client: Client,
    namespace: String,
    local: Option<Arc<LocalDownloads>>,
) {
    let api: Api<DownloadRequest> = Api::namespaced(client.clone(), &namespace);
    let ctx = Arc::new(Ctx {
        client,
        namespace,
        local,
    });
    crate::run_controller("download request", crate::controller(api), ctx, reconcile).await;
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Target(String),
}

/// The object key of a download target under a location's layout.
pub fn target_key(layout: &Layout, kind: DownloadTargetKind, name: &str) -> String {
    use DownloadTargetKind::*;
    match kind {
        BackupLog => layout.backup_file(name, BackupFile::Log),
        BackupContents => layout.backup_contents(name),
        BackupVolumeSnapshots => layout.backup_file(name, BackupFile::VolumeSnapshots),
        BackupItemOperations => layout.backup_file(name, BackupFile::ItemOperations),
        BackupResourceList => layout.backup_file(name, BackupFile::ResourceList),
        BackupResults => layout.backup_file(name, BackupFile::Results),
        BackupVolumeInfos => layout.backup_file(name, BackupFile::VolumeInfo),
        CsiBackupVolumeSnapshots => layout.backup_file(name, BackupFile::CsiVolumeSnapshots),
        CsiBackupVolumeSnapshotContents => {
            layout.backup_file(name, BackupFile::CsiVolumeSnapshotContents)
        }
        RestoreLog => layout.restore_file(name, RestoreFile::Log),
        RestoreResults => layout.restore_file(name, RestoreFile::Results),
        RestoreResourceList => layout.restore_file(name, RestoreFile::ResourceList),
        RestoreItemOperations => layout.restore_file(name, RestoreFile::ItemOperations),
        RestoreVolumeInfo => layout.restore_file(name, RestoreFile::VolumeInfo),
        RestorePlan => layout.restore_file(name, RestoreFile::Plan),
    }
}

fn is_restore_target(kind: DownloadTargetKind) -> bool {
    use DownloadTargetKind::*;
    matches!(
        kind,
        RestoreLog
            | RestoreResults
            | RestoreResourceList
            | RestoreItemOperations
            | RestoreVolumeInfo
            | RestorePlan
    )
}

async fn reconcile(request: Arc<DownloadRequest>, ctx: Arc<Ctx>) -> Result<Action, DownloadError> {
    let api: Api<DownloadRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    if status.phase == Some(DownloadRequestPhase::Processed) {
        let expired = status
            .expiration
            .is_none_or(|t| t.0 <= jiff::Timestamp::now());
        if expired {
            api.delete(&name, &DeleteParams::default()).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(URL_TTL));
    }
    let target = &request.spec.target;
    // A restore's files live in the location of the backup it restored.
    let backup_name = if is_restore_target(target.kind) {
        let restores: Api<Restore> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        let restore = restores
            .get_opt(&target.name)
            .await?
            .ok_or_else(|| DownloadError::Target(format!("restore {} not found", target.name)))?;
        restore.spec.backup_name.unwrap_or_default()
    } else {
        target.name.clone()
    };
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let backup = backups
        .get_opt(&backup_name)
        .await?
        .ok_or_else(|| DownloadError::Target(format!("backup {backup_name} not found")))?;
    let location_name = backup.spec.storage_location.unwrap_or_default();
    let location = locations::get_location(&ctx.client, &ctx.namespace, &location_name)
        .await
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let config = locations::location_config(&ctx.client, &ctx.namespace, &location)
        .await
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let store = velero_storage::BackupStore::open(&config)
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let key = target_key(store.layout(), target.kind, &target.name);
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(URL_TTL.as_secs() as i64))
        .map_err(|e| DownloadError::Target(e.to_string()))?;
    let url = match store
        .download_url(&key, URL_TTL)
        .await
        .map_err(|e| DownloadError::Target(e.to_string()))?
    {
        Some(url) => url,
        None => match &ctx.local {
            Some(local) => local.url(&location_name, &key, expires),
            None => format!(
                "file://{}",
                std::path::Path::new(&config.bucket).join(&key).display()
            ),
        },
    };
    let expiration = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(expires);
    let body = json!({ "status": { "phase": DownloadRequestPhase::Processed, "downloadURL": url, "expiration": expiration } });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(Action::requeue(URL_TTL))
}

/// Serves the `local` provider's files at `/download` behind signed, expiring queries.
pub struct LocalDownloads {
    client: Client,
    namespace: String,
    key: aws_lc_rs::hmac::Key,
    base: String,
}

/// The system's random source failed, so no download URL can be signed safely.
#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed; download URLs cannot be signed")]
pub struct NoRandomness;

/// Why a download is refused, with the HTTP status it is answered with.
#[derive(Debug, PartialEq)]
enum Refusal {
    BadRequest(&'static str),
    Forbidden(&'static str),
    NotFound(String),
    Unavailable(String),
}

impl LocalDownloads {
    /// `base` is where the CLI reaches this server ([`download_base`]). The signing key is made
    /// fresh for each process: a URL is only good from the server that handed it out, which is
    /// the one its base names.
    pub fn new(
        client: Client,
        namespace: String,
        base: String,
    ) -> Result<LocalDownloads, NoRandomness> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .map_err(|_| NoRandomness)?;
        Ok(LocalDownloads {
            client,
            namespace,
            key,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    fn message(location: &str, key: &str, expires: i64) -> String {
        format!("{location}\n{key}\n{expires}")
    }

    /// The URL of `key` in `location`, valid until `expires`.
    pub fn url(&self, location: &str, key: &str, expires: jiff::Timestamp) -> String {
        use base64::Engine as _;
        let expires = expires.as_second();
        let tag =
            aws_lc_rs::hmac::sign(&self.key, Self::message(location, key, expires).as_bytes());
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("location", location)
            .append_pair("key", key)
            .append_pair("expires", &expires.to_string())
            .append_pair("signature", &signature)
            .finish();
        format!("{}/download?{query}", self.base)
    }

    /// The location and key a query may be served, if its signature holds and it has not expired.
    fn check(&self, query: &str, now: jiff::Timestamp) -> Result<(String, String), Refusal> {
        use base64::Engine as _;
        let mut location = None;
        let mut key = None;
        let mut expires = None;
        let mut signature = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "location" => location = Some(value.into_owned()),
                "key" => key = Some(value.into_owned()),
                "expires" => expires = Some(value.into_owned()),
                "signature" => signature = Some(value.into_owned()),
                _ => {}
            }
        }
        let (Some(location), Some(key), Some(expires), Some(signature)) =
            (location, key, expires, signature)
        else {
            return Err(Refusal::BadRequest(
                "a download URL needs location, key, expires and signature: ask for one with a DownloadRequest",
            ));
        };
        let expires: i64 = expires
            .parse()
            .map_err(|_| Refusal::BadRequest("expires is not a number of seconds"))?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature.as_bytes())
            .map_err(|_| Refusal::Forbidden(INVALID_URL))?;
        aws_lc_rs::hmac::verify(
            &self.key,
            Self::message(&location, &key, expires).as_bytes(),
            &tag,
        )
        .map_err(|_| Refusal::Forbidden(INVALID_URL))?;
        if expires <= now.as_second() {
            return Err(Refusal::Forbidden(EXPIRED_URL));
        }
        Ok((location, key))
    }

    async fn open(&self, query: &str) -> Result<velero_storage::ObjectReader, Refusal> {
        let (location_name, key) = self.check(query, jiff::Timestamp::now())?;
        let location = locations::get_location(&self.client, &self.namespace, &location_name)
            .await
            .map_err(|e| Refusal::NotFound(e.to_string()))?;
        let store = locations::open_store(&self.client, &self.namespace, &location)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        store.get_object(&key).await.map_err(|e| match e {
            velero_storage::StorageError::NotFound { .. } => Refusal::NotFound(e.to_string()),
            other => Refusal::Unavailable(other.to_string()),
        })
    }

    /// `/download` on the server's HTTP listener.
    pub fn routes(self: Arc<Self>) -> axum::Router {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        axum::Router::new().route(
            "/download",
            axum::routing::get(move |uri: axum::http::Uri| {
                let downloads = self.clone();
                async move {
                    match downloads.open(uri.query().unwrap_or("")).await {
                        Ok(reader) => {
                            axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader))
                                .into_response()
                        }
                        Err(refusal) => {
                            let (status, message) = match refusal {
                                Refusal::BadRequest(m) => (StatusCode::BAD_REQUEST, m.to_string()),
                                Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_string()),
                                Refusal::NotFound(m) => (StatusCode::NOT_FOUND, m),
                                Refusal::Unavailable(m) => (StatusCode::BAD_GATEWAY, m),
                            };
                            (status, message).into_response()
                        }
                    }
                }
            }),
        )
    }
}

const INVALID_URL: &str =
    "this download URL was not signed by this server: run the velero command again for a new one";
const EXPIRED_URL: &str =
    "this download URL has expired: run the velero command again for a new one";

/// Where the CLI reaches a server listening on `address`: through the API server's proxy to the
/// pod when it runs in one (`pod`), else directly.
pub fn download_base(address: std::net::SocketAddr, namespace: &str, pod: Option<&str>) -> String {
    let port = address.port();
    match pod {
        Some(pod) => format!("/api/v1/namespaces/{namespace}/pods/http:{pod}:{port}/proxy"),
        None => {
            let ip = match address.ip() {
                ip if !ip.is_unspecified() => ip,
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            format!("http://{}", std::net::SocketAddr::new(ip, port))
        }
    }
}

/// The pod this process runs in, if it runs in one (`POD_NAME` from `velero install`'s
/// Deployment, else the hostname Kubernetes gives a pod).
pub fn own_pod() -> Option<String> {
    std::env::var_os("KUBERNETES_SERVICE_HOST")?;
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn downloads() -> LocalDownloads {
        // A client is needed to build one, not to sign or check.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap_or_default());
        let client = Client::try_from(config).unwrap_or_else(|e| panic!("client: {e}"));
        LocalDownloads::new(client, "velero".into(), "http://127.0.0.1:8085/".into())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn query(url: &str) -> &str {
        url.split_once('?').map(|(_, q)| q).unwrap_or_default()
    }

    #[tokio::test]
    async fn signed_urls_are_checked_and_expire() {
        let d = downloads();
        let now = jiff::Timestamp::now();
        let later = now + jiff::SignedDuration::from_secs(600);
        let url = d.url("default", "backups/b 1/b 1-logs.gz", later);
        assert!(
            url.starts_with("http://127.0.0.1:8085/download?location=default&key=backups%2Fb+1"),
            "{url}"
        );
        assert_eq!(
            d.check(query(&url), now),
            Ok(("default".to_string(), "backups/b 1/b 1-logs.gz".to_string()))
        );
        // Past its time.
        assert_eq!(
            d.check(query(&url), later),
            Err(Refusal::Forbidden(EXPIRED_URL))
        );
        // Another key, another location, a later expiry: the signature no longer holds.
        for tampered in [
            url.replace("b+1-logs.gz", "b+1.tar.gz"),
            url.replace("location=default", "location=other"),
            url.replace(
                &format!("expires={}", later.as_second()),
                &format!("expires={}", later.as_second() + 60),
            ),
        ] {
            assert_eq!(
                d.check(query(&tampered), now),
                Err(Refusal::Forbidden(INVALID_URL)),
                "{tampered}"
            );
        }
        // Another server's URL.
        let other = downloads().url("default", "backups/b 1/b 1-logs.gz", later);
        assert_eq!(
            d.check(query(&other), now),
            Err(Refusal::Forbidden(INVALID_URL))
        );
        assert!(matches!(d.check("key=x", now), Err(Refusal::BadRequest(_))));
    }

    #[test]
    fn the_base_names_where_the_cli_reaches_the_server() {
        let any: std::net::SocketAddr = "0.0.0.0:8085".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(download_base(any, "velero", None), "http://127.0.0.1:8085");
        let v6: std::net::SocketAddr = "[::]:9000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(download_base(v6, "velero", None), "http://[::1]:9000");
        let bound: std::net::SocketAddr = "10.0.0.7:8085".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(download_base(bound, "velero", None), "http://10.0.0.7:8085");
        assert_eq!(
            download_base(any, "backup-ns", Some("velero-6f7d-abc")),
            "/api/v1/namespaces/backup-ns/pods/http:velero-6f7d-abc:8085/proxy"
        );
    }
}
