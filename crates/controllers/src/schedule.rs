//! The schedule controller (Velero's `pkg/controller/schedule_controller.go`): validates each
//! Schedule's cron and template, creates a Backup `<schedule>-<YYYYMMDDHHMMSS>` whenever it is due
//! (never at creation, one at a time), and applies the velero-rs grandfather-father-son retention
//! when a Schedule asks for it. As Velero's, it reacts to every change of a Schedule (so a new or
//! edited one is `Enabled` or `FailedValidation` at once) and looks at each again every minute.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::labels;
use velero_api::v1::{Backup, BackupPhase, Schedule, SchedulePhase};
use velero_schedule::Cron;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct ScheduleControllerConfig {
    pub namespace: String,
    /// How often every schedule is checked (Velero: every minute).
    pub check_every: Duration,
    /// `--schedule-skip-immediately`: the default for schedules that do not say.
    pub skip_immediately: bool,
    pub metrics: Arc<Metrics>,
}

struct Ctx {
    client: Client,
    config: ScheduleControllerConfig,
}

pub async fn run_schedule_controller(client: Client, config: ScheduleControllerConfig) {
    let api: Api<Schedule> = Api::namespaced(client.clone(), &config.namespace);
    let metrics = config.metrics.clone();
    let ctx = Arc::new(Ctx { client, config });
    tokio::join!(
        crate::run_controller(
            "schedule",
            crate::controller(api.clone()),
            ctx,
            |schedule, ctx| async move {
                reconcile(&ctx.client, &ctx.config, &schedule).await?;
                Ok::<_, kube::Error>(Action::requeue(ctx.config.check_every))
            }
        ),
        forget_deleted(api, metrics),
    );
}

/// Removes a deleted schedule's metric series (Velero's `RemoveSchedule`). A deletion missed while
/// the watch was down shows as a schedule absent from the next full list.
async fn forget_deleted(api: Api<Schedule>, metrics: Arc<Metrics>) {
    use futures::StreamExt as _;
    use kube::runtime::WatchStreamExt as _;
    use kube::runtime::watcher::{self, Event};
    let mut known = BTreeSet::new();
    let mut listed = BTreeSet::new();
    let forget = |name: &str| {
        tracing::info!(schedule = %name, "schedule deleted: removing its metrics");
        metrics.remove_schedule(name);
    };
    // Backing off between failed watches: without it a watch that keeps failing (the API server
    // gone) is retried in a busy loop.
    let mut events =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(s)) => {
                listed.insert(s.name_any());
            }
            Ok(Event::InitDone) => {
                for gone in known.difference(&listed) {
                    forget(gone);
                }
                known = std::mem::take(&mut listed);
            }
            Ok(Event::Apply(s)) => {
                known.insert(s.name_any());
            }
            Ok(Event::Delete(s)) => {
                let name = s.name_any();
                known.remove(&name);
                forget(&name);
            }
            Err(e) => tracing::warn!("watching schedules failed, retrying with backoff: {e}"),
        }
    }
}

/// Validation errors of a schedule: its cron, then its backup template's filters.
pub fn validate(schedule: &Schedule) -> (Option<Cron>, Vec<String>) {
    let mut errors = Vec::new();
    let cron = match Cron::parse(&schedule.spec.schedule) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(e.validation_error());
            None
        }
    };
    errors.extend(velero_filters::validate_backup_spec(
        &schedule.spec.template,
    ));
    (cron, errors)
}

async fn reconcile(
    client: &Client,
    config: &ScheduleControllerConfig,
    schedule: &Schedule,
) -> Result<(), kube::Error> {
    let name = schedule.name_any();
    let api: Api<Schedule> = Api::namespaced(client.clone(), &config.namespace);
    let phase = schedule.phase();
    let (cron, errors) = validate(schedule);
    let Some(cron) = cron.filter(|_| errors.is_empty()) else {
        let current = schedule
            .status
            .as_ref()
            .and_then(|s| s.validation_errors.clone())
            .unwrap_or_default();
        if phase != Some(SchedulePhase::FailedValidation) || current != errors {
            tracing::info!(schedule = %name, ?errors, "schedule failed validation");
            let body = json!({"status": {"phase": SchedulePhase::FailedValidation, "validationErrors": errors}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
        }
        return Ok(());
    };
    let label = Metrics::schedule(Some(&name));
    if let Some(interval) = velero_schedule::expected_interval(&cron, jiff::Timestamp::now()) {
        config
            .metrics
            .schedule_expected_interval_seconds
            .get_or_create(&label)
            .set(interval);
    }
    if phase != Some(SchedulePhase::Enabled) {
        let body = json!({"status": {"phase": SchedulePhase::Enabled, "validationErrors": null}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    if schedule.spec.paused == Some(true) {
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let status = schedule.status.clone().unwrap_or_default();
    let mut last_skipped = status.last_skipped.as_ref().map(|t| t.0);
    // skipImmediately is one-shot: the next due time counts from now, then it is reset.
    let skip = schedule
        .spec
        .skip_immediately
        .unwrap_or(config.skip_immediately);
    if skip {
        let body =
            json!({"spec": {"skipImmediately": false}, "status": {"lastSkipped": crate::now()}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        last_skipped = Some(now);
    }
    let created = schedule
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let last_backup = status.last_backup.as_ref().map(|t| t.0);

    let backups: Api<Backup> = Api::namespaced(client.clone(), &config.namespace);
    let own: Vec<Backup> = backups
        .list(&ListParams::default().labels(&labels::schedule_selector(&name)))
        .await?
        .items;
    apply_retention(client, config, schedule, &cron, &own).await?;

    if !velero_schedule::is_due(&cron, created, last_backup, last_skipped, now) {
        return Ok(());
    }
    // Velero's overlap guard: never a second backup while one of this schedule is unfinished.
    let running = own.iter().any(|b| {
        matches!(
            b.phase(),
            None | Some(BackupPhase::New | BackupPhase::InProgress)
        )
    });
    if running {
        tracing::info!(schedule = %name, "a backup of this schedule is still running; skipping this run");
        return Ok(());
    }
    let backup = backup_for(schedule, now);
    let backup_name = backup.name_any();
    match backups.create(&PostParams::default(), &backup).await {
        Ok(_) => {
            tracing::info!(schedule = %name, backup = %backup_name, "created a scheduled backup")
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let body = json!({"status": {"lastBackup": crate::now()}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// The Backup a schedule creates at `at`: `<schedule>-<YYYYMMDDHHMMSS>`, built as Velero builds it.
pub fn backup_for(schedule: &Schedule, at: jiff::Timestamp) -> Backup {
    schedule.backup_named(&schedule.timestamped_name(at))
}

/// Grandfather-father-son retention (a velero-rs extension): finished backups of the schedule
/// that the policy does not keep get a DeleteBackupRequest. TTL still applies on its own.
async fn apply_retention(
    client: &Client,
    config: &ScheduleControllerConfig,
    schedule: &Schedule,
    cron: &Cron,
    own: &[Backup],
) -> Result<(), kube::Error> {
    let Some(policy) = schedule.spec.retention.as_ref().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let finished: Vec<(String, jiff::Timestamp)> = own
        .iter()
        .filter(|b| {
            matches!(
                b.phase(),
                Some(BackupPhase::Completed | BackupPhase::PartiallyFailed)
            )
        })
        .filter_map(|b| {
            let started = b.status.as_ref()?.start_timestamp.as_ref()?.0;
            Some((b.name_any(), started))
        })
        .collect();
    let keep = velero_schedule::retained(&finished, policy, cron.time_zone());
    for (name, _) in finished.iter().filter(|(n, _)| !keep.contains(n)) {
        if crate::delete::request_deletion(client, &config.namespace, name, None).await? {
            tracing::info!(schedule = %schedule.name_any(), backup = %name, "retention policy no longer keeps this backup: deleting it");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use velero_api::v1::ScheduleSpec;

    fn schedule(cron: &str) -> Schedule {
        let mut s = Schedule::new(
            "nightly",
            ScheduleSpec {
                schedule: cron.into(),
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("velero".into());
        s
    }

    #[test]
    fn validation_names_the_cron_and_template_problems() {
        assert!(validate(&schedule("@every 1h")).1.is_empty());
        let (cron, errors) = validate(&schedule("61 * * * *"));
        assert!(cron.is_none());
        assert!(errors[0].starts_with("invalid schedule: "), "{errors:?}");
        let mut mixed = schedule("@daily");
        mixed.spec.template.included_resources = Some(vec!["pods".into()]);
        mixed.spec.template.included_cluster_scoped_resources = Some(vec!["nodes".into()]);
        let (_, errors) = validate(&mixed);
        assert!(!errors.is_empty(), "mixed filter styles are refused");
    }

    #[test]
    fn backups_carry_velero_s_name_labels_and_owner() {
        let mut s = schedule("@daily");
        s.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        s.metadata.uid = Some("uid-1".into());
        s.spec.use_owner_references_in_backup = Some(true);
        let at: jiff::Timestamp = "2026-11-21T03:04:05Z".parse().unwrap();
        let b = backup_for(&s, at);
        assert_eq!(b.name_any(), "nightly-20261121030405");
        assert_eq!(b.labels().get("team").map(String::as_str), Some("a"));
        assert_eq!(
            b.labels().get(labels::SCHEDULE_NAME).map(String::as_str),
            Some("nightly")
        );
        let owner = &b.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Schedule", "uid-1")
        );
        // Template labels win over the schedule's own.
        s.spec.template.metadata = Some(velero_api::v1::TemplateMetadata {
            labels: Some([("from".to_string(), "template".to_string())].into()),
        });
        let b = backup_for(&s, at);
        assert!(b.labels().get("team").is_none());
        assert_eq!(b.labels().get("from").map(String::as_str), Some("template"));
    }
}
