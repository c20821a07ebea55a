//! `velero backup create|get|describe|logs|download|delete`, and velero-rs's own
//! `contents|get-item|diff`.

mod contents;
mod create;
mod delete;
mod describe;
mod diff;
mod download;
mod get;
mod get_item;
mod items;
mod logs;

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::TypedLocalObjectReference;
use kube::api::Api;
use velero_api::v1::{BackupSpec, BackupStorageLocation, VolumeSnapshotLocation};

use self::contents::ContentsArgs;
use self::create::CreateArgs;
use self::delete::DeleteArgs;
use self::describe::DescribeArgs;
use self::diff::DiffArgs;
use self::download::DownloadArgs;
use self::get_item::GetItemArgs;
use self::logs::LogsArgs;
use crate::client::GlobalArgs;
use crate::flags::{label_selectors, non_empty, parse_duration, parse_map};
use crate::select::GetArgs;

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Create a backup
    Create(Box<CreateArgs>),
    /// Get backups
    Get(GetArgs),
    /// Describe backups
    Describe(DescribeArgs),
    /// Get backup logs
    Logs(LogsArgs),
    /// Download all Kubernetes manifests for a backup
    Download(DownloadArgs),
    /// Delete backups
    Delete(DeleteArgs),
    /// List the items a backup holds (velero-rs)
    Contents(ContentsArgs),
    /// Print one backed-up object as it was stored (velero-rs)
    GetItem(GetItemArgs),
    /// Compare a backup with the live cluster: added, removed and changed objects (velero-rs)
    Diff(DiffArgs),
}

impl BackupCommand {
    /// The exit code when the command fails: `diff` keeps 1 for "drift found", so that a CI job
    /// can tell drift from a comparison that could not be made.
    pub fn error_exit_code(&self) -> u8 {
        match self {
            BackupCommand::Diff(_) => diff::ERROR_EXIT_CODE,
            _ => 1,
        }
    }
}

pub async fn run(global: &GlobalArgs, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Create(args) => create::create(global, *args).await,
        BackupCommand::Get(args) => get::get(global, args).await,
        BackupCommand::Describe(args) => describe::describe(global, args).await,
        BackupCommand::Logs(args) => logs::logs(global, args).await,
        BackupCommand::Download(args) => download::download_contents(global, args).await,
        BackupCommand::Delete(args) => delete::delete(global, args).await,
        BackupCommand::Contents(args) => contents::contents(global, args).await,
        BackupCommand::GetItem(args) => get_item::get_item(global, args).await,
        BackupCommand::Diff(args) => diff::diff(global, args).await,
    }
}

/// Every flag `backup create` shares with `schedule create` (Velero's `backup.CreateOptions`
/// without `--from-schedule` and `--wait`): what goes into a BackupSpec, and the object's labels
/// and annotations.
#[derive(Args, Debug)]
pub struct BackupFlags {
    /// Namespaces to include in the backup (use '*' for all namespaces)
    #[arg(long, value_delimiter = ',', default_value = "*")]
    include_namespaces: Vec<String>,
    /// Namespaces to exclude from the backup
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Resources to include in the backup, formatted as resource.group, such as storageclasses.storage.k8s.io (use '*' for all resources). Cannot work with include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Resources to exclude from the backup, formatted as resource.group, such as storageclasses.storage.k8s.io. Cannot work with include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Include cluster-scoped resources in the backup. Cannot work with include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    include_cluster_resources: Option<bool>,
    /// Cluster-scoped resources to include in the backup, formatted as resource.group, such as storageclasses.storage.k8s.io(use '*' for all resources). Cannot work with include-resources, exclude-resources and include-cluster-resources
    #[arg(long, value_delimiter = ',')]
    include_cluster_scoped_resources: Vec<String>,
    /// Cluster-scoped resources to exclude from the backup, formatted as resource.group, such as storageclasses.storage.k8s.io(use '*' for all resources). Cannot work with include-resources, exclude-resources and include-cluster-resources
    #[arg(long, value_delimiter = ',')]
    exclude_cluster_scoped_resources: Vec<String>,
    /// Namespaced resources to include in the backup, formatted as resource.group, such as deployments.apps(use '*' for all resources). Cannot work with include-resources, exclude-resources and include-cluster-resources
    #[arg(long, value_delimiter = ',')]
    include_namespace_scoped_resources: Vec<String>,
    /// Namespaced resources to exclude from the backup, formatted as resource.group, such as deployments.apps(use '*' for all resources). Cannot work with include-resources, exclude-resources and include-cluster-resources
    #[arg(long, value_delimiter = ',')]
    exclude_namespace_scoped_resources: Vec<String>,
    /// Only back up resources matching this label selector
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Backup resources matching at least one of the label selector from the list. Label selectors should be separated by ' or '. For example, foo=bar or app=nginx
    #[arg(long)]
    or_selector: Option<String>,
    /// Labels to apply to the backup
    #[arg(long, value_parser = parse_map, default_value = "")]
    pub(crate) labels: BTreeMap<String, String>,
    /// Annotations to apply to the backup
    #[arg(long, value_parser = parse_map, default_value = "")]
    pub(crate) annotations: BTreeMap<String, String>,
    /// How long before the backup can be garbage collected
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<velero_api::Duration>,
    /// Location in which to store the backup
    #[arg(long)]
    storage_location: Option<String>,
    /// List of locations (at most one per provider) where volume snapshots should be stored
    #[arg(long, value_delimiter = ',')]
    volume_snapshot_locations: Vec<String>,
    /// Take snapshots of PersistentVolumes as part of the backup. If the parameter is not set, it is treated as setting to 'true'
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    snapshot_volumes: Option<bool>,
    /// Specify whether snapshot data should be moved
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    snapshot_move_data: Option<bool>,
    /// Specify the data mover to be used by the backup. If the parameter is not set or set as 'velero', the built-in data mover will be used
    #[arg(long)]
    data_mover: Option<String>,
    /// Use pod volume file system backup by default for volumes
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    default_volumes_to_fs_backup: Option<bool>,
    /// Mapping Kinds to an ordered list of specific resources of that Kind.  Resource names are separated by commas and their names are in format 'namespace/resourcename'. For cluster scope resource, simply use resource name. Key-value pairs in the mapping are separated by semi-colon.  Example: 'pods=ns1/pod1,ns1/pod2;persistentvolumeclaims=ns1/pvc4,ns1/pvc8'.  Optional
    #[arg(long)]
    ordered_resources: Option<String>,
    /// How long to wait for CSI snapshot creation before timeout
    #[arg(long, value_parser = parse_duration)]
    csi_snapshot_timeout: Option<velero_api::Duration>,
    /// How long to wait for async plugin operations before timeout
    #[arg(long, value_parser = parse_duration)]
    item_operation_timeout: Option<velero_api::Duration>,
    /// Reference to the resource policies configmap that backup should use
    #[arg(long)]
    resource_policies_configmap: Option<String>,
    /// Number of files uploads simultaneously when running a backup. This is only applicable for the kopia uploader
    #[arg(long)]
    parallel_files_upload: Option<i32>,
}

impl BackupFlags {
    /// The spec the flags describe, refused with Velero's messages when they contradict each other.
    pub(crate) fn spec(&self) -> anyhow::Result<BackupSpec> {
        let old_style = !self.include_resources.is_empty()
            || !self.exclude_resources.is_empty()
            || self.include_cluster_resources.is_some();
        let new_style = !self.include_cluster_scoped_resources.is_empty()
            || !self.exclude_cluster_scoped_resources.is_empty()
            || !self.include_namespace_scoped_resources.is_empty()
            || !self.exclude_namespace_scoped_resources.is_empty();
        if old_style && new_style {
            bail!(
                "include-resources, exclude-resources and include-cluster-resources are old filter parameters.\ninclude-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources are new filter parameters.\nThey cannot be used together"
            );
        }
        let (label_selector, or_label_selectors) =
            label_selectors(self.selector.as_deref(), self.or_selector.as_deref())?;
        let ordered_resources = match &self.ordered_resources {
            Some(s) => Some(
                velero_filters::parse_ordered_resources(s)
                    .with_context(|| format!("invalid --ordered-resources {s:?}"))?,
            ),
            None => None,
        };
        let spec = BackupSpec {
            included_namespaces: non_empty(&self.include_namespaces),
            excluded_namespaces: non_empty(&self.exclude_namespaces),
            included_resources: non_empty(&self.include_resources),
            excluded_resources: non_empty(&self.exclude_resources),
            include_cluster_resources: self.include_cluster_resources,
            included_cluster_scoped_resources: non_empty(&self.include_cluster_scoped_resources),
            excluded_cluster_scoped_resources: non_empty(&self.exclude_cluster_scoped_resources),
            included_namespace_scoped_resources: non_empty(
                &self.include_namespace_scoped_resources,
            ),
            excluded_namespace_scoped_resources: non_empty(
                &self.exclude_namespace_scoped_resources,
            ),
            label_selector,
            or_label_selectors,
            ttl: self.ttl,
            storage_location: self.storage_location.clone(),
            volume_snapshot_locations: non_empty(&self.volume_snapshot_locations),
            snapshot_volumes: self.snapshot_volumes,
            snapshot_move_data: self.snapshot_move_data,
            data_mover: self.data_mover.clone(),
            default_volumes_to_fs_backup: self.default_volumes_to_fs_backup,
            ordered_resources,
            csi_snapshot_timeout: self.csi_snapshot_timeout,
            item_operation_timeout: self.item_operation_timeout,
            resource_policy: self.resource_policies_configmap.as_ref().map(|name| {
                TypedLocalObjectReference {
                    kind: "configmap".into(),
                    name: name.clone(),
                    api_group: None,
                }
            }),
            uploader_config: self.parallel_files_upload.filter(|n| *n > 0).map(|n| {
                velero_api::v1::UploaderConfigForBackup {
                    parallel_files_upload: Some(n),
                }
            }),
            ..Default::default()
        };
        let errors = velero_filters::validate_backup_spec(&spec);
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        Ok(spec)
    }
}

/// `map` added to `into`, overwriting keys already there (Velero's `WithLabelsMap`).
pub(crate) fn merge_into(
    into: &mut Option<BTreeMap<String, String>>,
    map: &BTreeMap<String, String>,
) {
    if !map.is_empty() {
        into.get_or_insert_default()
            .extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Velero refuses a backup or schedule whose storage or snapshot locations do not exist, so the
/// mistake shows now rather than as a failed backup later.
pub(crate) async fn check_locations(
    client: &kube::Client,
    namespace: &str,
    spec: &BackupSpec,
) -> anyhow::Result<()> {
    if let Some(location) = &spec.storage_location {
        let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), namespace);
        let found = api
            .get_opt(location)
            .await
            .with_context(|| format!("reading backup storage location {location:?}"))?;
        if found.is_none() {
            bail!(
                "backup storage location {location:?} does not exist; see `velero backup-location get`"
            );
        }
    }
    let api: Api<VolumeSnapshotLocation> = Api::namespaced(client.clone(), namespace);
    for location in spec.volume_snapshot_locations.iter().flatten() {
        let found = api
            .get_opt(location)
            .await
            .with_context(|| format!("reading volume snapshot location {location:?}"))?;
        if found.is_none() {
            bail!(
                "volume snapshot location {location:?} does not exist; see `velero snapshot-location get`"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use velero_api::v1::{Schedule, ScheduleSpec, TemplateMetadata};

    fn schedule(template_labels: Option<&[(&str, &str)]>, owned: Option<bool>) -> Schedule {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let spec = ScheduleSpec {
            schedule: "@daily".into(),
            template: BackupSpec {
                included_namespaces: Some(vec!["shop".into()]),
                metadata: template_labels.map(|l| TemplateMetadata {
                    labels: Some(map(l)),
                }),
                ..Default::default()
            },
            use_owner_references_in_backup: owned,
            ..Default::default()
        };
        let mut s = Schedule::new("nightly", spec);
        s.metadata.namespace = Some("velero".into());
        s.metadata.uid = Some("uid-1".into());
        s.metadata.labels = Some(map(&[("team", "a")]));
        s.metadata.annotations = Some(map(&[("note", "x")]));
        s
    }

    #[test]
    fn a_backup_from_a_schedule_is_built_as_velero_builds_it() {
        let backup = schedule(None, Some(false)).backup_named("nightly-20260101000000");
        assert_eq!(
            serde_json::to_value(&backup).expect("serializes"),
            json!({
                "apiVersion": "velero.io/v1",
                "kind": "Backup",
                "metadata": {
                    "name": "nightly-20260101000000",
                    "namespace": "velero",
                    "labels": {"team": "a", "velero.io/schedule-name": "nightly"},
                    "annotations": {"note": "x"},
                },
                "spec": {"includedNamespaces": ["shop"]},
            })
        );
        // The template's labels replace the schedule's; the schedule's name is always added.
        let with_template = schedule(
            Some(&[("tier", "gold"), ("velero.io/schedule-name", "other")]),
            Some(true),
        )
        .backup_named("b");
        assert_eq!(
            with_template.metadata.labels,
            Some(BTreeMap::from([
                ("tier".to_string(), "gold".to_string()),
                ("velero.io/schedule-name".to_string(), "nightly".to_string()),
            ]))
        );
        assert_eq!(
            serde_json::to_value(&with_template.metadata.owner_references).expect("serializes"),
            json!([{
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "name": "nightly",
                "uid": "uid-1",
                "controller": true,
            }])
        );
        // Flags given to `backup create --from-schedule` win.
        let mut labels = with_template.metadata.labels.clone();
        merge_into(
            &mut labels,
            &BTreeMap::from([("tier".to_string(), "silver".to_string())]),
        );
        assert_eq!(
            labels
                .as_ref()
                .and_then(|l| l.get("tier"))
                .map(String::as_str),
            Some("silver")
        );
        let mut none = None;
        merge_into(&mut none, &BTreeMap::new());
        assert_eq!(none, None, "no flags, no empty map");
    }
}
