//! Velero's DownloadRequest protocol: ask the server for a URL to one of a backup's or restore's
//! files, then fetch it.

use std::io::Read;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::TryStreamExt;
use http_body_util::BodyExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::{StreamReader, SyncIoBridge};
use velero_api::v1::{
    DownloadRequest, DownloadRequestPhase, DownloadRequestSpec, DownloadTarget, DownloadTargetKind,
};

/// How the CLI trusts the object store it downloads from (Velero's flags on describe, logs and
/// download).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsOptions {
    /// If true, the object store's TLS certificate will not be checked for validity
    #[arg(long, action = clap::ArgAction::SetTrue)]
    pub insecure_skip_tls_verify: bool,
    /// Path to a certificate bundle to use when verifying TLS connections
    #[arg(long)]
    pub cacert: Option<std::path::PathBuf>,
}

/// Asks for `kind` of `name`, waits for the URL and fetches it: the whole DownloadRequest round.
pub async fn download(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    timeout: Duration,
    tls: &TlsOptions,
) -> anyhow::Result<Vec<u8>> {
    let url = request_url(client, namespace, kind, name, timeout).await?;
    fetch(client, &url, tls).await
}

/// Writes a log (`BackupLog`, `RestoreLog`) to stdout, as `velero ... logs` does.
pub async fn print_log(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    timeout: velero_api::Duration,
    tls: &TlsOptions,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let timeout = timeout.to_std().unwrap_or(Duration::from_secs(60));
    let data = download(client, namespace, kind, name, timeout, tls).await?;
    let text = maybe_gunzip(data)?;
    std::io::stdout()
        .write_all(&text)
        .context("writing the log to stdout")
}

/// Asks the server for a URL to `kind` of `name` and waits for it.
pub async fn request_url(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let api: Api<DownloadRequest> = Api::namespaced(client.clone(), namespace);
    let request_name = format!("{name}-{}", uuid::Uuid::new_v4());
    let request = DownloadRequest {
        metadata: ObjectMeta {
            name: Some(request_name.clone()),
            ..Default::default()
        },
        spec: DownloadRequestSpec {
            target: DownloadTarget {
                kind,
                name: name.to_string(),
            },
        },
        status: None,
    };
    api.create(&PostParams::default(), &request)
        .await
        .context("creating a DownloadRequest")?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = api
            .get(&request_name)
            .await
            .context("reading the DownloadRequest")?;
        let url = current
            .status
            .filter(|s| s.phase == Some(DownloadRequestPhase::Processed))
            .and_then(|s| s.download_url)
            .filter(|u| !u.is_empty());
        if let Some(url) = url {
            return Ok(url);
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = api.delete(&request_name, &DeleteParams::default()).await;
            bail!(
                "timed out waiting for download URL; check that the Velero server is running and the backup storage location is Available (velero backup-location get)"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The object store has no such file: the server never wrote it (an older or different server,
/// or a backup or restore that did not get that far). Callers may treat that as "nothing to show".
#[derive(Debug)]
pub struct NotFound;

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("file not found in the object store")
    }
}

impl std::error::Error for NotFound {}

pub fn is_not_found(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<NotFound>())
}

/// A download being read as it arrives, whatever it comes from.
pub type Stream = Pin<Box<dyn AsyncRead + Send>>;

/// Asks for `kind` of `name`, waits for the URL and opens it as a stream: for files too large to
/// hold (a backup's tarball).
pub async fn open_download(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    timeout: Duration,
    tls: &TlsOptions,
) -> anyhow::Result<Stream> {
    let url = request_url(client, namespace, kind, name, timeout).await?;
    open(client, &url, tls).await
}

/// Fetches a URL the server handed out, whole: [`open`] read to its end.
pub async fn fetch(client: &kube::Client, url: &str, tls: &TlsOptions) -> anyhow::Result<Vec<u8>> {
    let mut stream = open(client, url, tls).await?;
    let mut data = Vec::new();
    stream
        .read_to_end(&mut data)
        .await
        .context("reading the download")?;
    Ok(data)
}

/// Opens a URL the server handed out: `http(s)://` (object stores' signed URLs, or a server
/// outside the cluster serving the local provider), a path on the API server (the proxy to a
/// server pod serving the local provider, requested with the kubeconfig's credentials), or
/// `file://` (a server without an HTTP listener). Status errors are reported here; the body is
/// read only as the caller reads the stream.
pub async fn open(client: &kube::Client, url: &str, tls: &TlsOptions) -> anyhow::Result<Stream> {
    if let Some(path) = url.strip_prefix("file://") {
        return match tokio::fs::File::open(path).await {
            Ok(file) => Ok(Box::pin(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NotFound.into()),
            Err(e) => Err(e).with_context(|| format!("reading {path}: the local provider's files must be readable from where the CLI runs")),
        };
    }
    if url.starts_with('/') {
        return open_through_api_server(client, url).await;
    }
    let mut builder =
        reqwest::Client::builder().danger_accept_invalid_certs(tls.insecure_skip_tls_verify);
    if let Some(path) = &tls.cacert {
        let pem =
            std::fs::read(path).with_context(|| format!("reading --cacert {}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).context("parsing --cacert")? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let response = builder
        .build()?
        .get(url)
        .send()
        .await
        .context("downloading from the object store")?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(NotFound.into());
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!(
            "the object store answered {status} for the download URL{}",
            explanation(&body)
        );
    }
    // reqwest's own stream adaptor needs its `stream` feature; its chunks are all it takes.
    let chunks = futures::stream::try_unfold(response, |mut response| async move {
        let chunk = response.chunk().await.map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(chunk.map(|c| (c, response)))
    });
    Ok(Box::pin(StreamReader::new(chunks)))
}

async fn open_through_api_server(client: &kube::Client, path: &str) -> anyhow::Result<Stream> {
    let request = http::Request::get(path)
        .body(kube::client::Body::from(Vec::new()))
        .context("building the download request")?;
    let response = client
        .send(request)
        .await
        .context("downloading through the API server's proxy to the Velero server")?;
    let status = response.status();
    if status.is_success() {
        let body = response
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        return Ok(Box::pin(StreamReader::new(body)));
    }
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .context("reading the download")?;
    let text = String::from_utf8_lossy(&body);
    // The API server's own refusals come as a Status object; the Velero server's as plain text.
    let api_server_status = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .filter(|v| v["kind"] == "Status");
    if let Some(refusal) = api_server_status {
        let message = refusal["message"].as_str().unwrap_or(&text);
        bail!(
            "the API server refused to proxy the download to the Velero server pod ({status}): {message}; the pod may have restarted (run the command again), or your credentials may lack `get` on pods/proxy in the Velero namespace"
        );
    }
    if status == http::StatusCode::NOT_FOUND {
        return Err(NotFound.into());
    }
    bail!(
        "the Velero server answered {status} for the download{}",
        explanation(&text)
    )
}

/// Runs `read` over the stream on a blocking thread: synchronous readers (the tarball's tar and
/// gzip decoders) consume the download as it arrives instead of after it is all in memory.
pub async fn read_blocking<T: Send + 'static>(
    stream: Stream,
    read: impl FnOnce(&mut dyn Read) -> T + Send + 'static,
) -> anyhow::Result<T> {
    // The bridge takes the runtime's handle here, on a runtime thread; it blocks on it there.
    let mut bridge = SyncIoBridge::new(stream);
    tokio::task::spawn_blocking(move || read(&mut bridge))
        .await
        .context("the thread reading the download stopped")
}

/// A short server message worth showing after an error status.
fn explanation(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() || body.len() > 300 || body.starts_with('<') {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// Gunzips when the content is gzip (logs and results are stored compressed).
pub fn maybe_gunzip(data: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .context("decompressing")?;
        Ok(out)
    } else {
        Ok(data)
    }
}
