//! What a BackupStorageLocation says about its store, and the parsers for the credential file
//! formats Velero's provider plugins read.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::StorageError;

/// Everything needed to open a location's object store: the BSL's `spec.provider`,
/// `spec.objectStorage.{bucket,prefix}`, `spec.config`, and the contents of its credential secret
/// and CA certificate (resolved by the caller, who has the Kubernetes client).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LocationConfig {
    /// `aws`, `gcp`, `azure` or `local`; a `velero.io/` prefix is accepted.
    pub provider: String,
    /// The bucket (S3, GCS) or container (Azure); for `local`, a directory path.
    pub bucket: String,
    pub prefix: String,
    /// The BSL's `spec.config`, with the keys of Velero's provider plugins.
    pub config: BTreeMap<String, String>,
    /// Contents of the credentials file: an AWS shared-credentials INI, a GCP service-account
    /// JSON key, or Azure `KEY=VALUE` lines. When `None`, the file named by `config.credentialsFile`
    /// or by the provider's environment variable (`AWS_SHARED_CREDENTIALS_FILE`,
    /// `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_CREDENTIALS_FILE`, as `velero install` sets them) is
    /// read, and failing that the environment's own credentials are used.
    pub credentials: Option<Vec<u8>>,
    /// PEM bundle of extra CAs to trust (`objectStorage.caCert` / `caCertRef`).
    pub ca_cert: Option<Vec<u8>>,
}

/// Credentials are secrets: never print them, even in debug logs.
impl fmt::Debug for LocationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocationConfig")
            .field("provider", &self.provider)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("config", &self.config)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_cert", &self.ca_cert.as_ref().map(|c| c.len()))
            .finish()
    }
}

/// The providers built in; there are no plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    Aws,
    Gcp,
    Azure,
    Local,
}

impl Provider {
    /// Velero implies `velero.io/` for a provider without a `/`; anything else names a plugin
    /// from another vendor, which velero-rs does not have.
    pub(crate) fn parse(name: &str) -> Result<Provider, StorageError> {
        let short = name.strip_prefix("velero.io/").unwrap_or(name);
        match short {
            "aws" => Ok(Provider::Aws),
            "gcp" => Ok(Provider::Gcp),
            "azure" => Ok(Provider::Azure),
            "local" => Ok(Provider::Local),
            _ => Err(StorageError::UnknownProvider(name.to_string())),
        }
    }

    /// The config keys the provider's Velero plugin accepts (plus the keys Velero injects into
    /// every object store's config). Anything else is an error, as in Velero.
    pub(crate) fn valid_keys(self) -> &'static [&'static str] {
        match self {
            Provider::Aws => &[
                "region",
                "s3Url",
                "publicUrl",
                "kmsKeyId",
                "customerKeyEncryptionFile",
                "customerKeyEncryptionSecret",
                "s3ForcePathStyle",
                "signatureVersion",
                "credentialsFile",
                "profile",
                "serverSideEncryption",
                "insecureSkipTLSVerify",
                "enableSharedConfig",
                "tagging",
                "checksumAlgorithm",
            ],
            Provider::Gcp => &[
                "kmsKeyName",
                "serviceAccount",
                "credentialsFile",
                "storeEndpoint",
                "universeDomain",
            ],
            Provider::Azure => &[
                "resourceGroup",
                "storageAccount",
                "subscriptionId",
                "blockSizeInBytes",
                "activeDirectoryAuthorityURI",
                "storageAccountURI",
                "useAAD",
                "storageAccountKeyEnvVar",
                "credentialsFile",
            ],
            Provider::Local => &["credentialsFile"],
        }
    }
}

/// Keys Velero adds to every object store's config (pkg/plugin/framework/validation.go).
const ALWAYS_VALID: &[&str] = &["bucket", "prefix", "caCert"];

/// Velero's `ValidateObjectStoreConfigKeys`, with its message.
pub(crate) fn validate_keys(
    provider: Provider,
    config: &BTreeMap<String, String>,
) -> Result<(), StorageError> {
    let valid = provider.valid_keys();
    let invalid: Vec<&str> = config
        .keys()
        .map(String::as_str)
        .filter(|k| !valid.contains(k) && !ALWAYS_VALID.contains(k))
        .collect();
    if invalid.is_empty() {
        return Ok(());
    }
    let mut all: Vec<&str> = valid.to_vec();
    all.extend_from_slice(ALWAYS_VALID);
    Err(StorageError::InvalidConfig(format!(
        "config has invalid keys [{}]; valid keys are [{}]",
        invalid.join(" "),
        all.join(" ")
    )))
}

/// Go's `strconv.ParseBool`, which the plugins use for boolean config values.
pub(crate) fn parse_bool(
    config: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<bool>, StorageError> {
    let Some(value) = config.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Some(false)),
        _ => Err(StorageError::InvalidConfig(format!(
            "could not parse {key} {value:?} (expected bool)"
        ))),
    }
}

/// A non-empty config value.
pub(crate) fn get<'a>(config: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn utf8(credentials: &[u8]) -> Result<&str, StorageError> {
    std::str::from_utf8(credentials)
        .map_err(|_| StorageError::Credentials("the credentials file is not UTF-8 text".into()))
}

/// One profile of an AWS shared credentials/config file.
#[derive(Default, PartialEq, Eq)]
pub(crate) struct AwsProfile {
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for AwsProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsProfile")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AwsProfile {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Finds `profile` in an AWS shared credentials file (`[name]`) or config file
/// (`[profile name]`); Velero's plugin loads the secret as both. Keys are case-insensitive.
pub(crate) fn aws_profile(credentials: &[u8], profile: &str) -> Result<AwsProfile, StorageError> {
    let text = utf8(credentials)?;
    let mut sections: Vec<String> = Vec::new();
    let mut found: Option<AwsProfile> = None;
    let mut in_wanted = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.trim();
            let name = header
                .strip_prefix("profile ")
                .map(str::trim)
                .unwrap_or(header);
            sections.push(name.to_string());
            in_wanted = name == profile;
            if in_wanted && found.is_none() {
                found = Some(AwsProfile::default());
            }
            continue;
        }
        if !in_wanted {
            continue;
        }
        if let (Some(profile), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
            profile
                .values
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    found.ok_or_else(|| {
        StorageError::Credentials(if sections.is_empty() {
            "the credentials file is not an AWS shared-credentials file (no [profile] sections)"
                .to_string()
        } else {
            format!(
                "profile {profile:?} not found in the credentials file (it has {}); set the \
                 location's config.profile",
                sections.join(", ")
            )
        })
    })
}

/// Parses Azure's env-style credentials file (`KEY=VALUE` lines, as godotenv reads them:
/// `#` comments, optional `export `, optional single or double quotes).
pub(crate) fn azure_env(credentials: &[u8]) -> Result<BTreeMap<String, String>, StorageError> {
    let text = utf8(credentials)?;
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(StorageError::Credentials(
                "the Azure credentials file must hold KEY=VALUE lines".into(),
            ));
        };
        let value = value.trim();
        let value = if let Some(v) = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        {
            v.to_string()
        } else {
            // An unquoted value ends at an inline comment.
            value
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        values.insert(key.trim().to_string(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers() {
        assert_eq!(Provider::parse("aws"), Ok(Provider::Aws));
        assert_eq!(Provider::parse("velero.io/azure"), Ok(Provider::Azure));
        assert_eq!(Provider::parse("velero.io/local"), Ok(Provider::Local));
        let err = Provider::parse("example.com/aws").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown object storage provider \"example.com/aws\": supported providers are aws, \
             azure, gcp, local (optionally prefixed with \"velero.io/\")"
        );
        assert!(
            Provider::parse("AWS").is_err(),
            "names are case-sensitive, as in Velero"
        );
    }

    #[test]
    fn unknown_keys_are_refused_like_velero() {
        let mut config = BTreeMap::new();
        config.insert("region".to_string(), "x".to_string());
        config.insert("bucket".to_string(), "b".to_string());
        assert!(validate_keys(Provider::Aws, &config).is_ok());
        config.insert("s3URL".to_string(), "x".to_string());
        let err = validate_keys(Provider::Aws, &config)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config has invalid keys [s3URL]; valid keys are [region s3Url"),
            "{err}"
        );
    }

    #[test]
    fn go_bools() {
        let config: BTreeMap<String, String> = [("a", "True"), ("b", "0"), ("c", "yes"), ("d", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(parse_bool(&config, "a"), Ok(Some(true)));
        assert_eq!(parse_bool(&config, "b"), Ok(Some(false)));
        assert!(parse_bool(&config, "c").is_err());
        assert_eq!(parse_bool(&config, "d"), Ok(None));
        assert_eq!(parse_bool(&config, "missing"), Ok(None));
    }

    #[test]
    fn aws_profiles() {
        let file = b"# comment\n[default]\naws_access_key_id = AK1\naws_secret_access_key=SK1\n\n\
                     [profile backup]\nAWS_ACCESS_KEY_ID=AK2\naws_secret_access_key = SK2\nregion = eu-west-1\n";
        let default = aws_profile(file, "default").unwrap();
        assert_eq!(default.get("aws_access_key_id"), Some("AK1"));
        assert_eq!(default.get("aws_secret_access_key"), Some("SK1"));
        let backup = aws_profile(file, "backup").unwrap();
        assert_eq!(backup.get("aws_access_key_id"), Some("AK2"));
        assert_eq!(backup.get("region"), Some("eu-west-1"));
        let err = aws_profile(file, "other").unwrap_err().to_string();
        assert!(err.contains("profile \"other\" not found"), "{err}");
        assert!(err.contains("default, backup"), "{err}");
        assert!(!err.contains("SK1"), "{err}");
        assert!(!format!("{default:?}").contains("SK1"));
        assert!(aws_profile(b"{\"type\": \"service_account\"}", "default").is_err());
    }

    #[test]
    fn azure_env_files() {
        let file = b"AZURE_SUBSCRIPTION_ID=sub\nexport AZURE_RESOURCE_GROUP=\"rg\"\n# c\n\
                     AZURE_STORAGE_ACCOUNT_ACCESS_KEY='a2V5'\nAZURE_CLOUD_NAME=AzurePublicCloud # inline\n";
        let env = azure_env(file).unwrap();
        assert_eq!(env["AZURE_SUBSCRIPTION_ID"], "sub");
        assert_eq!(env["AZURE_RESOURCE_GROUP"], "rg");
        assert_eq!(env["AZURE_STORAGE_ACCOUNT_ACCESS_KEY"], "a2V5");
        assert_eq!(env["AZURE_CLOUD_NAME"], "AzurePublicCloud");
        assert!(azure_env(b"not a pair").is_err());
    }

    #[test]
    fn debug_hides_credentials() {
        let cfg = LocationConfig {
            provider: "aws".into(),
            credentials: Some(b"[default]\naws_secret_access_key=TOPSECRET\n".to_vec()),
            ..Default::default()
        };
        assert!(!format!("{cfg:?}").contains("TOPSECRET"));
    }
}
