//! `velero restore create|get|describe|logs|delete`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand};
use k8s_openapi::api::core::v1::TypedLocalObjectReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use velero_api::labels;
use velero_api::v1::{
    Backup, BackupPhase, DownloadTargetKind, PodVolumeRestore, Restore, RestorePhase, RestoreSpec,
    RestoreStatusSpec, UploaderConfigForRestore,
};

use crate::client::GlobalArgs;
use crate::describe::{self, Describer};
use crate::download::{self, TlsOptions};
use crate::flags::{
    label_selectors, non_empty, parse_duration, parse_map, parse_namespace_mappings,
};
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::{progress, select, table};

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Create a restore
    Create(Box<CreateArgs>),
    /// Get restores
    Get(GetArgs),
    /// Get restore logs
    Logs(LogsArgs),
    /// Describe restores
    Describe(DescribeArgs),
    /// Delete restores
    Delete(DeleteArgs),
}

pub async fn run(global: &GlobalArgs, command: RestoreCommand) -> anyhow::Result<()> {
    match command {
        RestoreCommand::Create(args) => create(global, *args).await,
        RestoreCommand::Get(args) => get(global, args).await,
        RestoreCommand::Logs(args) => logs(global, args).await,
        RestoreCommand::Describe(args) => describe(global, args).await,
        RestoreCommand::Delete(args) => delete(global, args).await,
    }
}

const CREATE_EXAMPLES: &str = "Examples:
  # Create a restore named \"restore-1\" from backup \"backup-1\".
  velero restore create restore-1 --from-backup backup-1

  # Create a restore with a default name (\"backup-1-<timestamp>\") from backup \"backup-1\".
  velero restore create --from-backup backup-1

  # Create a restore from the latest successful backup triggered by schedule \"schedule-1\".
  velero restore create --from-schedule schedule-1

  # Create a restore from the latest successful OR partially-failed backup triggered by schedule \"schedule-1\".
  velero restore create --from-schedule schedule-1 --allow-partially-failed

  # Create a restore for only persistentvolumeclaims and persistentvolumes within a backup.
  velero restore create --from-backup backup-2 --include-resources persistentvolumeclaims,persistentvolumes";

#[derive(Args, Debug)]
#[command(after_help = CREATE_EXAMPLES)]
pub struct CreateArgs {
    /// Name of the restore (default: <backup or schedule name>-<timestamp>)
    name: Option<String>,
    /// Backup to restore from
    #[arg(long)]
    from_backup: Option<String>,
    /// Schedule to restore from
    #[arg(long)]
    from_schedule: Option<String>,
    /// Namespaces to include in the restore (use '*' for all namespaces)
    #[arg(long, value_delimiter = ',', default_value = "*")]
    include_namespaces: Vec<String>,
    /// Namespaces to exclude from the restore.
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Namespace mappings from name in the backup to desired restored name in the form src1:dst1,src2:dst2,...
    #[arg(long, value_parser = parse_namespace_mappings, default_value = "")]
    namespace_mappings: BTreeMap<String, String>,
    /// Labels to apply to the restore.
    #[arg(long, value_parser = parse_map, default_value = "")]
    labels: BTreeMap<String, String>,
    /// Annotations to apply to the restore.
    #[arg(long, value_parser = parse_map, default_value = "")]
    annotations: BTreeMap<String, String>,
    /// Resources to include in the restore, formatted as resource.group, such as storageclasses.storage.k8s.io (use '*' for all resources).
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Resources to exclude from the restore, formatted as resource.group, such as storageclasses.storage.k8s.io.
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Restore Policy to be used during the restore workflow, can be - none or update
    #[arg(long)]
    existing_resource_policy: Option<String>,
    /// Resources to include in the restore status, formatted as resource.group, such as storageclasses.storage.k8s.io.
    #[arg(long, value_delimiter = ',')]
    status_include_resources: Vec<String>,
    /// Resources to exclude from the restore status, formatted as resource.group, such as storageclasses.storage.k8s.io.
    #[arg(long, value_delimiter = ',')]
    status_exclude_resources: Vec<String>,
    /// Only restore resources matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Restore resources matching at least one of the label selector from the list. Label selectors should be separated by ' or '. For example, foo=bar or app=nginx
    #[arg(long)]
    or_selector: Option<String>,
    /// How long to wait for async plugin operations before timeout.
    #[arg(long, value_parser = parse_duration)]
    item_operation_timeout: Option<velero_api::Duration>,
    /// Whether to restore volumes from snapshots.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    restore_volumes: Option<bool>,
    /// Whether to preserve nodeports of Services when restoring.
    #[arg(long = "preserve-nodeports", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    preserve_node_ports: Option<bool>,
    /// Include cluster-scoped resources in the restore.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    include_cluster_resources: Option<bool>,
    /// If using --from-schedule, whether to consider PartiallyFailed backups when looking for the most recent one. This flag has no effect if not using --from-schedule.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    allow_partially_failed: Option<bool>,
    /// Wait for the operation to complete.
    #[arg(short = 'w', long, action = ArgAction::SetTrue)]
    wait: bool,
    /// Reference to the resource modifier configmap that restore will use
    #[arg(long)]
    resource_modifier_configmap: Option<String>,
    /// Whether to write sparse files during restoring volumes
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    write_sparse_files: Option<bool>,
    /// The number of restore operations to run in parallel. If set to 0, the default parallelism will be the number of CPUs for the node that node agent pod is running.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    parallel_files_download: i32,
    /// Output display format. For create commands, display the object but do not send it to the server. Valid formats are 'table', 'json', and 'yaml'
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

/// Where a restore's backup comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Backup(String),
    Schedule(String),
}

impl CreateArgs {
    /// The checks Velero makes before looking at the cluster, with its messages.
    fn source(&self) -> anyhow::Result<Source> {
        let source = match (&self.from_backup, &self.from_schedule) {
            (Some(b), None) if !b.is_empty() => Source::Backup(b.clone()),
            (None, Some(s)) if !s.is_empty() => Source::Schedule(s.clone()),
            _ => bail!("either a backup or schedule must be specified, but not both"),
        };
        if let Some(policy) = self.existing_resource_policy.as_deref()
            && !policy.is_empty()
            && velero_api::v1::PolicyType::parse(policy).is_none()
        {
            bail!(
                "existing-resource-policy has invalid value, it accepts only none, update as value"
            );
        }
        if self.parallel_files_download < 0 {
            bail!("parallel-files-download cannot be negative");
        }
        Ok(source)
    }

    /// Velero's default name: the source's name and the local time.
    fn name(&self, source: &Source, now: &jiff::Zoned) -> String {
        match (&self.name, source) {
            (Some(name), _) => name.clone(),
            (None, Source::Backup(n) | Source::Schedule(n)) => {
                format!("{n}-{}", now.strftime("%Y%m%d%H%M%S"))
            }
        }
    }

    /// The spec for `source`, every flag where Velero puts it.
    fn spec(&self, source: &Source) -> anyhow::Result<RestoreSpec> {
        let (label_selector, or_label_selectors) =
            label_selectors(self.selector.as_deref(), self.or_selector.as_deref())?;
        let (backup_name, schedule_name) = match source {
            Source::Backup(b) => (Some(b.clone()), None),
            Source::Schedule(s) => (None, Some(s.clone())),
        };
        Ok(RestoreSpec {
            backup_name,
            schedule_name,
            included_namespaces: non_empty(&self.include_namespaces),
            excluded_namespaces: non_empty(&self.exclude_namespaces),
            included_resources: non_empty(&self.include_resources),
            excluded_resources: non_empty(&self.exclude_resources),
            namespace_mapping: (!self.namespace_mappings.is_empty())
                .then(|| self.namespace_mappings.clone()),
            label_selector,
            or_label_selectors,
            restore_pvs: self.restore_volumes,
            // Velero restores status only for the resources named; excludes alone mean nothing.
            restore_status: (!self.status_include_resources.is_empty()).then(|| {
                RestoreStatusSpec {
                    included_resources: non_empty(&self.status_include_resources),
                    excluded_resources: non_empty(&self.status_exclude_resources),
                }
            }),
            preserve_node_ports: self.preserve_node_ports,
            include_cluster_resources: self.include_cluster_resources,
            hooks: None,
            existing_resource_policy: self
                .existing_resource_policy
                .clone()
                .filter(|p| !p.is_empty()),
            item_operation_timeout: self.item_operation_timeout,
            resource_modifier: self.resource_modifier_configmap.as_ref().map(|name| {
                TypedLocalObjectReference {
                    // The core API group, as Velero sends it.
                    api_group: Some(String::new()),
                    kind: "configmap".into(),
                    name: name.clone(),
                }
            }),
            // Velero always sends the uploader config; 0 means "the node's CPU count" and is
            // left out, as Go's omitempty leaves it out.
            uploader_config: Some(UploaderConfigForRestore {
                write_sparse_files: self.write_sparse_files,
                parallel_files_download: Some(self.parallel_files_download).filter(|n| *n > 0),
            }),
        })
    }

    fn restore(&self, name: &str, namespace: &str, spec: RestoreSpec) -> Restore {
        let mut restore = Restore::new(name, spec);
        restore.metadata.namespace = Some(namespace.to_string());
        restore.metadata.labels = (!self.labels.is_empty()).then(|| self.labels.clone());
        restore.metadata.annotations =
            (!self.annotations.is_empty()).then(|| self.annotations.clone());
        restore
    }
}

/// The newest (by start time) of `backups` whose phase is allowed: the backup `--from-schedule
/// --allow-partially-failed` restores from.
fn most_recent_backup(backups: &[Backup], allowed: &[BackupPhase]) -> Option<String> {
    velero_api::v1::most_recent_backup(backups, allowed).map(|b| b.name_any())
}

/// Velero's checks against the cluster; for a schedule, resolves `--allow-partially-failed` to
/// the backup to use.
async fn resolve_source(
    client: &kube::Client,
    namespace: &str,
    source: Source,
    allow_partially_failed: bool,
) -> anyhow::Result<Source> {
    let backups: Api<Backup> = Api::namespaced(client.clone(), namespace);
    match source {
        Source::Backup(name) => {
            backups
                .get_opt(&name)
                .await
                .with_context(|| format!("looking up backup {name:?}"))?
                .with_context(|| {
                    format!(
                        "backup {name:?} not found in namespace {namespace:?}; see `velero backup get` for the backups you can restore from"
                    )
                })?;
            Ok(Source::Backup(name))
        }
        Source::Schedule(schedule) => {
            let params = ListParams::default().labels(&labels::schedule_selector(&schedule));
            let list = backups
                .list(&params)
                .await
                .with_context(|| format!("listing the backups of schedule {schedule:?}"))?
                .items;
            if list.is_empty() {
                bail!("No backups found for the schedule {schedule}");
            }
            if allow_partially_failed {
                let allowed = [BackupPhase::Completed, BackupPhase::PartiallyFailed];
                // Without such a backup the server picks one itself (and reports if there is none).
                if let Some(name) = most_recent_backup(&list, &allowed) {
                    return Ok(Source::Backup(name));
                }
            }
            Ok(Source::Schedule(schedule))
        }
    }
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let source = args.source()?;
    let name = args.name(&source, &jiff::Zoned::now());
    // Parse the flags before going to the cluster, so a typo fails fast.
    args.spec(&source)?;
    let namespace = global.namespace();
    let client = global.client().await?;
    let source = resolve_source(
        &client,
        &namespace,
        source,
        args.allow_partially_failed == Some(true),
    )
    .await?;
    let restore = args.restore(&name, &namespace, args.spec(&source)?);
    match args.output {
        Some(Format::Table) => {
            return table::print(&COLUMNS, &[row(&restore)], &mut std::io::stdout())
                .context("writing the table");
        }
        Some(format) => {
            return output::print(
                &serde_json::to_value(&restore)?,
                format,
                &mut std::io::stdout(),
            );
        }
        None => {}
    }

    let api: Api<Restore> = Api::namespaced(client, &namespace);
    crate::client::create_new(&api, &restore, "restore").await?;
    println!("Restore request {name:?} submitted successfully.");
    if args.wait {
        println!(
            "Waiting for restore to complete. You may safely press ctrl-c to stop waiting - your restore will continue in the background."
        );
        let phase = wait_for_restore(&api, &name).await?;
        println!(
            "\nRestore completed with status: {}. You may check for more information using the commands `velero restore describe {name}` and `velero restore logs {name}`.",
            phase_name(phase)
        );
        return Ok(());
    }
    println!(
        "Run `velero restore describe {name}` or `velero restore logs {name}` for more details."
    );
    Ok(())
}

/// The phase as Velero spells it (the API's own strings).
fn phase_name(phase: RestorePhase) -> String {
    wire_name(&phase)
}

fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn progress_line(restore: &Restore) -> (String, Option<RestorePhase>) {
    let status = restore.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(RestorePhase::New);
    let progress = status.progress.unwrap_or_default();
    let line = format!(
        "{}: {}/{} items restored",
        phase_name(phase),
        progress.items_restored.unwrap_or(0),
        progress.total_items.unwrap_or(0)
    );
    (line, phase.is_terminal().then_some(phase))
}

/// Polls the restore until it is done, showing items restored/total as they change.
async fn wait_for_restore(api: &Api<Restore>, name: &str) -> anyhow::Result<RestorePhase> {
    progress::until_done(|| async {
        let restore = api
            .get_opt(name)
            .await
            .context("reading the restore")?
            .with_context(|| format!("restore {name:?} was deleted while waiting for it"))?;
        Ok(progress_line(&restore))
    })
    .await
}

const COLUMNS: [&str; 9] = [
    "Name",
    "Backup",
    "Status",
    "Started",
    "Completed",
    "Errors",
    "Warnings",
    "Created",
    "Selector",
];

/// The phase, `New` when unset, marked while the restore is being deleted.
fn status_text(restore: &Restore) -> String {
    let phase = restore
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(RestorePhase::New);
    let mut text = phase_name(phase);
    if restore.metadata.deletion_timestamp.is_some() {
        text.push_str(" (Deleting)");
    }
    text
}

fn row(restore: &Restore) -> Vec<String> {
    let status = restore.status.clone().unwrap_or_default();
    vec![
        restore.name_any(),
        restore.spec.backup_name.clone().unwrap_or_default(),
        status_text(restore),
        table::time(status.start_timestamp.as_ref()),
        table::time(status.completion_timestamp.as_ref()),
        status.errors.unwrap_or(0).to_string(),
        status.warnings.unwrap_or(0).to_string(),
        table::time(restore.metadata.creation_timestamp.as_ref()),
        table::selector(restore.spec.label_selector.as_ref()),
    ]
}

async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let restores =
        select::in_namespace::<Restore>(global, &args.names, args.selector.as_deref(), "restore")
            .await?;
    if args.output != Format::Table {
        return output::print_list(
            "RestoreList",
            &restores,
            args.output,
            &mut std::io::stdout(),
        );
    }
    let rows: Vec<Vec<String>> = restores.iter().map(row).collect();
    table::print(&COLUMNS, &rows, &mut std::io::stdout())?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    names: Vec<String>,
    /// Only show items matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Display additional detail in the command output.
    #[arg(long, action = ArgAction::SetTrue)]
    details: bool,
    #[command(flatten)]
    tls: TlsOptions,
}

/// One of a restore's files, as describe got it.
#[derive(Debug, Clone)]
enum Fetched {
    Got(serde_json::Value),
    /// The server never wrote it.
    Missing,
    Failed(String),
}

impl Fetched {
    /// The value, or what Velero shows in its place (its downloader calls a missing file
    /// "file not found").
    fn value(&self) -> Result<&serde_json::Value, String> {
        match self {
            Fetched::Got(v) => Ok(v),
            Fetched::Missing => Err("file not found".into()),
            Fetched::Failed(e) => Err(e.clone()),
        }
    }
}

/// What `describe` shows beyond the Restore object itself.
#[derive(Debug, Default)]
struct Extras {
    results: Option<Fetched>,
    volume_info: Option<Fetched>,
    item_operations: Option<Fetched>,
    resource_list: Option<Fetched>,
    pod_volume_restores: Vec<PodVolumeRestore>,
}

/// Velero's wait for a describe download.
const DESCRIBE_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

async fn fetch(
    client: &kube::Client,
    namespace: &str,
    kind: DownloadTargetKind,
    name: &str,
    tls: &TlsOptions,
) -> Fetched {
    let got = async {
        let data = download::download(
            client,
            namespace,
            kind,
            name,
            DESCRIBE_DOWNLOAD_TIMEOUT,
            tls,
        )
        .await?;
        let data = download::maybe_gunzip(data)?;
        anyhow::Ok(serde_json::from_slice::<serde_json::Value>(&data).context("decoding")?)
    }
    .await;
    match got {
        Ok(value) => Fetched::Got(value),
        Err(e) if download::is_not_found(&e) => Fetched::Missing,
        Err(e) => Fetched::Failed(format!("{e:#}")),
    }
}

/// Has run far enough to have written its files.
fn has_run(phase: Option<RestorePhase>) -> bool {
    !matches!(
        phase,
        None | Some(RestorePhase::New | RestorePhase::FailedValidation | RestorePhase::InProgress)
    )
}

async fn extras(
    client: &kube::Client,
    namespace: &str,
    restore: &Restore,
    details: bool,
    tls: &TlsOptions,
) -> Extras {
    let name = restore.name_any();
    let status = restore.status.clone().unwrap_or_default();
    let mut extras = Extras::default();
    let pvrs: Api<PodVolumeRestore> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!(
        "{}={}",
        labels::RESTORE_NAME,
        labels::valid_label_value(&name)
    ));
    match pvrs.list(&params).await {
        Ok(list) => extras.pod_volume_restores = list.items,
        Err(e) => eprintln!("error getting PodVolumeRestores for restore {name}: {e}"),
    }
    if status.warnings.unwrap_or(0) > 0 || status.errors.unwrap_or(0) > 0 {
        let kind = DownloadTargetKind::RestoreResults;
        extras.results = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    // Velero asks for the volume info of every restore; one that has not run has none, and
    // asking would only wait out the timeout when no server is running.
    if has_run(status.phase) {
        let kind = DownloadTargetKind::RestoreVolumeInfo;
        extras.volume_info = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    if details && status.restore_item_operations_attempted.unwrap_or(0) > 0 {
        let kind = DownloadTargetKind::RestoreItemOperations;
        extras.item_operations = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    if details {
        let kind = DownloadTargetKind::RestoreResourceList;
        extras.resource_list = Some(fetch(client, namespace, kind, &name, tls).await);
    }
    extras
}

async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let restores =
        select::in_namespace::<Restore>(global, &args.names, args.selector.as_deref(), "restore")
            .await?;
    let client = global.client().await?;
    let namespace = global.namespace();
    let mut first = true;
    for restore in &restores {
        let extras = extras(&client, &namespace, restore, args.details, &args.tls).await;
        let text = describe_restore(restore, &extras, args.details);
        if first {
            first = false;
            print!("{text}");
        } else {
            print!("\n\n{text}");
        }
    }
    Ok(())
}

/// Velero's `DescribeRestore` layout.
fn describe_restore(restore: &Restore, extras: &Extras, details: bool) -> String {
    let name = restore.name_any();
    let status = restore.status.clone().unwrap_or_default();
    let spec = &restore.spec;
    let mut d = Describer::default();
    d.metadata(&restore.metadata);

    d.line("");
    let phase = status.phase.unwrap_or(RestorePhase::New);
    let note = if matches!(phase, RestorePhase::Failed | RestorePhase::PartiallyFailed) {
        format!(" (run 'velero restore logs {name}' for more information)")
    } else {
        String::new()
    };
    d.line(format_args!("Phase:\t{}{note}", status_text(restore)));
    if let Some(progress) = &status.progress {
        let total = progress.total_items.unwrap_or(0);
        let restored = progress.items_restored.unwrap_or(0);
        if status.phase == Some(RestorePhase::InProgress) {
            d.line(format_args!(
                "Estimated total items to be restored:\t{total}"
            ));
            d.line(format_args!("Items restored so far:\t{restored}"));
        } else {
            d.line(format_args!("Total items to be restored:\t{total}"));
            d.line(format_args!("Items restored:\t{restored}"));
        }
    }

    d.line("");
    let when = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| match t {
        Some(t) => table::time(Some(t)),
        // Only a restore that failed validation never starts.
        None => "<n/a>".to_string(),
    };
    d.line(format_args!(
        "Started:\t{}",
        when(status.start_timestamp.as_ref())
    ));
    d.line(format_args!(
        "Completed:\t{}",
        when(status.completion_timestamp.as_ref())
    ));
    if let Some(errors) = status.validation_errors.as_ref().filter(|e| !e.is_empty()) {
        d.line("");
        d.print("Validation errors:");
        for e in errors {
            d.line(format_args!("\t{e}"));
        }
    }
    describe_results(&mut d, &status, extras.results.as_ref());

    d.line("");
    d.line(format_args!(
        "Backup:\t{}",
        spec.backup_name.as_deref().unwrap_or_default()
    ));

    d.line("");
    d.line("Namespaces:");
    let included = match spec.included_namespaces.as_deref() {
        None | Some([]) => "all namespaces found in the backup".to_string(),
        Some([only]) if only == "*" => "all namespaces found in the backup".to_string(),
        Some(list) => list.join(", "),
    };
    d.line(format_args!("\tIncluded:\t{included}"));
    d.line(format_args!(
        "\tExcluded:\t{}",
        describe::list_or(spec.excluded_namespaces.as_ref(), "<none>")
    ));

    d.line("");
    d.line("Resources:");
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

    d.line("");
    d.map("Namespace mappings", spec.namespace_mapping.as_ref());

    d.selectors(
        spec.label_selector.as_ref(),
        spec.or_label_selectors.as_deref(),
    );

    d.line("");
    d.line(format_args!(
        "Restore PVs:\t{}",
        describe::bool_or(spec.restore_pvs, "false", "true", "auto")
    ));

    if !extras.pod_volume_restores.is_empty() {
        d.line("");
        describe_pod_volume_restores(&mut d, &extras.pod_volume_restores, details);
    }

    match &extras.volume_info {
        Some(Fetched::Got(info)) => match info.as_array() {
            Some(entries) => describe_csi_restores(&mut d, entries, details),
            None => d.line("\t<error reading restore volume info: not a JSON array>"),
        },
        Some(Fetched::Failed(e)) => {
            d.line(format_args!("\t<error getting restore volume info: {e}>"))
        }
        // Restores by servers that do not write volume info have nothing to show.
        Some(Fetched::Missing) | None => {}
    }

    d.line("");
    d.line(format_args!(
        "Existing Resource Policy: \t{}",
        spec.existing_resource_policy
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("<none>")
    ));
    d.line(format_args!(
        "ItemOperationTimeout:\t{}",
        spec.item_operation_timeout.unwrap_or_default()
    ));

    d.line("");
    d.line(format_args!(
        "Preserve Service NodePorts:\t{}",
        describe::bool_or(spec.preserve_node_ports, "false", "true", "auto")
    ));

    if let Some(modifier) = &spec.resource_modifier {
        d.line("");
        d.line("Resource modifier:");
        d.line(format_args!("\tType:\t{}", modifier.kind));
        d.line(format_args!("\tName:\t{}", modifier.name));
    }

    if let Some(uploader) = &spec.uploader_config {
        d.line("");
        d.line("Uploader config:");
        if uploader.write_sparse_files == Some(true) {
            d.line("\tWrite Sparse Files:\ttrue");
        }
        if let Some(n) = uploader.parallel_files_download.filter(|n| *n > 0) {
            d.line(format_args!("\tParallel Restore:\t{n}"));
        }
    }

    d.line("");
    describe_item_operations(&mut d, &status, extras.item_operations.as_ref(), details);

    if let Some(hooks) = &status.hook_status {
        d.line("");
        d.line(format_args!(
            "HooksAttempted: \t{}",
            hooks.hooks_attempted.unwrap_or(0)
        ));
        d.line(format_args!(
            "HooksFailed: \t{}",
            hooks.hooks_failed.unwrap_or(0)
        ));
    }

    if details {
        d.line("");
        describe_resource_list(&mut d, extras.resource_list.as_ref());
    }
    d.finish()
}

fn describe_results(
    d: &mut Describer,
    status: &velero_api::v1::RestoreStatus,
    results: Option<&Fetched>,
) {
    let warnings = status.warnings.unwrap_or(0);
    let errors = status.errors.unwrap_or(0);
    if warnings == 0 && errors == 0 {
        return;
    }
    let results = match results.map(Fetched::value) {
        Some(Ok(results)) => results,
        Some(Err(e)) => {
            d.print(format_args!(
                "Warnings:\t<error getting warnings: {e}>\n\nErrors:\t<error getting errors: {e}>\n"
            ));
            return;
        }
        None => return,
    };
    if warnings > 0 {
        d.line("");
        d.result("Warnings", &results["warnings"]);
    }
    if errors > 0 {
        d.line("");
        d.result("Errors", &results["errors"]);
    }
}

/// Velero's grouping of pod volume restores: by phase, in this order, `New` for unset.
const PVR_GROUPS: [&str; 7] = [
    "Completed",
    "Canceled",
    "Failed",
    "In Progress",
    "Prepared",
    "Accepted",
    "New",
];

fn pvr_group(pvr: &PodVolumeRestore) -> Option<&'static str> {
    use velero_api::v1::DataPathPhase::*;
    match pvr.status.as_ref().and_then(|s| s.phase) {
        Some(Completed) => Some("Completed"),
        Some(Canceled) => Some("Canceled"),
        Some(Failed) => Some("Failed"),
        Some(InProgress) => Some("In Progress"),
        Some(Prepared) => Some("Prepared"),
        Some(Accepted) => Some("Accepted"),
        Some(New) | None => Some("New"),
        // Velero has no group for Canceling, so it is not listed.
        Some(Canceling) => None,
    }
}

fn describe_pod_volume_restores(d: &mut Describer, pvrs: &[PodVolumeRestore], details: bool) {
    // One uploader serves all of a restore's volumes.
    let uploader = pvrs
        .first()
        .map(|p| wire_name(&p.spec.uploader_type))
        .unwrap_or_default();
    if details {
        d.line(format_args!("{uploader} Restores:"));
    } else {
        d.line(format_args!(
            "{uploader} Restores (specify --details for more information):"
        ));
    }
    for group in PVR_GROUPS {
        let members: Vec<&PodVolumeRestore> = pvrs
            .iter()
            .filter(|p| pvr_group(p) == Some(group))
            .collect();
        if members.is_empty() {
            continue;
        }
        if !details {
            d.line(format_args!("\t{group}:\t{}", members.len()));
            continue;
        }
        let mut by_pod: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pvr in members {
            let pod = format!(
                "{}/{}",
                pvr.spec.pod.namespace.as_deref().unwrap_or_default(),
                pvr.spec.pod.name.as_deref().unwrap_or_default()
            );
            let progress = pvr
                .status
                .as_ref()
                .and_then(|s| s.progress.clone())
                .unwrap_or_default();
            let total = progress.total_bytes.unwrap_or(0);
            let volume = match group {
                "In Progress" if total != 0 => format!(
                    "{} ({:.2}%)",
                    pvr.spec.volume,
                    progress.bytes_done.unwrap_or(0) as f64 / total as f64 * 100.0
                ),
                "Completed" if total > 0 => format!("{} (size: {total})", pvr.spec.volume),
                _ => pvr.spec.volume.clone(),
            };
            by_pod.entry(pod).or_default().push(volume);
        }
        d.line(format_args!("\t{group}:"));
        for (pod, mut volumes) in by_pod {
            volumes.sort();
            d.line(format_args!("\t\t{pod}: {}", volumes.join(", ")));
        }
    }
}

fn describe_csi_restores(d: &mut Describer, entries: &[serde_json::Value], details: bool) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let csi = entries
        .iter()
        .filter(|e| e["restoreMethod"] == "CSISnapshot");
    let (data_moved, snapshots): (Vec<_>, Vec<_>) =
        csi.partition(|e| e["snapshotDataMoved"].as_bool() == Some(true));
    d.line("");
    if snapshots.is_empty() && data_moved.is_empty() {
        d.line("CSI Snapshot Restores: <none included>");
        return;
    }
    d.line("CSI Snapshot Restores:");
    for e in snapshots {
        d.line(format_args!(
            "\t{}/{}:",
            text(&e["pvcNamespace"]),
            text(&e["pvcName"])
        ));
        if !details {
            d.line("\t\tSnapshot: specify --details for more information");
            continue;
        }
        let info = &e["csiSnapshotInfo"];
        d.line("\t\tSnapshot:");
        d.line(format_args!(
            "\t\t\tSnapshot Content Name: {}",
            text(&info["vscName"])
        ));
        d.line(format_args!(
            "\t\t\tStorage Snapshot ID: {}",
            text(&info["snapshotHandle"])
        ));
        d.line(format_args!("\t\t\tCSI Driver: {}", text(&info["driver"])));
    }
    for e in data_moved {
        d.line(format_args!(
            "\t{}/{}:",
            text(&e["pvcNamespace"]),
            text(&e["pvcName"])
        ));
        if !details {
            d.line("\t\tData Movement: specify --details for more information");
            continue;
        }
        let info = &e["snapshotDataMovementInfo"];
        d.line("\t\tData Movement:");
        d.line(format_args!(
            "\t\t\tOperation ID: {}",
            text(&info["operationID"])
        ));
        d.line(format_args!(
            "\t\t\tData Mover: {}",
            text(&info["dataMover"])
        ));
        d.line(format_args!(
            "\t\t\tUploader Type: {}",
            text(&info["uploaderType"])
        ));
    }
}

fn describe_item_operations(
    d: &mut Describer,
    status: &velero_api::v1::RestoreStatus,
    operations: Option<&Fetched>,
    details: bool,
) {
    let attempted = status.restore_item_operations_attempted.unwrap_or(0);
    if attempted <= 0 {
        return;
    }
    if !details {
        d.line(format_args!(
            "Restore Item Operations:\t{} of {attempted} completed successfully, {} failed (specify --details for more information)",
            status.restore_item_operations_completed.unwrap_or(0),
            status.restore_item_operations_failed.unwrap_or(0)
        ));
        return;
    }
    let operations = match operations.map(Fetched::value) {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            d.line(format_args!(
                "Restore Item Operations:\t<error getting operation info: {e}>"
            ));
            return;
        }
        None => return,
    };
    let Some(operations) = operations.as_array() else {
        d.line("Restore Item Operations:\t<error reading operation info: not a JSON array>");
        return;
    };
    d.line("Restore Item Operations:");
    for op in operations {
        describe_item_operation(d, op);
    }
}

fn describe_item_operation(d: &mut Describer, op: &serde_json::Value) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let spec = &op["spec"];
    let status = &op["status"];
    let id = &spec["resourceIdentifier"];
    // Go prints a GroupResource as `resource.group`, or just the resource for the core group.
    let resource = match (s(&id["Resource"]), s(&id["Group"])) {
        (r, g) if g.is_empty() => r,
        (r, g) => format!("{r}.{g}"),
    };
    d.line(format_args!(
        "\tOperation for {resource} {}/{}:",
        s(&id["Namespace"]),
        s(&id["Name"])
    ));
    d.line(format_args!(
        "\t\tRestore Item Action Plugin:\t{}",
        s(&spec["restoreItemAction"])
    ));
    d.line(format_args!(
        "\t\tOperation ID:\t{}",
        s(&spec["operationID"])
    ));
    d.line(format_args!("\t\tPhase:\t{}", s(&status["phase"])));
    if let Some(e) = status["error"].as_str().filter(|e| !e.is_empty()) {
        d.line(format_args!("\t\tOperation Error:\t{e}"));
    }
    let completed = status["nCompleted"].as_i64().unwrap_or(0);
    let total = status["nTotal"].as_i64().unwrap_or(0);
    if total > 0 || completed > 0 {
        d.line(format_args!(
            "\t\tProgress:\t{completed} of {total} complete ({})",
            s(&status["operationUnits"])
        ));
    }
    if let Some(text) = status["description"].as_str().filter(|t| !t.is_empty()) {
        d.line(format_args!("\t\tProgress description:\t{text}"));
    }
    for (key, label) in [
        ("created", "Created"),
        ("started", "Started"),
        ("updated", "Updated"),
    ] {
        let time = serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>(
            status[key].clone(),
        );
        if let Ok(time) = time {
            d.line(format_args!("\t\t{label}:\t{}", table::time(Some(&time))));
        }
    }
}

fn describe_resource_list(d: &mut Describer, list: Option<&Fetched>) {
    let list = match list {
        Some(Fetched::Got(v)) => v,
        Some(Fetched::Missing) => {
            d.line("Resource List:\t<restore resource list not found>");
            return;
        }
        Some(Fetched::Failed(e)) => {
            d.line(format_args!(
                "Resource List:\t<error getting restore resource list: {e}>"
            ));
            return;
        }
        None => return,
    };
    let Some(kinds) = list.as_object() else {
        d.line("Resource List:\t<error reading restore resource list: not a JSON object>");
        return;
    };
    d.line("Resource List:");
    // serde_json's map is ordered, so kinds come out sorted as Velero sorts them.
    for (kind, items) in kinds {
        let items: Vec<String> = items
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect();
        d.line(format_args!("\t{kind}:\n\t\t- {}", items.join("\n\t\t- ")));
    }
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    name: String,
    /// How long to wait to receive logs.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: velero_api::Duration,
    #[command(flatten)]
    tls: TlsOptions,
}

/// Phases in which a restore's log has been uploaded.
fn logs_available(phase: Option<RestorePhase>) -> bool {
    matches!(
        phase,
        Some(
            RestorePhase::Completed
                | RestorePhase::Failed
                | RestorePhase::PartiallyFailed
                | RestorePhase::WaitingForPluginOperations
                | RestorePhase::WaitingForPluginOperationsPartiallyFailed
        )
    )
}

async fn logs(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<Restore> = Api::namespaced(client.clone(), &namespace);
    let restore = api
        .get_opt(&args.name)
        .await
        .with_context(|| format!("Error checking for restore {:?}", args.name))?
        .with_context(|| format!("Restore {:?} does not exist.", args.name))?;
    if !logs_available(restore.status.as_ref().and_then(|s| s.phase)) {
        bail!(
            "Logs for restore {:?} are not available until it's finished processing. Please wait until the restore has a phase of Completed or Failed and try again.",
            args.name
        );
    }
    let kind = DownloadTargetKind::RestoreLog;
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
#[command(
    mut_arg("all", |a| a.help("Delete all restores")),
    mut_arg("selector", |a| a.help("Delete all restores matching this label selector"))
)]
pub struct DeleteArgs {
    #[command(flatten)]
    options: crate::select::DeleteOptions,
}

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    if !args.options.validate_and_confirm("restore")? {
        return Ok(());
    }
    let select = &args.options.select;
    let restores = select::in_namespace::<Restore>(
        global,
        &select.names,
        select.selector.as_deref(),
        "restore",
    )
    .await?;
    if restores.is_empty() {
        println!("No restores found");
        return Ok(());
    }
    let client = global.client().await?;
    let api: Api<Restore> = Api::namespaced(client, &global.namespace());
    let mut failed = Vec::new();
    for restore in restores {
        let name = restore.name_any();
        // The server's finalizer removes the restore's files before the object goes away.
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => println!(
                "Request to delete restore {name:?} submitted successfully.\nThe restore will be fully deleted after all associated data (restore files in object storage) are removed."
            ),
            Err(e) => failed.push(format!("deleting restore {name:?}: {e}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;
    use velero_api::v1::{RestoreProgress, RestoreStatus};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: RestoreCommand,
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        let argv = ["velero", "create"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("flags parse").command {
            RestoreCommand::Create(args) => *args,
            other => panic!("parsed {other:?}"),
        }
    }

    fn parse_error(args: &[&str]) -> String {
        let argv = ["velero", "create"].iter().chain(args);
        Cli::try_parse_from(argv)
            .expect_err("flags are refused")
            .to_string()
    }

    fn object(args: &[&str]) -> serde_json::Value {
        let args = create_args(args);
        let source = args.source().expect("valid flags");
        let spec = args.spec(&source).expect("valid flags");
        serde_json::to_value(args.restore("r1", "velero", spec)).expect("serializes")
    }

    fn at(t: &str) -> Time {
        Time(t.parse().expect("timestamp"))
    }

    #[test]
    fn every_create_flag_lands_where_velero_puts_it() {
        let restore = object(&[
            "--from-backup",
            "nightly",
            "--include-namespaces",
            "shop,db",
            "--exclude-namespaces",
            "kube-system",
            "--namespace-mappings",
            "shop:shop-copy,db:db-copy",
            "--include-resources",
            "deployments.apps,configmaps",
            "--exclude-resources",
            "secrets",
            "--include-cluster-resources=false",
            "--selector",
            "app=web",
            "--restore-volumes=false",
            "--preserve-nodeports",
            "--existing-resource-policy",
            "update",
            "--status-include-resources",
            "deployments.apps",
            "--status-exclude-resources",
            "pods",
            "--resource-modifier-configmap",
            "mods",
            "--item-operation-timeout",
            "2h",
            "--write-sparse-files",
            "--parallel-files-download",
            "8",
            "--labels",
            "team=a,env=prod",
            "--annotations",
            "note=x",
        ]);
        assert_eq!(
            restore,
            json!({
                "apiVersion": "velero.io/v1",
                "kind": "Restore",
                "metadata": {
                    "name": "r1",
                    "namespace": "velero",
                    "labels": {"env": "prod", "team": "a"},
                    "annotations": {"note": "x"},
                },
                "spec": {
                    "backupName": "nightly",
                    "includedNamespaces": ["shop", "db"],
                    "excludedNamespaces": ["kube-system"],
                    "includedResources": ["deployments.apps", "configmaps"],
                    "excludedResources": ["secrets"],
                    "namespaceMapping": {"db": "db-copy", "shop": "shop-copy"},
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "restorePVs": false,
                    "restoreStatus": {
                        "includedResources": ["deployments.apps"],
                        "excludedResources": ["pods"],
                    },
                    "preserveNodePorts": true,
                    "includeClusterResources": false,
                    "existingResourcePolicy": "update",
                    "itemOperationTimeout": "2h0m0s",
                    "resourceModifier": {"apiGroup": "", "kind": "configmap", "name": "mods"},
                    "uploaderConfig": {"writeSparseFiles": true, "parallelFilesDownload": 8},
                },
            })
        );
    }

    #[test]
    fn defaults_are_velero_defaults() {
        let restore = object(&["--from-backup", "nightly"]);
        assert_eq!(
            restore["spec"],
            json!({
                "backupName": "nightly",
                "includedNamespaces": ["*"],
                "uploaderConfig": {},
            })
        );
        assert!(restore["metadata"].get("labels").is_none());
    }

    #[test]
    fn the_remaining_flags() {
        let restore = object(&[
            "--from-schedule",
            "daily",
            "--or-selector",
            "app=web or tier=db",
            "--include-cluster-resources",
            "--restore-volumes",
            "--preserve-nodeports=false",
        ]);
        let spec = &restore["spec"];
        assert_eq!(spec["scheduleName"], "daily");
        assert!(spec.get("backupName").is_none());
        assert_eq!(
            spec["orLabelSelectors"],
            json!([{"matchLabels": {"app": "web"}}, {"matchLabels": {"tier": "db"}}])
        );
        assert_eq!(spec["includeClusterResources"], true);
        assert_eq!(spec["restorePVs"], true);
        assert_eq!(spec["preserveNodePorts"], false);
        // Status excludes without includes restore no status, as in Velero.
        let restore = object(&["--from-backup", "b", "--status-exclude-resources", "pods"]);
        assert!(restore["spec"].get("restoreStatus").is_none());
        // 0 is "the node's CPU count", which Velero leaves out of the object.
        let restore = object(&["--from-backup", "b", "--parallel-files-download", "0"]);
        assert_eq!(restore["spec"]["uploaderConfig"], json!({}));
        let args = create_args(&["--from-schedule", "daily", "--allow-partially-failed"]);
        assert_eq!(args.allow_partially_failed, Some(true));
        let args = create_args(&["--from-backup", "b", "-w", "-o", "yaml"]);
        assert!(args.wait);
        assert_eq!(args.output, Some(Format::Yaml));
    }

    #[test]
    fn validation_messages_are_velero_s() {
        let err = |args: &[&str]| {
            let args = create_args(args);
            match args.source() {
                Err(e) => e.to_string(),
                Ok(source) => format!("{:#}", args.spec(&source).expect_err("refused")),
            }
        };
        let either = "either a backup or schedule must be specified, but not both";
        assert_eq!(err(&[]), either);
        assert_eq!(err(&["--from-backup", "b", "--from-schedule", "s"]), either);
        assert_eq!(
            err(&[
                "--from-backup",
                "b",
                "--existing-resource-policy",
                "replace"
            ]),
            "existing-resource-policy has invalid value, it accepts only none, update as value"
        );
        assert_eq!(
            err(&["--from-backup", "b", "--parallel-files-download", "-1"]),
            "parallel-files-download cannot be negative"
        );
        assert_eq!(
            err(&["--from-backup", "b", "-l", "a=b", "--or-selector", "c=d"]),
            "either a 'selector' or an 'or-selector' can be specified, but not both"
        );
        assert!(err(&["--from-backup", "b", "-l", "app in ((x"]).contains("invalid --selector"));
        let bad_mapping = parse_error(&["--from-backup", "b", "--namespace-mappings", "shop"]);
        assert!(
            bad_mapping.contains("\"shop\" is not a src:dst pair (format: src1:dst1,src2:dst2)"),
            "{bad_mapping}"
        );
        assert!(
            parse_error(&["--from-backup", "b", "--item-operation-timeout", "soon"])
                .contains("--item-operation-timeout")
        );
        let args = create_args(&["--from-backup", "b", "--existing-resource-policy", "none"]);
        assert_eq!(
            args.source().expect("none is valid"),
            Source::Backup("b".into())
        );
    }

    #[test]
    fn default_names_use_the_source_and_local_time() {
        let now: jiff::Zoned = "2026-03-04T05:06:07+01:00[Europe/Paris]"
            .parse()
            .expect("time");
        let args = create_args(&["--from-backup", "nightly"]);
        let source = args.source().expect("valid");
        assert_eq!(args.name(&source, &now), "nightly-20260304050607");
        let args = create_args(&["--from-schedule", "daily"]);
        let source = args.source().expect("valid");
        assert_eq!(args.name(&source, &now), "daily-20260304050607");
        let args = create_args(&["mine", "--from-schedule", "daily"]);
        assert_eq!(args.name(&source, &now), "mine");
    }

    #[test]
    fn allow_partially_failed_picks_the_newest_usable_backup() {
        let backup = |name: &str, phase: BackupPhase, started: Option<&str>| {
            let mut b = Backup::new(name, Default::default());
            b.status = Some(velero_api::v1::BackupStatus {
                phase: Some(phase),
                start_timestamp: started.map(at),
                ..Default::default()
            });
            b
        };
        let backups = [
            backup("old", BackupPhase::Completed, Some("2026-01-01T00:00:00Z")),
            backup(
                "partial",
                BackupPhase::PartiallyFailed,
                Some("2026-01-02T00:00:00Z"),
            ),
            backup("failed", BackupPhase::Failed, Some("2026-01-03T00:00:00Z")),
            backup(
                "running",
                BackupPhase::InProgress,
                Some("2026-01-04T00:00:00Z"),
            ),
            backup("unstarted", BackupPhase::Completed, None),
        ];
        let usable = [BackupPhase::Completed, BackupPhase::PartiallyFailed];
        assert_eq!(
            most_recent_backup(&backups, &usable).as_deref(),
            Some("partial")
        );
        assert_eq!(
            most_recent_backup(&backups, &[BackupPhase::Completed]).as_deref(),
            Some("old")
        );
        assert_eq!(most_recent_backup(&backups[2..4], &usable), None);
    }

    fn fixture() -> Restore {
        let mut r = Restore::new(
            "shop-restore",
            RestoreSpec {
                backup_name: Some("shop-1".into()),
                included_namespaces: Some(vec!["*".into()]),
                namespace_mapping: Some(BTreeMap::from([("shop".into(), "shop-copy".into())])),
                label_selector: velero_filters::selector::parse_label_selector("app=web").ok(),
                existing_resource_policy: Some("update".into()),
                item_operation_timeout: velero_api::Duration::parse("4h").ok(),
                uploader_config: Some(UploaderConfigForRestore {
                    write_sparse_files: Some(true),
                    parallel_files_download: Some(4),
                }),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("velero".into());
        r.metadata.creation_timestamp = Some(at("2026-05-01T10:00:00Z"));
        r.status = Some(RestoreStatus {
            phase: Some(RestorePhase::PartiallyFailed),
            warnings: Some(1),
            errors: Some(2),
            start_timestamp: Some(at("2026-05-01T10:00:01Z")),
            completion_timestamp: Some(at("2026-05-01T10:00:09Z")),
            progress: Some(RestoreProgress {
                total_items: Some(12),
                items_restored: Some(10),
            }),
            ..Default::default()
        });
        r
    }

    #[test]
    fn get_prints_velero_s_columns() {
        let mut deleting = Restore::new(
            "old",
            RestoreSpec {
                backup_name: Some("b".into()),
                ..Default::default()
            },
        );
        deleting.metadata.deletion_timestamp = Some(at("2026-05-02T00:00:00Z"));
        let mut out = Vec::new();
        table::print(&COLUMNS, &[row(&fixture()), row(&deleting)], &mut out).expect("prints");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "NAME           BACKUP   STATUS            STARTED                         COMPLETED                       ERRORS   WARNINGS   CREATED                         SELECTOR\n\
             shop-restore   shop-1   PartiallyFailed   2026-05-01 10:00:01 +0000 UTC   2026-05-01 10:00:09 +0000 UTC   2        1          2026-05-01 10:00:00 +0000 UTC   app=web\n\
             old            b        New (Deleting)    <nil>                           <nil>                           0        0          <nil>                           <none>\n"
        );
    }

    #[test]
    fn describe_matches_velero_s_layout() {
        let extras = Extras {
            results: Some(Fetched::Got(json!({
                "warnings": {"namespaces": {"shop": ["could not restore, ConfigMap \"settings\" already exists"]}},
                "errors": {"velero": ["timed out"], "cluster": ["no CRD"]},
            }))),
            ..Default::default()
        };
        assert_eq!(
            describe_restore(&fixture(), &extras, false),
            "\
Name:         shop-restore
Namespace:    velero
Labels:       <none>
Annotations:  <none>

Phase:                       PartiallyFailed (run 'velero restore logs shop-restore' for more information)
Total items to be restored:  12
Items restored:              10

Started:    2026-05-01 10:00:01 +0000 UTC
Completed:  2026-05-01 10:00:09 +0000 UTC

Warnings:
  Velero:     <none>
  Cluster:    <none>
  Namespaces:
    shop:  could not restore, ConfigMap \"settings\" already exists

Errors:
  Velero:   timed out
  Cluster:  no CRD
  Namespaces: <none>

Backup:  shop-1

Namespaces:
  Included:  all namespaces found in the backup
  Excluded:  <none>

Resources:
  Included:        *
  Excluded:        <none>
  Cluster-scoped:  auto

Namespace mappings:  shop=shop-copy

Label selector:  app=web

Or label selector:  <none>

Restore PVs:  auto

Existing Resource Policy:   update
ItemOperationTimeout:       4h0m0s

Preserve Service NodePorts:  auto

Uploader config:
  Write Sparse Files:  true
  Parallel Restore:    4

"
        );
    }

    #[test]
    fn describe_details_and_failures() {
        let mut restore = fixture();
        restore.spec.included_namespaces = Some(vec!["shop".into(), "db".into()]);
        if let Some(status) = restore.status.as_mut() {
            status.phase = Some(RestorePhase::InProgress);
            status.validation_errors = Some(vec!["bad one".into(), "bad two".into()]);
            status.restore_item_operations_attempted = Some(3);
            status.restore_item_operations_completed = Some(2);
            status.restore_item_operations_failed = Some(1);
        }
        let extras = Extras {
            results: Some(Fetched::Failed("timed out".into())),
            item_operations: Some(Fetched::Missing),
            resource_list: Some(Fetched::Got(json!({
                "v1/Namespace": ["shop-copy(created)"],
                "apps/v1/Deployment": ["shop-copy/web(created)", "shop-copy/api(updated)"],
            }))),
            volume_info: Some(Fetched::Got(json!([
                {"pvcName": "data", "pvcNamespace": "shop", "restoreMethod": "CSISnapshot",
                 "snapshotDataMoved": false,
                 "csiSnapshotInfo": {"vscName": "snapcontent-1", "snapshotHandle": "h-1", "driver": "hostpath.csi.k8s.io", "size": 0}},
                {"pvcName": "logs", "pvcNamespace": "shop", "restoreMethod": "PodVolumeRestore",
                 "snapshotDataMoved": false},
            ]))),
            ..Default::default()
        };
        let text = describe_restore(&restore, &extras, true);
        for want in [
            "Phase:                                 InProgress\n\
             Estimated total items to be restored:  12\n\
             Items restored so far:                 10\n",
            "Completed:  2026-05-01 10:00:09 +0000 UTC\n\
             \n\
             Validation errors:  bad one\n\
             \x20                   bad two\n\
             Warnings:           <error getting warnings: timed out>\n\
             \n\
             Errors:  <error getting errors: timed out>\n",
            "  Included:  shop, db\n",
            "CSI Snapshot Restores:\n\
             \x20 shop/data:\n\
             \x20   Snapshot:\n\
             \x20     Snapshot Content Name: snapcontent-1\n\
             \x20     Storage Snapshot ID: h-1\n\
             \x20     CSI Driver: hostpath.csi.k8s.io\n",
            "Restore Item Operations:  <error getting operation info: file not found>\n",
            "Resource List:\n\
             \x20 apps/v1/Deployment:\n\
             \x20   - shop-copy/web(created)\n\
             \x20   - shop-copy/api(updated)\n\
             \x20 v1/Namespace:\n\
             \x20   - shop-copy(created)\n",
        ] {
            assert!(text.contains(want), "describe lacks {want:?}:\n{text}");
        }
        assert!(!text.contains("run 'velero restore logs"), "{text}");
        let missing = Extras {
            resource_list: Some(Fetched::Missing),
            ..Default::default()
        };
        let text = describe_restore(&fixture(), &missing, true);
        assert!(
            text.ends_with("Resource List:  <restore resource list not found>\n"),
            "{text}"
        );
        let text = describe_restore(&fixture(), &missing, false);
        assert!(!text.contains("Resource List"), "{text}");
        assert!(
            !text.contains("Restore Item Operations"),
            "only when operations ran: {text}"
        );
    }

    #[test]
    fn describe_item_operations_without_details() {
        let mut restore = fixture();
        if let Some(status) = restore.status.as_mut() {
            status.restore_item_operations_attempted = Some(3);
            status.restore_item_operations_completed = Some(2);
            status.restore_item_operations_failed = Some(1);
            status.hook_status = Some(Default::default());
        }
        let text = describe_restore(&restore, &Extras::default(), false);
        assert!(
            text.contains("\nRestore Item Operations:  2 of 3 completed successfully, 1 failed (specify --details for more information)\n"),
            "{text}"
        );
        // Velero's labels end in a space before the tab, which shows in the alignment.
        assert!(
            text.ends_with("\nHooksAttempted:   0\nHooksFailed:      0\n"),
            "{text}"
        );
    }

    #[test]
    fn describe_pod_volume_restores() {
        let pvr = |volume: &str, pod: &str, phase: Option<velero_api::v1::DataPathPhase>| {
            let mut p = PodVolumeRestore::new("x", Default::default());
            p.spec.volume = volume.into();
            p.spec.uploader_type = velero_api::v1::UploaderType::Kopia;
            p.spec.pod.namespace = Some("shop".into());
            p.spec.pod.name = Some(pod.into());
            p.status = Some(velero_api::v1::PodVolumeRestoreStatus {
                phase,
                ..Default::default()
            });
            p
        };
        use velero_api::v1::DataPathPhase::*;
        let pvrs = vec![
            pvr("data", "web-0", Some(Completed)),
            pvr("cache", "web-0", Some(Completed)),
            pvr("data", "web-1", None),
        ];
        let mut d = Describer::default();
        super::describe_pod_volume_restores(&mut d, &pvrs, false);
        assert_eq!(
            d.finish(),
            "kopia Restores (specify --details for more information):\n  Completed:  2\n  New:        1\n"
        );
        let mut d = Describer::default();
        super::describe_pod_volume_restores(&mut d, &pvrs, true);
        assert_eq!(
            d.finish(),
            "kopia Restores:\n  Completed:\n    shop/web-0: cache, data\n  New:\n    shop/web-1: data\n"
        );
    }

    #[test]
    fn wait_shows_progress_until_a_final_phase() {
        let mut restore = fixture();
        if let Some(status) = restore.status.as_mut() {
            status.phase = Some(RestorePhase::InProgress);
        }
        assert_eq!(
            progress_line(&restore),
            ("InProgress: 10/12 items restored".to_string(), None)
        );
        let done = fixture();
        assert_eq!(progress_line(&done).1, Some(RestorePhase::PartiallyFailed));
        let new = Restore::new("n", Default::default());
        assert_eq!(progress_line(&new).0, "New: 0/0 items restored");
    }

    #[test]
    fn logs_only_once_the_restore_ran() {
        assert!(!logs_available(None));
        assert!(!logs_available(Some(RestorePhase::InProgress)));
        assert!(!logs_available(Some(RestorePhase::FailedValidation)));
        assert!(logs_available(Some(RestorePhase::PartiallyFailed)));
        assert!(logs_available(Some(
            RestorePhase::WaitingForPluginOperations
        )));
    }
}
