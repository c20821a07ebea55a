//! Backup storage locations: opening their stores, and the controller that keeps their phase.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, SecretKeySelector};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{AccessMode, BackupStorageLocation, BackupStorageLocationPhase};
use velero_storage::{BackupStore, LocationConfig};

/// Why a location cannot be used, in words for a BSL's `status.message` or a backup's errors.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("backup storage location {0:?} not found")]
    NotFound(String),
    #[error("reading backup storage location {name:?}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading secret {secret}/{key} of backup storage location {name:?}: {reason}")]
    Secret {
        name: String,
        secret: String,
        key: String,
        reason: String,
    },
    #[error("{0}")]
    Storage(#[from] velero_storage::StorageError),
}

async fn secret_value(
    client: &Client,
    namespace: &str,
    bsl: &str,
    selector: &SecretKeySelector,
) -> Result<Vec<u8>, LocationError> {
    let err = |reason: String| LocationError::Secret {
        name: bsl.to_string(),
        secret: selector.name.clone(),
        key: selector.key.clone(),
        reason,
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&selector.name)
        .await
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("secret not found".into()))?;
    secret
        .data
        .and_then(|d| d.get(&selector.key).map(|v| v.0.clone()))
        .ok_or_else(|| err(format!("the secret has no key {:?}", selector.key)))
}

/// What the object store needs from a BSL: its spec, plus the credential and CA secrets it names.
pub async fn location_config(
    client: &Client,
    namespace: &str,
    bsl: &BackupStorageLocation,
) -> Result<LocationConfig, LocationError> {
    let name = bsl.name_any();
    let spec = &bsl.spec;
    let credentials = match &spec.credential {
        Some(selector) => Some(secret_value(client, namespace, &name, selector).await?),
        None => None,
    };
    let ca_cert = match (
        &spec.object_storage.ca_cert_ref,
        &spec.object_storage.ca_cert,
    ) {
        (Some(selector), _) => Some(secret_value(client, namespace, &name, selector).await?),
        (None, Some(bytes)) => Some(bytes.0.clone()),
        (None, None) => None,
    };
    Ok(LocationConfig {
        provider: spec.provider.clone(),
        bucket: spec.object_storage.bucket.clone(),
        prefix: spec.object_storage.prefix.clone().unwrap_or_default(),
        config: spec.config.clone().unwrap_or_default(),
        credentials,
        ca_cert,
    })
}

/// Opens the store of a BSL.
pub async fn open_store(
    client: &Client,
    namespace: &str,
    bsl: &BackupStorageLocation,
) -> Result<BackupStore, LocationError> {
    let config = location_config(client, namespace, bsl).await?;
    Ok(BackupStore::open(&config)?)
}

pub async fn get_location(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BackupStorageLocation, LocationError> {
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|source| LocationError::Read {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| LocationError::NotFound(name.to_string()))
}

/// The location a backup without `storageLocation` goes to: the one marked default, else the
/// server's `--default-backup-storage-location`.
pub async fn default_location_name(
    client: &Client,
    namespace: &str,
    server_default: &str,
) -> String {
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .find(|l| l.spec.default == Some(true))
            .map(|l| l.name_any())
            .unwrap_or_else(|| server_default.to_string()),
        Err(_) => server_default.to_string(),
    }
}

pub fn is_read_only(bsl: &BackupStorageLocation) -> bool {
    bsl.spec.access_mode == Some(AccessMode::ReadOnly)
}

/// Keeps every BSL's `status.phase` Available or Unavailable, at each location's validation
/// frequency (server default 1m; 0 disables), and keeps a single default location (the newest).
pub async fn run_location_controller(
    client: Client,
    namespace: String,
    default_frequency: Duration,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), &namespace);
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                ensure_single_default(&api, &list.items).await;
                for bsl in &list.items {
                    let available = if due_for_validation(bsl, default_frequency) {
                        validate_location(&client, &namespace, bsl).await
                    } else {
                        bsl.is_available()
                    };
                    metrics
                        .backup_location_status
                        .get_or_create(&crate::metrics::LocationLabel {
                            backup_location_name: bsl.name_any(),
                        })
                        .set(i64::from(available));
                }
            }
            Err(e) => tracing::warn!("listing backup storage locations: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

fn due_for_validation(bsl: &BackupStorageLocation, default_frequency: Duration) -> bool {
    let frequency = bsl
        .spec
        .validation_frequency
        .and_then(|d| d.to_std())
        .unwrap_or(default_frequency);
    let last = bsl
        .status
        .as_ref()
        .and_then(|s| s.last_validation_time.as_ref());
    match last {
        None => true,
        Some(_) if frequency.is_zero() => false,
        Some(t) => {
            let elapsed = jiff::Timestamp::now().duration_since(t.0);
            elapsed.as_secs() >= frequency.as_secs() as i64
        }
    }
}

/// Validates one location now and records the outcome in its status.
pub async fn validate_location(
    client: &Client,
    namespace: &str,
    bsl: &BackupStorageLocation,
) -> bool {
    let outcome = match open_store(client, namespace, bsl).await {
        Ok(store) => store.is_valid().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (phase, message) = match &outcome {
        Ok(()) => (BackupStorageLocationPhase::Available, None),
        Err(message) => (
            BackupStorageLocationPhase::Unavailable,
            Some(message.clone()),
        ),
    };
    if let Err(message) = &outcome {
        tracing::warn!(location = %bsl.name_any(), "backup storage location is unavailable: {message}");
    }
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), namespace);
    let patch = json!({ "status": {
        "phase": phase,
        "message": message,
        "lastValidationTime": crate::now(),
    }});
    if let Err(e) = api
        .patch(
            &bsl.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(location = %bsl.name_any(), "updating status: {e}");
    }
    outcome.is_ok()
}

/// Velero keeps one default location: when several claim it, the newest wins.
async fn ensure_single_default(
    api: &Api<BackupStorageLocation>,
    locations: &[BackupStorageLocation],
) {
    let mut defaults: Vec<&BackupStorageLocation> = locations
        .iter()
        .filter(|l| l.spec.default == Some(true))
        .collect();
    if defaults.len() < 2 {
        return;
    }
    defaults.sort_by_key(|l| l.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let keep = defaults.pop().map(|l| l.name_any());
    for other in defaults {
        tracing::info!(location = %other.name_any(), kept = ?keep, "unsetting default: only one location can be the default");
        let patch = json!({ "spec": { "default": false } });
        if let Err(e) = api
            .patch(
                &other.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!("unsetting default of {}: {e}", other.name_any());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(frequency: Option<&str>, validated_secs_ago: Option<i64>) -> BackupStorageLocation {
        let mut bsl = BackupStorageLocation::new("l", Default::default());
        bsl.spec.validation_frequency =
            frequency.map(|f| velero_api::Duration::parse(f).unwrap_or_else(|e| panic!("{e}")));
        if let Some(ago) = validated_secs_ago {
            let status = bsl.status.get_or_insert_with(Default::default);
            status.last_validation_time =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago),
                ));
        }
        bsl
    }

    #[test]
    fn a_location_s_own_frequency_wins_and_zero_disables() {
        let minute = Duration::from_secs(60);
        assert!(
            due_for_validation(&location(None, None), minute),
            "never validated"
        );
        assert!(!due_for_validation(&location(None, Some(30)), minute));
        assert!(due_for_validation(&location(None, Some(61)), minute));
        assert!(
            due_for_validation(&location(Some("10s"), Some(30)), minute),
            "its own 10s"
        );
        assert!(
            !due_for_validation(&location(Some("1h"), Some(120)), minute),
            "its own 1h"
        );
        assert!(
            !due_for_validation(&location(Some("0s"), Some(86_400)), minute),
            "0 disables"
        );
        assert!(
            due_for_validation(&location(Some("0s"), None), minute),
            "but validates once"
        );
    }
}
