//! Backup sync (Velero's `pkg/controller/backup_sync_controller.go`): backups found in a location appear as Backup objects in this cluster,
//! and Backup objects whose files are gone from their location are removed. This is what makes a
//! second cluster see the first one's backups (migration).

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::labels;
use velero_api::v1::{Backup, BackupPhase, BackupStorageLocation, Schedule};

use crate::locations;

pub async fn run_sync_controller(client: Client, namespace: String, default_period: Duration) {
    if default_period.is_zero() {
        return std::future::pending().await;
    }
    // Locations may ask for shorter periods than the server's; look often, sync when due.
    let tick = default_period.min(Duration::from_secs(10));
    loop {
        if let Err(e) = sync_due_locations(&client, &namespace, default_period).await {
            tracing::warn!("backup sync: {e}");
        }
        tokio::time::sleep(tick).await;
    }
}

/// The period of one location: its `backupSyncPeriod`, else the server's; zero disables.
fn period_of(bsl: &BackupStorageLocation, default_period: Duration) -> Duration {
    match bsl.spec.backup_sync_period.and_then(|p| p.to_std()) {
        Some(p) => p,
        None => default_period,
    }
}

async fn sync_due_locations(
    client: &Client,
    namespace: &str,
    default_period: Duration,
) -> Result<(), kube::Error> {
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), namespace);
    let mut all = api.list(&ListParams::default()).await?.items;
    // The default location goes first, as in Velero.
    all.sort_by_key(|l| l.spec.default != Some(true));
    let now = jiff::Timestamp::now();
    for bsl in all {
        let period = period_of(&bsl, default_period);
        // A zero period on the location switches its sync off.
        if period.is_zero() {
            continue;
        }
        if !bsl.is_available() {
            continue;
        }
        let last = bsl
            .status
            .as_ref()
            .and_then(|s| s.last_synced_time.as_ref())
            .map(|t| t.0);
        let due = last.is_none_or(|t| now.duration_since(t).as_secs_f64() >= period.as_secs_f64());
        if !due {
            continue;
        }
        let name = bsl.name_any();
        if let Err(e) = sync_location(client, namespace, &bsl).await {
            tracing::warn!(location = %name, "backup sync: {e}");
            continue;
        }
        let patch = json!({"status": {"lastSyncedTime": crate::now()}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// One location: import what is missing here, remove what is gone there.
pub async fn sync_location(
    client: &Client,
    namespace: &str,
    bsl: &BackupStorageLocation,
) -> Result<(), String> {
    let location = bsl.name_any();
    let store = locations::open_store(client, namespace, bsl)
        .await
        .map_err(|e| e.to_string())?;
    let in_store: BTreeSet<String> = store
        .list_backups()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let backups: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let in_cluster: Vec<Backup> = backups
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items;
    let known: BTreeSet<String> = in_cluster.iter().map(|b| b.name_any()).collect();
    let schedules: Api<Schedule> = Api::namespaced(client.clone(), namespace);
    let now = jiff::Timestamp::now();

    for name in in_store.difference(&known) {
        // velero-backup.json is written last: without it the backup is unfinished (perhaps
        // another cluster is still writing it) and is left alone.
        let metadata = match store.get_backup_metadata(name).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(backup = %name, "not syncing: {e}");
                continue;
            }
        };
        let mut backup: Backup = match serde_json::from_slice(&metadata) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(backup = %name, location = %location, "velero-backup.json cannot be read: {e}");
                continue;
            }
        };
        let phase = backup.phase();
        let still_working = matches!(
            phase,
            Some(
                BackupPhase::WaitingForPluginOperations
                    | BackupPhase::WaitingForPluginOperationsPartiallyFailed
                    | BackupPhase::Finalizing
                    | BackupPhase::FinalizingPartiallyFailed
            )
        );
        if still_working {
            if !crate::gc::expired(&backup, now) {
                continue;
            }
            // Expired while another cluster never finished it: import it so GC can remove it.
            if let Some(s) = backup.status.as_mut() {
                s.phase = Some(BackupPhase::PartiallyFailed);
            }
        }
        let meta = &mut backup.metadata;
        meta.namespace = Some(namespace.to_string());
        meta.resource_version = None;
        meta.uid = None;
        meta.creation_timestamp = None;
        meta.managed_fields = None;
        meta.labels.get_or_insert_with(Default::default).insert(
            labels::STORAGE_LOCATION.to_string(),
            labels::valid_label_value(&location),
        );
        // Owner references to schedules that do not exist here (another cluster's) would get the
        // backup garbage-collected by Kubernetes at once.
        if let Some(owners) = meta.owner_references.take() {
            let mut kept = Vec::new();
            for owner in owners {
                let exists = owner.kind == "Schedule"
                    && schedules
                        .get_opt(&owner.name)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|s| s.uid().as_deref() == Some(owner.uid.as_str()));
                if exists {
                    kept.push(owner);
                }
            }
            meta.owner_references = (!kept.is_empty()).then_some(kept);
        }
        backup.spec.storage_location = Some(location.clone());
        match backups.create(&PostParams::default(), &backup).await {
            Ok(_) => {
                tracing::info!(backup = %name, location = %location, "synced backup from storage")
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => tracing::warn!(backup = %name, "creating the synced backup: {e}"),
        }
    }

    // Orphans: finished backups of this location whose files are gone.
    let location_label = labels::valid_label_value(&location);
    for backup in &in_cluster {
        let name = backup.name_any();
        let of_location = backup.labels().get(labels::STORAGE_LOCATION) == Some(&location_label);
        let finished = matches!(
            backup.phase(),
            Some(BackupPhase::Completed | BackupPhase::PartiallyFailed)
        );
        if of_location && finished && !in_store.contains(&name) {
            tracing::info!(backup = %name, location = %location, "removing a backup whose files are gone from its location");
            if let Err(e) = backups.delete(&name, &DeleteParams::default()).await {
                tracing::warn!(backup = %name, "removing the orphaned backup: {e}");
            }
        }
    }
    Ok(())
}
