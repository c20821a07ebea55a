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
}

pub fn log_filter(level: &str) -> String {
    let level = match level {
        "warning" => "warn",
        other => other,
    };
    format!("{level},kube=warn,hyper=warn,rustls=warn")
}

pub async fn run(global: &GlobalArgs, args: ServerArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let config = velero_controllers::ServerConfig {
        namespace: global.namespace(),
        default_backup_ttl: args.default_backup_ttl,
        default_backup_storage_location: args.default_backup_storage_location,
        store_validation_frequency: args
            .store_validation_frequency
            .to_std()
            .unwrap_or(Duration::from_secs(60)),
        concurrent_backups: args.concurrent_backups.max(1),
    };
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    velero_controllers::run_server(client, config, shutdown).await?;
    Ok(())
}

impl ServerArgs {
    pub fn log_level(&self) -> &str {
        &self.log_level
    }
    pub fn json_logs(&self) -> bool {
        self.log_format == "json"
    }
}
