//! The `kopia.repository` blob (kopia's repo/format/format_blob.go) and the configuration it
//! carries encrypted: the algorithms, the content keys, pack size and epoch parameters.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::blob::BlobStore;
use crate::crypto::{self, ContentCipher, FormatCipher};
use crate::error::{BlobError, KopiaError};

pub const FORMAT_BLOB: &str = "kopia.repository";
pub const BLOB_CONFIG_BLOB: &str = "kopia.blobcfg";
pub const FORMAT_VERSION: i64 = 3;
pub const DEFAULT_MAX_PACK_SIZE: u64 = 20 << 20;
pub const DEFAULT_SPLITTER: &str = "DYNAMIC-4M-BUZHASH";

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The blob itself: plain JSON whose `encryptedBlockFormat` holds the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FormatBlob {
    tool: String,
    build_version: String,
    build_info: String,
    #[serde(rename = "uniqueID", with = "base64_bytes")]
    unique_id: Vec<u8>,
    key_algo: String,
    encryption: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        rename = "encryptedBlockFormat"
    )]
    encrypted: String,
}

/// Kopia's epoch manager settings, kept as kopia wrote them (PascalCase keys, nanoseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EpochParameters {
    pub enabled: bool,
    pub epoch_refresh_frequency: i64,
    pub full_checkpoint_frequency: i64,
    pub cleanup_safety_margin: i64,
    pub min_epoch_duration: i64,
    pub epoch_advance_on_count_threshold: i64,
    pub epoch_advance_on_total_size_bytes_threshold: i64,
    pub delete_parallelism: i64,
}

impl Default for EpochParameters {
    /// kopia's `epoch.DefaultParameters()`.
    fn default() -> Self {
        const MINUTE: i64 = 60_000_000_000;
        EpochParameters {
            enabled: true,
            epoch_refresh_frequency: 20 * MINUTE,
            full_checkpoint_frequency: 7,
            cleanup_safety_margin: 240 * MINUTE,
            min_epoch_duration: 24 * 60 * MINUTE,
            epoch_advance_on_count_threshold: 20,
            epoch_advance_on_total_size_bytes_threshold: 10 << 20,
            delete_parallelism: 4,
        }
    }
}

/// The decrypted configuration (`EncryptedRepositoryConfig.format`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryConfig {
    pub hash: String,
    pub encryption: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ecc: String,
    #[serde(with = "base64_bytes")]
    pub(crate) secret: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub(crate) master_key: Vec<u8>,
    pub version: i64,
    #[serde(default)]
    pub max_pack_size: u64,
    #[serde(default)]
    pub index_version: i64,
    #[serde(default)]
    pub epoch_parameters: Option<EpochParameters>,
    #[serde(default)]
    pub enable_password_change: bool,
    #[serde(default)]
    pub splitter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_lock: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_features: Option<Vec<serde_json::Value>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

#[derive(Serialize, Deserialize)]
struct EncryptedConfig {
    format: RepositoryConfig,
}

/// What opening the format blob gives: the configuration and the content cipher.
pub struct Keys {
    pub config: RepositoryConfig,
    pub cipher: ContentCipher,
    pub unique_id: Vec<u8>,
}

fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32], KopiaError> {
    bytes.try_into().map_err(|_| {
        KopiaError::damaged(
            FORMAT_BLOB,
            format!("{what} is {} bytes, not 32", bytes.len()),
        )
    })
}

/// Reads and opens `kopia.repository` with `password`, refusing what this crate cannot write
/// safely (other algorithms, an upgrade in progress, features it does not know).
pub fn open(store: &dyn BlobStore, password: &str) -> Result<Keys, KopiaError> {
    let bytes = match store.get(FORMAT_BLOB) {
        Ok(b) => b,
        Err(BlobError::NotFound(_)) => return Err(KopiaError::NotARepository),
        Err(e) => return Err(e.into()),
    };
    let blob: FormatBlob = serde_json::from_slice(&bytes)
        .map_err(|e| KopiaError::damaged(FORMAT_BLOB, format!("not kopia's JSON: {e}")))?;
    if !blob.key_algo.is_empty() && blob.key_algo != crypto::KEY_DERIVATION {
        return Err(KopiaError::Unsupported(format!(
            "key derivation {:?} (only {} is implemented)",
            blob.key_algo,
            crypto::KEY_DERIVATION
        )));
    }
    if blob.encryption != crypto::FORMAT_ENCRYPTION {
        return Err(KopiaError::Unsupported(format!(
            "format blob encryption {:?}",
            blob.encryption
        )));
    }
    let sealed = STANDARD
        .decode(&blob.encrypted)
        .map_err(|e| KopiaError::damaged(FORMAT_BLOB, format!("encryptedBlockFormat: {e}")))?;
    let format_key = crypto::format_key(password, &blob.unique_id)?;
    let plain = FormatCipher::new(&format_key, &blob.unique_id)
        .decrypt(&sealed)
        .ok_or(KopiaError::WrongPassword)?;
    let config: EncryptedConfig = serde_json::from_slice(&plain)
        .map_err(|e| KopiaError::damaged(FORMAT_BLOB, format!("configuration: {e}")))?;
    let config = config.format;
    check(&config)?;
    let cipher = ContentCipher::new(
        key32(&config.secret, "the hash secret")?,
        key32(&config.master_key, "the master key")?,
    );
    Ok(Keys {
        config,
        cipher,
        unique_id: blob.unique_id,
    })
}

fn check(config: &RepositoryConfig) -> Result<(), KopiaError> {
    let unsupported = |what: String| Err(KopiaError::Unsupported(what));
    if config.hash != crypto::HASH_ALGORITHM {
        return unsupported(format!("hash {:?}", config.hash));
    }
    if config.encryption != crypto::ENCRYPTION_ALGORITHM {
        return unsupported(format!("encryption {:?}", config.encryption));
    }
    if !config.ecc.is_empty() {
        return unsupported(format!("error correction {:?}", config.ecc));
    }
    if !(2..=3).contains(&config.version) || config.index_version != 2 {
        return unsupported(format!(
            "format version {} with index version {} (velero-rs reads versions 2 and 3 with index v2, as kopia 0.22 writes them)",
            config.version, config.index_version
        ));
    }
    if config.upgrade_lock.is_some() {
        return unsupported(
            "a kopia upgrade of this repository is in progress; let it finish, then try again"
                .into(),
        );
    }
    if config
        .required_features
        .as_ref()
        .is_some_and(|f| !f.is_empty())
    {
        return unsupported(format!(
            "it requires features this version does not know: {}",
            serde_json::to_string(&config.required_features).unwrap_or_default()
        ));
    }
    if !config.epoch_parameters.as_ref().is_some_and(|p| p.enabled) {
        return unsupported("the epoch index manager is off".into());
    }
    Ok(())
}

/// Creates a repository as `kopia repository create` does with its defaults (the parameters
/// Velero uses): writes `kopia.blobcfg`, then `kopia.repository`. Refuses a store that already
/// holds any blob, as kopia does.
pub fn create(store: &dyn BlobStore, password: &str) -> Result<Keys, KopiaError> {
    if let Some(existing) = store.list("")?.into_iter().next() {
        return Err(KopiaError::AlreadyExists(existing.id));
    }
    let unique_id: [u8; 32] = crypto::random()?;
    let secret: [u8; 32] = crypto::random()?;
    let master_key: [u8; 32] = crypto::random()?;
    let config = RepositoryConfig {
        hash: crypto::HASH_ALGORITHM.into(),
        encryption: crypto::ENCRYPTION_ALGORITHM.into(),
        ecc: String::new(),
        secret: secret.to_vec(),
        master_key: master_key.to_vec(),
        version: FORMAT_VERSION,
        max_pack_size: DEFAULT_MAX_PACK_SIZE,
        index_version: 2,
        epoch_parameters: Some(EpochParameters::default()),
        enable_password_change: true,
        splitter: DEFAULT_SPLITTER.into(),
        upgrade_lock: None,
        required_features: None,
    };
    let format_key = crypto::format_key(password, &unique_id)?;
    let format_cipher = FormatCipher::new(&format_key, &unique_id);
    // No retention: the blob configuration is the empty object.
    store.put(BLOB_CONFIG_BLOB, format_cipher.encrypt(b"{}")?)?;
    let plain = serde_json::to_vec(&EncryptedConfig {
        format: config.clone(),
    })
    .map_err(|e| KopiaError::Unsupported(format!("encoding the configuration: {e}")))?;
    let blob = FormatBlob {
        tool: "https://github.com/kopia/kopia".into(),
        build_version: "0.22.3".into(),
        build_info: concat!("velero-rs ", env!("CARGO_PKG_VERSION")).into(),
        unique_id: unique_id.to_vec(),
        key_algo: crypto::KEY_DERIVATION.into(),
        encryption: crypto::FORMAT_ENCRYPTION.into(),
        encrypted: STANDARD.encode(format_cipher.encrypt(&plain)?),
    };
    let mut text = serde_json::to_vec_pretty(&blob)
        .map_err(|e| KopiaError::Unsupported(format!("encoding the format blob: {e}")))?;
    text.push(b'\n');
    store.put(FORMAT_BLOB, text)?;
    Ok(Keys {
        cipher: ContentCipher::new(secret, master_key),
        config,
        unique_id: unique_id.to_vec(),
    })
}
