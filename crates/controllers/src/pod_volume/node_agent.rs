//! `velero node-agent server`: the per-node agent of the node-agent DaemonSet (Velero's
//! `pkg/cmd/cli/nodeagent/server.go`). It checks that it can do its job on this node (the API
//! server answers, the node exists, the kubelet's pod directory is mounted), fails what a previous
//! agent left running, then runs the PodVolumeBackup and PodVolumeRestore controllers
//! (`agent.rs`) and serves `/healthz` and `/metrics` until told to stop.

use std::net::SocketAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Node;
use kube::Api;

/// Where the DaemonSet mounts the kubelet's `pods` directory (Velero's `/host_pods`).
pub const HOST_PODS_DIR: &str = "/host_pods";

#[derive(Debug, Clone)]
pub struct NodeAgentConfig {
    /// This node's name (`NODE_NAME`, from the pod's `spec.nodeName`).
    pub node_name: String,
    /// The server's namespace, where PodVolumeBackups, locations and the repository password are.
    pub namespace: String,
    /// The kubelet's pod directory as the agent sees it.
    pub host_pods: PathBuf,
    /// The agent's own pod UID (`POD_UID`), whose directory it must find under `host_pods`.
    pub pod_uid: Option<String>,
    pub metrics_address: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    #[error(
        "NODE_NAME is not set: the node agent learns its node from the pod's spec.nodeName (the DaemonSet `velero install --use-node-agent` renders sets it)"
    )]
    NoNodeName,
    #[error(
        "the kubelet's pod directory is not mounted at {0}: run the agent from the DaemonSet `velero install --use-node-agent` renders, with --kubelet-root-dir set to the kubelet's --root-dir"
    )]
    NoHostPods(PathBuf),
    #[error("reading node {node} from the API server: {source}")]
    Node {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{0} does not hold this pod's own directory ({1}): --kubelet-root-dir does not name the kubelet's --root-dir on this node; install again with the right one"
    )]
    WrongHostPods(PathBuf, String),
    #[error("node {0} does not exist: NODE_NAME must name the node this agent runs on")]
    UnknownNode(String),
    #[error("serving /healthz and /metrics on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` completes.
pub async fn run_node_agent(
    client: kube::Client,
    config: NodeAgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeAgentError> {
    if config.node_name.is_empty() {
        return Err(NodeAgentError::NoNodeName);
    }
    if !config.host_pods.is_dir() {
        return Err(NodeAgentError::NoHostPods(config.host_pods));
    }
    // A wrong --kubelet-root-dir still mounts a directory (the runtime creates a missing host path),
    // just an empty one: only our own pod's directory tells the right one from it.
    if let Some(uid) = config.pod_uid.as_deref().filter(|u| !u.is_empty())
        && !config.host_pods.join(uid).is_dir()
    {
        return Err(NodeAgentError::WrongHostPods(
            config.host_pods,
            uid.to_string(),
        ));
    }
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .get_opt(&config.node_name)
        .await
        .map_err(|source| NodeAgentError::Node {
            node: config.node_name.clone(),
            source,
        })?
        .ok_or_else(|| NodeAgentError::UnknownNode(config.node_name.clone()))?;
    let listener = tokio::net::TcpListener::bind(config.metrics_address)
        .await
        .map_err(|source| NodeAgentError::Listen {
            address: config.metrics_address,
            source,
        })?;
    let registry = std::sync::Arc::new(prometheus_client::registry::Registry::default());
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = String::new();
                    // Encoding into a String cannot fail.
                    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                    text
                }
            }),
        );
    let pods_visible = std::fs::read_dir(&config.host_pods)
        .map(|entries| entries.count())
        .unwrap_or(0);
    tracing::info!(
        node = %config.node_name,
        host_pods = %config.host_pods.display(),
        pods_visible,
        address = %config.metrics_address,
        "node agent ready"
    );
    let agent = crate::pod_volume::agent::AgentCtx::new(
        client.clone(),
        &config.namespace,
        &config.node_name,
        &config.host_pods,
    );
    crate::pod_volume::agent::fail_interrupted(&agent).await;
    let agent = std::sync::Arc::new(agent);
    let backups = tokio::spawn(crate::pod_volume::agent::run(agent.clone()));
    let restores = tokio::spawn(crate::pod_volume::agent::run_restores(agent));
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    if let Err(err) = serve.await {
        tracing::warn!(%err, "the /healthz listener stopped");
    }
    backups.abort();
    restores.abort();
    tracing::info!("node agent stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checks below fail before any request, so the client is never used.
    fn unused_client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        kube::Client::try_from(config).expect("a client")
    }

    fn config(host_pods: PathBuf, pod_uid: Option<&str>) -> NodeAgentConfig {
        NodeAgentConfig {
            node_name: "node-1".into(),
            namespace: "velero".into(),
            host_pods,
            pod_uid: pod_uid.map(str::to_string),
            metrics_address: "127.0.0.1:0".parse().expect("an address"),
        }
    }

    #[tokio::test]
    async fn refuses_to_run_where_it_cannot_see_the_node_s_pods() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("host_pods");
        let err = run_node_agent(unused_client(), config(missing.clone(), None), async {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, NodeAgentError::NoHostPods(ref p) if *p == missing),
            "{err}"
        );

        // Mounted, but not the kubelet's directory: our own pod is not in it.
        std::fs::create_dir(&missing).unwrap();
        std::fs::create_dir(missing.join("another-pod")).unwrap();
        let err = run_node_agent(
            unused_client(),
            config(missing.clone(), Some("uid-1")),
            async {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("--kubelet-root-dir"), "{err}");
        assert!(err.to_string().contains("uid-1"), "{err}");

        let mut no_node = config(missing, Some("uid-1"));
        no_node.node_name.clear();
        let err = run_node_agent(unused_client(), no_node, async {})
            .await
            .unwrap_err();
        assert!(matches!(err, NodeAgentError::NoNodeName), "{err}");
    }
}
