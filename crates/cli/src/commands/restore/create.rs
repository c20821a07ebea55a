//! `velero restore create`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{ArgAction, Args};
use k8s_openapi::api::core::v1::TypedLocalObjectReference;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use velero_api::labels;
use velero_api::v1::{
    Backup, BackupPhase, Restore, RestorePhase, RestoreSpec, RestoreStatusSpec,
    UploaderConfigForRestore,
};

use super::get::{COLUMNS, row};

use crate::client::GlobalArgs;
use crate::flags::{
    label_selectors, non_empty, parse_duration, parse_map, parse_namespace_mappings,
};
use crate::output::{self, Format};
use crate::{progress, table};

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
    /// Plan the restore without changing the cluster: the server sends every create and update with dryRun=All (so admission webhooks, quotas, schemas and RBAC answer as they would) and stores the plan; see it with `velero restore describe NAME --details [--diff]`. A velero-rs addition: Velero's own server would run such a restore for real.
    #[arg(long, action = ArgAction::SetTrue)]
    dry_run: bool,
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
        if self.dry_run && matches!(source, Source::Schedule(_)) {
            bail!(
                "--dry-run needs --from-backup: a plan is made for one backup, and a schedule's newest backup may change before the real restore; list the schedule's backups with `velero backup get -l velero.io/schedule-name=<schedule>`"
            );
        }
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
            dry_run: self.dry_run.then_some(true),
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

pub(super) async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
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
        if phase == RestorePhase::DryRunCompleted {
            println!(
                "\nDry run completed: nothing in the cluster was changed. See the plan with `velero restore describe {name} --details` (add --diff for the fields that differ)."
            );
            return Ok(());
        }
        println!(
            "\nRestore completed with status: {}. You may check for more information using the commands `velero restore describe {name}` and `velero restore logs {name}`.",
            phase.as_str()
        );
        return Ok(());
    }
    println!(
        "Run `velero restore describe {name}` or `velero restore logs {name}` for more details."
    );
    Ok(())
}

fn progress_line(restore: &Restore) -> (String, Option<RestorePhase>) {
    let status = restore.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(RestorePhase::New);
    let progress = status.progress.unwrap_or_default();
    let line = format!(
        "{}: {}/{} items restored",
        phase.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::restore::RestoreCommand;
    use crate::commands::restore::tests::{at, fixture};
    use clap::Parser;
    use serde_json::json;

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
    fn dry_run_goes_into_the_spec_only_when_asked_and_never_with_a_schedule() {
        let restore = object(&["--from-backup", "b", "--dry-run"]);
        assert_eq!(restore["spec"]["dryRun"], true);
        let restore = object(&["--from-backup", "b"]);
        assert!(restore["spec"].get("dryRun").is_none(), "{restore}");
        let args = create_args(&["--from-schedule", "nightly", "--dry-run"]);
        let err = args.source().expect_err("a schedule cannot be planned");
        assert!(
            err.to_string().starts_with("--dry-run needs --from-backup"),
            "{err}"
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
}
