//! Two `velero server` replicas on one control plane: one leads through the Lease and runs the
//! controllers; when it dies the other takes over.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use velero_controllers::leader::{LEASE_NAME, LeaderElection};
use velero_test_harness::create_object;

use support::{backup, setup_with, wait_for};

fn election(name: &str) -> LeaderElection {
    LeaderElection {
        identity: name.to_string(),
        lease_duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(500),
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE_NAME)
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let first = setup_with(dir.path(), |c| {
        c.leader_election = Some(election("replica-a"))
    })
    .await?;
    let client = first.client.clone();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "velero");
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    let config = velero_controllers::ServerConfig {
        namespace: "velero".into(),
        store_validation_frequency: Duration::from_secs(1),
        leader_election: Some(election("replica-b")),
        ..Default::default()
    };
    let second_client = client.clone();
    let second = tokio::spawn(async move {
        velero_controllers::run_server(second_client, config, std::future::pending()).await
    });

    create_object(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "r"}}),
    )
    .await?;
    backup(&client, "led-by-a", json!({"includedNamespaces": ["r"]})).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("replica-a"),
        "the leader keeps its lease"
    );
    assert!(!second.is_finished(), "the second replica waits");

    // The leader dies without releasing the lease; the other replica takes over once it expires.
    first.server.abort();
    wait_for("replica-b to lead", || async {
        (holder(&leases).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await?;
    backup(&client, "led-by-b", json!({"includedNamespaces": ["r"]})).await?;
    let lease = leases.get(LEASE_NAME).await?;
    assert!(lease.spec.and_then(|s| s.lease_transitions).unwrap_or(0) >= 1);
    second.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_fails_running_work_and_hands_the_lease_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The harness's server is stopped; this test runs its own, with a shutdown signal it controls.
    let env = setup_with(dir.path(), |c| {
        c.leader_election = Some(election("harness"))
    })
    .await?;
    env.server.abort();
    let client = env.client.clone();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "velero");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = velero_controllers::ServerConfig {
        namespace: "velero".into(),
        leader_election: Some(election("graceful")),
        ..Default::default()
    };
    let server_client = client.clone();
    let server = tokio::spawn(async move {
        velero_controllers::run_server(server_client, config, async {
            let _ = stopped.await;
        })
        .await
    });
    wait_for("the new server to lead", || async {
        (holder(&leases).await.as_deref() == Some("graceful")).then_some(())
    })
    .await?;
    // Work it is running when the signal comes.
    create_object(
        &client,
        json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "midway", "namespace": "velero"}, "spec": {},
        "status": {"phase": "InProgress"}}),
    )
    .await?;
    let _ = stop.send(());
    server.await??;
    let backups: Api<velero_api::v1::Backup> = Api::namespaced(client.clone(), "velero");
    let midway = backups.get("midway").await?;
    let status = midway.status.unwrap_or_default();
    assert_eq!(status.phase, Some(velero_api::v1::BackupPhase::Failed));
    assert_eq!(
        status.failure_reason.as_deref(),
        Some(velero_controllers::server::SHUTDOWN_FAILURE)
    );
    assert_eq!(holder(&leases).await, None, "the lease is released");
    Ok(())
}
