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
}
