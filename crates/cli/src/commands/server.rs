//! `velero server`: the controller manager, in the cluster or against `--kubeconfig`.

use std::time::Duration;

use clap::Args;

use crate::client::GlobalArgs;
use crate::flags::parse_duration;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The level at which to log. Valid values are debug, info, warning, error
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The format for log output. Valid values are text, json
    #[arg(long, default_value = "text")]
    log_format: String,
    /// How long to wait by default before backups can be garbage collected
    #[arg(long, default_value = "720h", value_parser = parse_duration)]
    default_backup_ttl: velero_api::Duration,
    /// Name of the default backup storage location (a location marked default wins)
    #[arg(long, default_value = "default")]
    default_backup_storage_location: String,
    /// How often to verify if the storage is valid. Optional. Set this to `0s` to disable sync
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    store_validation_frequency: velero_api::Duration,
    /// Number of backups to process concurrently (when their namespaces do not overlap)
    #[arg(long, default_value_t = 1)]
    concurrent_backups: usize,
    /// Desired order of resource restores, the priority list contains two parts which are split by "-" element. The resources before "-" element are restored first as high priorities, the resources after "-" element are restored last as low priorities, and any resource not in the list will be restored alphabetically between the high and low priorities
    #[arg(long, value_parser = parse_priorities)]
    restore_resource_priorities: Option<velero_restore::Priorities>,
    /// How long to wait for resource processes which are not covered by other specific timeout parameters
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    resource_timeout: velero_api::Duration,
    /// How long to wait on persistent volumes and namespaces to terminate during a restore before timing out
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    terminating_resource_timeout: velero_api::Duration,
    /// Type of uploader to handle the transfer of data of pod volumes: kopia (Velero's) or restic (velero-rs: restic's repository format)
    #[arg(long, default_value = "kopia", value_parser = parse_uploader)]
    uploader_type: velero_api::v1::UploaderType,
    /// How long backups/restores wait for pod volume file-system backups and restores to complete
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    fs_backup_timeout: velero_api::Duration,
    /// Most API requests one restore keeps in flight; fewer while the API server pushes back (HTTP 429)
    #[arg(long, default_value_t = 32)]
    restore_parallelism: usize,
    /// How often garbage collection checks for expired backups
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    garbage_collection_frequency: velero_api::Duration,
    /// How often to ensure all Velero backups in object storage exist as Backup API objects in the cluster. This is the default sync period if none is explicitly specified for a backup storage location
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    backup_sync_period: velero_api::Duration,
    /// The address to expose prometheus metrics
    #[arg(long, default_value = ":8085")]
    metrics_address: String,
    /// Where the CLI reaches this server's /download (files of local-provider locations): an http(s) URL, or an API server path the CLI requests with its kubeconfig. Default: the API server's proxy to this pod in a cluster, http://127.0.0.1:<metrics port> outside one
    #[arg(long, value_parser = parse_download_base)]
    download_url_base: Option<String>,
    /// Specify whether to skip an immediate backup when a schedule is created or unpaused
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value = "false")]
    schedule_skip_immediately: bool,
    /// Elect one leader among replicas through a Lease (velero-server) before running the controllers
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value = "true")]
    leader_elect: bool,
}

/// Go's `:8085` means every interface.
pub(crate) fn socket_address(value: &str) -> anyhow::Result<std::net::SocketAddr> {
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_string()
    };
    full.parse()
        .map_err(|e| anyhow::anyhow!("--metrics-address {value:?} is not host:port or :port: {e}"))
}

fn parse_download_base(value: &str) -> Result<String, String> {
    if value.starts_with("http://") || value.starts_with("https://") || value.starts_with('/') {
        Ok(value.to_string())
    } else {
        Err("expected an http:// or https:// URL, or an API server path starting with /".into())
    }
}

fn parse_priorities(value: &str) -> Result<velero_restore::Priorities, String> {
    velero_restore::Priorities::parse(value).map_err(|e| e.to_string())
}

pub fn log_filter(level: &str) -> String {
    let level = match level {
        "warning" => "warn",
        other => other,
    };
    format!("{level},kube=warn,hyper=warn,rustls=warn")
}

pub async fn run(global: &GlobalArgs, args: ServerArgs) -> anyhow::Result<()> {
    let client = global.client_as("velero-server").await?;
    let config = velero_controllers::ServerConfig {
        namespace: global.namespace(),
        default_backup_ttl: args.default_backup_ttl,
        default_backup_storage_location: args.default_backup_storage_location,
        store_validation_frequency: args
            .store_validation_frequency
            .to_std()
            .unwrap_or(Duration::from_secs(60)),
        concurrent_backups: args.concurrent_backups.max(1),
        restore_priorities: args.restore_resource_priorities.unwrap_or_default(),
        restore_parallelism: args.restore_parallelism.max(1),
        resource_timeout: args
            .resource_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(600)),
        terminating_resource_timeout: args
            .terminating_resource_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(600)),
        fs_backup_timeout: args
            .fs_backup_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(4 * 3600)),
        uploader_type: args.uploader_type,
        garbage_collection_frequency: args
            .garbage_collection_frequency
            .to_std()
            .unwrap_or(Duration::from_secs(3600)),
        metrics_address: Some(socket_address(&args.metrics_address)?),
        download_url_base: args.download_url_base,
        schedule_skip_immediately: args.schedule_skip_immediately,
        schedule_check_every: Duration::from_secs(60),
        // client-go's defaults: a 15 s lease renewed well within it.
        leader_election: args.leader_elect.then(|| {
            velero_controllers::leader::LeaderElection::new(
                Duration::from_secs(15),
                Duration::from_secs(2),
            )
        }),
        backup_sync_period: args
            .backup_sync_period
            .to_std()
            .unwrap_or(Duration::from_secs(60)),
    };
    velero_controllers::run_server(client, config, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

impl ServerArgs {
    pub fn log_level(&self) -> &str {
        &self.log_level
    }
    pub fn json_logs(&self) -> bool {
        self.log_format == "json"
    }
}

/// `--uploader-type`: Velero's uploaders by their names.
fn parse_uploader(value: &str) -> Result<velero_api::v1::UploaderType, String> {
    match value {
        "kopia" => Ok(velero_api::v1::UploaderType::Kopia),
        "restic" => Ok(velero_api::v1::UploaderType::Restic),
        other => Err(format!(
            "invalid uploader type {other:?}: use kopia (the default) or restic"
        )),
    }
}
