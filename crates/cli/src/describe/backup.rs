//! Velero's `backup describe` layout, and the parts of it a schedule's description shows too.

use kube::ResourceExt;
use velero_api::v1::{Backup, BackupPhase, BackupSpec, HookErrorMode};

use crate::describe::{self, Describer};
use crate::table;

/// What `describe --details` shows of a finished backup beyond the Backup object itself: each
/// file's JSON, or the error that kept it from being fetched.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) resource_list: Option<Result<serde_json::Value, String>>,
    pub(crate) results: Option<Result<serde_json::Value, String>>,
    /// The backup's PodVolumeBackups in the cluster (listed by its label, as Velero does).
    pub(crate) pod_volume_backups: Vec<velero_api::v1::PodVolumeBackup>,
}

/// Velero's `DescribeBackup` layout: the Backup object, then, with `details`, the files fetched.
pub(crate) fn describe_backup(b: &Backup, extras: &Extras, details: bool) -> String {
    let mut out = String::new();
    describe_one(b, &extras.pod_volume_backups, details, &mut out);
    if !details {
        return out;
    }
    use std::fmt::Write as _;
    match &extras.resource_list {
        Some(Ok(list)) => {
            let _ = writeln!(out, "\nResource List:");
            for (kind, items) in list.as_object().into_iter().flatten() {
                let _ = writeln!(out, "  {kind}:");
                for item in items.as_array().into_iter().flatten() {
                    let _ = writeln!(out, "    - {}", item.as_str().unwrap_or_default());
                }
            }
        }
        Some(Err(e)) => {
            let _ = writeln!(
                out,
                "\nResource List:  <error getting backup resource list: {e}>"
            );
        }
        None => {}
    }
    match &extras.results {
        Some(Ok(results)) => {
            out.push('\n');
            write_results("Errors", &results["errors"], &mut out);
            out.push('\n');
            write_results("Warnings", &results["warnings"], &mut out);
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "\n<error getting backup results: {e}>");
        }
        None => {}
    }
    out
}

/// Velero's `DescribeBackup`, for what the Backup object itself holds.
fn describe_one(
    b: &Backup,
    pvbs: &[velero_api::v1::PodVolumeBackup],
    details: bool,
    out: &mut String,
) {
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
    if pvbs.is_empty() {
        d.line("\t<none included>");
    } else {
        describe_pod_volume_backups(&mut d, pvbs, details);
    }
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

/// Velero's `describePodVolumeBackups`, after the snapshot kinds velero-rs does not take yet.
fn describe_pod_volume_backups(
    d: &mut Describer,
    pvbs: &[velero_api::v1::PodVolumeBackup],
    details: bool,
) {
    use velero_api::v1::DataPathPhase::*;
    d.line("\tVelero-Native Snapshots: <none included>");
    d.line("");
    d.line("\tCSI Snapshots: <none included>");
    d.line("");
    let uploader = pvbs[0].spec.uploader_type.as_str();
    if details {
        d.line(format_args!("\tPod Volume Backups - {uploader}:"));
    } else {
        d.line(format_args!(
            "\tPod Volume Backups - {uploader} (specify --details for more information):"
        ));
    }
    let rows: Vec<super::PodVolumeRow> = pvbs
        .iter()
        .filter_map(|pvb| {
            let status = pvb.status.clone().unwrap_or_default();
            let group = match status.phase {
                Some(Completed) => "Completed",
                Some(Failed) => "Failed",
                Some(InProgress) => "In Progress",
                Some(Canceled) => "Canceled",
                Some(New) | None => "New",
                // Velero lists no other phase.
                _ => return None,
            };
            Some(super::PodVolumeRow::new(
                &pvb.spec.pod,
                &pvb.spec.volume,
                group,
                status.progress,
            ))
        })
        .collect();
    let groups = ["Completed", "Failed", "In Progress", "Canceled", "New"];
    super::describe_pod_volumes(d, &rows, &groups, "\t\t", details);
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
        d.resources_and_cluster_scope(
            spec.included_resources.as_ref(),
            spec.excluded_resources.as_ref(),
            spec.include_cluster_resources,
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use velero_api::v1::{BackupHooks, BackupResourceHook, BackupResourceHookSpec, ExecHook};

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
    fn pod_volume_backups_are_counted_or_listed_by_pod() {
        use velero_api::v1::{DataPathPhase, PodVolumeBackup, PodVolumeBackupStatus, UploaderType};
        let pvb = |pod: &str, volume: &str, phase: DataPathPhase, total: i64| {
            let mut p = PodVolumeBackup::new("x", Default::default());
            p.spec.pod.namespace = Some("shop".into());
            p.spec.pod.name = Some(pod.into());
            p.spec.volume = volume.into();
            p.spec.uploader_type = UploaderType::Restic;
            p.status = Some(PodVolumeBackupStatus {
                phase: Some(phase),
                progress: Some(velero_api::DataMoveOperationProgress {
                    total_bytes: Some(total),
                    bytes_done: Some(total / 4),
                }),
                ..Default::default()
            });
            p
        };
        let pvbs = [
            pvb("web-0", "data", DataPathPhase::Completed, 2048),
            pvb("web-0", "cache", DataPathPhase::Completed, 10),
            pvb("web-1", "data", DataPathPhase::InProgress, 400),
            pvb("db-0", "data", DataPathPhase::Failed, 0),
        ];
        let backup = Backup::new("nightly", BackupSpec::default());
        let mut short = String::new();
        describe_one(&backup, &pvbs, false, &mut short);
        assert!(
            short.contains(
                "Backup Volumes:\n  Velero-Native Snapshots: <none included>\n\n  CSI Snapshots: <none included>\n\n  Pod Volume Backups - restic (specify --details for more information):\n    Completed:    2\n    Failed:       1\n    In Progress:  1\n"
            ),
            "{short}"
        );
        let mut long = String::new();
        describe_one(&backup, &pvbs, true, &mut long);
        assert!(
            long.contains(
                "  Pod Volume Backups - restic:\n    Completed:\n      shop/web-0: cache (size: 10), data (size: 2048)\n    Failed:\n      shop/db-0: data\n    In Progress:\n      shop/web-1: data (25.00%)\n"
            ),
            "{long}"
        );
    }

    #[test]
    fn details_show_the_fetched_files_after_the_object() {
        let mut backup = Backup::new("nightly", BackupSpec::default());
        backup.status = Some(velero_api::v1::BackupStatus {
            phase: Some(BackupPhase::Completed),
            ..Default::default()
        });
        let mut object = String::new();
        describe_one(&backup, &[], false, &mut object);
        assert_eq!(describe_backup(&backup, &Extras::default(), true), object);

        let warnings = serde_json::json!({"namespaces": {"shop": ["could not back up x"]}});
        let extras = Extras {
            pod_volume_backups: Vec::new(),
            resource_list: Some(Ok(
                serde_json::json!({"v1/Pod": ["shop/web-0", "shop/web-1"]}),
            )),
            results: Some(Ok(serde_json::json!({"errors": {}, "warnings": warnings}))),
        };
        assert_eq!(describe_backup(&backup, &extras, false), object);
        let mut d = Describer::default();
        d.result("Warnings", &warnings);
        assert_eq!(
            describe_backup(&backup, &extras, true),
            format!(
                "{object}\nResource List:\n  v1/Pod:\n    - shop/web-0\n    - shop/web-1\n\
                 \nErrors:  <none>\n\n{}",
                d.finish()
            )
        );

        let failed = Extras {
            pod_volume_backups: Vec::new(),
            resource_list: Some(Err("timed out".into())),
            results: Some(Err("timed out".into())),
        };
        assert_eq!(
            describe_backup(&backup, &failed, true),
            format!(
                "{object}\nResource List:  <error getting backup resource list: timed out>\n\
                 \n<error getting backup results: timed out>\n"
            )
        );
    }
}
