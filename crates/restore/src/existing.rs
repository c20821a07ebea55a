//! Items that already exist in the cluster (Velero's existing-resource handling in
//! pkg/restore/restore.go): compare with the backed-up version without the fields the API server
//! owns, then leave, merge or update it under `spec.existingResourcePolicy`.

use serde_json::{Map, Value, json};

use crate::compare::{comparable, field_diff, merge_patch};
use crate::plan::{PlanNote, PlannedAction};
use velero_cluster::write::ApiWriter;

use crate::outcome::{Action, Ended, Report};
use velero_api::item::str_at;

/// `spec.existingResourcePolicy`: what to do with an item that exists and differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Warn (Velero's behaviour without a policy).
    Unset,
    /// Warn, in Velero's other wording.
    None,
    /// Patch the object into the backed-up version.
    Update,
}

impl Policy {
    pub(crate) fn from_spec(value: Option<&str>) -> Policy {
        match value {
            Some("none") => Policy::None,
            Some("update") => Policy::Update,
            _ => Policy::Unset,
        }
    }
}

/// Velero's `mergeServiceAccounts`: the in-cluster account plus the backup's secrets, pull secrets,
/// labels and annotations.
pub(crate) fn merge_service_accounts(cluster: &Value, backup: &Value) -> Value {
    let mut desired = cluster.clone();
    for list in ["secrets", "imagePullSecrets"] {
        let mut merged: Vec<Value> = cluster[list].as_array().cloned().unwrap_or_default();
        for entry in backup[list].as_array().into_iter().flatten() {
            if !merged.iter().any(|e| e["name"] == entry["name"]) {
                merged.push(entry.clone());
            }
        }
        if !merged.is_empty() {
            desired[list] = Value::Array(merged);
        }
    }
    for map in ["labels", "annotations"] {
        if let Some(from_backup) = backup["metadata"][map].as_object() {
            let target = desired["metadata"]
                .as_object_mut()
                .map(|m| m.entry(map).or_insert_with(|| Value::Object(Map::new())));
            if let Some(Value::Object(target)) = target {
                for (k, v) in from_backup {
                    target.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    desired
}

/// An item whose create was refused because it exists.
pub(crate) struct ExistingItem<'a> {
    pub(crate) group_resource: &'a str,
    pub(crate) object_path: &'a str,
    pub(crate) kind: &'a str,
    /// The item as it would have been created.
    pub(crate) item: &'a Value,
    /// How the log names it.
    pub(crate) id: &'a str,
}

/// Velero's handling of an item that already exists: compare, then warn, merge or update.
pub(crate) async fn existing(
    writer: &ApiWriter,
    policy: Policy,
    existing: ExistingItem<'_>,
    report: &mut Report,
) -> Ended {
    let ExistingItem {
        group_resource,
        object_path,
        kind,
        item,
        id,
    } = existing;
    let from_cluster = match writer.get(object_path).await {
        Ok(v) => v,
        Err(e) => {
            let message =
                format!("could not get the in-cluster version of {id}, which already exists: {e}");
            let note = PlanNote::new(PlannedAction::Fail).because(message.clone());
            report.warnings.push(message);
            return Ended::not_restored().noted(note);
        }
    };
    let name = str_at(item, "/metadata/name").unwrap_or_default();
    let as_is = comparable(&from_cluster);
    let labels = &item["metadata"]["labels"];
    // Only the labels that say which backup and restore last touched the object.
    let restore_labels = json!({"metadata": {"labels": {
        velero_api::labels::BACKUP_NAME: labels[velero_api::labels::BACKUP_NAME],
        velero_api::labels::RESTORE_NAME: labels[velero_api::labels::RESTORE_NAME],
    }}});
    // The in-cluster object cannot carry this restore's labels yet; compare it as if it did.
    let mut cluster = as_is.clone();
    json_patch::merge(&mut cluster, &restore_labels);
    let wanted = comparable(item);
    let changes = || field_diff(&wanted, &cluster);
    if cluster == wanted {
        let note = PlanNote::new(PlannedAction::Skip)
            .because("exists in the cluster and is the same as the backed-up version");
        if policy == Policy::Update
            && let Err(e) = writer.merge_patch(object_path, &restore_labels).await
        {
            report.errors.push(e.to_string());
        }
        report.infos.push(format!(
            "Restore of {id} skipped: it already exists in the cluster and is the same as the backed up version"
        ));
        return Ended::not_restored().noted(note);
    }
    if group_resource == "serviceaccounts" {
        let desired = merge_service_accounts(&cluster, &wanted);
        let Some(patch) = merge_patch(&cluster, &desired) else {
            return Ended::not_restored().noted(PlanNote::new(PlannedAction::Skip).because(
                "exists in the cluster and already has the backed-up version's secrets, labels and annotations",
            ));
        };
        let note =
            PlanNote::new(PlannedAction::Update).with_changes(field_diff(&desired, &cluster));
        return match writer.merge_patch(object_path, &patch).await {
            Ok(_) => Ended::restored(Action::Updated, None).noted(note),
            Err(e) => {
                report.warnings.push(e.to_string());
                Ended::not_restored().noted(note.refused(e.to_string()))
            }
        };
    }
    let left_as_is = || {
        Ended::not_restored().noted(
            PlanNote::new(PlannedAction::Skip)
                .because("exists in the cluster and differs from the backed-up version; existingResourcePolicy is not update")
                .with_changes(changes()),
        )
    };
    match policy {
        Policy::Unset => {
            report.warnings.push(format!(
                "could not restore, {kind}:{name} already exists. Warning: the in-cluster version is different than the backed-up version"
            ));
            left_as_is()
        }
        Policy::None => {
            report.warnings.push(format!(
                "could not restore, {kind} {name:?} already exists. Warning: the in-cluster version is different than the backed-up version"
            ));
            left_as_is()
        }
        Policy::Update => {
            // From the object as it is, so the patch also moves the restore labels to this restore.
            let Some(patch) = merge_patch(&as_is, &wanted) else {
                return Ended::not_restored();
            };
            let note = PlanNote::new(PlannedAction::Update).with_changes(changes());
            match writer.merge_patch(object_path, &patch).await {
                Ok(_) => Ended::restored(Action::Updated, None).noted(note),
                Err(e) => {
                    report.warnings.push(e.to_string());
                    // At least record which restore last saw it.
                    if let Err(e) = writer.merge_patch(object_path, &restore_labels).await {
                        report.errors.push(e.to_string());
                    }
                    Ended::not_restored().noted(note.refused(e.to_string()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_turn_one_object_into_the_other() {
        let a = json!({"spec": {"replicas": 1, "keep": true, "gone": 1}, "x": [1]});
        let b = json!({"spec": {"replicas": 3, "keep": true, "new": "n"}, "x": [2]});
        let patch = merge_patch(&a, &b).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"replicas": 3, "new": "n", "gone": null}, "x": [2]})
        );
        let mut applied = a.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, b);
        assert_eq!(merge_patch(&a, &a), None);
    }

    #[test]
    fn service_accounts_merge_secrets_and_labels() {
        let cluster =
            json!({"metadata": {"name": "sa", "labels": {"a": "1"}}, "secrets": [{"name": "s1"}]});
        let backup = json!({"metadata": {"name": "sa", "labels": {"a": "2", "b": "2"}}, "secrets": [{"name": "s1"}, {"name": "s2"}], "imagePullSecrets": [{"name": "p"}]});
        let merged = merge_service_accounts(&cluster, &backup);
        assert_eq!(merged["secrets"], json!([{"name": "s1"}, {"name": "s2"}]));
        assert_eq!(merged["imagePullSecrets"], json!([{"name": "p"}]));
        assert_eq!(merged["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn comparison_ignores_server_bookkeeping() {
        let a = json!({"metadata": {"name": "x", "uid": "1", "managedFields": [{"time": "t1"}]}, "spec": {"a": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {"name": "x", "uid": "2", "managedFields": [{"time": "t2"}]}, "spec": {"a": 1}});
        assert_eq!(comparable(&a), comparable(&b));
    }
}
