//! What `velero install` puts into a cluster, and how it gets there.
//!
//! [`InstallOptions::render`] builds the objects (CRDs first, then the namespace, RBAC, credentials,
//! locations and the server Deployment) exactly as Velero names and labels them; [`apply`] sends
//! them with server-side apply, so running an install twice changes nothing; [`uninstall`] removes
//! what install created.

mod apply;
mod options;
mod render;

pub use apply::{
    ApplyError, ApplyOutcome, Change, Workload, apply, uninstall, wait_for_crds_established,
    wait_for_ready,
};
pub use options::{
    DEFAULT_KUBELET_ROOT_DIR, InstallError, InstallOptions, Resources, SUPPORTED_PROVIDERS,
    normalize_provider,
};

/// Label Velero puts on everything it installs; uninstall finds CRDs by it.
pub const COMPONENT_LABEL: (&str, &str) = ("component", "velero");

/// Name of the Secret holding the object-store credentials, and its key.
pub const CREDENTIALS_SECRET: &str = "cloud-credentials";
pub const CREDENTIALS_KEY: &str = "cloud";

/// Image of the server Deployment unless `--image` says otherwise.
pub fn default_image() -> String {
    format!("velero-rs/velero:v{}", env!("CARGO_PKG_VERSION"))
}

/// Name of the ClusterRoleBinding Velero creates for a namespace (`velero`, or `velero-<ns>`).
pub fn cluster_role_binding_name(namespace: &str) -> String {
    if namespace == velero_api::DEFAULT_NAMESPACE {
        "velero".to_string()
    } else {
        format!("velero-{namespace}")
    }
}
