//! What `backup contents`, `backup get-item` and `backup diff` share: a finished backup's tarball,
//! opened as a stream through a DownloadRequest, the items in it, and resource names as users
//! type them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use kube::api::Api;
use serde::Deserialize;
use serde_json::Value;
use velero_api::v1::{Backup, BackupPhase, DownloadTargetKind};
use velero_cluster::discovery::Discovery;

use crate::download::{self, Stream, TlsOptions};
use crate::flags::parse_duration;

/// Flags of every command that reads a backup's tarball.
#[derive(Args, Debug)]
pub struct TarballFlags {
    /// Maximum time to wait to process download request
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub timeout: velero_api::Duration,
    #[command(flatten)]
    pub tls: TlsOptions,
}

/// The Backup named `name`, refused with the wording of `backup logs` and `download` when it does
/// not exist, and plainly when it has no tarball to read. `item_flag` is the command's flag for
/// the items' namespace, named when `-n` looks like it was meant for the items.
pub async fn finished_backup(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    item_flag: Option<&str>,
) -> anyhow::Result<Backup> {
    let api: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let Some(backup) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading backup {name:?}"))?
    else {
        // -n is Velero's own namespace, as in every velero command; a namespace without a
        // backup storage location is not where a Velero server keeps its backups.
        let locations: Api<velero_api::v1::BackupStorageLocation> =
            Api::namespaced(client.clone(), namespace);
        let velero_runs_here = locations
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .map(|list| !list.items.is_empty())
            .unwrap_or(true);
        if velero_runs_here {
            bail!("backup {name:?} does not exist");
        }
        let hint = item_flag
            .map(|flag| format!("; to choose the items' namespace use {flag} {namespace}"))
            .unwrap_or_default();
        bail!(
            "backup {name:?} does not exist in namespace {namespace:?}, which has no backup storage location: -n/--namespace is the namespace Velero runs in, not the items' namespace{hint}"
        );
    };
    let phase = backup.phase().unwrap_or(BackupPhase::New);
    // The tarball is uploaded before these phases are entered and never for the others (a failed
    // backup uploads its log but no tarball).
    let stored = matches!(
        phase,
        BackupPhase::Completed
            | BackupPhase::PartiallyFailed
            | BackupPhase::WaitingForPluginOperations
            | BackupPhase::WaitingForPluginOperationsPartiallyFailed
            | BackupPhase::Finalizing
            | BackupPhase::FinalizingPartiallyFailed
    );
    if !stored {
        bail!(
            "backup {name:?} has no stored items to read: its phase is {}; only a finished backup (Completed or PartiallyFailed) has them",
            phase.as_str()
        );
    }
    Ok(backup)
}

/// The backup's tarball as a stream, never whole: it can be larger than memory.
pub async fn open_tarball(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    flags: &TarballFlags,
) -> anyhow::Result<Stream> {
    let timeout = flags.timeout.to_std().unwrap_or(Duration::from_secs(60));
    let kind = DownloadTargetKind::BackupContents;
    match download::open_download(client, namespace, kind, name, timeout, &flags.tls).await {
        Err(e) if download::is_not_found(&e) => Err(anyhow!(
            "the tarball of backup {name:?} is not in its backup storage location"
        )),
        other => other,
    }
}

/// Where an item sits in the tarball: its type as stored (`deployments.apps`, `configmaps`), its
/// namespace (`None` when cluster-scoped) and its name. Only the version-less copy of an item
/// counts; the copies under version directories are the same objects again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub group_resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Identity {
    pub fn from_entry(path: &str) -> Option<Self> {
        let item = velero_archive::parse_legacy_path(path)?;
        Some(Identity {
            group_resource: item.group_resource.to_string(),
            namespace: item.namespace.map(str::to_string),
            name: item.name.to_string(),
        })
    }

    /// `deployments.apps/web`, as kubectl names an object of a type.
    pub fn type_and_name(&self) -> String {
        format!("{}/{}", self.group_resource, self.name)
    }

    /// The item for a message: `deployments.apps/web in namespace shop`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} in namespace {ns}", self.type_and_name()),
            None => format!("{} (cluster-scoped)", self.type_and_name()),
        }
    }
}

/// What `contents` shows of an item and filters on, read without building the whole object.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<HeadMetadata>,
}

#[derive(Deserialize, Default)]
pub struct HeadMetadata {
    pub labels: Option<BTreeMap<String, String>>,
}

impl Head {
    pub fn parse(identity: &Identity, data: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(data).with_context(|| {
            format!(
                "the backup's item {} is not a JSON object",
                identity.describe()
            )
        })
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }
}

/// An item of the tarball as a JSON value, with what went wrong if it is not one.
pub fn parse_item(identity: &Identity, data: &[u8]) -> anyhow::Result<Value> {
    serde_json::from_slice(data).with_context(|| {
        format!(
            "the backup's item {} is not valid JSON",
            identity.describe()
        )
    })
}

/// The cluster's types, to resolve the names users type; `None` when discovery fails, and then
/// only names exactly as stored in the tarball (`deployments.apps`) match.
pub async fn discovery(client: &kube::Client) -> Option<Discovery> {
    match velero_cluster::discovery::discover(client).await {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!(
                "Warning: discovering the cluster's resource types failed ({e}); resource names must be given as stored in the backup, such as deployments.apps"
            );
            None
        }
    }
}

/// A type as a user typed it (`deployments`, `deploy`, `deployments.apps`, `cm`): resolved through
/// the cluster's discovery to the group-resource the tarball stores it under, and also taken
/// as typed, so a type this cluster does not serve still matches when written as stored.
#[derive(Clone, Debug)]
pub struct ResourceName {
    typed: String,
    resolved: Option<String>,
}

impl ResourceName {
    pub fn new(typed: &str, discovery: Option<&Discovery>) -> Self {
        let typed = typed.trim().to_ascii_lowercase();
        let resolved = discovery
            .and_then(|d| d.resolve(&typed))
            .map(|r| r.group_resource());
        ResourceName { typed, resolved }
    }

    pub fn matches(&self, group_resource: &str) -> bool {
        self.resolved.as_deref() == Some(group_resource) || self.typed == group_resource
    }

    /// The name to show in messages: the resolved one when there is one.
    pub fn shown(&self) -> &str {
        self.resolved.as_deref().unwrap_or(&self.typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use velero_cluster::discovery::DiscoveredResource;

    fn discovered() -> Discovery {
        let resource =
            |group: &str, resource: &str, singular: &str, short: &[&str]| DiscoveredResource {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                singular: singular.into(),
                kind: String::new(),
                short_names: short.iter().map(|s| s.to_string()).collect(),
                namespaced: true,
            };
        Discovery {
            resources: vec![
                resource("", "configmaps", "configmap", &["cm"]),
                resource("apps", "deployments", "deployment", &["deploy"]),
            ],
            failed_groups: Vec::new(),
        }
    }

    #[test]
    fn typed_names_resolve_to_the_stored_group_resource() {
        let d = discovered();
        for typed in ["deployments", "deploy", "Deployment", "deployments.apps"] {
            let name = ResourceName::new(typed, Some(&d));
            assert!(name.matches("deployments.apps"), "{typed}");
            assert!(!name.matches("deployments.extensions"), "{typed}");
        }
        assert!(ResourceName::new("cm", Some(&d)).matches("configmaps"));
        // Without discovery, or for a type the cluster does not serve, only the stored name does.
        assert!(ResourceName::new("widgets.example.com", Some(&d)).matches("widgets.example.com"));
        assert!(ResourceName::new("deployments.apps", None).matches("deployments.apps"));
        assert!(!ResourceName::new("deploy", None).matches("deployments.apps"));
    }

    #[test]
    fn identities_come_from_version_less_paths_only() {
        let id = Identity::from_entry("resources/deployments.apps/namespaces/shop/web.json");
        assert_eq!(
            id.as_ref().map(Identity::describe).as_deref(),
            Some("deployments.apps/web in namespace shop")
        );
        assert!(
            Identity::from_entry(
                "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json"
            )
            .is_none()
        );
        assert!(Identity::from_entry("metadata/version").is_none());
        let cluster = Identity::from_entry("resources/namespaces/cluster/shop.json");
        assert_eq!(
            cluster.map(|c| c.describe()).as_deref(),
            Some("namespaces/shop (cluster-scoped)")
        );
    }
}
