//! Velero's DownloadRequest protocol: ask the server for a URL to one of a backup's or restore's
//! files, then fetch it.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
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
    fetch(&url, tls).await
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

/// Fetches a URL the server handed out: `http(s)://` for object stores, `file://` for the local
/// provider.
pub async fn fetch(url: &str, tls: &TlsOptions) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        return match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NotFound.into()),
            other => other.with_context(|| format!("reading {path}: the local provider's files must be readable from where the CLI runs")),
        };
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
        bail!("the object store answered {status} for the download URL");
    }
    Ok(response.bytes().await?.to_vec())
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
