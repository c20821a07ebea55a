//! A restore request, prepared once (Velero's pkg/restore/request.go `Request`, filled by
//! pkg/controller/restore_controller.go `validateAndComplete`): the spec completed as the Restore
//! records it, its source backup and that backup's location, the resource modifiers; then the
//! cluster's resource types, the filter, the hooks and the restore item actions' configuration
//! resolved against them. The restore controller starts from it; the engine, item actions and
//! plugins read it instead of a list of arguments.
//!
//! Two steps, as Velero fails them differently: [`Prepared::new`] is validation (its errors make a
//! `FailedValidation` restore); [`Prepared::resolve`] runs once the restore is `InProgress`, and
//! its error fails the restore with a log in the location.

use std::collections::BTreeMap;

use kube::ResourceExt as _;
use kube::api::{Api, ListParams};
use velero_api::labels;
use velero_api::v1::{Backup, BackupPhase, BackupStorageLocation, Restore, RestoreSpec};
use velero_cluster::discovery::Discovery;
use velero_hooks::restore::RestoreHooks;
use velero_resource_modifiers::ResourceModifiers;

use crate::actions::{ImageRules, StorageClassMapping};
use crate::selection::{NON_RESTORABLE, RestoreFilter, validate_restore_spec};

/// A restore whose spec has been completed and validated.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The Restore with its spec completed as Velero completes it: the types it never restores
    /// excluded, a schedule's newest completed backup named, the backup's schedule named.
    pub restore: Restore,
    /// The backup it restores, when it could be read.
    pub backup: Option<Backup>,
    /// The backup's storage location, when it could be read and is available.
    pub location: Option<BackupStorageLocation>,
    /// The resource modifiers its spec names.
    pub modifiers: Option<ResourceModifiers>,
    /// Velero's validation errors, worded as Velero words them; empty when it may run.
    pub errors: Vec<String>,
}

/// A prepared restore resolved against the cluster: everything a run needs but the tarball.
pub struct Request {
    pub restore: Restore,
    pub backup: Backup,
    pub modifiers: Option<ResourceModifiers>,
    /// The cluster's resource types, with their preferred versions.
    pub discovery: Discovery,
    /// The restore's filters, resource names resolved against `discovery`.
    pub filter: RestoreFilter,
    /// The spec's restore hooks, selectors resolved.
    pub hooks: RestoreHooks,
    /// The change-storage-class action's mapping, when its ConfigMap exists.
    pub storage_classes: Option<StorageClassMapping>,
    /// The change-image-name action's rules, when its ConfigMap exists.
    pub image_rules: Option<ImageRules>,
}

/// Why a prepared restore could not be resolved against the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("error discovering the cluster's resource types: {0}")]
    Discovery(#[source] kube::Error),
    /// The filter's own message (Velero's wording).
    #[error("{0}")]
    Filter(String),
    #[error("error getting resource hooks: {0}")]
    Hooks(#[source] velero_hooks::SelectorError),
    #[error("the prepared restore has no source backup")]
    NoBackup,
}

impl Prepared {
    /// Validates and completes `restore` in the server's `namespace`, where its backup, the
    /// backup's location and its resource modifiers ConfigMap are.
    pub async fn new(client: &kube::Client, namespace: &str, restore: &Restore) -> Self {
        let mut spec = restore.spec.clone();
        let mut errors = validate_restore_spec(&spec);
        if spec.dry_run == Some(true)
            && spec.schedule_name.as_deref().is_some_and(|s| !s.is_empty())
        {
            // A plan is only worth having for the backup the real restore will use; a schedule's
            // newest backup may change between the two.
            errors.push("a dry run needs a backup name, not a schedule: plan the restore of one backup (velero backup get -l velero.io/schedule-name=<schedule> lists the schedule's backups)".into());
        }
        // Velero appends the types it never restores to every Restore's exclusions.
        let excluded = spec.excluded_resources.get_or_insert_with(Vec::new);
        for r in NON_RESTORABLE {
            if !excluded.iter().any(|e| e == r) {
                excluded.push(r.to_string());
            }
        }
        let (mut backup, mut location, mut modifiers) = (None, None, None);
        if errors.is_empty()
            && let Some(schedule) = spec.schedule_name.clone().filter(|s| !s.is_empty())
        {
            match newest_backup_of_schedule(client, namespace, &schedule).await {
                Ok(b) => spec.backup_name = Some(b),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty()
            && let Some(backup_name) = spec.backup_name.clone()
        {
            match source(client, namespace, &backup_name).await {
                Ok((b, l)) => {
                    if spec.schedule_name.as_deref().is_none_or(str::is_empty)
                        && let Some(schedule) = b.labels().get(labels::SCHEDULE_NAME)
                    {
                        spec.schedule_name = Some(schedule.clone());
                    }
                    (backup, location) = (Some(b), Some(l));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            match load_modifiers(client, namespace, &spec).await {
                Ok(m) => modifiers = m,
                Err(e) => errors.push(e),
            }
        }
        let mut restore = restore.clone();
        restore.spec = spec;
        Prepared {
            restore,
            backup,
            location,
            modifiers,
            errors,
        }
    }

    /// Resolves the prepared restore against the cluster as it is now, and reads the restore
    /// item actions' ConfigMaps from the server's `namespace`.
    pub async fn resolve(
        self,
        client: &kube::Client,
        namespace: &str,
    ) -> Result<Request, ResolveError> {
        let backup = self.backup.ok_or(ResolveError::NoBackup)?;
        let discovery = velero_cluster::discovery::discover(client)
            .await
            .map_err(ResolveError::Discovery)?;
        let resolve = |entry: &str| discovery.resolve(entry).map(|r| r.group_resource());
        let spec = &self.restore.spec;
        let filter = RestoreFilter::new(spec, resolve).map_err(ResolveError::Filter)?;
        let hooks =
            RestoreHooks::new(spec.hooks.as_ref(), &resolve).map_err(ResolveError::Hooks)?;
        let storage_classes =
            match plugin_config(client, namespace, "velero.io/change-storage-class").await {
                Some(map) if !map.is_empty() => {
                    Some(StorageClassMapping::resolve(client, map).await)
                }
                _ => None,
            };
        let image_rules = plugin_config(client, namespace, "velero.io/change-image-name")
            .await
            .filter(|data| !data.is_empty())
            .map(|data| ImageRules::parse(&data));
        Ok(Request {
            restore: self.restore,
            backup,
            modifiers: self.modifiers,
            discovery,
            filter,
            hooks,
            storage_classes,
            image_rules,
        })
    }
}

impl Request {
    /// The spec as completed.
    pub fn spec(&self) -> &RestoreSpec {
        &self.restore.spec
    }
}

/// The data of the plugin ConfigMap of a restore item action (`velero.io/plugin-config` labelled,
/// `<action>: RestoreItemAction`), as Velero's actions read theirs.
pub async fn plugin_config(
    client: &kube::Client,
    namespace: &str,
    action: &str,
) -> Option<BTreeMap<String, String>> {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let selector = format!("{},{action}=RestoreItemAction", labels::PLUGIN_CONFIG);
    let list = maps
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    list.items
        .into_iter()
        .next()
        .map(|m| m.data.unwrap_or_default())
}

/// Newest (by start time) Completed backup of a schedule.
async fn newest_backup_of_schedule(
    client: &kube::Client,
    namespace: &str,
    schedule: &str,
) -> Result<String, String> {
    let backups: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let list = backups
        .list(&ListParams::default().labels(&labels::schedule_selector(schedule)))
        .await
        .map_err(|_| "Unable to list backups for schedule".to_string())?;
    if list.items.is_empty() {
        return Err("No backups found for schedule".into());
    }
    velero_api::v1::most_recent_backup(&list.items, &[BackupPhase::Completed])
        .map(|b| b.name_any())
        .ok_or_else(|| "No completed backups found for schedule".to_string())
}

/// The backup and its location, which must be available (Velero's `fetchBackupInfo` and
/// `BSLIsAvailable` checks).
async fn source(
    client: &kube::Client,
    namespace: &str,
    backup_name: &str,
) -> Result<(Backup, BackupStorageLocation), String> {
    let message = |e: &kube::Error| match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    };
    let backups: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let backup = backups
        .get(backup_name)
        .await
        .map_err(|e| format!("Error retrieving backup: {}", message(&e)))?;
    let location_name = backup.spec.storage_location.clone().unwrap_or_default();
    let locations: Api<BackupStorageLocation> = Api::namespaced(client.clone(), namespace);
    let location = match locations.get_opt(&location_name).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(format!(
                "Error retrieving backup: backup storage location {location_name:?} not found"
            ));
        }
        Err(e) => {
            return Err(format!(
                "Error retrieving backup: reading backup storage location {location_name:?}: {e}"
            ));
        }
    };
    if !location.is_available() {
        return Err(format!(
            "The BSL {location_name} is unavailable, cannot retrieve the backup"
        ));
    }
    Ok((backup, location))
}

async fn load_modifiers(
    client: &kube::Client,
    namespace: &str,
    spec: &RestoreSpec,
) -> Result<Option<ResourceModifiers>, String> {
    let Some(reference) = &spec.resource_modifier else {
        return Ok(None);
    };
    if !reference.kind.eq_ignore_ascii_case("configmap") {
        return Ok(None);
    }
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let map = maps.get(&reference.name).await.map_err(|_| {
        format!(
            "failed to get resource modifiers configmap {namespace}/{}",
            reference.name
        )
    })?;
    ResourceModifiers::from_config_map_data(&map.data.unwrap_or_default())
        .map(Some)
        .map_err(|e| {
            format!(
                "Error in parsing resource modifiers provided in configmap {namespace}/{}: {e}",
                reference.name
            )
        })
}
