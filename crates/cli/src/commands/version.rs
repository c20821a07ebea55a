//! `velero version`: the client's version and, through a ServerStatusRequest, the server's.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use velero_api::v1::{ServerStatusRequest, ServerStatusRequestPhase, ServerStatusRequestSpec};

use crate::client::{GIT_COMMIT, GlobalArgs, VERSION};

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Only return client version
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false, action = clap::ArgAction::Set)]
    client_only: bool,
    /// Maximum time to wait for server version to be reported
    #[arg(long, default_value = "5s", value_parser = crate::flags::parse_duration)]
    timeout: velero_api::Duration,
}

pub async fn run(global: &GlobalArgs, args: VersionArgs) -> anyhow::Result<()> {
    println!("Client:\n\tVersion: {VERSION}\n\tGit commit: {GIT_COMMIT}");
    if args.client_only {
        return Ok(());
    }
    let timeout = args.timeout.to_std().unwrap_or(Duration::from_secs(5));
    match server_version(global, timeout).await {
        Ok(version) => println!("Server:\n\tVersion: {version}"),
        Err(e) => println!("<error getting server version: {e:#}>"),
    }
    Ok(())
}

/// Asks the server for its version the way Velero's CLI does: create a ServerStatusRequest and
/// wait for the server to mark it Processed.
async fn server_version(global: &GlobalArgs, timeout: Duration) -> anyhow::Result<String> {
    let client = global.client().await?;
    let api: Api<ServerStatusRequest> = Api::namespaced(client, &global.namespace());
    let request = ServerStatusRequest {
        metadata: ObjectMeta {
            generate_name: Some("velero-cli-".into()),
            ..Default::default()
        },
        spec: ServerStatusRequestSpec {},
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &request)
        .await
        .context("creating a ServerStatusRequest (is Velero installed in this namespace?)")?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = api
            .get(&name)
            .await
            .context("reading the ServerStatusRequest")?;
        if let Some(status) = current
            .status
            .filter(|s| s.phase == Some(ServerStatusRequestPhase::Processed))
        {
            return Ok(status.server_version.unwrap_or_default());
        }
        if tokio::time::Instant::now() >= deadline {
            // Nobody answered; do not leave the request behind for a server that may never come.
            let _ = api.delete(&name, &DeleteParams::default()).await;
            anyhow::bail!("timed out waiting for server status request to be processed");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
