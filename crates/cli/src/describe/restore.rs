//! Velero's `restore describe` layout.

use kube::ResourceExt;
use velero_api::v1::{PodVolumeRestore, Restore, RestorePhase};

use crate::describe::{self, Describer};
use crate::table;

/// The phase, `New` when unset, marked while the restore is being deleted.
pub(crate) fn status_text(restore: &Restore) -> String {
    let phase = restore.phase().unwrap_or(RestorePhase::New);
    let mut text = phase.as_str().to_string();
    if restore.metadata.deletion_timestamp.is_some() {
        text.push_str(" (Deleting)");
    }
    text
}

/// One of a restore's files, as describe got it.
#[derive(Debug, Clone)]
pub(crate) enum Fetched {
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
pub(crate) struct Extras {
    pub(crate) results: Option<Fetched>,
    pub(crate) volume_info: Option<Fetched>,
    pub(crate) item_operations: Option<Fetched>,
    pub(crate) resource_list: Option<Fetched>,
    pub(crate) pod_volume_restores: Vec<PodVolumeRestore>,
    /// A dry run's plan.
    pub(crate) plan: Option<Fetched>,
    /// Show the fields each planned update changes (`--diff`).
    pub(crate) plan_changes: bool,
}

/// Velero's `DescribeRestore` layout.
pub(crate) fn describe_restore(restore: &Restore, extras: &Extras, details: bool) -> String {
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
        } else if status.phase == Some(RestorePhase::DryRunCompleted) {
            d.line(format_args!("Total items to be restored:\t{total}"));
            d.line(format_args!("Items planned:\t{restored}"));
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
    if let Some(plan) = &extras.plan {
        d.line("");
        describe_plan(&mut d, plan, &name, details, extras.plan_changes);
    }

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
    d.resources_and_cluster_scope(
        spec.included_resources.as_ref(),
        spec.excluded_resources.as_ref(),
        spec.include_cluster_resources,
    );

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

use super::{PodVolumeRow, describe_pod_volumes};

fn pvr_group(pvr: &PodVolumeRestore) -> Option<&'static str> {
    use velero_api::v1::DataPathPhase::*;
    match pvr.phase() {
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
        .map(|p| p.spec.uploader_type.as_str())
        .unwrap_or_default();
    if details {
        d.line(format_args!("{uploader} Restores:"));
    } else {
        d.line(format_args!(
            "{uploader} Restores (specify --details for more information):"
        ));
    }
    let rows: Vec<PodVolumeRow> = pvrs
        .iter()
        .filter_map(|pvr| {
            let progress = pvr.status.as_ref().and_then(|s| s.progress.clone());
            Some(PodVolumeRow::new(
                &pvr.spec.pod,
                &pvr.spec.volume,
                pvr_group(pvr)?,
                progress,
            ))
        })
        .collect();
    describe_pod_volumes(d, &rows, &PVR_GROUPS, "\t", details);
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

/// A dry run's plan: counts, and with `--details` every item by resource with its action, why,
/// and the API server's refusal; with `--diff` the fields an update would change, as
/// `path: <in the cluster> -> <from the backup>`.
fn describe_plan(d: &mut Describer, plan: &Fetched, name: &str, details: bool, changes: bool) {
    let plan = match plan.value().map(|v| {
        serde_json::from_value::<velero_restore::plan::RestorePlan>(v.clone())
            .map_err(|e| e.to_string())
    }) {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) | Err(e) => {
            d.line(format_args!(
                "Plan:\t<error getting the dry run's plan: {e}>"
            ));
            return;
        }
    };
    let (counts, refused) = plan.counts();
    d.line("Plan (dry run: nothing in the cluster was changed):");
    for action in ["create", "update", "skip", "fail"] {
        if let Some(n) = counts.get(action) {
            d.line(format_args!("\t{action}:\t{n}"));
        }
    }
    d.line(format_args!("\trefused by the API server:\t{refused}"));
    if !details {
        d.line(format_args!(
            "\t(run 'velero restore describe {name} --details' for every item, add --diff for the fields that differ)"
        ));
        return;
    }
    let show = |v: &Option<serde_json::Value>| match v {
        Some(v) => v.to_string(),
        None => "<none>".to_string(),
    };
    let mut resource = "";
    for item in &plan.items {
        if item.resource != resource {
            resource = &item.resource;
            d.line(format_args!("\t{resource}:"));
        }
        let id = match &item.namespace {
            Some(ns) => format!("{ns}/{}", item.name),
            None => item.name.clone(),
        };
        let mut line = format!("\t  - {id}: {}", item.action.as_str());
        if let Some(reason) = &item.reason {
            line.push_str(&format!(" ({reason})"));
        }
        if let Some(refused) = &item.refused {
            line.push_str(&format!(" REFUSED: {refused}"));
        }
        if !changes && !item.changes.is_empty() {
            line.push_str(&format!(" [{} fields differ]", item.changes.len()));
        }
        d.line(line);
        if changes {
            for change in &item.changes {
                d.line(format_args!(
                    "\t      {}: {} -> {}",
                    change.path,
                    show(&change.cluster),
                    show(&change.backup)
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::restore::tests::fixture;
    use serde_json::json;

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
    fn a_dry_run_s_plan_with_counts_items_refusals_and_changes() {
        let mut restore = fixture();
        if let Some(status) = restore.status.as_mut() {
            status.phase = Some(RestorePhase::DryRunCompleted);
        }
        let plan = json!({"items": [
            {"resource": "configmaps", "namespace": "shop", "name": "settings", "action": "update",
             "changes": [{"path": "data.color", "backup": "blue", "cluster": "red"}]},
            {"resource": "configmaps", "namespace": "shop", "name": "quota-victim", "action": "create",
             "refused": "exceeded quota: few"},
            {"resource": "pods", "namespace": "shop", "name": "done", "action": "skip",
             "reason": "the pod has completed"},
            {"resource": "secrets", "namespace": "shop", "name": "token", "action": "create",
             "changes": [{"path": "data.new", "backup": "x"}]},
        ]});
        let extras = |changes| Extras {
            plan: Some(Fetched::Got(plan.clone())),
            plan_changes: changes,
            ..Default::default()
        };
        let text = describe_restore(&restore, &extras(false), false);
        assert!(text.contains("DryRunCompleted\n"), "{text}");
        assert!(text.contains("Items planned:"), "{text}");
        for want in [
            "Plan (dry run: nothing in the cluster was changed):\n",
            "  create:                     2\n",
            "  update:                     1\n",
            "  skip:                       1\n",
            "  refused by the API server:  1\n",
            "--details' for every item",
        ] {
            assert!(text.contains(want), "describe lacks {want:?}:\n{text}");
        }
        assert!(!text.contains("shop/settings"), "{text}");
        let text = describe_restore(&restore, &extras(false), true);
        for want in [
            "  configmaps:\n    - shop/settings: update [1 fields differ]\n    - shop/quota-victim: create REFUSED: exceeded quota: few\n",
            "  pods:\n    - shop/done: skip (the pod has completed)\n",
        ] {
            assert!(text.contains(want), "describe lacks {want:?}:\n{text}");
        }
        let text = describe_restore(&restore, &extras(true), true);
        assert!(
            text.contains("    - shop/settings: update\n        data.color: \"red\" -> \"blue\"\n"),
            "{text}"
        );
        assert!(
            text.contains("        data.new: <none> -> \"x\"\n"),
            "{text}"
        );
        let broken = Extras {
            plan: Some(Fetched::Missing),
            ..Default::default()
        };
        let text = describe_restore(&restore, &broken, true);
        assert!(
            text.contains("Plan:  <error getting the dry run's plan: file not found>"),
            "{text}"
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
}
