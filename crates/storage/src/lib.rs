//! Velero's backup storage locations: where Velero keeps things in a location (spec section 3:
//! the keys of every file of a backup or restore under the location's prefix, and the rule that
//! validates a location's top level), and the object stores behind the locations, all through
//! the `object_store` crate.
//!
//! * [`open_store`] turns a location ([`LocationConfig`]: provider, bucket, prefix, config,
//!   credentials, CA) into an `object_store` client.
//! * [`BackupStore`] performs Velero's operations on it: validation, listing, metadata, streamed
//!   uploads and downloads, deletion of a backup or restore, download URLs.
//! * [`StorageError`] says what to fix, without secrets.
//!
//! # Providers and config keys
//!
//! The keys are those of Velero's provider plugins; a key no plugin knows is refused, as Velero
//! refuses it. `bucket`, `prefix` and `caCert` (injected by Velero) are always accepted.
//!
//! **`aws`** (S3 and S3-compatible). Credentials: an AWS shared-credentials (or config) file,
//! profile `config.profile` (default `default`), with static keys (and optional session token) or
//! `role_arn` + `web_identity_token_file`; without a file, the environment (AWS_* variables, IRSA,
//! EKS pod identity, instance metadata).
//! Honoured: `region` (else the profile's, `AWS_REGION`, then `us-east-1` with a warning: Velero
//! looks the bucket's region up instead), `s3Url` (`http://` allowed), `s3ForcePathStyle`
//! (otherwise virtual-hosted, except for IP endpoints and bucket names that cannot be host
//! names), `publicUrl` (download URLs), `insecureSkipTLSVerify`, `profile`, `serverSideEncryption`
//! (`AES256`, `aws:kms`, `aws:kms:dsse`), `kmsKeyId`, `customerKeyEncryptionFile` (SSE-C),
//! `checksumAlgorithm` (`SHA256`, `CRC64NVME`, `""`), `tagging`, `credentialsFile`,
//! `enableSharedConfig` (accepted; the file is always read as both kinds).
//! Warned: `checksumAlgorithm` `CRC32`/`CRC32C`/`SHA1` (SHA256 is used instead; unset means no
//! extra checksum, where the plugin defaults to CRC32: SigV4's payload hash already covers every
//! body), `signatureVersion` other than `4` (always SigV4, as in Velero's current plugin).
//! Refused: `customerKeyEncryptionSecret` (use `customerKeyEncryptionFile`), Multi-Region Access
//! Point ARNs as bucket (need SigV4A), profiles with `source_profile`, `credential_process` or SSO.
//!
//! **`gcp`**. Credentials: a service-account JSON key; without one, the metadata server (GKE
//! workload identity). Honoured: `credentialsFile`, `serviceAccount` (signs download URLs through
//! IAM signBlob when there is no key file), `storeEndpoint` (a JSON-API endpoint's
//! `/storage/v1` suffix is dropped: object_store uses the XML API at the host's root).
//! Refused: `kmsKeyName` (set the key as the bucket's default encryption key instead),
//! `universeDomain`, credentials of type `external_account` or `authorized_user`.
//!
//! **`azure`**. Credentials: Azure `KEY=VALUE` lines. Honoured: `storageAccount` (required),
//! `storageAccountKeyEnvVar` (the credentials key, else environment variable, holding the access
//! key), `storageAccountURI`, `useAAD` (client secret from `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/
//! `AZURE_CLIENT_SECRET`, else workload identity, else managed identity),
//! `activeDirectoryAuthorityURI`, `blockSizeInBytes` (part size of streamed uploads),
//! `credentialsFile`, and `AZURE_CLOUD_NAME` in the credentials. Without `storageAccountKeyEnvVar`
//! and `useAAD`, an `AZURE_STORAGE_ACCOUNT_ACCESS_KEY` in the credentials is used; failing that,
//! Azure AD with a warning: Velero would fetch the account key through Azure Resource Manager
//! (with `resourceGroup`, `subscriptionId`, accepted but unused), which velero-rs does not.
//! Refused: client certificates and username/password credentials.
//!
//! **`local`**: the bucket is a directory (it may contain `/`), created if missing. No download
//! URLs.

pub mod layout;
mod upload;

mod backup_store;
mod config;
mod error;
mod open;

pub use backup_store::{BackupFiles, BackupStore, DOWNLOAD_URL_TTL, ObjectReader, RestoreFiles};
pub use config::LocationConfig;
pub use error::StorageError;
pub use layout::{BackupFile, Layout, LayoutError, RESERVED_TOP_LEVEL_DIRS, RestoreFile};
pub use open::open_store;
pub use upload::Upload;
