//! GCP: Google Cloud Storage, with velero-plugin-for-gcp's config keys.

use std::sync::Arc;

use object_store::gcp::{GcpSigningCredential, GoogleCloudStorageBuilder};
use object_store::{StaticCredentialProvider, TagSet};

use super::{DEFAULT_PART_SIZE, Opened, check_url, client_options, require_bucket, retry_config};
use crate::config::{LocationConfig, get};
use crate::error::{ErrorContext, StorageError, redact};

pub(crate) struct GcpPlan {
    pub builder: GoogleCloudStorageBuilder,
    pub context: ErrorContext,
}

impl GcpPlan {
    pub(super) fn build(self) -> Result<Opened, StorageError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::tests::cfg;
    use object_store::gcp::GoogleConfigKey;

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
}
