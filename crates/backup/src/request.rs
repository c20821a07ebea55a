//! A backup request, prepared once (Velero's pkg/backup/request.go `Request`, filled by
//! pkg/controller/backup_controller.go `prepareBackupRequest`): the spec as the backup records it,
//! its resource policies, then the cluster's resource types, the selection and the hooks resolved
//! against them. The backup controller and `velero backup diff` both start from it; whatever runs
//! a backup's items (the engine, item actions, plugins) reads it instead of a list of arguments.
//!
//! Two steps, because Velero fails them differently: [`Prepared::new`] is validation (its errors
//! make a `FailedValidation` backup, nothing is written); [`Prepared::resolve`] runs once the
//! backup is `InProgress`, and its error fails the backup with a log in the location.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use velero_api::v1::{Backup, BackupSpec};
use velero_cluster::api::ApiReader;
use velero_cluster::discovery::Discovery;
use velero_hooks::backup::BackupHooks;
use velero_resource_policies::ResourcePolicies;

use crate::selection::{BackupSelection, prepare_spec};

/// Velero's message when a policy's include/exclude filters meet the old filter fields.
const OLD_FILTERS_WITH_POLICY: &str = "include-resources, exclude-resources and include-cluster-resources are old filter parameters.\nThey cannot be used with include-exclude policies.";

/// A backup whose spec has been prepared and validated.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The Backup with its spec prepared (namespaces labelled `velero.io/exclude-from-backup`
    /// excluded, Velero's auto-exclusions): what the backup records and what it selects.
    pub backup: Backup,
    /// The resource policies its spec names, if it names any and they could be read.
    pub policies: Option<ResourcePolicies>,
    /// Velero's validation errors, worded as Velero words them; empty when it may run.
    pub errors: Vec<String>,
}

/// A prepared backup resolved against the cluster: everything a run needs.
pub struct Request {
    pub backup: Backup,
    pub policies: Option<ResourcePolicies>,
    /// The cluster's resource types, with their preferred versions.
    pub discovery: Discovery,
    /// The backup's filters resolved against `discovery` and the cluster's namespaces.
    pub selection: BackupSelection,
    /// The spec's hooks (and the pods' hook annotations), their selectors resolved.
    pub hooks: Arc<BackupHooks>,
}

/// Why a prepared backup could not be resolved against the cluster; the message is Velero's.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("error discovering API resources: {0}")]
    Discovery(#[source] kube::Error),
    #[error("error resolving the backup's filters: {0}")]
    Selection(#[source] crate::selection::SelectionError),
    #[error("error getting resource hooks: {0}")]
    Hooks(#[source] velero_hooks::SelectorError),
}

impl Prepared {
    /// Prepares `backup` (whose server defaults — TTL, location — are already applied) in the
    /// server's `namespace`, where its resource policy ConfigMap is.
    pub async fn new(client: &kube::Client, namespace: &str, backup: &Backup) -> Self {
        let reader = ApiReader::new(client.clone());
        let (spec, mut errors) = prepare_spec(&reader, &backup.spec).await;
        let policies = match resource_policies(client, namespace, &spec).await {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if policies
            .as_ref()
            .is_some_and(|p| p.include_exclude().is_some())
            && velero_filters::uses_old_resource_filters(&spec)
        {
            errors.push(OLD_FILTERS_WITH_POLICY.into());
        }
        let mut backup = backup.clone();
        backup.spec = spec;
        Prepared {
            backup,
            policies,
            errors,
        }
    }

    /// Resolves the prepared backup against the cluster as it is now.
    pub async fn resolve(self, client: &kube::Client) -> Result<Request, ResolveError> {
        let reader = ApiReader::new(client.clone());
        let discovery = velero_cluster::discovery::discover(client)
            .await
            .map_err(ResolveError::Discovery)?;
        let selection = BackupSelection::new(
            &reader,
            &discovery,
            &self.backup.spec,
            self.policies.as_ref().and_then(|p| p.include_exclude()),
        )
        .await
        .map_err(ResolveError::Selection)?;
        let resolve = |entry: &str| discovery.resolve(entry).map(|r| r.group_resource());
        let hooks = BackupHooks::new(client.clone(), self.backup.spec.hooks.as_ref(), &resolve)
            .map_err(ResolveError::Hooks)?;
        Ok(Request {
            backup: self.backup,
            policies: self.policies,
            discovery,
            selection,
            hooks: Arc::new(hooks),
        })
    }
}

impl Request {
    /// The spec as prepared.
    pub fn spec(&self) -> &BackupSpec {
        &self.backup.spec
    }
}

/// The resource policies ConfigMap the spec names (Velero's `GetResourcePoliciesFromBackup`):
/// `None` when it names none; an error, which fails the backup's validation, when it cannot be
/// read or used.
async fn resource_policies(
    client: &kube::Client,
    namespace: &str,
    spec: &BackupSpec,
) -> Result<Option<ResourcePolicies>, String> {
    let Some(reference) = spec
        .resource_policy
        .as_ref()
        .filter(|r| r.kind.eq_ignore_ascii_case("configmap"))
    else {
        return Ok(None);
    };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = maps.get(&reference.name).await.map_err(|e| {
        format!(
            "fail to get ResourcePolicies {namespace}/{} ConfigMap with error {e}",
            reference.name
        )
    })?;
    ResourcePolicies::from_config_map_data(&map.data.unwrap_or_default())
        .map(Some)
        .map_err(|e| {
            format!(
                "fail to read the ResourcePolicies from ConfigMap {namespace}/{} with error {e}",
                reference.name
            )
        })
}
