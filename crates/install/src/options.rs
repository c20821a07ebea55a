//! The options of `velero install` and their validation.

use std::collections::BTreeMap;

use velero_api::Duration;

/// Object-store providers built into velero-rs. Velero's `velero.io/` prefix is accepted for each.
pub const SUPPORTED_PROVIDERS: &[&str] = &["aws", "azure", "gcp", "local"];

/// `velero.io/aws` and `aws` are the same provider; returns the short name when it is one we have.
pub fn normalize_provider(provider: &str) -> Option<&'static str> {
    let short = provider.strip_prefix("velero.io/").unwrap_or(provider);
    SUPPORTED_PROVIDERS.iter().copied().find(|p| *p == short)
}

/// CPU and memory requests and limits of the server pod; `"0"` means unbounded, as in Velero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: String,
    pub mem_request: String,
    pub cpu_limit: String,
    pub mem_limit: String,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu_request: "500m".into(),
            mem_request: "128Mi".into(),
            cpu_limit: "1000m".into(),
            mem_limit: "512Mi".into(),
        }
    }
}

impl Resources {
    /// No requests or limits: Velero's default for the node agent.
    pub fn unbounded() -> Self {
        Resources {
            cpu_request: "0".into(),
            mem_request: "0".into(),
            cpu_limit: "0".into(),
            mem_limit: "0".into(),
        }
    }
}

/// Velero's default `--kubelet-root-dir`.
pub const DEFAULT_KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";

#[derive(Clone, Debug, PartialEq)]
pub struct InstallOptions {
    pub namespace: String,
    pub image: String,
    pub provider: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub backup_location_config: BTreeMap<String, String>,
    pub snapshot_location_config: BTreeMap<String, String>,
    /// Contents of `--secret-file`; `None` with `--no-secret`.
    pub secret_data: Option<Vec<u8>>,
    pub no_secret: bool,
    pub no_default_backup_location: bool,
    pub use_volume_snapshots: bool,
    pub ca_cert: Option<Vec<u8>>,
    pub pod_annotations: BTreeMap<String, String>,
    pub pod_labels: BTreeMap<String, String>,
    pub service_account_annotations: BTreeMap<String, String>,
    /// An existing ServiceAccount to run as; when set, install creates neither it nor its binding.
    pub service_account_name: Option<String>,
    pub resources: Resources,
    pub features: Vec<String>,
    pub default_volumes_to_fs_backup: bool,
    pub default_snapshot_move_data: bool,
    pub schedule_skip_immediately: bool,
    pub restore_only: bool,
    pub uploader_type: Option<String>,
    pub garbage_collection_frequency: Option<Duration>,
    pub default_repo_maintain_frequency: Option<Duration>,
    pub pod_volume_operation_timeout: Option<Duration>,
    pub item_block_worker_count: Option<u32>,
    pub concurrent_backups: Option<u32>,
    pub server_priority_class_name: Option<String>,
    pub plugins: Vec<String>,
    pub crds_only: bool,
    /// Render the node-agent DaemonSet (file-system backup of pod volumes).
    pub use_node_agent: bool,
    /// The kubelet's root directory on the nodes; the agent mounts its `pods` directory.
    pub kubelet_root_dir: String,
    pub privileged_node_agent: bool,
    pub node_agent_resources: Resources,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: velero_api::DEFAULT_NAMESPACE.into(),
            image: crate::default_image(),
            provider: None,
            bucket: None,
            prefix: None,
            backup_location_config: BTreeMap::new(),
            snapshot_location_config: BTreeMap::new(),
            secret_data: None,
            no_secret: false,
            no_default_backup_location: false,
            use_volume_snapshots: true,
            ca_cert: None,
            pod_annotations: BTreeMap::new(),
            pod_labels: BTreeMap::new(),
            service_account_annotations: BTreeMap::new(),
            service_account_name: None,
            resources: Resources::default(),
            features: Vec::new(),
            default_volumes_to_fs_backup: false,
            default_snapshot_move_data: false,
            schedule_skip_immediately: false,
            restore_only: false,
            uploader_type: None,
            garbage_collection_frequency: None,
            default_repo_maintain_frequency: None,
            pod_volume_operation_timeout: None,
            item_block_worker_count: None,
            concurrent_backups: None,
            server_priority_class_name: None,
            plugins: Vec::new(),
            crds_only: false,
            use_node_agent: false,
            kubelet_root_dir: DEFAULT_KUBELET_ROOT_DIR.into(),
            privileged_node_agent: false,
            node_agent_resources: Resources::unbounded(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    #[error("--provider is required (one of: {})", SUPPORTED_PROVIDERS.join(", "))]
    MissingProvider,
    #[error(
        "--provider is required when --use-volume-snapshots is set to true (pass --use-volume-snapshots=false to install without a snapshot location)"
    )]
    MissingSnapshotProvider,
    #[error("unknown --provider {0:?}: velero-rs has the providers {providers} built in (a velero.io/ prefix is allowed)", providers = SUPPORTED_PROVIDERS.join(", "))]
    UnknownProvider(String),
    #[error(
        "--bucket is required: name the bucket (for the local provider, the directory) where backups are stored"
    )]
    MissingBucket,
    #[error(
        "bucket names cannot begin with a dash; bucket name was: {0} (an empty environment variable in the command line?)"
    )]
    BucketStartsWithDash(String),
    #[error("bucket {0:?} contains a '/': put the path part into --prefix instead")]
    BucketWithSlash(String),
    #[error("cannot use both {0} and --no-default-backup-location at the same time")]
    ConflictsWithNoDefaultLocation(&'static str),
    #[error("--snapshot-location-config must be empty when --use-volume-snapshots=false")]
    SnapshotConfigWithoutSnapshots,
    #[error(
        "--provider must be empty when using --no-default-backup-location and --use-volume-snapshots=false"
    )]
    ProviderWithNothingToConfigure,
    #[error("one of --secret-file or --no-secret is required")]
    SecretChoiceMissing,
    #[error("cannot use both --secret-file and --no-secret")]
    SecretChoiceConflict,
    #[error(
        "--uploader-type {0:?} is not supported: use kopia (Velero's, the default) or restic (restic's repository format, for restic's own tools)"
    )]
    UnknownUploader(String),
    #[error("{0} must be non-negative")]
    Negative(&'static str),
    #[error(
        "--kubelet-root-dir {0:?} {1}: give the kubelet's --root-dir on the nodes, an absolute path such as /var/lib/kubelet"
    )]
    InvalidKubeletRootDir(String, &'static str),
}

impl InstallOptions {
    /// Velero's checks of `velero install`, with velero-rs' provider check on top: every provider
    /// is built in, so a name we do not know is an error here rather than a server that never
    /// becomes ready.
    pub fn validate(&self) -> Result<(), InstallError> {
        if self.crds_only {
            return Ok(());
        }
        if self.use_node_agent {
            validate_kubelet_root_dir(&self.kubelet_root_dir)?;
        }
        if let Some(uploader) = self
            .uploader_type
            .as_ref()
            .filter(|u| !matches!(u.as_str(), "kopia" | "restic"))
        {
            return Err(InstallError::UnknownUploader(uploader.clone()));
        }
        let bucket = self.bucket.as_deref().unwrap_or_default();
        if bucket.starts_with('-') {
            return Err(InstallError::BucketStartsWithDash(bucket.to_string()));
        }
        let provider = self.provider.as_deref().filter(|p| !p.is_empty());
        if let Some(p) = provider.filter(|p| normalize_provider(p).is_none()) {
            return Err(InstallError::UnknownProvider(p.to_string()));
        }
        if self.no_default_backup_location {
            if !bucket.is_empty() {
                return Err(InstallError::ConflictsWithNoDefaultLocation("--bucket"));
            }
            if self.prefix.as_deref().is_some_and(|p| !p.is_empty()) {
                return Err(InstallError::ConflictsWithNoDefaultLocation("--prefix"));
            }
            if !self.backup_location_config.is_empty() {
                return Err(InstallError::ConflictsWithNoDefaultLocation(
                    "--backup-location-config",
                ));
            }
        } else {
            if provider.is_none() {
                return Err(InstallError::MissingProvider);
            }
            if bucket.is_empty() {
                return Err(InstallError::MissingBucket);
            }
            // The local provider's bucket is a directory path; object stores take a plain name.
            let local = provider.and_then(normalize_provider) == Some("local");
            let trimmed = bucket.trim_matches('/');
            if !local && trimmed.contains('/') && !trimmed.starts_with("arn:aws:s3:") {
                return Err(InstallError::BucketWithSlash(bucket.to_string()));
            }
        }
        if self.use_volume_snapshots {
            if provider.is_none() {
                return Err(InstallError::MissingSnapshotProvider);
            }
        } else if !self.snapshot_location_config.is_empty() {
            return Err(InstallError::SnapshotConfigWithoutSnapshots);
        }
        if self.no_default_backup_location && !self.use_volume_snapshots && provider.is_some() {
            return Err(InstallError::ProviderWithNothingToConfigure);
        }
        match (self.secret_data.is_some(), self.no_secret) {
            (false, false) => return Err(InstallError::SecretChoiceMissing),
            (true, true) => return Err(InstallError::SecretChoiceConflict),
            _ => {}
        }
        for (flag, value) in [
            (
                "--default-repo-maintain-frequency",
                self.default_repo_maintain_frequency,
            ),
            (
                "--garbage-collection-frequency",
                self.garbage_collection_frequency,
            ),
            (
                "--pod-volume-operation-timeout",
                self.pod_volume_operation_timeout,
            ),
        ] {
            if value.is_some_and(|d| d.as_nanos() < 0) {
                return Err(InstallError::Negative(flag));
            }
        }
        Ok(())
    }
}

/// The node agent mounts `<dir>/pods` from every node: a relative path would be resolved against
/// nothing on the node, and `..` or `/` would hand the agent far more of the host than pod volumes.
fn validate_kubelet_root_dir(dir: &str) -> Result<(), InstallError> {
    let invalid = |why| Err(InstallError::InvalidKubeletRootDir(dir.to_string(), why));
    if dir.is_empty() {
        return invalid("is empty");
    }
    if !dir.starts_with('/') {
        return invalid("is not an absolute path");
    }
    if dir.chars().any(|c| c.is_control()) {
        return invalid("contains control characters");
    }
    if dir
        .split('/')
        .any(|component| component == ".." || component == ".")
    {
        return invalid("contains . or .. components");
    }
    if dir.trim_end_matches('/').is_empty() {
        return invalid("is the root directory");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> InstallOptions {
        InstallOptions {
            provider: Some("aws".into()),
            bucket: Some("backups".into()),
            no_secret: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_install_is_valid() {
        assert_eq!(valid().validate(), Ok(()));
        let local = InstallOptions {
            provider: Some("velero.io/local".into()),
            use_volume_snapshots: false,
            ..valid()
        };
        assert_eq!(local.validate(), Ok(()));
    }

    #[test]
    fn each_bad_input_is_named() {
        let cases = [
            (
                InstallOptions {
                    provider: Some("s4".into()),
                    ..valid()
                },
                "unknown --provider \"s4\"",
            ),
            (
                InstallOptions {
                    provider: None,
                    ..valid()
                },
                "--provider is required",
            ),
            (
                InstallOptions {
                    bucket: None,
                    ..valid()
                },
                "--bucket is required",
            ),
            (
                InstallOptions {
                    bucket: Some("-x".into()),
                    ..valid()
                },
                "cannot begin with a dash",
            ),
            (
                InstallOptions {
                    bucket: Some("a/b".into()),
                    ..valid()
                },
                "--prefix",
            ),
            (
                InstallOptions {
                    no_secret: false,
                    ..valid()
                },
                "one of --secret-file or --no-secret",
            ),
            (
                InstallOptions {
                    secret_data: Some(b"x".to_vec()),
                    ..valid()
                },
                "cannot use both --secret-file and --no-secret",
            ),
            (
                InstallOptions {
                    no_default_backup_location: true,
                    ..valid()
                },
                "cannot use both --bucket and --no-default-backup-location",
            ),
            (
                InstallOptions {
                    uploader_type: Some("rsync".into()),
                    ..valid()
                },
                "use kopia (Velero's, the default) or restic",
            ),
            (
                InstallOptions {
                    use_volume_snapshots: false,
                    snapshot_location_config: [("region".into(), "x".into())].into(),
                    ..valid()
                },
                "--snapshot-location-config must be empty",
            ),
        ];
        for (options, want) in cases {
            let err = options.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn kubelet_root_dir_must_be_a_clean_absolute_path() {
        let with_agent = |dir: &str| InstallOptions {
            use_node_agent: true,
            kubelet_root_dir: dir.into(),
            ..valid()
        };
        for good in [
            "/var/lib/kubelet",
            "/data/k8s/kubelet/",
            "/var/lib/k0s/kubelet",
        ] {
            assert_eq!(with_agent(good).validate(), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("var/lib/kubelet", "absolute"),
            ("/var/lib/../../etc", ".."),
            ("/var/./lib", ". or .."),
            ("/", "root directory"),
            ("//", "root directory"),
            ("/var/lib/kube\nlet", "control characters"),
            ("/var/lib/kube\tlet", "control characters"),
        ] {
            let err = with_agent(bad).validate().unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("--kubelet-root-dir"), "{err}");
        }
        // Only checked when the agent is installed, as Velero uses it only there.
        let without = InstallOptions {
            kubelet_root_dir: "relative".into(),
            ..valid()
        };
        assert_eq!(without.validate(), Ok(()));
    }

    #[test]
    fn crds_only_needs_nothing_else() {
        let crds = InstallOptions {
            crds_only: true,
            ..Default::default()
        };
        assert_eq!(crds.validate(), Ok(()));
    }

    #[test]
    fn provider_aliases() {
        assert_eq!(normalize_provider("velero.io/aws"), Some("aws"));
        assert_eq!(normalize_provider("gcp"), Some("gcp"));
        assert_eq!(normalize_provider("minio"), None);
    }
}
