//! `Schedule` (velero.io/v1): a cron template that produces Backups.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup::BackupSpec;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "velero.io",
    version = "v1",
    kind = "Schedule",
    namespaced,
    status = "ScheduleStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "Status of the schedule"
    ),
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.schedule",
        description = "A Cron expression defining when to run the Backup"
    ),
    printcolumn(
        name = "LastBackup",
        type_ = "date",
        json_path = ".status.lastBackup",
        description = "The last time a Backup was run for this schedule"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    pub template: BackupSpec,
    /// Cron expression (5 fields, UTC) or descriptor such as `@every 6h` or `@daily`.
    pub schedule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_owner_references_in_backup: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_immediately: Option<bool>,
    /// Grandfather-father-son retention of this schedule's backups. A velero-rs extension:
    /// Velero's own server ignores it (and Velero's own CRD prunes it), so a Schedule that uses
    /// it still works there, with TTL as the only retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
}

/// How many backups of a schedule to keep per calendar period, as restic's and borg's
/// `--keep-hourly/daily/weekly/monthly/yearly`. A velero-rs extension that Velero ignores.
///
/// Only backups that finished (Completed or PartiallyFailed) take part. For each period kind, the
/// newest backup of each of the last N distinct periods (hours, days, ISO weeks, months, years in
/// the schedule's time zone) that have a backup is kept; a backup kept by any kind is kept. The
/// schedule's other finished backups are deleted. Periods without a backup do not count, so a
/// paused schedule does not lose its old backups.
///
/// Retention only ever deletes: it does not extend a backup's `ttl`, which still expires backups
/// on its own, so give the template a `ttl` at least as long as the longest period kept.
/// A policy where every count is unset or 0 would keep nothing, so it counts as no policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Keep the newest backup of each of the last N hours that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks (Monday to Sunday) that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

impl RetentionPolicy {
    /// True when no count is above 0: such a policy would keep nothing, so it means "no GFS
    /// retention" rather than "delete every backup".
    pub fn is_empty(&self) -> bool {
        [
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|n| n.unwrap_or(0) == 0)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SchedulePhase {
    New,
    Enabled,
    FailedValidation,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<SchedulePhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_skipped: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_errors: Option<Vec<String>>,
}

impl Schedule {
    /// `<schedule>-<YYYYMMDDHHMMSS>`: the name of a Backup this schedule creates at `at`.
    pub fn timestamped_name(&self, at: jiff::Timestamp) -> String {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        format!("{name}-{}", at.strftime("%Y%m%d%H%M%S"))
    }

    /// The Backup this schedule makes under `name`, as Velero's `FromSchedule` builds it: the
    /// template's spec; the template's labels if it has any, else the schedule's; the
    /// `velero.io/schedule-name` label; the schedule's annotations; an owner reference when
    /// `useOwnerReferencesInBackup` is set. The CLI (`backup create --from-schedule`) and the
    /// schedule controller both use it.
    pub fn backup_named(&self, name: &str) -> super::Backup {
        let schedule_name = self.metadata.name.clone().unwrap_or_default();
        let mut labels = self
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .filter(|l| !l.is_empty())
            .or_else(|| self.metadata.labels.clone())
            .unwrap_or_default();
        labels.insert(
            crate::labels::SCHEDULE_NAME.to_string(),
            crate::labels::valid_label_value(&schedule_name),
        );
        let mut backup = super::Backup::new(name, self.spec.template.clone());
        backup.metadata.namespace = self.metadata.namespace.clone();
        backup.metadata.labels = Some(labels);
        backup.metadata.annotations = self.metadata.annotations.clone().filter(|a| !a.is_empty());
        if self.spec.use_owner_references_in_backup == Some(true) {
            backup.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "velero.io/v1".into(),
                    kind: "Schedule".into(),
                    name: schedule_name,
                    uid: self.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: None,
                },
            ]);
        }
        backup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retention_is_camel_case_and_left_out_when_unset() {
        let mut spec = ScheduleSpec {
            schedule: "@daily".into(),
            ..Default::default()
        };
        let written = serde_json::to_value(&spec).unwrap();
        assert!(written.get("retention").is_none(), "{written}");

        spec.retention = Some(RetentionPolicy {
            daily: Some(7),
            weekly: Some(4),
            ..Default::default()
        });
        let written = serde_json::to_value(&spec).unwrap();
        assert_eq!(written["retention"], json!({"daily": 7, "weekly": 4}));
        let read: ScheduleSpec = serde_json::from_value(written).unwrap();
        assert_eq!(read, spec);
    }

    #[test]
    fn a_velero_schedule_reads_without_retention() {
        let spec: ScheduleSpec =
            serde_json::from_value(json!({"schedule": "0 7 * * *", "template": {}})).unwrap();
        assert_eq!(spec.retention, None);
    }

    #[test]
    fn a_policy_without_positive_counts_is_empty() {
        assert!(RetentionPolicy::default().is_empty());
        let zeros = RetentionPolicy {
            hourly: Some(0),
            daily: Some(0),
            weekly: Some(0),
            monthly: Some(0),
            yearly: Some(0),
        };
        assert!(zeros.is_empty());
        let yearly = RetentionPolicy {
            yearly: Some(1),
            ..zeros
        };
        assert!(!yearly.is_empty());
    }
}
