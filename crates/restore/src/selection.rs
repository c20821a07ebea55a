//! Which items of a backup a Restore selects (Velero's `pkg/restore/restore.go` and `pkg/controller/restore_controller.go`), and the checks Velero runs on a
//! Restore's spec before it starts. Pure logic: discovery is handed in as a resolver.

use std::collections::BTreeMap;

use velero_api::v1::RestoreSpec;
use velero_filters::IncludesExcludes;
use velero_filters::selector::Selector;

/// Types Velero never restores; they are appended to every Restore's exclusions.
pub const NON_RESTORABLE: &[&str] = &[
    "nodes",
    "events",
    "events.events.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backuprepositories.velero.io",
];

/// Types restored whatever the filters say: CSI and data-mover restores need them.
pub const MUST_HAVE: &[&str] = &[
    "datauploads.velero.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
];

/// Velero's `validateAndComplete` checks that need neither the cluster nor storage, with its
/// messages, in its order.
pub fn validate_restore_spec(spec: &RestoreSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    let included = list(&spec.included_resources);
    for resource in NON_RESTORABLE {
        if included.iter().any(|r| r == resource) {
            errors.push(format!("{resource} are non-restorable resources"));
        }
    }
    for e in velero_filters::validate_includes_excludes(&included, &list(&spec.excluded_resources))
    {
        errors.push(format!("Invalid included/excluded resource lists: {e}"));
    }
    for e in velero_filters::validate_includes_excludes(
        &list(&spec.included_namespaces),
        &list(&spec.excluded_namespaces),
    ) {
        errors.push(format!("Invalid included/excluded namespace lists: {e}"));
    }
    if spec.label_selector.is_some() && spec.or_label_selectors.is_some() {
        errors.push(
            "encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified"
                .to_string(),
        );
    }
    let named = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if named(&spec.backup_name) == named(&spec.schedule_name) {
        errors.push(
            "Either a backup or schedule must be specified as a source for the restore, but not both"
                .to_string(),
        );
    }
    if let Some(policy) = spec.existing_resource_policy.as_deref()
        && !matches!(policy, "" | "none" | "update")
    {
        errors.push(format!("Invalid ExistingResourcePolicy: {policy}"));
    }
    // Velero finds a bad mapping only when the first item fails to land in the target namespace;
    // we refuse it before anything is written.
    for (from, to) in spec.namespace_mapping.iter().flatten() {
        for (role, name) in [("source", from), ("target", to)] {
            let problems = velero_filters::dns1123_label_errors(name);
            if !problems.is_empty() {
                errors.push(format!(
                    "Invalid namespace mapping {from}:{to}: the {role} {name:?} is not a valid namespace name: {}",
                    problems.join("; ")
                ));
            }
        }
    }
    for (kind, selector) in spec
        .label_selector
        .iter()
        .map(|s| ("labelSelector", s))
        .chain(
            spec.or_label_selectors
                .iter()
                .flatten()
                .map(|s| ("orLabelSelectors", s)),
        )
    {
        if let Err(e) = Selector::new(selector) {
            errors.push(format!("Invalid {kind}: {e}"));
        }
    }
    errors
}

/// The selection of one Restore, resolved against the target cluster's discovery.
#[derive(Debug, Clone)]
pub struct RestoreFilter {
    resources: IncludesExcludes,
    namespaces: IncludesExcludes,
    include_cluster_resources: Option<bool>,
    selector: Option<Selector>,
    or_selectors: Vec<Selector>,
    mapping: BTreeMap<String, String>,
}

impl RestoreFilter {
    /// `resolve` maps a resource entry (`deploy`, `deployments`, `deployments.apps`) to the
    /// `resource.group` discovery knows it as. Entries it cannot resolve (types whose CRD is in the
    /// backup but not yet in the cluster) are kept as written, so `widgets.example.com` still
    /// selects the backup's `widgets.example.com` directory.
    pub fn new(
        spec: &RestoreSpec,
        resolve: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let resolve_all = |list: &Option<Vec<String>>| -> Vec<String> {
            list.iter()
                .flatten()
                .map(|entry| {
                    if entry == "*" {
                        entry.clone()
                    } else {
                        resolve(entry).unwrap_or_else(|| entry.clone())
                    }
                })
                .collect()
        };
        let mut excluded = resolve_all(&spec.excluded_resources);
        excluded.extend(NON_RESTORABLE.iter().map(|s| s.to_string()));
        let selector = spec
            .label_selector
            .as_ref()
            .map(Selector::new)
            .transpose()
            .map_err(|e| format!("invalid label selector: {e}"))?;
        let or_selectors = spec
            .or_label_selectors
            .iter()
            .flatten()
            .map(Selector::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid label selector: {e}"))?;
        Ok(RestoreFilter {
            resources: IncludesExcludes::new(resolve_all(&spec.included_resources), excluded),
            namespaces: IncludesExcludes::new(
                spec.included_namespaces.clone().unwrap_or_default(),
                spec.excluded_namespaces.clone().unwrap_or_default(),
            ),
            include_cluster_resources: spec.include_cluster_resources,
            selector,
            or_selectors,
            mapping: spec.namespace_mapping.clone().unwrap_or_default(),
        })
    }

    pub fn must_have(group_resource: &str) -> bool {
        MUST_HAVE.contains(&group_resource)
    }

    /// Whether items of this type are restored at all.
    pub fn include_type(&self, group_resource: &str) -> bool {
        self.resources.should_include(group_resource) || Self::must_have(group_resource)
    }

    /// Whether a namespace (by its name in the backup) is selected.
    pub fn include_namespace(&self, namespace: &str) -> bool {
        self.namespaces.should_include(namespace)
    }

    /// Velero's per-directory rules: namespaced items by their backed-up namespace; cluster-scoped
    /// ones unless `includeClusterResources` is false, or unset while namespaces are filtered.
    pub fn include_scope(&self, group_resource: &str, namespace: Option<&str>) -> bool {
        match namespace {
            Some(ns) => self.include_namespace(ns) || Self::must_have(group_resource),
            None => match self.include_cluster_resources {
                Some(include) => include,
                None => self.namespaces.include_everything(),
            },
        }
    }

    /// Whether cluster-scoped items brought in by another item (a claim's volume) may be restored.
    pub fn cluster_scoped_allowed(&self) -> bool {
        self.include_cluster_resources != Some(false)
    }

    /// `labelSelector`, then at least one of `orLabelSelectors`.
    pub fn include_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        if let Some(selector) = &self.selector
            && !selector.matches(labels)
        {
            return false;
        }
        self.or_selectors.is_empty() || self.or_selectors.iter().any(|s| s.matches(labels))
    }

    /// The namespace an item of backed-up namespace `namespace` is restored into.
    pub fn target_namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.mapping
            .get(namespace)
            .map(String::as_str)
            .unwrap_or(namespace)
    }

    pub fn mapping(&self) -> &BTreeMap<String, String> {
        &self.mapping
    }

    pub fn remaps(&self) -> bool {
        !self.mapping.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use velero_filters::selector::parse_label_selector;

    fn spec(f: impl FnOnce(&mut RestoreSpec)) -> RestoreSpec {
        let mut s = RestoreSpec {
            backup_name: Some("b".into()),
            ..Default::default()
        };
        f(&mut s);
        s
    }

    fn resolve(entry: &str) -> Option<String> {
        match entry {
            "deploy" | "deployments" => Some("deployments.apps".into()),
            "po" | "pods" => Some("pods".into()),
            _ => None,
        }
    }

    #[test]
    fn validation_reports_velero_messages() {
        assert!(validate_restore_spec(&spec(|_| {})).is_empty());
        let errors = validate_restore_spec(&spec(|s| {
            s.included_resources = Some(vec!["nodes".into(), "pods".into()]);
            s.excluded_resources = Some(vec!["pods".into()]);
            s.schedule_name = Some("daily".into());
            s.existing_resource_policy = Some("replace".into());
            s.label_selector = Some(parse_label_selector("a=b").unwrap());
            s.or_label_selectors = Some(vec![parse_label_selector("c=d").unwrap()]);
            s.namespace_mapping = Some([("ok".to_string(), "Not_Valid".to_string())].into());
        }));
        assert_eq!(errors[0], "nodes are non-restorable resources");
        assert!(errors[1].starts_with("Invalid included/excluded resource lists: "));
        assert!(errors.contains(&"encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified".to_string()));
        assert!(errors.contains(&"Either a backup or schedule must be specified as a source for the restore, but not both".to_string()));
        assert!(errors.contains(&"Invalid ExistingResourcePolicy: replace".to_string()));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("Invalid namespace mapping ok:Not_Valid: the target"))
        );
        let none = validate_restore_spec(&RestoreSpec::default());
        assert_eq!(none.len(), 1);
    }

    #[test]
    fn resources_resolve_through_discovery_and_non_restorables_stay_out() {
        let f = RestoreFilter::new(
            &spec(|s| s.included_resources = Some(vec!["deploy".into(), "widgets.x.io".into()])),
            resolve,
        )
        .unwrap();
        assert!(f.include_type("deployments.apps"));
        assert!(f.include_type("widgets.x.io"));
        assert!(!f.include_type("pods"));
        assert!(f.include_type("datauploads.velero.io"));
        let all = RestoreFilter::new(&spec(|_| {}), resolve).unwrap();
        assert!(all.include_type("pods"));
        for r in NON_RESTORABLE {
            assert!(!all.include_type(r), "{r}");
        }
    }

    #[test]
    fn cluster_scope_follows_velero_rules() {
        let all = RestoreFilter::new(&spec(|_| {}), resolve).unwrap();
        assert!(all.include_scope("persistentvolumes", None));
        let some = RestoreFilter::new(
            &spec(|s| s.included_namespaces = Some(vec!["a*".into()])),
            resolve,
        )
        .unwrap();
        assert!(!some.include_scope("persistentvolumes", None));
        assert!(some.include_scope("pods", Some("app")));
        assert!(!some.include_scope("pods", Some("other")));
        assert!(some.cluster_scoped_allowed());
        let forced = RestoreFilter::new(
            &spec(|s| {
                s.included_namespaces = Some(vec!["a".into()]);
                s.include_cluster_resources = Some(true);
            }),
            resolve,
        )
        .unwrap();
        assert!(forced.include_scope("persistentvolumes", None));
        let never = RestoreFilter::new(
            &spec(|s| s.include_cluster_resources = Some(false)),
            resolve,
        )
        .unwrap();
        assert!(!never.include_scope("persistentvolumes", None));
        assert!(!never.cluster_scoped_allowed());
    }

    #[test]
    fn labels_and_or_selectors() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let f = RestoreFilter::new(
            &spec(|s| s.label_selector = Some(parse_label_selector("app=web").unwrap())),
            resolve,
        )
        .unwrap();
        assert!(f.include_labels(&labels(&[("app", "web")])));
        assert!(!f.include_labels(&labels(&[("app", "db")])));
        let or = RestoreFilter::new(
            &spec(|s| {
                s.or_label_selectors = Some(vec![
                    parse_label_selector("app=web").unwrap(),
                    parse_label_selector("tier=db").unwrap(),
                ])
            }),
            resolve,
        )
        .unwrap();
        assert!(or.include_labels(&labels(&[("tier", "db")])));
        assert!(!or.include_labels(&labels(&[])));
    }

    #[test]
    fn namespaces_map_to_targets() {
        let f = RestoreFilter::new(
            &spec(|s| s.namespace_mapping = Some([("a".to_string(), "b".to_string())].into())),
            resolve,
        )
        .unwrap();
        assert_eq!(f.target_namespace("a"), "b");
        assert_eq!(f.target_namespace("c"), "c");
        assert!(f.remaps());
    }
}
