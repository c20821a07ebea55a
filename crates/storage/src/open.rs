//! From a location's config to an object_store client, one function per provider, mapping the
//! config keys of Velero's provider plugins (velero-plugin-for-aws, -gcp, -microsoft-azure).
//!
//! Each provider is split into a `*_plan` that only maps config to a builder (unit-tested without
//! a network) and the build itself.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::{GcpSigningCredential, GoogleCloudStorageBuilder};
use object_store::local::LocalFileSystem;
use object_store::signer::Signer;
use object_store::{
    Certificate, ClientOptions, ObjectStore, RetryConfig, StaticCredentialProvider, TagSet,
};

use crate::config::{
    LocationConfig, Provider, aws_profile, azure_env, get, parse_bool, validate_keys,
};
use crate::error::{ErrorContext, StorageError, redact};
use crate::layout::Layout;

/// Part size of multipart uploads unless the location says otherwise. With S3's limit of 10,000
/// parts this caps one object at ~97 GiB (Velero's uploader: 5 MiB parts, ~48 GiB).
pub(crate) const DEFAULT_PART_SIZE: usize = 10 * 1024 * 1024;
/// Azure's limit for one block (Velero's `blockSizeInBytes` maximum).
const AZURE_MAX_BLOCK_SIZE: usize = 100 * 1024 * 1024;

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

// ---------------------------------------------------------------------------------------------
// AWS

pub(crate) struct AwsPlan {
    pub builder: AmazonS3Builder,
    /// A client for `publicUrl`, used only to sign download URLs.
    pub public_builder: Option<AmazonS3Builder>,
    pub tags: TagSet,
    pub context: ErrorContext,
    pub warnings: Vec<String>,
}

impl AwsPlan {
    fn build(self) -> Result<Opened, StorageError> {
        let store = Arc::new(self.builder.build().map_err(|e| build_error("S3", e))?);
        let signer: Arc<dyn Signer> = match self.public_builder {
            Some(public) => Arc::new(public.build().map_err(|e| build_error("S3", e))?),
            None => store.clone(),
        };
        Ok(Opened {
            store,
            signer: Some(signer),
            tags: self.tags,
            part_size: DEFAULT_PART_SIZE,
            context: self.context,
            warnings: self.warnings,
        })
    }
}

/// A bucket name S3 can put in a host name: virtual-hosted addressing needs it, and dotted names
/// break TLS on the wildcard certificate, so those use path-style (as the AWS SDK does).
fn dns_compatible(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// The host part of `scheme://host[:port]/...`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// `https://host:9000/p` → `https://<bucket>.host:9000/p`: object_store takes a virtual-hosted
/// endpoint with the bucket already in it.
fn with_bucket_host(url: &str, bucket: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => url.to_string(),
    }
}

pub(crate) fn aws_plan(
    cfg: &LocationConfig,
    creds: Option<&[u8]>,
) -> Result<AwsPlan, StorageError> {
    let config = &cfg.config;
    let bucket = require_bucket(cfg)?;
    if bucket.starts_with("arn:aws:s3:") {
        return Err(StorageError::Unsupported {
            key: "bucket".into(),
            reason: "S3 Multi-Region Access Points need SigV4A request signing, which the S3 \
                     client of velero-rs does not implement; use the bucket's name"
                .into(),
        });
    }
    let mut warnings = Vec::new();

    // With a credential, only it counts (Velero's plugin also turns off IRSA then); without, the
    // environment's: AWS_* variables, web identity (IRSA), EKS pod identity, instance metadata.
    let mut builder = if creds.is_some() {
        AmazonS3Builder::new()
    } else {
        AmazonS3Builder::from_env()
    };
    builder = builder.with_bucket_name(&bucket);

    let mut profile_region = None;
    if let Some(creds) = creds {
        let name = get(config, "profile").unwrap_or("default");
        let profile = aws_profile(creds, name)?;
        profile_region = profile.get("region").map(str::to_string);
        let key_id = profile.get("aws_access_key_id");
        let secret = profile.get("aws_secret_access_key");
        match (key_id, secret) {
            (Some(key_id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret);
                if let Some(token) = profile.get("aws_session_token") {
                    builder = builder.with_token(token);
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(StorageError::Credentials(format!(
                    "profile {name:?} needs both aws_access_key_id and aws_secret_access_key"
                )));
            }
            (None, None) => {
                if let (Some(role), Some(token_file)) = (
                    profile.get("role_arn"),
                    profile.get("web_identity_token_file"),
                ) {
                    builder = builder
                        .with_config(AmazonS3ConfigKey::RoleArn, role)
                        .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, token_file);
                    if let Some(session) = profile.get("role_session_name") {
                        builder = builder.with_config(AmazonS3ConfigKey::RoleSessionName, session);
                    }
                } else if let Some(key) = [
                    "role_arn",
                    "source_profile",
                    "credential_source",
                    "credential_process",
                    "sso_session",
                    "sso_start_url",
                ]
                .into_iter()
                .find(|k| profile.get(k).is_some())
                {
                    return Err(StorageError::Unsupported {
                        key: format!("credentials profile {name:?} with {key}"),
                        reason: "velero-rs reads static keys (aws_access_key_id, \
                                 aws_secret_access_key, aws_session_token) or role_arn with \
                                 web_identity_token_file from the credentials file"
                            .into(),
                    });
                } else {
                    return Err(StorageError::Credentials(format!(
                        "profile {name:?} has no aws_access_key_id and aws_secret_access_key"
                    )));
                }
            }
        }
    }

    let s3_url = get(config, "s3Url");
    let region = get(config, "region")
        .map(str::to_string)
        .or(profile_region)
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .or_else(|| {
            std::env::var("AWS_DEFAULT_REGION")
                .ok()
                .filter(|r| !r.is_empty())
        });
    let region = match region {
        Some(region) => region,
        None => {
            if s3_url.is_none() {
                warnings.push(
                    "config.region is not set: assuming us-east-1 (Velero would look the bucket's \
                     region up); set it if the bucket is elsewhere"
                        .to_string(),
                );
            }
            "us-east-1".to_string()
        }
    };
    builder = builder.with_region(&region);

    let path_style = parse_bool(config, "s3ForcePathStyle")?.unwrap_or(false);
    let insecure = parse_bool(config, "insecureSkipTLSVerify")?.unwrap_or(false);
    let mut allow_http = false;
    let endpoint = match s3_url {
        Some(url) => {
            allow_http = check_url("s3Url", url)?;
            let url = url.trim_end_matches('/');
            let virtual_hosted =
                !path_style && dns_compatible(&bucket) && url_host(url).parse::<IpAddr>().is_err();
            builder = builder
                .with_virtual_hosted_style_request(virtual_hosted)
                .with_endpoint(if virtual_hosted {
                    with_bucket_host(url, &bucket)
                } else {
                    url.to_string()
                });
            url.to_string()
        }
        None => {
            builder =
                builder.with_virtual_hosted_style_request(!path_style && dns_compatible(&bucket));
            format!("https://s3.{region}.amazonaws.com")
        }
    };
    builder = builder
        .with_client_options(client_options(cfg, allow_http, insecure)?)
        .with_retry(retry_config());

    // Server-side encryption, with the plugin's precedence: KMS key, customer key, algorithm.
    let kms_key = get(config, "kmsKeyId");
    let customer_key_file = get(config, "customerKeyEncryptionFile");
    let customer_key_secret = get(config, "customerKeyEncryptionSecret");
    if [kms_key, customer_key_file, customer_key_secret]
        .iter()
        .filter(|v| v.is_some())
        .count()
        > 1
    {
        return Err(StorageError::InvalidConfig(
            "you can only use one of: kmsKeyId, customerKeyEncryptionFile, or \
             customerKeyEncryptionSecret"
                .into(),
        ));
    }
    if customer_key_secret.is_some() {
        return Err(StorageError::Unsupported {
            key: "customerKeyEncryptionSecret".into(),
            reason: "mount the secret and name the file with customerKeyEncryptionFile instead"
                .into(),
        });
    }
    if let Some(kms_key) = kms_key {
        builder = builder.with_sse_kms_encryption(kms_key);
    } else if let Some(path) = customer_key_file {
        let key = std::fs::read(path).map_err(|err| {
            StorageError::InvalidConfig(format!(
                "could not read customerKeyEncryptionFile {path}: {err}"
            ))
        })?;
        // Like the plugin, use the first 32 bytes (a trailing newline is fine).
        let Some(key) = key.get(..32) else {
            return Err(StorageError::InvalidConfig(format!(
                "contents of customerKeyEncryptionFile ({path}) are not exactly 32 bytes"
            )));
        };
        builder =
            builder.with_ssec_encryption(base64::engine::general_purpose::STANDARD.encode(key));
    } else if let Some(sse) = get(config, "serverSideEncryption") {
        if !matches!(sse, "AES256" | "aws:kms" | "aws:kms:dsse") {
            return Err(StorageError::InvalidConfig(format!(
                "invalid serverSideEncryption {sse:?}: use AES256, aws:kms or aws:kms:dsse"
            )));
        }
        // object_store exports this key only through its string name.
        let key: AmazonS3ConfigKey = "aws_server_side_encryption"
            .parse()
            .map_err(|e| build_error("S3", e))?;
        builder = builder.with_config(key, sse);
    }

    // The plugin defaults to CRC32; the SigV4 payload hash object_store always sends already
    // protects every request's body, so no extra checksum unless asked for.
    match config.get("checksumAlgorithm").map(|v| v.trim()) {
        None | Some("") => {}
        Some("SHA256") => builder = builder.with_checksum_algorithm(Checksum::SHA256),
        Some("CRC64NVME") => builder = builder.with_checksum_algorithm(Checksum::CRC64NVME),
        Some(alg @ ("CRC32" | "CRC32C" | "SHA1")) => {
            warnings.push(format!(
                "checksumAlgorithm {alg} is not available in velero-rs: using SHA256 checksums \
                 instead"
            ));
            builder = builder.with_checksum_algorithm(Checksum::SHA256);
        }
        Some(other) => {
            return Err(StorageError::InvalidConfig(format!(
                "invalid checksum algorithm: {other} (use CRC32, CRC32C, SHA1, SHA256, CRC64NVME, \
                 or \"\" for none)"
            )));
        }
    }

    match get(config, "signatureVersion") {
        None | Some("4") => {}
        Some(version) => warnings.push(format!(
            "signatureVersion {version:?} is ignored: requests and download URLs are signed with \
             Signature Version 4 (as by Velero's current AWS plugin)"
        )),
    }
    // Accepted for compatibility: the credentials file is always read as a shared config too.
    parse_bool(config, "enableSharedConfig")?;

    let tags = match get(config, "tagging") {
        Some(tagging) => parse_tagging(tagging)?,
        None => TagSet::default(),
    };

    let public_builder = match get(config, "publicUrl") {
        Some(public) => {
            let public_http = check_url("publicUrl", public)?;
            let public = public.trim_end_matches('/');
            let virtual_hosted = !path_style
                && dns_compatible(&bucket)
                && url_host(public).parse::<IpAddr>().is_err();
            Some(
                builder
                    .clone()
                    .with_virtual_hosted_style_request(virtual_hosted)
                    .with_endpoint(if virtual_hosted {
                        with_bucket_host(public, &bucket)
                    } else {
                        public.to_string()
                    })
                    .with_client_options(client_options(cfg, allow_http || public_http, insecure)?),
            )
        }
        None => None,
    };

    Ok(AwsPlan {
        builder,
        public_builder,
        tags,
        context: ErrorContext {
            endpoint,
            setting: "s3Url",
            bucket,
            region: Some(region),
        },
        warnings,
    })
}

/// The plugin's `tagging`: `Key1=Value1&Key2=Value2`, at most ten tags.
fn parse_tagging(tagging: &str) -> Result<TagSet, StorageError> {
    let mut tags = TagSet::default();
    let pairs: Vec<&str> = tagging.split('&').collect();
    if pairs.len() > 10 {
        return Err(StorageError::InvalidConfig(
            "tagging: S3 allows only ten tags per object".into(),
        ));
    }
    for pair in pairs {
        let Some((key, value)) = pair
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.contains('='))
        else {
            return Err(StorageError::InvalidConfig(format!(
                "invalid tagging {tagging:?}: use Key1=Value1&Key2=Value2"
            )));
        };
        if key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(StorageError::InvalidConfig(
                "tagging: S3 tag keys may have 128 characters, values 256".into(),
            ));
        }
        tags.push(key, value);
    }
    Ok(tags)
}

// ---------------------------------------------------------------------------------------------
// GCP

pub(crate) struct GcpPlan {
    pub builder: GoogleCloudStorageBuilder,
    pub context: ErrorContext,
}

impl GcpPlan {
    fn build(self) -> Result<Opened, StorageError> {
        let store = Arc::new(self.builder.build().map_err(|err| {
            StorageError::Credentials(format!(
                "cannot use the GCP service account key: {}",
                redact(&err.to_string())
            ))
        })?);
        Ok(Opened {
            store: store.clone(),
            signer: Some(store),
            tags: TagSet::default(),
            part_size: DEFAULT_PART_SIZE,
            context: self.context,
            warnings: Vec::new(),
        })
    }
}

pub(crate) fn gcp_plan(
    cfg: &LocationConfig,
    creds: Option<&[u8]>,
) -> Result<GcpPlan, StorageError> {
    let config = &cfg.config;
    let bucket = require_bucket(cfg)?;
    if get(config, "kmsKeyName").is_some() {
        return Err(StorageError::Unsupported {
            key: "kmsKeyName".into(),
            reason: "the GCS client of velero-rs cannot name a KMS key per object; make the key \
                     the bucket's default encryption key (gcloud storage buckets update gs://BUCKET \
                     --default-encryption-key=KEY), which encrypts new backups the same way, and \
                     remove kmsKeyName"
                .into(),
        });
    }
    if get(config, "universeDomain").is_some() {
        return Err(StorageError::Unsupported {
            key: "universeDomain".into(),
            reason: "only the default googleapis.com universe is supported".into(),
        });
    }

    let mut allow_http = false;
    let mut endpoint = "https://storage.googleapis.com".to_string();
    let mut builder = GoogleCloudStorageBuilder::new().with_bucket_name(&bucket);
    if let Some(store_endpoint) = get(config, "storeEndpoint") {
        allow_http = check_url("storeEndpoint", store_endpoint)?;
        // The plugin's endpoint is for the JSON API (`.../storage/v1/`); object_store speaks the
        // XML API, served at the host's root.
        endpoint = store_endpoint
            .trim_end_matches('/')
            .trim_end_matches("/storage/v1")
            .to_string();
        builder = builder.with_base_url(&endpoint);
    }
    builder = builder
        .with_client_options(client_options(cfg, allow_http, false)?)
        .with_retry(retry_config());

    match creds {
        Some(creds) => {
            let text = std::str::from_utf8(creds).map_err(|_| {
                StorageError::Credentials("the GCP credentials file is not UTF-8 text".into())
            })?;
            let json: serde_json::Value = serde_json::from_str(text).map_err(|err| {
                StorageError::Credentials(format!(
                    "the GCP credentials file is not JSON (line {}, column {})",
                    err.line(),
                    err.column()
                ))
            })?;
            match json.get("type").and_then(|t| t.as_str()) {
                Some("service_account") => {
                    for field in ["client_email", "private_key"] {
                        if json
                            .get(field)
                            .and_then(|v| v.as_str())
                            .is_none_or(str::is_empty)
                        {
                            return Err(StorageError::Credentials(format!(
                                "the GCP service account key has no {field}"
                            )));
                        }
                    }
                    builder = builder.with_service_account_key(text);
                }
                Some(
                    kind
                    @ ("external_account" | "authorized_user" | "impersonated_service_account"),
                ) => {
                    return Err(StorageError::Unsupported {
                        key: format!("GCP credentials of type {kind}"),
                        reason: "use a service account JSON key, or no credentials file with GKE \
                                 workload identity (and config.serviceAccount for download URLs)"
                            .into(),
                    });
                }
                other => {
                    return Err(StorageError::Credentials(format!(
                        "the GCP credentials file is not a service account key (type {})",
                        other.unwrap_or("missing")
                    )));
                }
            }
        }
        None => {
            // Workload identity / the metadata server. Velero signs download URLs as
            // `serviceAccount` through IAM signBlob; object_store does the same given the email
            // (without it, it asks the metadata server for the default account's).
            if let Some(account) = get(config, "serviceAccount") {
                builder = builder.with_signing_credentials(Arc::new(
                    StaticCredentialProvider::new(GcpSigningCredential {
                        email: account.to_string(),
                        private_key: None,
                    }),
                ));
            }
        }
    }

    Ok(GcpPlan {
        builder,
        context: ErrorContext {
            endpoint,
            setting: "storeEndpoint",
            bucket,
            region: None,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Azure

pub(crate) struct AzurePlan {
    pub builder: MicrosoftAzureBuilder,
    pub part_size: usize,
    pub context: ErrorContext,
    pub warnings: Vec<String>,
}

impl AzurePlan {
    fn build(self) -> Result<Opened, StorageError> {
        let store = Arc::new(self.builder.build().map_err(|err| {
            let text = err.to_string();
            if text.contains("Access Key") {
                StorageError::Credentials(
                    "the storage account access key is not valid base64".into(),
                )
            } else {
                build_error("Azure", err)
            }
        })?);
        Ok(Opened {
            store: store.clone(),
            signer: Some(store),
            tags: TagSet::default(),
            part_size: self.part_size,
            context: self.context,
            warnings: self.warnings,
        })
    }
}

/// Blob endpoint suffix and Azure AD authority of `AZURE_CLOUD_NAME`, as Velero maps it.
fn azure_cloud(name: Option<&str>) -> Result<(&'static str, &'static str), StorageError> {
    match name.map(str::to_ascii_uppercase).as_deref() {
        None | Some("" | "AZURECLOUD" | "AZUREPUBLICCLOUD") => Ok((
            "blob.core.windows.net",
            "https://login.microsoftonline.com/",
        )),
        Some("AZURECHINACLOUD") => Ok((
            "blob.core.chinacloudapi.cn",
            "https://login.chinacloudapi.cn/",
        )),
        Some("AZUREUSGOVERNMENT" | "AZUREUSGOVERNMENTCLOUD") => Ok((
            "blob.core.usgovcloudapi.net",
            "https://login.microsoftonline.us/",
        )),
        Some(_) => Err(StorageError::Credentials(format!(
            "unknown cloud: {}",
            name.unwrap_or_default()
        ))),
    }
}

/// `env` looks up process environment variables (workload identity sets them); a parameter so
/// tests do not depend on the machine's environment.
pub(crate) fn azure_plan(
    cfg: &LocationConfig,
    creds: Option<&[u8]>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AzurePlan, StorageError> {
    let config = &cfg.config;
    let container = require_bucket(cfg)?;
    let Some(account) = get(config, "storageAccount") else {
        return Err(StorageError::InvalidConfig(
            "storageAccount is required in the location's config".into(),
        ));
    };
    let creds: BTreeMap<String, String> = match creds {
        Some(creds) => azure_env(creds)?,
        None => BTreeMap::new(),
    };
    // A value from the credentials file, else from the environment (as azidentity reads it).
    let lookup = |key: &str| -> Option<String> {
        creds
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| env(key).filter(|v| !v.is_empty()))
    };
    let mut warnings = Vec::new();

    let (blob_suffix, authority) = azure_cloud(creds.get("AZURE_CLOUD_NAME").map(String::as_str))?;
    let endpoint = match get(config, "storageAccountURI") {
        Some(uri) => uri.trim_end_matches('/').to_string(),
        None => format!("https://{account}.{blob_suffix}"),
    };
    let allow_http = check_url("storageAccountURI", &endpoint)?;
    let mut builder = MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_container_name(&container)
        .with_endpoint(endpoint.clone())
        .with_authority_host(get(config, "activeDirectoryAuthorityURI").unwrap_or(authority))
        .with_client_options(client_options(cfg, allow_http, false)?)
        .with_retry(retry_config());

    let use_aad = parse_bool(config, "useAAD")?.unwrap_or(false);
    if let Some(var) = get(config, "storageAccountKeyEnvVar") {
        let Some(key) = lookup(var) else {
            return Err(StorageError::Credentials(format!(
                "no storage account access key with key {var} found in credential"
            )));
        };
        builder = builder
            .with_access_key(key)
            .with_credential_type("access_key");
    } else if let Some(key) = (!use_aad)
        .then(|| {
            creds
                .get("AZURE_STORAGE_ACCOUNT_ACCESS_KEY")
                .or_else(|| creds.get("AZURE_STORAGE_KEY"))
                .filter(|k| !k.is_empty())
        })
        .flatten()
    {
        builder = builder
            .with_access_key(key)
            .with_credential_type("access_key");
    } else {
        if !use_aad {
            warnings.push(
                "neither storageAccountKeyEnvVar nor useAAD is set: velero-rs does not fetch the \
                 storage account key through Azure Resource Manager as Velero does, it signs in \
                 to blob storage with Azure AD, which needs a Storage Blob Data role on the \
                 account; set useAAD: \"true\" to silence this"
                    .to_string(),
            );
        }
        for key in [
            "AZURE_CLIENT_CERTIFICATE",
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "AZURE_USERNAME",
        ] {
            if creds.get(key).is_some_and(|v| !v.is_empty()) {
                return Err(StorageError::Unsupported {
                    key: format!("{key} in the Azure credentials"),
                    reason: "use a client secret (AZURE_CLIENT_SECRET), workload identity, a \
                             managed identity, or a storage account key"
                        .into(),
                });
            }
        }
        let client_id = lookup("AZURE_CLIENT_ID");
        let tenant_id = lookup("AZURE_TENANT_ID");
        let require = |value: Option<String>, key: &str| {
            value.ok_or_else(|| StorageError::Credentials(format!("{key} is required")))
        };
        if let Some(secret) = lookup("AZURE_CLIENT_SECRET") {
            builder = builder
                .with_client_secret_authorization(
                    require(client_id, "AZURE_CLIENT_ID")?,
                    secret,
                    require(tenant_id, "AZURE_TENANT_ID")?,
                )
                .with_credential_type("client_secret");
        } else if let Some(token_file) = env("AZURE_FEDERATED_TOKEN_FILE").filter(|f| !f.is_empty())
        {
            builder = builder
                .with_federated_token_file(token_file)
                .with_client_id(require(client_id, "AZURE_CLIENT_ID")?)
                .with_tenant_id(require(tenant_id, "AZURE_TENANT_ID")?)
                .with_credential_type("workload_identity");
        } else {
            if let Some(client_id) = client_id {
                builder = builder.with_client_id(client_id);
            }
            builder = builder.with_credential_type("managed_identity");
        }
    }

    let part_size = match get(config, "blockSizeInBytes") {
        None => DEFAULT_PART_SIZE,
        Some(value) => match value.parse::<i64>() {
            Ok(size) if size > 0 => {
                let size = usize::try_from(size).unwrap_or(AZURE_MAX_BLOCK_SIZE);
                if size > AZURE_MAX_BLOCK_SIZE {
                    warnings.push(format!(
                        "blockSizeInBytes {size} is above Azure's maximum: using {AZURE_MAX_BLOCK_SIZE}"
                    ));
                    AZURE_MAX_BLOCK_SIZE
                } else {
                    size
                }
            }
            _ => {
                warnings.push(format!(
                    "blockSizeInBytes {value:?} is not a positive number: using {DEFAULT_PART_SIZE}"
                ));
                DEFAULT_PART_SIZE
            }
        },
    };

    Ok(AzurePlan {
        builder,
        part_size,
        context: ErrorContext {
            endpoint,
            setting: "storageAccount/storageAccountURI",
            bucket: container,
            region: None,
        },
        warnings,
    })
}

// ---------------------------------------------------------------------------------------------
// Local

/// A directory as the bucket. Empty directories left by deletions are removed, so a deleted
/// backup does not keep showing up as a `backups/<name>/` prefix.
fn local(cfg: &LocationConfig) -> Result<Opened, StorageError> {
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
    use object_store::ClientConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;

    fn cfg(provider: &str, bucket: &str, config: &[(&str, &str)]) -> LocationConfig {
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

    const AWS_CREDS: &[u8] = b"[default]\naws_access_key_id=AKDEFAULT\naws_secret_access_key=SKDEFAULT\n\
        [backup]\naws_access_key_id=AKBACKUP\naws_secret_access_key=SKBACKUP\naws_session_token=TOKEN\n";

    fn s3(plan: &AwsPlan, key: &str) -> Option<String> {
        let key: AmazonS3ConfigKey = key.parse().unwrap();
        plan.builder.get_config_value(&key)
    }

    #[test]
    fn aws_minio_style() {
        let c = cfg(
            "velero.io/aws",
            "velero",
            &[
                ("region", "minio"),
                ("s3ForcePathStyle", "true"),
                ("s3Url", "http://minio.velero.svc:9000/"),
            ],
        );
        let plan = aws_plan(&c, Some(AWS_CREDS)).unwrap();
        assert_eq!(
            s3(&plan, "aws_endpoint").as_deref(),
            Some("http://minio.velero.svc:9000")
        );
        assert_eq!(
            s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
            Some("false")
        );
        assert_eq!(s3(&plan, "aws_region").as_deref(), Some("minio"));
        assert_eq!(s3(&plan, "aws_access_key_id").as_deref(), Some("AKDEFAULT"));
        assert_eq!(
            s3(&plan, "aws_secret_access_key").as_deref(),
            Some("SKDEFAULT")
        );
        assert_eq!(s3(&plan, "aws_allow_http").as_deref(), Some("true"));
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(plan.context.endpoint, "http://minio.velero.svc:9000");
        assert!(plan.build().is_ok());
    }

    #[test]
    fn aws_named_profile_and_region_from_it() {
        let creds =
            b"[profile backup]\naws_access_key_id=AK\naws_secret_access_key=SK\nregion=eu-west-1\n";
        let plan = aws_plan(&cfg("aws", "velero", &[("profile", "backup")]), Some(creds)).unwrap();
        assert_eq!(s3(&plan, "aws_access_key_id").as_deref(), Some("AK"));
        assert_eq!(s3(&plan, "aws_region").as_deref(), Some("eu-west-1"));
        // No s3Url: AWS itself, virtual-hosted.
        assert_eq!(
            s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
            Some("true")
        );
        assert_eq!(s3(&plan, "aws_endpoint"), None);

        let plan = aws_plan(
            &cfg("aws", "velero", &[("profile", "backup")]),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(s3(&plan, "aws_session_token").as_deref(), Some("TOKEN"));

        let err = aws_plan(
            &cfg("aws", "velero", &[("profile", "nope")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
        assert!(!err.to_string().contains("SKDEFAULT"));
    }

    #[test]
    fn aws_profiles_without_static_keys() {
        let web = b"[default]\nrole_arn=arn:aws:iam::1:role/velero\nweb_identity_token_file=/var/run/token\n";
        let plan = aws_plan(&cfg("aws", "velero", &[("region", "us-west-2")]), Some(web)).unwrap();
        assert_eq!(
            s3(&plan, "aws_role_arn").as_deref(),
            Some("arn:aws:iam::1:role/velero")
        );
        let chained = b"[default]\nrole_arn=arn:aws:iam::1:role/velero\nsource_profile=base\n";
        let err = aws_plan(&cfg("aws", "velero", &[]), Some(chained))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let half = b"[default]\naws_access_key_id=AK\n";
        let err = aws_plan(&cfg("aws", "velero", &[]), Some(half))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
    }

    #[test]
    fn aws_virtual_hosted_endpoints() {
        let plan = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[("s3Url", "https://objects.example.com:9000")],
            ),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_endpoint").as_deref(),
            Some("https://velero.objects.example.com:9000")
        );
        assert_eq!(
            s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
            Some("true")
        );
        // IP endpoints and dotted bucket names cannot carry the bucket in the host name.
        for (bucket, url) in [
            ("velero", "http://10.0.0.1:9000"),
            ("my.bucket", "https://objects.example.com"),
        ] {
            let plan = aws_plan(&cfg("aws", bucket, &[("s3Url", url)]), Some(AWS_CREDS)).unwrap();
            assert_eq!(s3(&plan, "aws_endpoint").as_deref(), Some(url));
            assert_eq!(
                s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
                Some("false")
            );
        }
    }

    #[test]
    fn aws_public_url_signs_elsewhere() {
        let plan = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[
                    ("s3Url", "http://minio:9000"),
                    ("publicUrl", "https://minio.example.com"),
                    ("s3ForcePathStyle", "true"),
                ],
            ),
            Some(AWS_CREDS),
        )
        .unwrap();
        let public = plan.public_builder.as_ref().unwrap();
        assert_eq!(
            public
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .as_deref(),
            Some("https://minio.example.com")
        );
    }

    #[test]
    fn aws_encryption() {
        let plan = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[
                    ("kmsKeyId", "alias/velero"),
                    ("serverSideEncryption", "AES256"),
                ],
            ),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_server_side_encryption").as_deref(),
            Some("aws:kms")
        );
        assert_eq!(
            s3(&plan, "aws_sse_kms_key_id").as_deref(),
            Some("alias/velero")
        );

        let plan = aws_plan(
            &cfg("aws", "velero", &[("serverSideEncryption", "AES256")]),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_server_side_encryption").as_deref(),
            Some("AES256")
        );

        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("customer-key");
        std::fs::write(&key_file, b"0123456789abcdef0123456789abcdef\n").unwrap();
        let key_path = key_file.to_str().unwrap();
        let plan = aws_plan(
            &cfg("aws", "velero", &[("customerKeyEncryptionFile", key_path)]),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_server_side_encryption").as_deref(),
            Some("sse-c")
        );
        assert!(plan.build().is_ok());

        std::fs::write(&key_file, b"short").unwrap();
        let err = aws_plan(
            &cfg("aws", "velero", &[("customerKeyEncryptionFile", key_path)]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("not exactly 32 bytes"), "{err}");

        let err = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[("kmsKeyId", "k"), ("customerKeyEncryptionFile", key_path)],
            ),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("only use one of"), "{err}");
        let err = aws_plan(
            &cfg("aws", "velero", &[("customerKeyEncryptionSecret", "s/k")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = aws_plan(
            &cfg("aws", "velero", &[("serverSideEncryption", "DES")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn aws_checksums_signature_and_tags() {
        let plan = |config: &[(&str, &str)]| {
            let mut all = vec![("region", "us-east-1")];
            all.extend_from_slice(config);
            aws_plan(&cfg("aws", "velero", &all), Some(AWS_CREDS))
        };
        assert_eq!(s3(&plan(&[]).unwrap(), "aws_checksum_algorithm"), None);
        assert_eq!(
            s3(
                &plan(&[("checksumAlgorithm", "")]).unwrap(),
                "aws_checksum_algorithm"
            ),
            None
        );
        let p = plan(&[("checksumAlgorithm", "SHA256")]).unwrap();
        assert_eq!(s3(&p, "aws_checksum_algorithm").as_deref(), Some("sha256"));
        assert!(p.warnings.is_empty());
        let p = plan(&[("checksumAlgorithm", "CRC32")]).unwrap();
        assert_eq!(s3(&p, "aws_checksum_algorithm").as_deref(), Some("sha256"));
        assert!(p.warnings[0].contains("CRC32"), "{:?}", p.warnings);
        assert!(plan(&[("checksumAlgorithm", "MD5")]).is_err());

        let p = plan(&[("signatureVersion", "1")]).unwrap();
        assert!(
            p.warnings[0].contains("signatureVersion"),
            "{:?}",
            p.warnings
        );
        assert!(
            plan(&[("signatureVersion", "4")])
                .unwrap()
                .warnings
                .is_empty()
        );

        let p = plan(&[("tagging", "team=infra&app=velero backup")]).unwrap();
        assert_eq!(p.tags.encoded(), "team=infra&app=velero+backup");
        assert!(plan(&[("tagging", "novalue")]).is_err());
        assert!(plan(&[("enableSharedConfig", "maybe")]).is_err());
    }

    #[test]
    fn aws_refusals() {
        let err = aws_plan(
            &cfg("aws", "arn:aws:s3::123:accesspoint/m.mrap", &[]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = aws_plan(&cfg("aws", "velero/backups", &[]), Some(AWS_CREDS))
            .err()
            .unwrap();
        assert!(
            matches!(err, StorageError::Layout(LayoutError::BucketWithSlash(_))),
            "{err}"
        );
        let err = aws_plan(
            &cfg("aws", "velero", &[("s3Url", "minio:9000")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("invalid s3Url"), "{err}");
        let err = aws_plan(
            &cfg("aws", "velero", &[("s3ForcePathStyle", "yes")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("s3ForcePathStyle"), "{err}");
        let mut c = cfg("aws", "velero", &[]);
        c.ca_cert = Some(b"not a certificate".to_vec());
        let err = aws_plan(&c, Some(AWS_CREDS)).err().unwrap();
        assert!(err.to_string().contains("caCert"), "{err}");
        let err = open(&cfg("aws", "velero", &[("bucketRegion", "x")]))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("invalid keys [bucketRegion]"),
            "{err}"
        );
    }

    use crate::layout::LayoutError;

    // A service account key that object_store accepts without a network: `disable_oauth` is its
    // switch for emulators. The private key is never parsed then.
    const GCP_KEY: &str = r#"{"type": "service_account", "project_id": "p", "private_key_id": "1",
        "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n",
        "client_email": "velero@p.iam.gserviceaccount.com", "disable_oauth": true}"#;

    #[test]
    fn gcp_service_account_and_endpoint() {
        let c = cfg(
            "gcp",
            "velero-backups",
            &[(
                "storeEndpoint",
                "https://storage-velero.p.googleapis.com/storage/v1/",
            )],
        );
        let plan = gcp_plan(&c, Some(GCP_KEY.as_bytes())).unwrap();
        assert_eq!(
            plan.builder
                .get_config_value(&GoogleConfigKey::BaseUrl)
                .as_deref(),
            Some("https://storage-velero.p.googleapis.com")
        );
        assert_eq!(
            plan.builder
                .get_config_value(&GoogleConfigKey::ServiceAccountKey)
                .as_deref(),
            Some(GCP_KEY)
        );
        assert_eq!(
            plan.builder
                .get_config_value(&GoogleConfigKey::Bucket)
                .as_deref(),
            Some("velero-backups")
        );
        assert!(plan.build().is_ok());

        // Workload identity: no key, serviceAccount signs.
        let plan = gcp_plan(
            &cfg(
                "gcp",
                "velero",
                &[("serviceAccount", "v@p.iam.gserviceaccount.com")],
            ),
            None,
        )
        .unwrap();
        assert_eq!(
            plan.builder
                .get_config_value(&GoogleConfigKey::ServiceAccountKey),
            None
        );
        assert_eq!(plan.context.endpoint, "https://storage.googleapis.com");
    }

    #[test]
    fn gcp_refusals() {
        let err = gcp_plan(
            &cfg("gcp", "velero", &[("kmsKeyName", "projects/p/keys/k")]),
            None,
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("default encryption key"), "{err}");
        let external = br#"{"type": "external_account", "audience": "x"}"#;
        let err = gcp_plan(&cfg("gcp", "velero", &[]), Some(external))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = gcp_plan(&cfg("gcp", "velero", &[]), Some(b"[default]\nkey=1"))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
        let no_key = br#"{"type": "service_account", "client_email": "a@b"}"#;
        let err = gcp_plan(&cfg("gcp", "velero", &[]), Some(no_key))
            .err()
            .unwrap();
        assert!(err.to_string().contains("no private_key"), "{err}");
        let err = gcp_plan(
            &cfg("gcp", "velero", &[("storeEndpoint", "storage.example.com")]),
            None,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("invalid storeEndpoint"), "{err}");
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn az(plan: &AzurePlan, key: AzureConfigKey) -> Option<String> {
        plan.builder.get_config_value(&key)
    }

    // "velero-test-key" in base64: object_store checks that access keys are base64.
    const AZURE_KEY: &str = "dmVsZXJvLXRlc3Qta2V5";

    #[test]
    fn azure_access_key() {
        let creds = format!(
            "AZURE_SUBSCRIPTION_ID=sub\nAZURE_RESOURCE_GROUP=rg\nAZURE_STORAGE_ACCOUNT_ACCESS_KEY={AZURE_KEY}\n"
        );
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "veleroacct"),
                (
                    "storageAccountKeyEnvVar",
                    "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
                ),
                ("resourceGroup", "rg"),
                ("subscriptionId", "sub"),
            ],
        );
        let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::AccessKey).as_deref(),
            Some(AZURE_KEY)
        );
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("access_key")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::Endpoint).as_deref(),
            Some("https://veleroacct.blob.core.windows.net")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::ContainerName).as_deref(),
            Some("velero")
        );
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert!(plan.build().is_ok());

        // Without storageAccountKeyEnvVar the conventional variable is still used.
        let c = cfg("azure", "velero", &[("storageAccount", "veleroacct")]);
        let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::AccessKey).as_deref(),
            Some(AZURE_KEY)
        );

        // The variable named must be there (Velero's message).
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "veleroacct"),
                ("storageAccountKeyEnvVar", "MY_KEY"),
            ],
        );
        let err = azure_plan(&c, Some(creds.as_bytes()), &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("no storage account access key with key MY_KEY found in credential"),
            "{err}"
        );
        // Not base64: refused when building, without echoing the key.
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "veleroacct"),
                ("storageAccountKeyEnvVar", "K"),
            ],
        );
        let err = azure_plan(&c, Some(b"K=not base64!"), &no_env)
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
        assert!(!err.to_string().contains("not base64!"), "{err}");
    }

    #[test]
    fn azure_aad_flavours() {
        let c = cfg(
            "azure",
            "velero",
            &[("storageAccount", "acct"), ("useAAD", "true")],
        );
        let creds = b"AZURE_TENANT_ID=t\nAZURE_CLIENT_ID=c\nAZURE_CLIENT_SECRET=s\nAZURE_CLOUD_NAME=AzureChinaCloud\n";
        let plan = azure_plan(&c, Some(creds), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("client_secret")
        );
        assert_eq!(az(&plan, AzureConfigKey::ClientId).as_deref(), Some("c"));
        assert_eq!(az(&plan, AzureConfigKey::AuthorityId).as_deref(), Some("t"));
        assert_eq!(
            az(&plan, AzureConfigKey::Endpoint).as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::AuthorityHost).as_deref(),
            Some("https://login.chinacloudapi.cn/")
        );
        assert!(plan.warnings.is_empty());

        // Workload identity from the environment the webhook sets.
        let env = |k: &str| match k {
            "AZURE_FEDERATED_TOKEN_FILE" => Some("/var/run/secrets/azure/tokens/token".to_string()),
            "AZURE_CLIENT_ID" => Some("wi-client".to_string()),
            "AZURE_TENANT_ID" => Some("wi-tenant".to_string()),
            _ => None,
        };
        let plan = azure_plan(&c, None, &env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("workload_identity")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::ClientId).as_deref(),
            Some("wi-client")
        );

        // Nothing at all: managed identity; without useAAD a warning says Velero would have
        // fetched the key through ARM.
        let plan = azure_plan(
            &cfg("azure", "velero", &[("storageAccount", "acct")]),
            None,
            &no_env,
        )
        .unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("managed_identity")
        );
        assert!(
            plan.warnings[0].contains("Azure Resource Manager"),
            "{:?}",
            plan.warnings
        );

        let err = azure_plan(
            &c,
            Some(b"AZURE_TENANT_ID=t\nAZURE_CLIENT_ID=c\nAZURE_CLIENT_CERTIFICATE_PATH=/c.pem\n"),
            &no_env,
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = azure_plan(&c, Some(b"AZURE_CLIENT_SECRET=s\n"), &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("AZURE_CLIENT_ID is required"),
            "{err}"
        );
    }

    #[test]
    fn azure_endpoint_and_block_size() {
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "devstoreaccount1"),
                (
                    "storageAccountURI",
                    "http://127.0.0.1:10000/devstoreaccount1/",
                ),
                ("storageAccountKeyEnvVar", "KEY"),
                ("blockSizeInBytes", "5242880"),
                ("activeDirectoryAuthorityURI", "https://login.example.com/"),
            ],
        );
        let creds = format!("KEY={AZURE_KEY}\n");
        let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::AuthorityHost).as_deref(),
            Some("https://login.example.com/")
        );
        assert_eq!(plan.part_size, 5 * 1024 * 1024);

        for (size, expected) in [
            ("0", DEFAULT_PART_SIZE),
            ("x", DEFAULT_PART_SIZE),
            ("999999999999", AZURE_MAX_BLOCK_SIZE),
        ] {
            let mut c = c.clone();
            c.config.insert("blockSizeInBytes".into(), size.into());
            let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
            assert_eq!(plan.part_size, expected, "{size}");
            assert_eq!(plan.warnings.len(), 1, "{size}");
        }
        let err = azure_plan(&cfg("azure", "velero", &[]), None, &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("storageAccount is required"),
            "{err}"
        );
        let err = azure_plan(&c, Some(b"AZURE_CLOUD_NAME=Mars\nKEY=a2V5"), &no_env)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown cloud: Mars"), "{err}");
    }

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
