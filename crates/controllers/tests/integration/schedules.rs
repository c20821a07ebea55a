//! Schedules on a real control plane: `@every` firing with Velero's backup names, paused
//! schedules firing nothing, invalid crons and templates refused, and grandfather-father-son
//! retention keeping exactly the right backups.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use velero_api::v1::{Backup, BackupPhase, Schedule, SchedulePhase};
use velero_test_harness::create_object;

use support::{setup_with, wait_for};

fn schedule(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
        "metadata": {"name": name, "namespace": "velero", "labels": {"team": "ops"}}, "spec": spec})
}

async fn backups_of(api: &Api<Backup>, schedule: &str) -> anyhow::Result<Vec<Backup>> {
    Ok(api
        .list(&ListParams::default().labels(&format!("velero.io/schedule-name={schedule}")))
        .await?
        .items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_pause_validate_and_retain() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A free port, taken again by the server.
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let env = setup_with(dir.path(), |c| {
        c.schedule_check_every = Duration::from_secs(1);
        c.metrics_address = Some(address);
    })
    .await?;
    let client = &env.client;
    let backups: Api<Backup> = Api::namespaced(client.clone(), "velero");
    let schedules: Api<Schedule> = Api::namespaced(client.clone(), "velero");
    create_object(
        client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sched"}}),
    )
    .await?;

    let template = json!({"includedNamespaces": ["sched"], "ttl": "1h0m0s"});
    create_object(
        client,
        schedule(
            "often",
            json!({"schedule": "@every 3s", "template": template}),
        ),
    )
    .await?;
    create_object(
        client,
        schedule(
            "idle",
            json!({"schedule": "@every 1s", "template": template, "paused": true}),
        ),
    )
    .await?;
    create_object(
        client,
        schedule(
            "broken",
            json!({"schedule": "61 * * * *", "template": template}),
        ),
    )
    .await?;
    create_object(
        client,
        schedule(
            "mixed",
            json!({"schedule": "@daily", "template": {
        "includedResources": ["pods"], "includedClusterScopedResources": ["nodes"]}}),
        ),
    )
    .await?;

    // Fires twice (never at creation), one backup at a time, with Velero's names and labels.
    let fired = wait_for("two completed backups of the schedule", || async {
        let list = backups_of(&backups, "often").await.ok()?;
        let done = list
            .iter()
            .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed))
            .count();
        (done >= 2).then_some(list)
    })
    .await?;
    for b in &fired {
        let name = b.name_any();
        let stamp = name.strip_prefix("often-").unwrap_or_default();
        assert!(
            stamp.len() == 14 && stamp.chars().all(|c| c.is_ascii_digit()),
            "{name}"
        );
        assert_eq!(
            b.labels().get("team").map(String::as_str),
            Some("ops"),
            "{name}"
        );
        assert_eq!(b.spec.included_namespaces, Some(vec!["sched".to_string()]));
    }
    let often = schedules.get("often").await?;
    let status = often.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(SchedulePhase::Enabled));
    assert!(status.last_backup.is_some());

    // A paused schedule fires nothing, however often it is due.
    assert!(
        backups_of(&backups, "idle").await?.is_empty(),
        "a paused schedule fired"
    );

    // Invalid cron and mixed filter styles: FailedValidation with the reason.
    let broken = wait_for("the broken schedule to fail validation", || async {
        let s = schedules.get("broken").await.ok()?;
        (s.status.as_ref()?.phase? == SchedulePhase::FailedValidation).then_some(s)
    })
    .await?;
    let errors = broken
        .status
        .and_then(|s| s.validation_errors)
        .unwrap_or_default()
        .join("; ");
    assert!(errors.starts_with("invalid schedule: "), "{errors}");
    let mixed = wait_for("the mixed schedule to fail validation", || async {
        let s = schedules.get("mixed").await.ok()?;
        (s.status.as_ref()?.phase? == SchedulePhase::FailedValidation).then_some(s)
    })
    .await?;
    assert!(
        !mixed
            .status
            .and_then(|s| s.validation_errors)
            .unwrap_or_default()
            .is_empty()
    );
    assert!(backups_of(&backups, "broken").await?.is_empty());

    // Retention: ten daily backups (1-10 November 2026, noon UTC; the 1st is a Sunday) and a
    // policy of 2 daily + 2 weekly keeps the 10th and 9th (daily) and the 8th (newest of the
    // previous ISO week); the rest are deleted.
    schedules
        .patch(
            "often",
            &Default::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"paused": true}})),
        )
        .await?;
    for day in 1..=10 {
        create_object(client, json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": format!("gfs-{day:02}"), "namespace": "velero", "labels": {"velero.io/schedule-name": "gfs"}},
            "spec": {"storageLocation": "default"},
            "status": {"phase": "Completed", "startTimestamp": format!("2026-11-{day:02}T12:00:00Z"),
                       "completionTimestamp": format!("2026-11-{day:02}T12:01:00Z")}})).await?;
    }
    create_object(
        client,
        schedule(
            "gfs",
            json!({"schedule": "@every 1000h", "template": template,
        "retention": {"daily": 2, "weekly": 2}}),
        ),
    )
    .await?;
    let kept = wait_for("retention to leave exactly three backups", || async {
        let names: BTreeSet<String> = backups_of(&backups, "gfs")
            .await
            .ok()?
            .iter()
            .map(|b| b.name_any())
            .collect();
        (names.len() == 3).then_some(names)
    })
    .await?;
    assert_eq!(
        kept,
        BTreeSet::from([
            "gfs-08".to_string(),
            "gfs-09".to_string(),
            "gfs-10".to_string()
        ])
    );
    // And it stays that way.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(backups_of(&backups, "gfs").await?.len(), 3);

    // The schedule's metric series go with it.
    let scrape = || async move {
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let text = scrape().await.unwrap_or_default();
    assert!(
        text.contains("velero_backup_success_total{schedule=\"often\"}")
            && text.contains("velero_schedule_expected_interval_seconds{schedule=\"often\"} 3.0"),
        "{text}"
    );
    schedules.delete("often", &Default::default()).await?;
    wait_for("the deleted schedule's series to go", || async {
        let text = scrape().await?;
        (!text.contains("schedule=\"often\"") && text.contains("schedule=\"gfs\"")).then_some(())
    })
    .await?;
    Ok(())
}

/// Velero's schedule controller reacts to every change of a Schedule: with the default one-minute
/// check, a new schedule is judged at once, and so is an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_or_edited_schedule_is_judged_at_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = setup_with(dir.path(), |c| {
        c.schedule_check_every = Duration::from_secs(600);
    })
    .await?;
    let client = &env.client;
    let schedules: Api<Schedule> = Api::namespaced(client.clone(), "velero");
    // The first pass over existing schedules is done once the controller runs: from here on only
    // a reaction to the change itself gets a phase set within seconds.
    let template = json!({"includedNamespaces": ["x"]});
    create_object(
        client,
        schedule(
            "bad",
            json!({"schedule": "61 * * * *", "template": template}),
        ),
    )
    .await?;
    let judged = |name: &'static str, want: SchedulePhase| {
        let schedules = schedules.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let phase = schedules.get(name).await?.status.and_then(|s| s.phase);
                if phase == Some(want) {
                    return anyhow::Ok(());
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "{name} is {phase:?}, not {want:?}, 20 s after the change (the periodic check is 10 min away)"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    judged("bad", SchedulePhase::FailedValidation).await?;
    schedules
        .patch(
            "bad",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"schedule": "0 3 * * *"}})),
        )
        .await?;
    judged("bad", SchedulePhase::Enabled).await?;
    Ok(())
}
