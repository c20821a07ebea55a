//! `velero node-agent server`: what the node-agent DaemonSet runs on every node.

use clap::{Args, Subcommand};

use crate::client::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum NodeAgentCommand {
    /// Run the node agent server
    Server(NodeAgentServerArgs),
}

#[derive(Args, Debug)]
pub struct NodeAgentServerArgs {
    /// The level at which to log. Valid values are debug, info, warning, error
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The format for log output. Valid values are text, json
    #[arg(long, default_value = "text")]
    log_format: String,
    /// The address to expose prometheus metrics
    #[arg(long, default_value = ":8085")]
    metrics_address: String,
    /// Accepted for Velero's DaemonSet: feature flags for the agent
    #[arg(long)]
    features: Option<String>,
    /// Accepted for Velero's DaemonSet: the ConfigMap with the agent's settings
    #[arg(long)]
    node_agent_configmap: Option<String>,
    /// Where the kubelet's pod directory is: the DaemonSet mounts it at /host_pods; an agent run
    /// on the node itself (benchmarks, debugging) passes the kubelet's `<root-dir>/pods`.
    #[arg(long, hide = true, default_value = velero_controllers::node_agent::HOST_PODS_DIR)]
    host_pods_dir: std::path::PathBuf,
}

impl NodeAgentCommand {
    pub fn log_level(&self) -> &str {
        match self {
            NodeAgentCommand::Server(args) => &args.log_level,
        }
    }
    pub fn json_logs(&self) -> bool {
        match self {
            NodeAgentCommand::Server(args) => args.log_format == "json",
        }
    }
}

pub async fn run(global: &GlobalArgs, command: NodeAgentCommand) -> anyhow::Result<()> {
    let NodeAgentCommand::Server(args) = command;
    let client = global.client_as("node-agent-server").await?;
    let config = velero_controllers::node_agent::NodeAgentConfig {
        node_name: std::env::var("NODE_NAME").unwrap_or_default(),
        namespace: global.namespace(),
        host_pods: args.host_pods_dir,
        pod_uid: std::env::var("POD_UID").ok(),
        metrics_address: crate::commands::server::socket_address(&args.metrics_address)?,
    };
    velero_controllers::node_agent::run_node_agent(
        client,
        config,
        crate::commands::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
