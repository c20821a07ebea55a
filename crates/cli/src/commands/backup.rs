//! `velero backup create|get|describe|logs|download|delete`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand};
use k8s_openapi::api::core::v1::TypedLocalObjectReference;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use velero_api::labels;
use velero_api::v1::{
    Backup, BackupPhase, BackupSpec, BackupStorageLocation, DeleteBackupRequest,
    DeleteBackupRequestSpec, DownloadTargetKind, Schedule, VolumeSnapshotLocation,
};

use crate::client::GlobalArgs;
use crate::download::{self, TlsOptions};
use crate::flags::{label_selectors, non_empty, parse_duration, parse_map};
use crate::output::{self, Format};
use crate::{describe, progress, select, table};

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
}

pub async fn run(global: &GlobalArgs, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Create(args) => create(global, *args).await,
        BackupCommand::Get(args) => get(global, args).await,
        BackupCommand::Describe(args) => describe(global, args).await,
        BackupCommand::Logs(args) => logs(global, args).await,
        BackupCommand::Download(args) => download_contents(global, args).await,
        BackupCommand::Delete(args) => delete(global, args).await,
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the backup (optional with --from-schedule)
    name: Option<String>,
    /// Namespaces to include in the backup (use '*' for all namespaces)
    #[arg(long, value_delimiter = ',', default_value = "*")]
    include_namespaces: Vec<String>,
    /// Namespaces to exclude from the backup
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Resources to include in the backup, formatted as resource.group, such as storageclasses.storage.k8s.io (use '*' for all resources). Cannot work with include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Resources to exclude from the backup, formatted as resource.group, such as storageclasses.storage.k8s.io
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Include cluster-scoped resources in the backup
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    include_cluster_resources: Option<bool>,
    /// Cluster-scoped resources to include in the backup, formatted as resource.group
    #[arg(long, value_delimiter = ',')]
    include_cluster_scoped_resources: Vec<String>,
    /// Cluster-scoped resources to exclude from the backup, formatted as resource.group
    #[arg(long, value_delimiter = ',')]
    exclude_cluster_scoped_resources: Vec<String>,
    /// Namespaced resources to include in the backup, formatted as resource.group
    #[arg(long, value_delimiter = ',')]
    include_namespace_scoped_resources: Vec<String>,
    /// Namespaced resources to exclude from the backup, formatted as resource.group
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
    labels: BTreeMap<String, String>,
    /// Annotations to apply to the backup
    #[arg(long, value_parser = parse_map, default_value = "")]
    annotations: BTreeMap<String, String>,
    /// How long before the backup can be garbage collected
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<velero_api::Duration>,
    /// Location in which to store the backup
    #[arg(long)]
    storage_location: Option<String>,
    /// List of locations (at most one per provider) where volume snapshots should be stored
    #[arg(long, value_delimiter = ',')]
    volume_snapshot_locations: Vec<String>,
    /// Take snapshots of PersistentVolumes as part of the backup
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
    /// Mapping Kinds to an ordered list of specific resources of that Kind. Resource names are separated by commas and their names are in format 'namespace/resourcename'. For cluster scope resource, simply use resource name. Key-value pairs in the mapping are separated by semi-colon. Example: 'pods=ns1/pod1,ns1/pod2;persistentvolumeclaims=ns1/pvc4,ns1/pvc8'
    #[arg(long)]
    ordered_resources: Option<String>,
    /// How long to wait for CSI snapshot creation before timeout
    #[arg(long, value_parser = parse_duration)]
    csi_snapshot_timeout: Option<velero_api::Duration>,
    /// How long to wait for async plugin operations before timeout
    #[arg(long, value_parser = parse_duration)]
    item_operation_timeout: Option<velero_api::Duration>,
    /// Reference to the resource policies configmap that backup using
    #[arg(long)]
    resource_policies_configmap: Option<String>,
    /// Number of files uploads simultaneously when running a backup
    #[arg(long)]
    parallel_files_upload: Option<i32>,
    /// Create a backup from the template of an existing schedule. Cannot be used with any other filters
    #[arg(long)]
    from_schedule: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long, action = ArgAction::SetTrue)]
    wait: bool,
    /// Output display format. For create commands, display the object but do not send it to the server. Valid formats are 'table', 'json', and 'yaml'
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

impl CreateArgs {
    fn spec(&self) -> anyhow::Result<BackupSpec> {
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

fn utc_stamp() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string()
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let mut backup_labels = args.labels.clone();
    let (name, spec) = if let Some(schedule_name) = &args.from_schedule {
        let client = global.client().await?;
        let schedules: Api<Schedule> = Api::namespaced(client, &namespace);
        let schedule = schedules.get_opt(schedule_name).await?.with_context(|| {
            format!("schedule {schedule_name:?} not found in namespace {namespace}")
        })?;
        println!("Creating backup from schedule, all other filters are ignored.");
        backup_labels.insert(
            labels::SCHEDULE_NAME.into(),
            labels::valid_label_value(schedule_name),
        );
        if let Some(template_labels) = schedule
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
        {
            backup_labels.extend(template_labels);
        }
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("{schedule_name}-{}", utc_stamp()));
        (name, schedule.spec.template.clone())
    } else {
        let Some(name) = args.name.clone() else {
            bail!("a backup name is required, unless you are creating based on a schedule");
        };
        (name, args.spec()?)
    };

    let mut backup = Backup::new(&name, spec);
    backup.metadata.namespace = Some(namespace.clone());
    backup.metadata.labels = (!backup_labels.is_empty()).then_some(backup_labels);
    backup.metadata.annotations = (!args.annotations.is_empty()).then(|| args.annotations.clone());
    if let Some(format) = args.output {
        let value = serde_json::to_value(&backup)?;
        return output::print(&value, format, &mut std::io::stdout());
    }

    let client = global.client().await?;
    if let Some(location) = &backup.spec.storage_location {
        let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), &namespace);
        if api.get_opt(location).await?.is_none() {
            bail!(
                "backup storage location {location:?} does not exist; see `velero backup-location get`"
            );
        }
    }
    for location in backup
        .spec
        .volume_snapshot_locations
        .clone()
        .unwrap_or_default()
    {
        let api: Api<VolumeSnapshotLocation> = Api::namespaced(client.clone(), &namespace);
        if api.get_opt(&location).await?.is_none() {
            bail!(
                "volume snapshot location {location:?} does not exist; see `velero snapshot-location get`"
            );
        }
    }
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    crate::client::create_new(&api, &backup, "backup").await?;
    println!("Backup request {name:?} submitted successfully.");
    if args.wait {
        println!(
            "Waiting for backup to complete. You may safely press ctrl-c to stop waiting - your backup will continue in the background."
        );
        let phase = wait_for_backup(&api, &name).await?;
        println!(
            "\nBackup completed with status: {}. You may check for more information using the commands `velero backup describe {name}` and `velero backup logs {name}`.",
            phase.as_str()
        );
        return Ok(());
    }
    println!(
        "Run `velero backup describe {name}` or `velero backup logs {name}` for more details."
    );
    Ok(())
}

/// Polls the backup until it is done, showing items done/total as they change.
async fn wait_for_backup(api: &Api<Backup>, name: &str) -> anyhow::Result<BackupPhase> {
    progress::until_done(|| async {
        let backup = api.get(name).await.context("reading the backup")?;
        let status = backup.status.unwrap_or_default();
        let phase = status.phase.unwrap_or(BackupPhase::New);
        let progress = status.progress.unwrap_or_default();
        let line = format!(
            "{}: {}/{} items backed up",
            phase.as_str(),
            progress.items_backed_up.unwrap_or(0),
            progress.total_items.unwrap_or(0)
        );
        Ok((line, phase.is_terminal().then_some(phase)))
    })
    .await
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Backup names
    names: Vec<String>,
    /// Only show items matching this label selector
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Output display format: table, json or yaml
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

async fn list_backups(
    global: &GlobalArgs,
    names: &[String],
    selector: Option<&str>,
) -> anyhow::Result<Vec<Backup>> {
    let client = global.client().await?;
    let api: Api<Backup> = Api::namespaced(client, &global.namespace());
    select::named_or_selected(&api, names, selector, "backup").await
}

/// Velero's order: scheduled backups (`<schedule>-<14 digits>`) grouped by schedule, newest
/// first; everything else by name.
fn sort_backups(backups: &mut [Backup]) {
    fn key(name: &str) -> (String, std::cmp::Reverse<String>) {
        match name.rsplit_once('-') {
            Some((prefix, stamp))
                if stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (prefix.to_string(), std::cmp::Reverse(stamp.to_string()))
            }
            _ => (name.to_string(), std::cmp::Reverse(String::new())),
        }
    }
    backups.sort_by_key(|b| key(&b.name_any()));
}

async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let mut backups = list_backups(global, &args.names, args.selector.as_deref()).await?;
    sort_backups(&mut backups);
    if args.output != Format::Table {
        return output::print_list("BackupList", &backups, args.output, &mut std::io::stdout());
    }
    let rows: Vec<Vec<String>> = backups
        .iter()
        .map(|b| {
            let status = b.status.clone().unwrap_or_default();
            let mut phase = status
                .phase
                .unwrap_or(BackupPhase::New)
                .as_str()
                .to_string();
            if b.metadata.deletion_timestamp.is_some() {
                phase = "Deleting".into();
            }
            let expiration = status.expiration.as_ref().map(|t| t.0).or_else(|| {
                let ttl = b.spec.ttl.filter(|t| !t.is_zero())?;
                let created = b.metadata.creation_timestamp.as_ref()?.0;
                created
                    .checked_add(jiff::SignedDuration::from_nanos(ttl.as_nanos()))
                    .ok()
            });
            vec![
                b.name_any(),
                phase,
                status.errors.unwrap_or(0).to_string(),
                status.warnings.unwrap_or(0).to_string(),
                table::time(status.start_timestamp.as_ref()),
                table::from_now(expiration),
                b.spec.storage_location.clone().unwrap_or_default(),
                status
                    .queue_position
                    .filter(|p| *p > 0)
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                table::selector(b.spec.label_selector.as_ref()),
            ]
        })
        .collect();
    table::print(
        &[
            "Name",
            "Status",
            "Errors",
            "Warnings",
            "Created",
            "Expires",
            "Storage Location",
            "Queue Position",
            "Selector",
        ],
        &rows,
        &mut std::io::stdout(),
    )?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    names: Vec<String>,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Display additional detail in the command output
    #[arg(long, action = ArgAction::SetTrue)]
    details: bool,
    #[command(flatten)]
    tls: TlsOptions,
    /// Output display format: plaintext or json
    #[arg(short = 'o', long, default_value = "plaintext")]
    output: String,
}

fn describe_one(b: &Backup, out: &mut String) {
    use std::fmt::Write as _;
    let status = b.status.clone().unwrap_or_default();
    let spec = &b.spec;
    let map = |m: Option<&BTreeMap<String, String>>| -> String {
        match m {
            Some(m) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n              "),
            _ => "<none>".into(),
        }
    };
    let _ = writeln!(out, "Name:         {}", b.name_any());
    let _ = writeln!(out, "Namespace:    {}", b.namespace().unwrap_or_default());
    let _ = writeln!(out, "Labels:       {}", map(b.metadata.labels.as_ref()));
    let _ = writeln!(
        out,
        "Annotations:  {}",
        map(b.metadata.annotations.as_ref())
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Phase:  {}",
        status.phase.unwrap_or(BackupPhase::New).as_str()
    );
    if let Some(reason) = status.failure_reason.as_ref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "\nFailure reason:  {reason}");
    }
    if let Some(errors) = status.validation_errors.as_ref().filter(|e| !e.is_empty()) {
        let _ = writeln!(out, "\nValidation errors:");
        for e in errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    let _ = writeln!(out);
    if status.errors.unwrap_or(0) > 0 || status.warnings.unwrap_or(0) > 0 {
        let _ = writeln!(out, "Errors:    {}", status.errors.unwrap_or(0));
        let _ = writeln!(out, "Warnings:  {}\n", status.warnings.unwrap_or(0));
    }
    let _ = writeln!(out, "Namespaces:");
    let _ = writeln!(
        out,
        "  Included:  {}",
        describe::list_or(spec.included_namespaces.as_ref(), "*")
    );
    let _ = writeln!(
        out,
        "  Excluded:  {}",
        describe::list_or(spec.excluded_namespaces.as_ref(), "<none>")
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Resources:");
    let new_style = spec.included_cluster_scoped_resources.is_some()
        || spec.excluded_cluster_scoped_resources.is_some()
        || spec.included_namespace_scoped_resources.is_some()
        || spec.excluded_namespace_scoped_resources.is_some();
    if new_style {
        let _ = writeln!(
            out,
            "  Included cluster-scoped:    {}",
            describe::list_or(spec.included_cluster_scoped_resources.as_ref(), "<none>")
        );
        let _ = writeln!(
            out,
            "  Excluded cluster-scoped:    {}",
            describe::list_or(spec.excluded_cluster_scoped_resources.as_ref(), "<none>")
        );
        let _ = writeln!(
            out,
            "  Included namespace-scoped:  {}",
            describe::list_or(spec.included_namespace_scoped_resources.as_ref(), "*")
        );
        let _ = writeln!(
            out,
            "  Excluded namespace-scoped:  {}",
            describe::list_or(spec.excluded_namespace_scoped_resources.as_ref(), "<none>")
        );
    } else {
        let _ = writeln!(
            out,
            "  Included:        {}",
            describe::list_or(spec.included_resources.as_ref(), "*")
        );
        let _ = writeln!(
            out,
            "  Excluded:        {}",
            describe::list_or(spec.excluded_resources.as_ref(), "<none>")
        );
        let cluster = match spec.include_cluster_resources {
            None => "auto",
            Some(true) => "included",
            Some(false) => "excluded",
        };
        let _ = writeln!(out, "  Cluster-scoped:  {cluster}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Label selector:  {}",
        table::selector(spec.label_selector.as_ref())
    );
    let _ = writeln!(out);
    let or = spec
        .or_label_selectors
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.iter()
                .map(|l| table::selector(Some(l)))
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .unwrap_or_else(|| "<none>".into());
    let _ = writeln!(out, "Or label selector:  {or}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Storage Location:  {}",
        spec.storage_location.clone().unwrap_or_default()
    );
    let _ = writeln!(out);
    let snapshot = match spec.snapshot_volumes {
        None => "auto",
        Some(true) => "true",
        Some(false) => "false",
    };
    let _ = writeln!(out, "Velero-Native Snapshot PVs:  {snapshot}");
    let _ = writeln!(
        out,
        "Snapshot Move Data:          {}",
        spec.snapshot_move_data.unwrap_or(false)
    );
    let _ = writeln!(
        out,
        "Data Mover:                  {}",
        spec.data_mover
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "velero".into())
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "TTL:  {}", spec.ttl.unwrap_or_default());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CSISnapshotTimeout:    {}",
        spec.csi_snapshot_timeout.unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "ItemOperationTimeout:  {}",
        spec.item_operation_timeout.unwrap_or_default()
    );
    let _ = writeln!(out);
    let hooks = spec
        .hooks
        .as_ref()
        .and_then(|h| h.resources.as_ref())
        .is_some_and(|r| !r.is_empty());
    let _ = writeln!(out, "Hooks:  {}", if hooks { "defined" } else { "<none>" });
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Backup Format Version:  {}",
        status.format_version.clone().unwrap_or_default()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Started:    {}",
        table::time(status.start_timestamp.as_ref())
    );
    let _ = writeln!(
        out,
        "Completed:  {}",
        table::time(status.completion_timestamp.as_ref())
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Expiration:  {}",
        table::time(status.expiration.as_ref())
    );
    let _ = writeln!(out);
    let progress = status.progress.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "Total items to be backed up:  {}",
        progress.total_items.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "Items backed up:              {}",
        progress.items_backed_up.unwrap_or(0)
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Backup Volumes:\n  <none included>");
    let _ = writeln!(out);
    let hook_status = status.hook_status.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "HooksAttempted:  {}",
        hook_status.hooks_attempted.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "HooksFailed:     {}",
        hook_status.hooks_failed.unwrap_or(0)
    );
}

/// Velero's layout for one half of the results file, shortened to `<none>` when it is empty.
fn write_results(title: &str, results: &serde_json::Value, out: &mut String) {
    let empty = ["velero", "cluster", "namespaces"].iter().all(|key| {
        results.get(key).is_none_or(|v| match v {
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.is_empty(),
            _ => true,
        })
    });
    if empty {
        out.push_str(&format!("{title}:  <none>\n"));
        return;
    }
    let mut d = describe::Describer::default();
    d.result(title, results);
    out.push_str(&d.finish());
}

async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let backups = list_backups(global, &args.names, args.selector.as_deref()).await?;
    if args.output == "json" {
        if backups.len() != 1 {
            bail!("JSON output is only available for a single backup");
        }
        return output::print(
            &serde_json::to_value(&backups[0])?,
            Format::Json,
            &mut std::io::stdout(),
        );
    }
    let tls = args.tls.clone();
    let mut first = true;
    for backup in &backups {
        let mut out = String::new();
        describe_one(backup, &mut out);
        let done = backup
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| {
                matches!(
                    p,
                    BackupPhase::Completed | BackupPhase::PartiallyFailed | BackupPhase::Failed
                )
            });
        if args.details && done {
            let client = global.client().await?;
            let namespace = global.namespace();
            let name = backup.name_any();
            let fetch = |kind| {
                let client = client.clone();
                let namespace = namespace.clone();
                let name = name.clone();
                let tls = tls.clone();
                async move {
                    let timeout = Duration::from_secs(60);
                    let data =
                        download::download(&client, &namespace, kind, &name, timeout, &tls).await?;
                    let data = download::maybe_gunzip(data)?;
                    anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&data)?)
                }
            };
            use std::fmt::Write as _;
            match fetch(DownloadTargetKind::BackupResourceList).await {
                Ok(list) => {
                    let _ = writeln!(out, "\nResource List:");
                    for (kind, items) in list.as_object().into_iter().flatten() {
                        let _ = writeln!(out, "  {kind}:");
                        for item in items.as_array().into_iter().flatten() {
                            let _ = writeln!(out, "    - {}", item.as_str().unwrap_or_default());
                        }
                    }
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "\nResource List:  <error getting backup resource list: {e:#}>"
                    );
                }
            }
            match fetch(DownloadTargetKind::BackupResults).await {
                Ok(results) => {
                    out.push('\n');
                    write_results("Errors", &results["errors"], &mut out);
                    out.push('\n');
                    write_results("Warnings", &results["warnings"], &mut out);
                }
                Err(e) => {
                    let _ = writeln!(out, "\n<error getting backup results: {e:#}>");
                }
            }
        }
        if !first {
            println!("\n");
        }
        first = false;
        print!("{out}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    name: String,
    /// How long to wait to receive logs
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: velero_api::Duration,
    #[command(flatten)]
    tls: TlsOptions,
}

async fn logs(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    let backup = api
        .get_opt(&args.name)
        .await?
        .with_context(|| format!("backup {:?} does not exist", args.name))?;
    let phase = backup
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(BackupPhase::New);
    if !matches!(
        phase,
        BackupPhase::Completed
            | BackupPhase::PartiallyFailed
            | BackupPhase::Failed
            | BackupPhase::WaitingForPluginOperations
            | BackupPhase::WaitingForPluginOperationsPartiallyFailed
    ) {
        bail!(
            "logs for backup {:?} are not available until it's finished processing, please wait until the backup has a phase of Completed or Failed and try again",
            args.name
        );
    }
    let kind = DownloadTargetKind::BackupLog;
    download::print_log(
        &client,
        &namespace,
        kind,
        &args.name,
        args.timeout,
        &args.tls,
    )
    .await
}

#[derive(Args, Debug)]
pub struct DownloadArgs {
    name: String,
    /// Path to output file. Defaults to <NAME>-data.tar.gz in the current directory
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Forces the download and will overwrite file if it exists already
    #[arg(long, action = ArgAction::SetTrue)]
    force: bool,
    /// Maximum time to wait to process download request
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: velero_api::Duration,
    #[command(flatten)]
    tls: TlsOptions,
}

async fn download_contents(global: &GlobalArgs, args: DownloadArgs) -> anyhow::Result<()> {
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-data.tar.gz", args.name)));
    if path.exists() && !args.force {
        bail!(
            "file {} already exists, remove it or use --force",
            path.display()
        );
    }
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    api.get_opt(&args.name)
        .await?
        .with_context(|| format!("backup {:?} does not exist", args.name))?;
    let timeout = args.timeout.to_std().unwrap_or(Duration::from_secs(60));
    let kind = DownloadTargetKind::BackupContents;
    let data =
        download::download(&client, &namespace, kind, &args.name, timeout, &args.tls).await?;
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "Backup {} has been successfully downloaded to {}",
        args.name,
        path.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
#[command(
    mut_arg("all", |a| a.help("Delete all backups")),
    mut_arg("selector", |a| a.help("Delete all backups matching this label selector"))
)]
pub struct DeleteArgs {
    #[command(flatten)]
    options: crate::select::DeleteOptions,
}

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    if !args.options.validate_and_confirm("backup")? {
        return Ok(());
    }
    let select = &args.options.select;
    let backups = list_backups(global, &select.names, select.selector.as_deref()).await?;
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<DeleteBackupRequest> = Api::namespaced(client, &namespace);
    for backup in backups {
        let name = backup.name_any();
        let request = DeleteBackupRequest {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                labels: Some(BTreeMap::from([
                    (
                        labels::BACKUP_NAME.to_string(),
                        labels::valid_label_value(&name),
                    ),
                    (
                        labels::BACKUP_UID.to_string(),
                        backup.metadata.uid.clone().unwrap_or_default(),
                    ),
                ])),
                ..Default::default()
            },
            spec: DeleteBackupRequestSpec {
                backup_name: name.clone(),
            },
            status: None,
        };
        api.create(&PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting the deletion of backup {name}"))?;
        println!(
            "Request to delete backup {name:?} submitted successfully.\nThe backup will be fully deleted after all associated data (disk snapshots, backup files, restores) are removed."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_backups_group_newest_first() {
        let mut backups: Vec<Backup> = [
            "daily-20260101000000",
            "adhoc",
            "daily-20260103000000",
            "daily-20260102000000",
            "zeta",
        ]
        .iter()
        .map(|n| Backup::new(n, Default::default()))
        .collect();
        sort_backups(&mut backups);
        let names: Vec<String> = backups.iter().map(|b| b.name_any()).collect();
        assert_eq!(
            names,
            [
                "adhoc",
                "daily-20260103000000",
                "daily-20260102000000",
                "daily-20260101000000",
                "zeta"
            ]
        );
    }
}
