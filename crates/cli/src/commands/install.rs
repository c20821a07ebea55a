//! `velero install`: render everything a cluster needs, print it, and (unless `--dry-run`) apply it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args};
use velero_install::{InstallOptions, Resources};

use crate::client::GlobalArgs;
use crate::flags::{parse_duration, parse_map};
use crate::output::{self, Format};

#[derive(Args, Debug)]
#[command(
    long_about = "Install Velero onto a Kubernetes cluster using the supplied provider information, such as\nthe provider's name, a bucket name, and a file containing the credentials to access that bucket.\nA prefix within the bucket and configuration for the backup store location may also be supplied.\nAll required CustomResourceDefinitions will be installed to the server, as well as the\nVelero Deployment and associated resources. Applying the same install twice changes nothing."
)]
pub struct InstallArgs {
    /// Provider name for backup and volume storage (aws, gcp, azure or local)
    #[arg(long)]
    provider: Option<String>,
    /// Name of the object storage bucket where backups should be stored
    #[arg(long)]
    bucket: Option<String>,
    /// Prefix under which all Velero data should be stored within the bucket. Optional.
    #[arg(long)]
    prefix: Option<String>,
    /// File containing credentials for backup and volume provider. If not specified, --no-secret must be used for confirmation. Optional.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Flag indicating if a secret should be created. Must be used as confirmation if --secret-file is not provided. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    no_secret: bool,
    /// Flag indicating if a default backup location should be created. Must be used as confirmation if --bucket or --provider are not provided. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    no_default_backup_location: bool,
    /// Configuration to use for the backup storage location. Format is key1=value1,key2=value2
    #[arg(long, value_parser = parse_map, default_value = "")]
    backup_location_config: BTreeMap<String, String>,
    /// Configuration to use for the volume snapshot location. Format is key1=value1,key2=value2
    #[arg(long, value_parser = parse_map, default_value = "")]
    snapshot_location_config: BTreeMap<String, String>,
    /// Whether or not to create snapshot location automatically. Set to false if you do not plan to create volume snapshots via a storage provider.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = true)]
    use_volume_snapshots: bool,
    /// Image to use for the Velero server pods. Optional.
    #[arg(long)]
    image: Option<String>,
    /// Plugin container images to install into the Velero Deployment (providers are built in, so this is rarely needed)
    #[arg(long, value_delimiter = ',')]
    plugins: Vec<String>,
    /// Annotations to add to the Velero pods. Optional. Format is key1=value1,key2=value2
    #[arg(long, value_parser = parse_map, default_value = "")]
    pod_annotations: BTreeMap<String, String>,
    /// Labels to add to the Velero pods. Optional. Format is key1=value1,key2=value2
    #[arg(long, value_parser = parse_map, default_value = "")]
    pod_labels: BTreeMap<String, String>,
    /// Annotations to add to the Velero ServiceAccount. Optional. Format is key1=value1,key2=value2
    #[arg(long, value_parser = parse_map, default_value = "")]
    sa_annotations: BTreeMap<String, String>,
    /// ServiceAccountName to be set to the Velero pods; it must exist, with its role binding, before the installation. Optional.
    #[arg(long)]
    service_account_name: Option<String>,
    /// CPU request for Velero pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "500m")]
    velero_pod_cpu_request: String,
    /// Memory request for Velero pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "128Mi")]
    velero_pod_mem_request: String,
    /// CPU limit for Velero pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "1000m")]
    velero_pod_cpu_limit: String,
    /// Memory limit for Velero pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "512Mi")]
    velero_pod_mem_limit: String,
    /// Run the server in restore-only mode. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    restore_only: bool,
    /// Generate resources, but don't send them to the cluster. Use with -o. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    dry_run: bool,
    /// Accepted for compatibility: resources are always applied with server-side apply.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    apply: bool,
    /// Wait for Velero deployment to be ready. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    wait: bool,
    /// How long --wait waits for the Deployment
    #[arg(long, default_value = "3m", value_parser = parse_duration, hide = true)]
    wait_timeout: velero_api::Duration,
    /// Only generate CustomResourceDefinition resources. Useful for updating CRDs for an existing Velero install.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    crds_only: bool,
    /// File containing a certificate bundle to use when verifying TLS connections to the object store. Optional.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Bool flag to configure Velero server to use pod volume file system backup by default for all volumes on all backups. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    default_volumes_to_fs_backup: bool,
    /// The type of uploader to transfer the data of pod volumes, supported values: 'kopia' (default), 'restic' (velero-rs: restic's repository format)
    #[arg(long)]
    uploader_type: Option<String>,
    /// Bool flag to configure Velero server to move data by default for all snapshots supporting data movement. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    default_snapshot_move_data: bool,
    /// Skip the first scheduled backup immediately after creating a schedule. Default is false (don't skip).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    schedule_skip_immediately: bool,
    /// How often the garbage collection runs for expired backups.(default 1h)
    #[arg(long, value_parser = parse_duration)]
    garbage_collection_frequency: Option<velero_api::Duration>,
    /// How often 'maintain' is run for backup repositories by default.
    #[arg(long, value_parser = parse_duration)]
    default_repo_maintain_frequency: Option<velero_api::Duration>,
    /// How long to wait for pod volume operations to complete before timing out(default 4h). Optional.
    #[arg(long, value_parser = parse_duration)]
    pod_volume_operation_timeout: Option<velero_api::Duration>,
    /// Number of worker threads to process ItemBlocks. Default is one. Optional.
    #[arg(long)]
    item_block_worker_count: Option<u32>,
    /// Number of backups to process concurrently. Default is one. Optional.
    #[arg(long)]
    concurrent_backups: Option<u32>,
    /// Priority class name for the Velero server deployment. Optional.
    #[arg(long)]
    server_priority_class_name: Option<String>,
    /// Create node-agent daemonset. Optional.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    use_node_agent: bool,
    /// Use privileged mode for the node agent. Optional. Required to backup block devices.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    privileged_node_agent: bool,
    /// Kubelet root directory for the node agent. Optional.
    #[arg(long, default_value = velero_install::DEFAULT_KUBELET_ROOT_DIR)]
    kubelet_root_dir: String,
    /// CPU request for node-agent pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "0")]
    node_agent_pod_cpu_request: String,
    /// Memory request for node-agent pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "0")]
    node_agent_pod_mem_request: String,
    /// CPU limit for node-agent pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "0")]
    node_agent_pod_cpu_limit: String,
    /// Memory limit for node-agent pod. A value of "0" is treated as unbounded. Optional.
    #[arg(long, default_value = "0")]
    node_agent_pod_mem_limit: String,
    /// Output display format. For create commands, display the object but do not send it to the server. Valid formats are 'table', 'json', and 'yaml'. 'table' is not valid for the install command.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

fn read_file(flag: &str, path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read {flag} {}: check the path and its permissions",
            path.display()
        )
    })
}

impl InstallArgs {
    /// `features` is the global `--features`: on `install` Velero uses it for the server's flags.
    fn to_options(
        &self,
        namespace: String,
        features: Vec<String>,
    ) -> anyhow::Result<InstallOptions> {
        let secret_data = match &self.secret_file {
            Some(path) => Some(read_file("--secret-file", path)?),
            None => None,
        };
        let ca_cert = match &self.cacert {
            Some(path) => Some(read_file("--cacert", path)?),
            None => None,
        };
        Ok(InstallOptions {
            namespace,
            image: self
                .image
                .clone()
                .unwrap_or_else(velero_install::default_image),
            provider: self.provider.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone().map(|p| p.trim_matches('/').to_string()),
            backup_location_config: self.backup_location_config.clone(),
            snapshot_location_config: self.snapshot_location_config.clone(),
            secret_data,
            no_secret: self.no_secret,
            no_default_backup_location: self.no_default_backup_location,
            use_volume_snapshots: self.use_volume_snapshots,
            ca_cert,
            pod_annotations: self.pod_annotations.clone(),
            pod_labels: self.pod_labels.clone(),
            service_account_annotations: self.sa_annotations.clone(),
            service_account_name: self.service_account_name.clone(),
            resources: Resources {
                cpu_request: self.velero_pod_cpu_request.clone(),
                mem_request: self.velero_pod_mem_request.clone(),
                cpu_limit: self.velero_pod_cpu_limit.clone(),
                mem_limit: self.velero_pod_mem_limit.clone(),
            },
            features,
            default_volumes_to_fs_backup: self.default_volumes_to_fs_backup,
            default_snapshot_move_data: self.default_snapshot_move_data,
            schedule_skip_immediately: self.schedule_skip_immediately,
            restore_only: self.restore_only,
            uploader_type: self.uploader_type.clone(),
            garbage_collection_frequency: self.garbage_collection_frequency,
            default_repo_maintain_frequency: self.default_repo_maintain_frequency,
            pod_volume_operation_timeout: self.pod_volume_operation_timeout,
            item_block_worker_count: self.item_block_worker_count,
            concurrent_backups: self.concurrent_backups,
            server_priority_class_name: self.server_priority_class_name.clone(),
            plugins: self.plugins.clone(),
            crds_only: self.crds_only,
            use_node_agent: self.use_node_agent,
            kubelet_root_dir: self.kubelet_root_dir.clone(),
            privileged_node_agent: self.privileged_node_agent,
            node_agent_resources: Resources {
                cpu_request: self.node_agent_pod_cpu_request.clone(),
                mem_request: self.node_agent_pod_mem_request.clone(),
                cpu_limit: self.node_agent_pod_cpu_limit.clone(),
                mem_limit: self.node_agent_pod_mem_limit.clone(),
            },
        })
    }
}

pub async fn run(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let features = global
        .features
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let options = args.to_options(namespace.clone(), features)?;
    options.validate()?;

    if let Some(format) = args.output {
        output::print(&options.render_list(), format, &mut std::io::stdout())?;
    }
    if args.dry_run {
        return Ok(());
    }
    let client = global.client().await?;
    let hint = format!("Use `kubectl logs deploy/velero -n {namespace}` to check the deploy logs");
    let objects = options.render();
    let mut out = std::io::stdout();
    velero_install::apply(&client, &objects, &mut out)
        .await
        .with_context(|| format!("error installing Velero. {hint}"))?;
    if !options.crds_only {
        // Velero leaves the repositories' password to the server, which writes a well-known one
        // (velero#1053); a random one is made here once, and an existing one is kept.
        velero_podvolume::ensure_password(&client, &namespace)
            .await
            .with_context(|| format!("error installing Velero. {hint}"))?;
    }
    if args.wait && !options.crds_only {
        let timeout = args
            .wait_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(180));
        let mut waits = vec![(
            "Waiting for Velero deployment to be ready.",
            velero_install::Workload::Server,
        )];
        if options.use_node_agent {
            waits.push((
                "Waiting for node-agent daemonset to be ready.",
                velero_install::Workload::NodeAgent,
            ));
        }
        for (message, workload) in waits {
            println!("{message}");
            velero_install::wait_for_ready(&client, &namespace, workload, timeout)
                .await
                .with_context(|| format!("error installing Velero. {hint}"))?;
        }
    }
    if options.crds_only {
        println!("Velero CRDs are installed! ⛵");
        return Ok(());
    }
    if args.secret_file.is_none() {
        println!("\nNo secret file was specified, no Secret created.\n");
    }
    if options.no_default_backup_location {
        println!(
            "\nNo bucket and provider were specified, no default backup storage location created.\n"
        );
    }
    println!(
        "Velero is installed! ⛵ Use 'kubectl logs deployment/velero -n {namespace}' to view the status."
    );
    Ok(())
}
