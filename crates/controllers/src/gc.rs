//! Garbage collection (Velero's `pkg/controller/gc_controller.go`): an expired Backup gets a DeleteBackupRequest, unless its
//! location is missing or read-only (then a `velero.io/gc-failure` label says why) or unavailable
//! (then it waits for the next pass).

use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::labels;
use velero_api::v1::{Backup, BackupPhase};

use crate::locations::{self, LocationError};

/// Why an expired backup could not be collected, as Velero labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcFailure {
    LocationNotFound,
    LocationCannotGet,
    LocationReadOnly,
}

impl GcFailure {
    pub fn label(self) -> &'static str {
        match self {
            GcFailure::LocationNotFound => "BSLNotFound",
            GcFailure::LocationCannotGet => "BSLCannotGet",
            GcFailure::LocationReadOnly => "BSLReadOnly",
        }
    }
}

/// Whether `backup` has expired at `now`.
pub fn expired(backup: &Backup, now: jiff::Timestamp) -> bool {
    backup
        .status
        .as_ref()
        .and_then(|s| s.expiration.as_ref())
        .is_some_and(|e| e.0 < now)
}

pub async fn run_gc_controller(client: Client, namespace: String, frequency: Duration) {
    if frequency.is_zero() {
        return std::future::pending().await;
    }
    loop {
        if let Err(e) = collect(&client, &namespace).await {
            tracing::warn!("garbage collection: {e}");
        }
        tokio::time::sleep(frequency).await;
    }
}

/// One pass over every Backup of the namespace.
pub async fn collect(client: &Client, namespace: &str) -> Result<(), kube::Error> {
    let backups: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let now = jiff::Timestamp::now();
    for backup in backups.list(&ListParams::default()).await? {
        if !expired(&backup, now) {
            continue;
        }
        let phase = backup.phase();
        // A running backup or one being deleted is somebody else's business.
        if matches!(
            phase,
            Some(BackupPhase::InProgress | BackupPhase::Deleting | BackupPhase::New)
        ) {
            continue;
        }
        let name = backup.name_any();
        let location_name = backup.spec.storage_location.clone().unwrap_or_default();
        let failure = match locations::get_location(client, namespace, &location_name).await {
            Err(LocationError::NotFound(_)) => Some(GcFailure::LocationNotFound),
            Err(_) => Some(GcFailure::LocationCannotGet),
            Ok(l) if locations::is_read_only(&l) => Some(GcFailure::LocationReadOnly),
            Ok(l) => {
                if !l.is_available() {
                    tracing::info!(backup = %name, location = %location_name, "expired backup waits for its location to be available");
                    continue;
                }
                None
            }
        };
        let current = backup.labels().get(labels::GC_FAILURE).cloned();
        let wanted = failure.map(|f| f.label().to_string());
        if current != wanted {
            let patch = json!({"metadata": {"labels": {labels::GC_FAILURE: wanted}}});
            backups
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        if let Some(f) = failure {
            tracing::info!(backup = %name, reason = f.label(), "expired backup cannot be garbage-collected");
            continue;
        }
        if crate::delete::request_deletion(client, namespace, &name, backup.uid().as_deref())
            .await?
        {
            tracing::info!(backup = %name, "backup has expired: requested its deletion");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_strictly_in_the_past() {
        let mut b = Backup::new("b", Default::default());
        let now = jiff::Timestamp::now();
        assert!(!expired(&b, now), "no expiration never expires");
        let status = b.status.get_or_insert_with(Default::default);
        status.expiration = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now - jiff::SignedDuration::from_secs(1),
        ));
        assert!(expired(&b, now));
        let status = b.status.get_or_insert_with(Default::default);
        status.expiration = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now + jiff::SignedDuration::from_secs(60),
        ));
        assert!(!expired(&b, now));
    }

    #[test]
    fn failure_labels_are_velero_s() {
        assert_eq!(GcFailure::LocationNotFound.label(), "BSLNotFound");
        assert_eq!(GcFailure::LocationCannotGet.label(), "BSLCannotGet");
        assert_eq!(GcFailure::LocationReadOnly.label(), "BSLReadOnly");
    }
}
