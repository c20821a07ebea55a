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
    DeleteBackupRequestSpec, DownloadTargetKind, HookErrorMode, Schedule, VolumeSnapshotLocation,
};

use crate::client::GlobalArgs;
use crate::describe::{self, Describer};
use crate::download::{self, TlsOptions};
use crate::flags::{label_selectors, non_empty, parse_duration, parse_map};
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::{progress, select, table};

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

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the backup (optional with --from-schedule)
    name: Option<String>,
    #[command(flatten)]
    backup: BackupFlags,
    /// Create a backup from the template of an existing schedule. Cannot be used with any other filters. Backup name is optional if used
    #[arg(long)]
    from_schedule: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long, action = ArgAction::SetTrue)]
    wait: bool,
    /// Output display format. For create commands, display the object but do not send it to the server. Valid formats are 'table', 'json', and 'yaml'
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let from_schedule = args.from_schedule.as_deref().map(str::trim);
    if from_schedule == Some("") {
        bail!("flag must have a non-empty value: --from-schedule");
    }
    let mut backup = match from_schedule {
        Some(schedule_name) => {
            let client = global.client().await?;
            let schedules: Api<Schedule> = Api::namespaced(client, &namespace);
            let schedule = schedules
                .get_opt(schedule_name)
                .await
                .with_context(|| format!("reading schedule {schedule_name:?}"))?
                .with_context(|| {
                    format!(
                        "schedule {schedule_name:?} not found in namespace {namespace}; see `velero schedule get`"
                    )
                })?;
            // Velero names it with the UTC time, as its schedule controller does.
            let name = args
                .name
                .clone()
                .unwrap_or_else(|| schedule.timestamped_name(jiff::Timestamp::now()));
            schedule.backup_named(&name)
        }
        None => {
            let Some(name) = args.name.clone() else {
                bail!("a backup name is required, unless you are creating based on a schedule");
            };
            Backup::new(&name, args.backup.spec()?)
        }
    };
    backup.metadata.namespace = Some(namespace.clone());
    // The flags win over what a schedule gives, as in Velero.
    merge_into(&mut backup.metadata.labels, &args.backup.labels);
    merge_into(&mut backup.metadata.annotations, &args.backup.annotations);
    if let Some(format) = args.output {
        let value = serde_json::to_value(&backup)?;
        return output::print(&value, format, &mut std::io::stdout());
    }

    let client = global.client().await?;
    check_locations(&client, &namespace, &backup.spec).await?;
    if from_schedule.is_some() {
        println!("Creating backup from schedule, all other filters are ignored.");
    }
    let name = backup.name_any();
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
    let mut backups =
        select::in_namespace::<Backup>(global, &args.names, args.selector.as_deref(), "backup")
            .await?;
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

/// Velero's `DescribeBackup`, for what the Backup object itself holds.
fn describe_one(b: &Backup, out: &mut String) {
    let status = b.status.clone().unwrap_or_default();
    let spec = &b.spec;
    let mut d = Describer::default();
    d.metadata(&b.metadata);
    d.line("");
    let phase = status.phase.unwrap_or(BackupPhase::New);
    let note = if matches!(phase, BackupPhase::Failed | BackupPhase::PartiallyFailed) {
        format!(
            " (run `velero backup logs {}` for more information)",
            b.name_any()
        )
    } else {
        String::new()
    };
    d.line(format_args!("Phase:\t{}{note}", phase.as_str()));
    if phase == BackupPhase::Queued {
        d.line(format_args!(
            "Queue position:\t{}",
            status.queue_position.unwrap_or(0)
        ));
    }
    if let Some(reason) = status.failure_reason.as_ref().filter(|r| !r.is_empty()) {
        d.line("");
        d.line(format_args!("Failure reason:\t{reason}"));
    }
    describe_policies_and_uploader(&mut d, spec);
    describe_validation_errors(&mut d, status.validation_errors.as_deref());
    d.line("");
    if status.errors.unwrap_or(0) > 0 || status.warnings.unwrap_or(0) > 0 {
        d.line(format_args!("Errors:\t{}", status.errors.unwrap_or(0)));
        d.line(format_args!("Warnings:\t{}", status.warnings.unwrap_or(0)));
        d.line("");
    }
    describe_backup_spec(&mut d, spec);
    d.line("");
    d.line(format_args!(
        "Backup Format Version:\t{}",
        status.format_version.clone().unwrap_or_default()
    ));
    d.line("");
    d.line(format_args!(
        "Started:\t{}",
        table::time(status.start_timestamp.as_ref())
    ));
    d.line(format_args!(
        "Completed:\t{}",
        table::time(status.completion_timestamp.as_ref())
    ));
    d.line("");
    d.line(format_args!(
        "Expiration:\t{}",
        table::time(status.expiration.as_ref())
    ));
    d.line("");
    let progress = status.progress.clone().unwrap_or_default();
    d.line(format_args!(
        "Total items to be backed up:\t{}",
        progress.total_items.unwrap_or(0)
    ));
    d.line(format_args!(
        "Items backed up:\t{}",
        progress.items_backed_up.unwrap_or(0)
    ));
    d.line("");
    d.line("Backup Volumes:");
    d.line("\t<none included>");
    d.line("");
    let hook_status = status.hook_status.clone().unwrap_or_default();
    d.line(format_args!(
        "HooksAttempted:\t{}",
        hook_status.hooks_attempted.unwrap_or(0)
    ));
    d.line(format_args!(
        "HooksFailed:\t{}",
        hook_status.hooks_failed.unwrap_or(0)
    ));
    out.push_str(&d.finish());
}

/// The resource policy and uploader settings Velero shows under a backup's or schedule's phase.
pub(crate) fn describe_policies_and_uploader(d: &mut Describer, spec: &BackupSpec) {
    if let Some(policy) = &spec.resource_policy {
        d.line("");
        d.line("Resource policies:");
        d.line(format_args!("\tType:\t{}", policy.kind));
        d.line(format_args!("\tName:\t{}", policy.name));
    }
    if let Some(n) = spec
        .uploader_config
        .as_ref()
        .and_then(|u| u.parallel_files_upload)
        .filter(|n| *n > 0)
    {
        d.line("");
        d.line("Uploader config:");
        d.line(format_args!("\tParallel files upload:\t{n}"));
    }
}

/// Velero's list of validation errors: the first beside the heading, the rest under it.
pub(crate) fn describe_validation_errors(d: &mut Describer, errors: Option<&[String]>) {
    let Some(errors) = errors.filter(|e| !e.is_empty()) else {
        return;
    };
    d.line("");
    d.print("Validation errors:");
    for e in errors {
        d.line(format_args!("\t{e}"));
    }
}

/// Velero's `DescribeBackupSpec`: what a backup (or a schedule's template) selects and how.
pub(crate) fn describe_backup_spec(d: &mut Describer, spec: &BackupSpec) {
    let list = describe::list_or;
    d.line("Namespaces:");
    d.included_excluded(
        1,
        spec.included_namespaces.as_ref(),
        spec.excluded_namespaces.as_ref(),
    );

    d.line("");
    d.line("Resources:");
    if velero_filters::uses_old_resource_filters(spec) {
        d.included_excluded(
            1,
            spec.included_resources.as_ref(),
            spec.excluded_resources.as_ref(),
        );
        d.line(format_args!(
            "\tCluster-scoped:\t{}",
            describe::bool_or(
                spec.include_cluster_resources,
                "excluded",
                "included",
                "auto"
            )
        ));
    } else {
        d.line(format_args!(
            "\tIncluded cluster-scoped:\t{}",
            list(spec.included_cluster_scoped_resources.as_ref(), "<none>")
        ));
        d.line(format_args!(
            "\tExcluded cluster-scoped:\t{}",
            list(spec.excluded_cluster_scoped_resources.as_ref(), "<none>")
        ));
        d.line(format_args!(
            "\tIncluded namespace-scoped:\t{}",
            list(spec.included_namespace_scoped_resources.as_ref(), "*")
        ));
        d.line(format_args!(
            "\tExcluded namespace-scoped:\t{}",
            list(spec.excluded_namespace_scoped_resources.as_ref(), "<none>")
        ));
    }

    d.selectors(
        spec.label_selector.as_ref(),
        spec.or_label_selectors.as_deref(),
    );

    d.line("");
    d.line(format_args!(
        "Storage Location:\t{}",
        spec.storage_location.as_deref().unwrap_or_default()
    ));

    d.line("");
    d.line(format_args!(
        "Velero-Native Snapshot PVs:\t{}",
        describe::bool_or(spec.snapshot_volumes, "false", "true", "auto")
    ));
    if let Some(fs) = spec.default_volumes_to_fs_backup {
        d.line(format_args!("File System Backup (Default):\t{fs}"));
    }
    d.line(format_args!(
        "Snapshot Move Data:\t{}",
        describe::bool_or(spec.snapshot_move_data, "false", "true", "auto")
    ));
    d.line(format_args!(
        "Data Mover:\t{}",
        spec.data_mover
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or("velero")
    ));

    d.line("");
    d.line(format_args!("TTL:\t{}", spec.ttl.unwrap_or_default()));

    d.line("");
    d.line(format_args!(
        "CSISnapshotTimeout:\t{}",
        spec.csi_snapshot_timeout.unwrap_or_default()
    ));
    d.line(format_args!(
        "ItemOperationTimeout:\t{}",
        spec.item_operation_timeout.unwrap_or_default()
    ));

    d.line("");
    describe_hooks(d, spec);

    if let Some(orders) = &spec.ordered_resources {
        d.line("");
        d.line("OrderedResources:");
        for (kind, names) in orders {
            d.line(format_args!("\t{kind}: {names}"));
        }
    }
}

fn describe_hooks(d: &mut Describer, spec: &BackupSpec) {
    let resources = spec
        .hooks
        .as_ref()
        .and_then(|h| h.resources.as_deref())
        .unwrap_or_default();
    if resources.is_empty() {
        d.line("Hooks:\t<none>");
        return;
    }
    d.line("Hooks:");
    d.line("\tResources:");
    for hook in resources {
        d.line(format_args!("\t\t{}:", hook.name));
        d.line("\t\t\tNamespaces:");
        d.included_excluded(
            4,
            hook.included_namespaces.as_ref(),
            hook.excluded_namespaces.as_ref(),
        );
        d.line("");
        d.line("\t\t\tResources:");
        d.included_excluded(
            4,
            hook.included_resources.as_ref(),
            hook.excluded_resources.as_ref(),
        );
        d.line("");
        d.line(format_args!(
            "\t\t\tLabel selector:\t{}",
            table::selector(hook.label_selector.as_ref())
        ));
        for (title, hooks) in [
            ("Pre Exec Hook", &hook.pre_hooks),
            ("Post Exec Hook", &hook.post_hooks),
        ] {
            for exec in hooks.iter().flatten().map(|h| &h.exec) {
                d.line("");
                d.line(format_args!("\t\t\t{title}:"));
                d.line(format_args!(
                    "\t\t\t\tContainer:\t{}",
                    exec.container.as_deref().unwrap_or_default()
                ));
                d.line(format_args!("\t\t\t\tCommand:\t{}", exec.command.join(" ")));
                let on_error = match exec.on_error {
                    Some(HookErrorMode::Continue) => "Continue",
                    Some(HookErrorMode::Fail) => "Fail",
                    None => "",
                };
                d.line(format_args!("\t\t\t\tOn Error:\t{on_error}"));
                d.line(format_args!(
                    "\t\t\t\tTimeout:\t{}",
                    exec.timeout.unwrap_or_default()
                ));
            }
        }
    }
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
    let mut d = Describer::default();
    d.result(title, results);
    out.push_str(&d.finish());
}

async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let backups =
        select::in_namespace::<Backup>(global, &args.names, args.selector.as_deref(), "backup")
            .await?;
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
    let backups =
        select::in_namespace::<Backup>(global, &select.names, select.selector.as_deref(), "backup")
            .await?;
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
    use serde_json::json;
    use velero_api::v1::{
        BackupHooks, BackupResourceHook, BackupResourceHookSpec, ExecHook, ScheduleSpec,
        TemplateMetadata,
    };

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

    #[test]
    fn the_spec_describer_shows_hooks_and_orders() {
        let spec = BackupSpec {
            included_resources: Some(vec!["pods".into()]),
            default_volumes_to_fs_backup: Some(true),
            snapshot_move_data: Some(false),
            ordered_resources: Some(BTreeMap::from([(
                "pods".to_string(),
                "shop/a,shop/b".to_string(),
            )])),
            hooks: Some(BackupHooks {
                resources: Some(vec![BackupResourceHookSpec {
                    name: "freeze".into(),
                    included_namespaces: Some(vec!["shop".into()]),
                    pre_hooks: Some(vec![BackupResourceHook {
                        exec: ExecHook {
                            container: Some("db".into()),
                            command: vec!["fsfreeze".into(), "-f".into()],
                            on_error: Some(HookErrorMode::Fail),
                            timeout: velero_api::Duration::parse("30s").ok(),
                        },
                    }]),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        let mut d = Describer::default();
        describe_backup_spec(&mut d, &spec);
        let text = d.finish();
        for want in [
            "Resources:\n  Included:        pods\n  Excluded:        <none>\n  Cluster-scoped:  auto\n",
            "Velero-Native Snapshot PVs:    auto\n\
             File System Backup (Default):  true\n\
             Snapshot Move Data:            false\n\
             Data Mover:                    velero\n",
            "Hooks:\n\
             \x20 Resources:\n\
             \x20   freeze:\n\
             \x20     Namespaces:\n\
             \x20       Included:  shop\n\
             \x20       Excluded:  <none>\n\
             \n\
             \x20     Resources:\n\
             \x20       Included:  *\n\
             \x20       Excluded:  <none>\n\
             \n\
             \x20     Label selector:  <none>\n\
             \n\
             \x20     Pre Exec Hook:\n\
             \x20       Container:  db\n\
             \x20       Command:    fsfreeze -f\n\
             \x20       On Error:   Fail\n\
             \x20       Timeout:    30s\n",
            "\nOrderedResources:\n  pods: shop/a,shop/b\n",
        ] {
            assert!(text.contains(want), "lacks {want:?}:\n{text}");
        }
    }

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
