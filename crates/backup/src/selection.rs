//! A Backup's filters, resolved against the cluster, in the form the engine asks for them.

use std::collections::BTreeMap;

use serde_json::Value;
use velero_api::v1::BackupSpec;

use crate::engine::Selection;
use velero_cluster::api::ApiReader;
use velero_cluster::discovery::{DiscoveredResource, Discovery};
use velero_filters::selector::BackupSelector;
use velero_filters::{
    GroupResource, ListScope, NamespaceCandidate, NamespaceFilter, ResolvedResource,
    ResourceFilter, keep_namespace, prepare_backup_spec,
};

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("listing namespaces: {0}")]
    Namespaces(#[source] kube::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Everything a backup selects, decided once when it starts.
pub struct BackupSelection {
    spec: BackupSpec,
    namespaces: NamespaceFilter,
    resources: ResourceFilter,
    selector: BackupSelector,
    missing: Vec<String>,
}

/// Velero's `prepareBackupRequest` for what a backup selects: the namespaces labelled
/// `velero.io/exclude-from-backup=true` join `excludedNamespaces`, then
/// [`prepare_backup_spec`]'s auto-exclusions and validation. Returns the prepared spec and the
/// validation errors; the backup controller writes the spec back to the Backup, as Velero does,
/// and hands it to [`BackupSelection::new`].
pub async fn prepare_spec(reader: &ApiReader, spec: &BackupSpec) -> (BackupSpec, Vec<String>) {
    let mut spec = spec.clone();
    let mut errors = Vec::new();
    let path = format!(
        "/api/v1/namespaces?labelSelector={}%3Dtrue",
        velero_api::labels::EXCLUDE_FROM_BACKUP.replace('/', "%2F")
    );
    match reader.get_as::<Value>(&path).await {
        Ok(list) => {
            let names = list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|ns| ns.pointer("/metadata/name").and_then(Value::as_str));
            let excludes = spec.excluded_namespaces.get_or_insert_with(Vec::new);
            for name in names {
                if !excludes.iter().any(|e| e == name) {
                    excludes.push(name.to_string());
                }
            }
            if excludes.is_empty() {
                spec.excluded_namespaces = None;
            }
        }
        Err(e) => errors.push(format!("error getting namespace list: {e}")),
    }
    errors.extend(prepare_backup_spec(&mut spec));
    (spec, errors)
}

impl BackupSelection {
    /// Resolves a spec [`prepare_spec`] prepared: namespace wildcards expanded against the
    /// namespaces that exist, resource names through discovery.
    pub async fn new(
        reader: &ApiReader,
        discovery: &Discovery,
        spec: &BackupSpec,
    ) -> Result<Self, SelectionError> {
        let spec = spec.clone();
        let listed = reader
            .list_all("/api/v1/namespaces")
            .await
            .map_err(SelectionError::Namespaces)?;
        let name_of = |ns: &Value| {
            ns.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let existing: Vec<String> = listed.iter().map(name_of).collect();
        let excludes = spec.excluded_namespaces.clone().unwrap_or_default();
        let includes = spec
            .included_namespaces
            .clone()
            .unwrap_or_else(|| vec!["*".into()]);
        let namespaces = NamespaceFilter::new(&includes, &excludes, &existing)
            .map_err(|e| SelectionError::Invalid(e.to_string()))?;
        let resolver = |entry: &str| {
            discovery.resolve(entry).map(|r| ResolvedResource {
                group: r.group.clone(),
                resource: r.resource.clone(),
                namespaced: r.namespaced,
            })
        };
        let resources = ResourceFilter::from_spec(&spec, &namespaces, &resolver);
        let selector =
            BackupSelector::from_spec(&spec).map_err(|e| SelectionError::Invalid(e.to_string()))?;
        let missing = namespaces.missing_includes(&existing);
        Ok(BackupSelection {
            spec,
            namespaces,
            resources,
            selector,
            missing,
        })
    }

    /// The prepared spec the selection was resolved from.
    pub fn spec(&self) -> &BackupSpec {
        &self.spec
    }
}

fn group_resource(r: &DiscoveredResource) -> GroupResource {
    GroupResource::new(r.group.clone(), r.resource.clone())
}

impl Selection for BackupSelection {
    fn include_type(&self, r: &DiscoveredResource) -> bool {
        self.resources
            .should_include(&group_resource(r), r.namespaced)
    }

    fn namespace_scopes(&self) -> Vec<Option<String>> {
        match self.namespaces.namespaces_to_list() {
            ListScope::AllNamespaces => vec![None],
            ListScope::Namespaces(names) => names.into_iter().map(Some).collect(),
        }
    }

    fn include_namespace(&self, namespace: &str) -> bool {
        self.namespaces.should_include(namespace)
    }

    fn label_selectors(&self) -> Vec<Option<String>> {
        self.selector
            .list_selectors()
            .into_iter()
            .map(|s| (!s.is_empty()).then_some(s))
            .collect()
    }

    fn exclude_additional(&self, r: &DiscoveredResource) -> bool {
        self.resources
            .should_exclude_additional(&group_resource(r), r.namespaced)
    }

    fn keep_namespace(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        active: bool,
        has_items: bool,
    ) -> bool {
        let candidate = NamespaceCandidate {
            name,
            labels,
            active,
            has_collected_items: has_items,
        };
        keep_namespace(&candidate, &self.namespaces, &self.selector)
    }

    fn item_order(&self, r: &DiscoveredResource) -> Option<String> {
        self.spec
            .ordered_resources
            .as_ref()?
            .get(&r.resource)
            .cloned()
    }

    fn missing_namespaces(&self) -> Vec<String> {
        self.missing.clone()
    }
}
