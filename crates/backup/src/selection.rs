//! A Backup's filters, resolved against the cluster, in the form the engine asks for them.

use std::collections::BTreeMap;

use serde_json::Value;
use velero_api::v1::BackupSpec;
use velero_resource_policies::IncludeExcludePolicy;

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
    /// What the backup log says of the filters as they were resolved (Velero's `Including …`).
    summary: Vec<String>,
    /// Resource names in the spec that no type the cluster serves answers to.
    unresolved: Vec<String>,
}

/// Types the backup excludes by itself (the VolumeSnapshot kinds), whether the cluster serves
/// them or not: not the user's to have spelled right.
fn auto_excluded(entry: &str) -> bool {
    velero_filters::AUTO_EXCLUDED_NAMESPACE_SCOPED
        .iter()
        .chain(velero_filters::AUTO_EXCLUDED_CLUSTER_SCOPED)
        .any(|auto| *auto == entry)
}

/// The spec's resource lists, by their field and `velero backup create` flag.
fn resource_lists(spec: &BackupSpec) -> [(&'static str, &'static str, &Option<Vec<String>>); 6] {
    [
        (
            "includedResources",
            "--include-resources",
            &spec.included_resources,
        ),
        (
            "excludedResources",
            "--exclude-resources",
            &spec.excluded_resources,
        ),
        (
            "includedNamespaceScopedResources",
            "--include-namespace-scoped-resources",
            &spec.included_namespace_scoped_resources,
        ),
        (
            "excludedNamespaceScopedResources",
            "--exclude-namespace-scoped-resources",
            &spec.excluded_namespace_scoped_resources,
        ),
        (
            "includedClusterScopedResources",
            "--include-cluster-scoped-resources",
            &spec.included_cluster_scoped_resources,
        ),
        (
            "excludedClusterScopedResources",
            "--exclude-cluster-scoped-resources",
            &spec.excluded_cluster_scoped_resources,
        ),
    ]
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
    ///
    /// A resource policies ConfigMap's `includeExcludePolicy` adds its types to the new-style
    /// filters the Backup leaves them out of.
    pub async fn new(
        reader: &ApiReader,
        discovery: &Discovery,
        spec: &BackupSpec,
        policy: Option<&IncludeExcludePolicy>,
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
        let resources = match policy {
            Some(policy) => {
                let combined = combine_with_policy(&spec, policy, &|entry| {
                    discovery.resolve(entry).map(|r| r.group_resource())
                });
                ResourceFilter::from_spec(&combined, &namespaces, &resolver)
            }
            None => ResourceFilter::from_spec(&spec, &namespaces, &resolver),
        };
        let selector =
            BackupSelector::from_spec(&spec).map_err(|e| SelectionError::Invalid(e.to_string()))?;
        let missing = namespaces.missing_includes(&existing);
        let mut summary = vec![
            format!(
                "Including namespaces: {}",
                namespaces.lists().includes_string()
            ),
            format!(
                "Excluding namespaces: {}",
                namespaces.lists().excludes_string()
            ),
        ];
        let mut unresolved = Vec::new();
        for (field, flag, entries) in resource_lists(&spec) {
            let Some(entries) = entries.as_ref().filter(|e| !e.is_empty()) else {
                continue;
            };
            let resolved: Vec<String> = entries
                .iter()
                .map(|entry| match discovery.resolve(entry) {
                    Some(r) => r.group_resource(),
                    None if entry == "*" || auto_excluded(entry) => entry.clone(),
                    None => {
                        unresolved.push(format!(
                            "{entry:?} in spec.{field} ({flag}) is not a resource type the cluster serves, so it matches nothing; check the name with kubectl api-resources"
                        ));
                        entry.clone()
                    }
                })
                .collect();
            summary.push(format!("{field} resolved to: {}", resolved.join(", ")));
        }
        Ok(BackupSelection {
            spec,
            namespaces,
            resources,
            selector,
            missing,
            summary,
            unresolved,
        })
    }

    /// The prepared spec the selection was resolved from.
    pub fn spec(&self) -> &BackupSpec {
        &self.spec
    }
}

/// Velero's `ScopeIncludesExcludes.CombineWithPolicy` (pkg/util/collections/includes_excludes.go):
/// each type the policy names joins the Backup's matching list unless the Backup already includes
/// or excludes it (the Backup wins). Types are compared as their resolved group-resource, so
/// `deploy` and `deployments.apps` are one type; names discovery does not know are dropped.
fn combine_with_policy(
    spec: &BackupSpec,
    policy: &IncludeExcludePolicy,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> BackupSpec {
    let mut combined = spec.clone();
    let merge = |includes: &mut Option<Vec<String>>,
                 excludes: &mut Option<Vec<String>>,
                 add_includes: &[String],
                 add_excludes: &[String]| {
        let named = |list: &Option<Vec<String>>, resolved: &str| {
            list.iter()
                .flatten()
                .any(|e| e == "*" || resolve(e).as_deref() == Some(resolved))
        };
        for (item, to_excludes) in add_excludes
            .iter()
            .map(|i| (i, true))
            .chain(add_includes.iter().map(|i| (i, false)))
        {
            let Some(resolved) = resolve(item) else {
                continue;
            };
            if named(includes, &resolved) || named(excludes, &resolved) {
                continue;
            }
            let list = if to_excludes {
                &mut *excludes
            } else {
                &mut *includes
            };
            list.get_or_insert_with(Vec::new).push(resolved);
        }
    };
    merge(
        &mut combined.included_namespace_scoped_resources,
        &mut combined.excluded_namespace_scoped_resources,
        &policy.included_namespace_scoped_resources,
        &policy.excluded_namespace_scoped_resources,
    );
    merge(
        &mut combined.included_cluster_scoped_resources,
        &mut combined.excluded_cluster_scoped_resources,
        &policy.included_cluster_scoped_resources,
        &policy.excluded_cluster_scoped_resources,
    );
    combined
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

    fn summary(&self) -> Vec<String> {
        self.summary.clone()
    }

    fn unresolved_resources(&self) -> Vec<String> {
        self.unresolved.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(entry: &str) -> Option<String> {
        match entry {
            "deploy" | "deployments" | "deployments.apps" => Some("deployments.apps".into()),
            "cm" | "configmaps" => Some("configmaps".into()),
            "events" => Some("events".into()),
            "secrets" => Some("secrets".into()),
            "nodes" => Some("nodes".into()),
            _ => None,
        }
    }

    #[test]
    fn the_policy_fills_in_what_the_backup_does_not_say() {
        let spec = BackupSpec {
            included_namespace_scoped_resources: Some(vec!["deploy".into()]),
            excluded_namespace_scoped_resources: Some(vec!["cm".into()]),
            ..Default::default()
        };
        let policy = IncludeExcludePolicy {
            included_namespace_scoped_resources: vec![
                "configmaps".into(),
                "secrets".into(),
                "unknown".into(),
            ],
            excluded_namespace_scoped_resources: vec!["deployments.apps".into(), "events".into()],
            excluded_cluster_scoped_resources: vec!["nodes".into()],
            ..Default::default()
        };
        let combined = combine_with_policy(&spec, &policy, &resolve);
        assert_eq!(
            combined.included_namespace_scoped_resources,
            Some(vec!["deploy".into(), "secrets".into()]),
            "the Backup's exclusion of configmaps and inclusion of deployments win"
        );
        assert_eq!(
            combined.excluded_namespace_scoped_resources,
            Some(vec!["cm".into(), "events".into()])
        );
        assert_eq!(
            combined.excluded_cluster_scoped_resources,
            Some(vec!["nodes".into()])
        );
        let everything = BackupSpec {
            included_namespace_scoped_resources: Some(vec!["*".into()]),
            ..Default::default()
        };
        let combined = combine_with_policy(&everything, &policy, &resolve);
        assert_eq!(combined.excluded_namespace_scoped_resources, None);
    }
}
