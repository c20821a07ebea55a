//! From a location's config to an object_store client, one function per provider, mapping the
//! config keys of Velero's provider plugins (velero-plugin-for-aws, -gcp, -microsoft-azure).
//!
//! Each provider is split into a `*_plan` that only maps config to a builder (unit-tested without
//! a network) and the build itself.

mod aws;
mod azure;
mod gcp;
mod local;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::signer::Signer;
use object_store::{Certificate, ClientOptions, ObjectStore, RetryConfig, TagSet};

use self::aws::aws_plan;
use self::azure::azure_plan;
use self::gcp::gcp_plan;
use self::local::local;
use crate::config::{LocationConfig, Provider, get, validate_keys};
use crate::error::{ErrorContext, StorageError, redact};
use crate::layout::Layout;

/// Part size of multipart uploads unless the location says otherwise. With S3's limit of 10,000
/// parts this caps one object at ~97 GiB (Velero's uploader: 5 MiB parts, ~48 GiB).
pub(crate) const DEFAULT_PART_SIZE: usize = 10 * 1024 * 1024;

/// An opened location: the store, and what a [`BackupStore`](crate::BackupStore) needs besides.
pub(crate) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    /// Signs download URLs; `None` for `local`.
    pub signer: Option<Arc<dyn Signer>>,
    /// S3 object tags (`tagging`), set on every object written.
    pub tags: TagSet,
    pub part_size: usize,
    pub context: ErrorContext,
    /// Config that was accepted but cannot be honoured exactly; logged when opening.
    pub warnings: Vec<String>,
}

/// Opens the object store of a backup storage location.
///
/// Providers: `aws` (S3 and S3-compatible), `gcp`, `azure`, and `local` (the bucket is a
/// directory, created if missing). A `velero.io/` prefix is accepted. The config keys are those of
/// Velero's provider plugins; unknown keys are refused as Velero refuses them, and keys velero-rs
/// cannot honour are refused with [`StorageError::Unsupported`] or, where the difference is
/// harmless, accepted with a logged warning (see the crate documentation for the list).
///
/// No request is made: a wrong endpoint or credential shows on the first operation (use
/// [`BackupStore::is_valid`](crate::BackupStore::is_valid) to check a location).
pub fn open_store(cfg: &LocationConfig) -> Result<Arc<dyn ObjectStore>, StorageError> {
    open(cfg).map(|opened| opened.store)
}

pub(crate) fn open(cfg: &LocationConfig) -> Result<Opened, StorageError> {
    let provider = Provider::parse(&cfg.provider)?;
    validate_keys(provider, &cfg.config)?;
    let opened = match provider {
        Provider::Aws => {
            let creds = read_credentials(cfg, "AWS_SHARED_CREDENTIALS_FILE")?;
            aws_plan(cfg, creds.as_deref())?.build()?
        }
        Provider::Gcp => {
            let creds = read_credentials(cfg, "GOOGLE_APPLICATION_CREDENTIALS")?;
            gcp_plan(cfg, creds.as_deref())?.build()?
        }
        Provider::Azure => {
            let creds = read_credentials(cfg, "AZURE_CREDENTIALS_FILE")?;
            azure_plan(cfg, creds.as_deref(), &|k| std::env::var(k).ok())?.build()?
        }
        Provider::Local => local(cfg)?,
    };
    for warning in &opened.warnings {
        warn_once(&cfg.provider, &cfg.bucket, warning);
    }
    Ok(opened)
}

/// Logs a config warning the first time only: controllers reopen a location every validation
/// period, and the same warning every minute would drown the log.
fn warn_once(provider: &str, bucket: &str, warning: &str) {
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(format!("{provider}\n{bucket}\n{warning}"));
    if first {
        tracing::warn!(%provider, %bucket, "{warning}");
    }
}

/// The credentials: given, else the file `config.credentialsFile` names (as Velero passes a
/// BSL's own credential), else the file the provider's environment variable names (the default
/// secret, mounted by `velero install`). `None` means: use the environment's identity.
fn read_credentials<'a>(
    cfg: &'a LocationConfig,
    env_var: &str,
) -> Result<Option<Cow<'a, [u8]>>, StorageError> {
    if let Some(creds) = &cfg.credentials {
        return Ok(Some(Cow::Borrowed(creds)));
    }
    let path = match get(&cfg.config, "credentialsFile") {
        Some(path) => path.to_string(),
        None => match std::env::var(env_var) {
            Ok(path) if !path.is_empty() => path,
            _ => return Ok(None),
        },
    };
    std::fs::read(&path)
        .map(|bytes| Some(Cow::Owned(bytes)))
        .map_err(|err| {
            StorageError::Credentials(format!("cannot read the credentials file {path}: {err}"))
        })
}

/// Network settings shared by every provider.
fn client_options(
    cfg: &LocationConfig,
    allow_http: bool,
    insecure: bool,
) -> Result<ClientOptions, StorageError> {
    let mut options = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_allow_invalid_certificates(insecure)
        .with_connect_timeout(Duration::from_secs(10))
        // object_store's default 30 s limit on a whole request would cut every download of a big
        // tarball (and each retry would resume for another 30 s only). Instead: time to response
        // headers, and then between two reads, is limited; a stalled transfer still fails.
        .with_timeout_disabled()
        .with_read_timeout(Duration::from_secs(300));
    let pem = match &cfg.ca_cert {
        Some(pem) => Some(pem.as_slice()),
        // Velero injects the CA into the plugin's config as `caCert`.
        None => get(&cfg.config, "caCert").map(str::as_bytes),
    };
    if let Some(pem) = pem {
        let certs = Certificate::from_pem_bundle(pem).map_err(|err| {
            StorageError::InvalidConfig(format!("caCert is not a PEM certificate bundle: {err}"))
        })?;
        if certs.is_empty() {
            return Err(StorageError::InvalidConfig(
                "caCert holds no PEM certificate".into(),
            ));
        }
        for cert in certs {
            options = options.with_root_certificate(cert);
        }
    }
    Ok(options)
}

/// Few retries, like the Go SDKs (3 attempts): a BSL with a wrong endpoint should turn
/// Unavailable in seconds, not after object_store's default of 10 retries over 3 minutes.
fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        ..RetryConfig::default()
    }
}

/// `http://` or `https://`, as the plugins require of endpoints. Returns whether it is plain HTTP.
fn check_url(key: &str, url: &str) -> Result<bool, StorageError> {
    let scheme_ok = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
    if let Some(rest) = url.strip_prefix("http://") {
        if scheme_ok(rest) {
            return Ok(true);
        }
    } else if let Some(rest) = url.strip_prefix("https://")
        && scheme_ok(rest)
    {
        return Ok(false);
    }
    Err(StorageError::InvalidConfig(format!(
        "invalid {key} {url:?}: it must be a URL starting with http:// or https://"
    )))
}

fn build_error(provider: &str, err: object_store::Error) -> StorageError {
    StorageError::InvalidConfig(format!(
        "cannot set up the {provider} client: {}",
        redact(&err.to_string())
    ))
}

fn require_bucket(cfg: &LocationConfig) -> Result<String, StorageError> {
    let bucket = Layout::check_bucket(&cfg.bucket)?;
    if bucket.is_empty() {
        return Err(StorageError::InvalidConfig(
            "objectStorage.bucket is required".into(),
        ));
    }
    Ok(bucket)
}

/// The location the providers' tests start from.
#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg(provider: &str, bucket: &str, config: &[(&str, &str)]) -> LocationConfig {
        LocationConfig {
            provider: provider.into(),
            bucket: bucket.into(),
            prefix: String::new(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            credentials: None,
            ca_cert: None,
        }
    }
}
