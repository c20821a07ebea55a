//! `velero server`: starts every controller against one namespace.

use std::time::Duration;

use kube::Client;

use crate::backup::{BackupControllerConfig, fail_interrupted_backups, run_backup_controller};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub namespace: String,
    pub default_backup_ttl: velero_api::Duration,
    pub default_backup_storage_location: String,
    pub store_validation_frequency: Duration,
    pub concurrent_backups: usize,
    /// `--restore-resource-priorities`: the order types are restored in.
    pub restore_priorities: velero_restore::Priorities,
    /// Requests one restore keeps in flight at most (fewer while the API server pushes back).
    pub restore_parallelism: usize,
    /// `--resource-timeout`: how long a restored CRD may take to become ready.
    pub resource_timeout: Duration,
    /// `--terminating-resource-timeout`: how long a restore waits for a terminating namespace.
    pub terminating_resource_timeout: Duration,
    /// `--garbage-collection-frequency`: how often expired backups are looked for; 0 disables.
    pub garbage_collection_frequency: Duration,
    /// `--backup-sync-period`: how often locations are synced into the cluster (a location's own
    /// `backupSyncPeriod` wins); 0 disables.
    pub backup_sync_period: Duration,
    /// `--metrics-address`: where `/metrics`, `/healthz` and the `local` provider's `/download`
    /// are served; `None` serves nothing.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// `--download-url-base`: where the CLI reaches `/download`, when the automatic choice
    /// ([`crate::download::download_base`]) is wrong (a proxy or an exposed Service in front).
    pub download_url_base: Option<String>,
    /// How often schedules are checked for being due (Velero: every minute).
    pub schedule_check_every: Duration,
    /// `--schedule-skip-immediately`: the default for schedules that do not say.
    pub schedule_skip_immediately: bool,
    /// Lease-based leader election among replicas; `None` runs the controllers at once.
    pub leader_election: Option<crate::leader::LeaderElection>,
    /// `--fs-backup-timeout`: how long a backup waits for one pod volume's backup.
    pub fs_backup_timeout: Duration,
    /// `--uploader-type`: kopia (Velero's default and only choice since 1.17) or restic.
    pub uploader_type: velero_api::v1::UploaderType,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            namespace: velero_api::DEFAULT_NAMESPACE.into(),
            default_backup_ttl: velero_api::Duration::from_hours(720),
            default_backup_storage_location: "default".into(),
            store_validation_frequency: Duration::from_secs(60),
            concurrent_backups: 1,
            restore_priorities: velero_restore::Priorities::default(),
            restore_parallelism: 32,
            resource_timeout: Duration::from_secs(600),
            terminating_resource_timeout: Duration::from_secs(600),
            garbage_collection_frequency: Duration::from_secs(3600),
            backup_sync_period: Duration::from_secs(60),
            metrics_address: None,
            download_url_base: None,
            schedule_check_every: Duration::from_secs(60),
            schedule_skip_immediately: false,
            leader_election: None,
            fs_backup_timeout: Duration::from_secs(4 * 3600),
            uploader_type: velero_api::v1::UploaderType::Kopia,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("namespace {0:?} does not exist: install Velero there first (velero install -n {0})")]
    NoNamespace(String),
    #[error("the Velero CRDs are not installed ({0}): run `velero install --crds-only`")]
    NoCrds(String),
    #[error("serving metrics and downloads: {0} (choose another --metrics-address)")]
    Metrics(#[source] std::io::Error),
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
    #[error(transparent)]
    Randomness(#[from] crate::download::NoRandomness),
    #[error("talking to the API server: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs the server until `shutdown` resolves.
pub async fn run_server(
    client: Client,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    tokio::pin!(shutdown);
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    if namespaces.get_opt(&config.namespace).await?.is_none() {
        return Err(ServerError::NoNamespace(config.namespace.clone()));
    }
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = kube::Api::all(client.clone());
    for crd in velero_api::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        if crds.get_opt(&name).await?.is_none() {
            return Err(ServerError::NoCrds(name));
        }
    }
    if let Some(election) = &config.leader_election {
        tokio::select! {
            acquired = election.acquire(&client, &config.namespace) => acquired?,
            _ = &mut shutdown => return Ok(()),
        }
    }
    // Only the leader gets here: what a previous leader left running is finished off.
    fail_interrupted_backups(&client, &config.namespace, crate::backup::RESTART_FAILURE).await?;
    crate::restore::fail_interrupted_restores(
        &client,
        &config.namespace,
        crate::restore::RESTART_FAILURE,
    )
    .await?;
    crate::delete::resume_interrupted_deletions(&client, &config.namespace).await?;
    tracing::info!(namespace = %config.namespace, version = crate::SERVER_VERSION, "starting controllers");
    let ns = config.namespace.clone();
    let metrics = crate::metrics::Metrics::new();
    // Bound before anything hands out a download URL, which names the port actually bound
    // (`--metrics-address 127.0.0.1:0` picks a free one).
    let listener = match config.metrics_address {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(ServerError::Metrics)?,
        ),
        None => None,
    };
    let bound = listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(ServerError::Metrics)?;
    let local_downloads = match bound {
        Some(address) => {
            let base = config.download_url_base.clone().unwrap_or_else(|| {
                crate::download::download_base(address, &ns, crate::download::own_pod().as_deref())
            });
            tracing::info!(%base, "the local provider's files are downloaded from here");
            Some(std::sync::Arc::new(crate::download::LocalDownloads::new(
                client.clone(),
                ns.clone(),
                base,
            )?))
        }
        None => None,
    };
    let http_server = {
        let app = crate::metrics::routes(metrics.clone());
        let app = match &local_downloads {
            Some(downloads) => app.merge(downloads.clone().routes()),
            None => app,
        };
        async move {
            match listener {
                Some(listener) => {
                    tracing::info!(address = ?bound, "serving /metrics, /healthz and /download");
                    axum::serve(listener, app).await
                }
                None => std::future::pending().await,
            }
        }
    };
    let backup_config = BackupControllerConfig {
        namespace: ns.clone(),
        default_backup_ttl: config.default_backup_ttl,
        default_location: config.default_backup_storage_location.clone(),
        concurrency: config.concurrent_backups,
        uploader_type: config.uploader_type,
        metrics: metrics.clone(),
        fs_backup_timeout: config.fs_backup_timeout,
    };
    let restore_config = crate::restore::RestoreControllerConfig {
        namespace: ns.clone(),
        priorities: config.restore_priorities.clone(),
        max_in_flight: config.restore_parallelism,
        resource_timeout: config.resource_timeout,
        terminating_timeout: config.terminating_resource_timeout,
        metrics: metrics.clone(),
        fs_backup_timeout: config.fs_backup_timeout,
    };
    let schedule_config = crate::schedule::ScheduleControllerConfig {
        namespace: ns.clone(),
        check_every: config.schedule_check_every,
        skip_immediately: config.schedule_skip_immediately,
        metrics: metrics.clone(),
    };
    tokio::select! {
        _ = crate::schedule::run_schedule_controller(client.clone(), schedule_config) => {}
        _ = crate::restore::run_restore_controller(client.clone(), restore_config) => {}
        _ = crate::locations::run_location_controller(client.clone(), ns.clone(), config.store_validation_frequency, metrics.clone()) => {}
        _ = run_backup_controller(client.clone(), backup_config) => {}
        _ = crate::delete::run_delete_controller(client.clone(), ns.clone(), metrics.clone()) => {}
        _ = crate::metrics::run_totals(client.clone(), ns.clone(), metrics.clone()) => {}
        result = http_server => {
            if let Err(e) = result {
                return Err(ServerError::Metrics(e));
            }
        }
        _ = crate::gc::run_gc_controller(client.clone(), ns.clone(), config.garbage_collection_frequency) => {}
        _ = crate::sync::run_sync_controller(client.clone(), ns.clone(), config.backup_sync_period) => {}
        _ = crate::download::run_download_controller(client.clone(), ns.clone(), local_downloads.clone()) => {}
        _ = crate::status::run_status_controller(client.clone(), ns.clone()) => {}
        _ = crate::pod_volume::maintenance::run_maintenance_controller(client.clone(), ns.clone()) => {}
        lost = async {
            match &config.leader_election {
                Some(election) => election.keep(&client, &ns).await,
                None => std::future::pending().await,
            }
        } => return Err(ServerError::Leader(lost)),
        _ = &mut shutdown => {
            tracing::info!("shutting down");
        }
    }
    // A clean stop: what was running is marked Failed now, with a reason that says so, instead of
    // being found InProgress by the next start; and the next leader need not wait for the lease.
    fail_in_flight(&client, &ns).await;
    if let Some(election) = &config.leader_election {
        election.release(&client, &ns).await;
    }
    Ok(())
}

/// Why a backup or restore running at a clean shutdown failed.
pub const SHUTDOWN_FAILURE: &str =
    "velero server was shut down while this was running; run it again";

async fn fail_in_flight(client: &Client, namespace: &str) {
    let failed = tokio::join!(
        fail_interrupted_backups(client, namespace, SHUTDOWN_FAILURE),
        crate::restore::fail_interrupted_restores(client, namespace, SHUTDOWN_FAILURE),
    );
    for result in [failed.0, failed.1] {
        if let Err(e) = result {
            tracing::warn!("marking in-flight work failed at shutdown: {e}");
        }
    }
}
