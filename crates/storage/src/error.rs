//! Storage errors that tell the user what to fix, and the classification of object_store's errors
//! into them.
//!
//! Messages end up in a BackupStorageLocation's `status.message` and in `velero` CLI output, so
//! they must never carry secrets: no credentials, no signed URLs, no raw error bodies (S3 echoes
//! the access key id and the string it signed). URLs in causes lose their query string.

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

use crate::layout::LayoutError;

/// Why a storage operation failed. Every variant carries only text, so errors can be cloned into
/// statuses and compared in tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error(
        "unknown object storage provider {0:?}: supported providers are aws, azure, gcp, local \
         (optionally prefixed with \"velero.io/\")"
    )]
    UnknownProvider(String),

    /// A config value that is malformed, missing or contradictory.
    #[error("invalid backup storage location config: {0}")]
    InvalidConfig(String),

    /// A config key or credential kind Velero's plugin honours but velero-rs cannot; refusing is
    /// better than silently storing backups differently from what the user asked for.
    #[error("{key} is not supported by velero-rs: {reason}")]
    Unsupported { key: String, reason: String },

    /// The credentials file (the BSL's secret) cannot be used. Never includes its contents.
    #[error("invalid credentials in the BSL's secret: {0}")]
    Credentials(String),

    /// No credentials given, and none could be fetched from the environment (instance metadata,
    /// workload identity, token endpoints).
    #[error(
        "cannot obtain credentials for the object store: {cause}; give the location a credential \
         secret, or configure workload identity / instance credentials"
    )]
    CredentialsUnavailable { cause: String },

    #[error(transparent)]
    Layout(#[from] LayoutError),

    #[error(
        "cannot reach the object store at {endpoint}: {cause}; check {setting} and the network"
    )]
    Unreachable {
        endpoint: String,
        /// The config key that decides the endpoint (`s3Url`, `storeEndpoint`, ...).
        setting: String,
        cause: String,
    },

    #[error(
        "TLS error talking to the object store at {endpoint}: {cause}; set the location's caCert \
         (caCertRef) to the CA that signed the server's certificate"
    )]
    Tls { endpoint: String, cause: String },

    #[error(
        "access denied by the object store{}: check the credentials in the BSL's secret and their \
         permissions on bucket {bucket}", code_suffix(.code)
    )]
    AccessDenied {
        bucket: String,
        /// The store's error code (`SignatureDoesNotMatch`, `InvalidAccessKeyId`,
        /// `AuthenticationFailed`...) when it sent one.
        code: Option<String>,
    },

    #[error("bucket {bucket} does not exist")]
    NoSuchBucket { bucket: String },

    #[error("bucket {bucket} is not in region {region}: set the location's config.region to the bucket's region{}", found_suffix(.found))]
    WrongRegion {
        bucket: String,
        region: String,
        /// The region the store pointed at, when it said.
        found: Option<String>,
    },

    #[error("object {key} not found")]
    NotFound { key: String },

    #[error("invalid object key {key:?}: {cause}")]
    InvalidKey { key: String, cause: String },

    #[error("local storage directory {path}: {cause}")]
    Local { path: String, cause: String },

    #[error("object store error: {0}")]
    Other(String),
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

fn found_suffix(found: &Option<String>) -> String {
    found
        .as_ref()
        .map(|r| format!(" (it is in {r})"))
        .unwrap_or_default()
}

impl StorageError {
    /// Whether the error is about the location as a whole (wrong endpoint, credentials, bucket,
    /// config) rather than one object: a controller marks the BSL `Unavailable` (and garbage
    /// collection labels backups `velero.io/gc-failure=BSLUnavailable`) only for these.
    pub fn location_unavailable(&self) -> bool {
        !matches!(
            self,
            StorageError::NotFound { .. }
                | StorageError::InvalidKey { .. }
                | StorageError::Other(_)
        )
    }

    /// Recovers the classified error from an I/O error produced by this crate's readers and
    /// [`BufWriter`](object_store::buffered::BufWriter)s. Errors that did not come from the store
    /// (e.g. the caller's own source stream failing) become [`StorageError::Other`].
    pub(crate) fn from_io(err: &std::io::Error, ctx: &ErrorContext, key: Option<&str>) -> Self {
        if let Some(inner) = err.get_ref() {
            if let Some(storage) = inner.downcast_ref::<StorageError>() {
                return storage.clone();
            }
            if let Some(os) = inner.downcast_ref::<object_store::Error>() {
                return classify(os, ctx, key);
            }
        }
        StorageError::Other(redact(&err.to_string()))
    }
}

/// Where errors come from, so messages can name the endpoint, bucket and config key to check.
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrorContext {
    pub endpoint: String,
    pub setting: &'static str,
    pub bucket: String,
    /// The configured region, for S3 only: wrong-region errors name it.
    pub region: Option<String>,
}

/// Sorts an object_store error into the class a user can act on.
pub(crate) fn classify(
    err: &object_store::Error,
    ctx: &ErrorContext,
    key: Option<&str>,
) -> StorageError {
    let text = redact(&chain_text(err));
    let code = xml_tag(&text, "Code");
    let key_text = || key.map(str::to_string).unwrap_or_else(|| path_of(err));

    if is_missing_bucket(&text, code.as_deref()) {
        return StorageError::NoSuchBucket {
            bucket: ctx.bucket.clone(),
        };
    }
    if let Some(region) = &ctx.region
        && is_wrong_region(&text, code.as_deref())
    {
        return StorageError::WrongRegion {
            bucket: ctx.bucket.clone(),
            region: region.clone(),
            found: found_region(&text),
        };
    }
    if is_credential_fetch(&text) {
        return StorageError::CredentialsUnavailable {
            cause: summarize(&text),
        };
    }
    match err {
        object_store::Error::NotFound { .. } => {
            return StorageError::NotFound { key: key_text() };
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            return StorageError::AccessDenied {
                bucket: ctx.bucket.clone(),
                code,
            };
        }
        object_store::Error::InvalidPath { source } => {
            return StorageError::InvalidKey {
                key: key_text(),
                cause: source.to_string(),
            };
        }
        _ => {}
    }
    if is_access_denied(&text, code.as_deref()) {
        return StorageError::AccessDenied {
            bucket: ctx.bucket.clone(),
            code,
        };
    }
    if is_tls(&text) {
        return StorageError::Tls {
            endpoint: ctx.endpoint.clone(),
            cause: innermost(err),
        };
    }
    if matches!(
        http_error_kind(err),
        Some(HttpErrorKind::Connect | HttpErrorKind::Timeout)
    ) {
        return StorageError::Unreachable {
            endpoint: ctx.endpoint.clone(),
            setting: ctx.setting.to_string(),
            cause: innermost(err),
        };
    }
    if text.contains("status code: 404") {
        return StorageError::NotFound { key: key_text() };
    }
    // The store's own words seldom say which object: name it.
    match key {
        Some(key) => StorageError::Other(format!("{key}: {}", summarize(&text))),
        None => StorageError::Other(summarize(&text)),
    }
}

fn path_of(err: &object_store::Error) -> String {
    match err {
        object_store::Error::NotFound { path, .. }
        | object_store::Error::AlreadyExists { path, .. }
        | object_store::Error::Precondition { path, .. }
        | object_store::Error::PermissionDenied { path, .. }
        | object_store::Error::Unauthenticated { path, .. } => path.clone(),
        _ => String::new(),
    }
}

/// The error and all its sources, each message once: reqwest, for one, leaves the OS error
/// ("Connection refused") out of its own message.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !msg.is_empty() && !text.contains(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        source = s.source();
    }
    text
}

/// The deepest cause, which is the useful one for network errors ("Connection refused (os error
/// 111)", "invalid peer certificate: UnknownIssuer").
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !msg.is_empty() {
            last = msg;
        }
        source = s.source();
    }
    redact(&last)
}

fn http_error_kind(err: &(dyn StdError + 'static)) -> Option<HttpErrorKind> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(s) = source {
        if let Some(http) = s.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        source = s.source();
    }
    None
}

fn is_missing_bucket(text: &str, code: Option<&str>) -> bool {
    matches!(code, Some("NoSuchBucket" | "ContainerNotFound"))
        || text.contains("NoSuchBucket")
        || text.contains("ContainerNotFound")
}

fn is_wrong_region(text: &str, code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException"
        )
    ) || text.contains("incorrectly configured region")
        || text.contains("status code: 301")
}

fn found_region(text: &str) -> Option<String> {
    if let Some(region) = xml_tag(text, "Region") {
        return Some(region);
    }
    // `<Endpoint>bucket.s3.eu-west-1.amazonaws.com</Endpoint>`
    let endpoint = xml_tag(text, "Endpoint")?;
    let rest = endpoint.split(".s3.").nth(1)?;
    let region = rest.strip_suffix(".amazonaws.com")?;
    (!region.is_empty()).then(|| region.to_string())
}

fn is_access_denied(text: &str, code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "AuthenticationFailed"
                | "AuthorizationFailure"
                | "AuthorizationPermissionMismatch"
                | "InvalidAuthenticationInfo"
                | "AccountIsDisabled"
        )
    ) || text.contains("status code: 403")
        || text.contains("status code: 401")
}

fn is_tls(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "tls handshake",
        "invalid peer",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// Failures to fetch credentials: instance metadata, STS, OAuth token endpoints.
fn is_credential_fetch(text: &str) -> bool {
    [
        "169.254.169.254",
        "169.254.170.2",
        "metadata.google.internal",
        "AssumeRoleWithWebIdentity",
        "oauth2.googleapis.com",
        "login.microsoftonline.com",
        "Error performing token request",
        "Error getting token response",
        "federated token file",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// The content of the first `<tag>...</tag>` in `text`.
fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    let value = text[start..end].trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Replaces an XML error body with its code and message: the rest of S3's body (the string it
/// signed, the access key id, request ids) is noise at best. Long texts are cut.
fn summarize(text: &str) -> String {
    let mut out = match text.find("<?xml").or_else(|| text.find("<Error>")) {
        Some(start) => {
            let mut s = text[..start].trim_end().to_string();
            if let Some(code) = xml_tag(text, "Code") {
                s.push(' ');
                s.push_str(&code);
            }
            if let Some(msg) = xml_tag(text, "Message") {
                s.push_str(": ");
                s.push_str(&msg);
            }
            s
        }
        None => text.to_string(),
    };
    const MAX: usize = 600;
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// Drops the query string of every URL in `text`: pre-signed URLs and SAS tokens carry their
/// signature there.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_url(rest) {
        out.push_str(&rest[..pos]);
        let url_and_more = &rest[pos..];
        let end = url_and_more
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
            .unwrap_or(url_and_more.len());
        let url = &url_and_more[..end];
        match url.find('?') {
            Some(q) => out.push_str(&url[..q]),
            None => out.push_str(url),
        }
        rest = &url_and_more[end..];
    }
    out.push_str(rest);
    out
}

fn find_url(text: &str) -> Option<usize> {
    match (text.find("http://"), text.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext {
        ErrorContext {
            endpoint: "http://127.0.0.1:9000".into(),
            setting: "s3Url",
            bucket: "velero".into(),
            region: Some("us-east-1".into()),
        }
    }

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        }
    }

    #[test]
    fn redacts_query_strings() {
        assert_eq!(
            redact("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&x=1 failed"),
            "GET https://b.s3.amazonaws.com/k failed"
        );
        assert_eq!(
            redact("(http://a/b?sig=s) and http://c/d"),
            "(http://a/b) and http://c/d"
        );
    }

    #[test]
    fn xml_bodies_are_summarised_without_echoed_fields() {
        let body = "Error performing GET http://h/velero?list-type=2 - Server returned non-2xx \
                    status code: 400 Bad Request: <?xml version=\"1.0\"?><Error><Code>InvalidArgument</Code>\
                    <Message>bad thing</Message><AWSAccessKeyId>AKIDSECRETISH</AWSAccessKeyId></Error>";
        let err = classify(&generic(body), &ctx(), None);
        let StorageError::Other(msg) = &err else {
            panic!("{err:?}")
        };
        assert!(msg.contains("InvalidArgument: bad thing"), "{msg}");
        assert!(!msg.contains("AKIDSECRETISH"), "{msg}");
        assert!(!msg.contains("list-type"), "{msg}");
    }

    #[test]
    fn classes_from_codes_and_statuses() {
        let c = ctx();
        assert_eq!(
            classify(
                &generic("status code: 404 Not Found: <Code>NoSuchBucket</Code>"),
                &c,
                None
            ),
            StorageError::NoSuchBucket {
                bucket: "velero".into()
            }
        );
        assert_eq!(
            classify(
                &generic("status code: 403 Forbidden: <Code>SignatureDoesNotMatch</Code>"),
                &c,
                None
            ),
            StorageError::AccessDenied {
                bucket: "velero".into(),
                code: Some("SignatureDoesNotMatch".into())
            }
        );
        assert_eq!(
            classify(
                &generic(
                    "status code: 301: <Code>PermanentRedirect</Code>\
                     <Endpoint>velero.s3.eu-west-1.amazonaws.com</Endpoint>"
                ),
                &c,
                None
            ),
            StorageError::WrongRegion {
                bucket: "velero".into(),
                region: "us-east-1".into(),
                found: Some("eu-west-1".into())
            }
        );
        assert!(matches!(
            classify(
                &generic("Error performing token request: http://169.254.169.254/latest/api/token"),
                &c,
                None
            ),
            StorageError::CredentialsUnavailable { .. }
        ));
        assert!(matches!(
            classify(
                &generic("invalid peer certificate: UnknownIssuer"),
                &c,
                None
            ),
            StorageError::Tls { .. }
        ));
        let not_found = object_store::Error::NotFound {
            path: "backups/b1/velero-backup.json".into(),
            source: "404".into(),
        };
        assert_eq!(
            classify(&not_found, &c, None),
            StorageError::NotFound {
                key: "backups/b1/velero-backup.json".into()
            }
        );
    }

    #[test]
    fn messages_are_actionable() {
        let e = StorageError::AccessDenied {
            bucket: "velero".into(),
            code: Some("InvalidAccessKeyId".into()),
        };
        assert_eq!(
            e.to_string(),
            "access denied by the object store (InvalidAccessKeyId): check the credentials in the \
             BSL's secret and their permissions on bucket velero"
        );
        let e = StorageError::Unreachable {
            endpoint: "http://127.0.0.1:1".into(),
            setting: "s3Url".into(),
            cause: "Connection refused (os error 111)".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach the object store at http://127.0.0.1:1: Connection refused (os error \
             111); check s3Url and the network"
        );
        assert!(e.location_unavailable());
        assert!(!StorageError::NotFound { key: "k".into() }.location_unavailable());
    }
}
