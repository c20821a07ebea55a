//! `/metrics` after a backup, a failed backup, a backup that fails validation and a restore: the
//! counters say exactly that, under Velero's names.

use crate::support;

use serde_json::json;
use velero_test_harness::create_object;

use support::{restore, setup_with, wait_for};

async fn scrape(address: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let response = reqwest::get(format!("http://{address}{path}")).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Ok(response.text().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_backups_and_restores() -> anyhow::Result<()> {
    // A free port, taken again by the server.
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let dir = tempfile::tempdir()?;
    let env = setup_with(dir.path(), |c| c.metrics_address = Some(address)).await?;
    assert_eq!(scrape(address, "/healthz").await?.trim(), "ok");

    create_object(
        &env.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "m"}}),
    )
    .await?;
    support::backup(&env.client, "good", json!({"includedNamespaces": ["m"]})).await?;
    // Failed: a backup of that name is already in storage.
    std::fs::create_dir_all(dir.path().join("backups/taken"))?;
    std::fs::write(dir.path().join("backups/taken/velero-backup.json"), b"{}")?;
    // FailedValidation: no such location.
    for (name, spec) in [
        ("taken", json!({})),
        ("nowhere", json!({"storageLocation": "missing"})),
    ] {
        create_object(
            &env.client,
            json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "velero"}, "spec": spec}),
        )
        .await?;
    }
    let backups: kube::Api<velero_api::v1::Backup> =
        kube::Api::namespaced(env.client.clone(), "velero");
    for name in ["taken", "nowhere"] {
        wait_for(&format!("backup {name} to end"), || async {
            let b = backups.get(name).await.ok()?;
            b.status?.phase?.is_terminal().then_some(())
        })
        .await?;
    }
    let done = restore(&env.client, "r", json!({"backupName": "good"})).await?;
    assert_eq!(
        support::phase(&done),
        Some(velero_api::v1::RestorePhase::Completed)
    );

    let text = scrape(address, "/metrics").await?;
    for line in [
        "velero_backup_attempt_total{schedule=\"\"} 2",
        "velero_backup_success_total{schedule=\"\"} 1",
        "velero_backup_failure_total{schedule=\"\"} 1",
        "velero_backup_validation_failure_total{schedule=\"\"} 1",
        "velero_backup_last_status{schedule=\"\"} 0",
        "velero_restore_attempt_total{schedule=\"\"} 1",
        "velero_restore_success_total{schedule=\"\"} 1",
        "velero_backup_location_status_gauge{backup_location_name=\"default\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains("velero_backup_duration_seconds_count{schedule=\"\"} 2"),
        "{text}"
    );
    Ok(())
}
