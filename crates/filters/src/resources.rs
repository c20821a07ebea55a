//! Which resource types a backup collects (Velero's `pkg/util/collections/includes_excludes.go`): Velero's old-style `GlobalIncludesExcludes`
//! and new-style `ScopeIncludesExcludes`, including the rules for cluster-scoped types that
//! surprise users most.

use std::fmt;

use velero_api::v1::BackupSpec;

use super::includes_excludes::IncludesExcludes;
use super::namespaces::NamespaceFilter;

/// Namespaced types every backup excludes since Velero 1.17: pre-existing VolumeSnapshots are
/// never listed, only the ones the CSI plugin creates come in, as additional items.
pub const AUTO_EXCLUDED_NAMESPACE_SCOPED: &[&str] = &["volumesnapshots.snapshot.storage.k8s.io"];

/// Cluster-scoped counterpart of [`AUTO_EXCLUDED_NAMESPACE_SCOPED`].
pub const AUTO_EXCLUDED_CLUSTER_SCOPED: &[&str] =
    &["volumesnapshotcontents.snapshot.storage.k8s.io"];

/// A resource type without version, written the way Kubernetes prints it and Velero matches it:
/// `resource.group`, or just `resource` in the core group (`pods`, `deployments.apps`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// Kubernetes' `ParseGroupResource`: everything after the first `.` is the group. This is
    /// how Velero reads a filter entry before looking it up in discovery.
    pub fn parse(entry: &str) -> Self {
        match entry.split_once('.') {
            Some((resource, group)) => GroupResource::new(group, resource),
            None => GroupResource::new("", entry),
        }
    }

    fn is_namespaces(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces"
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// What discovery knows about a filter entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedResource {
    pub group: String,
    /// The plural name (`services` for `svc`).
    pub resource: String,
    pub namespaced: bool,
}

impl ResolvedResource {
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group.clone(), self.resource.clone())
    }
}

/// Discovery as the filters need it (Velero's `ResourceFor(ParseGroupResource(entry))`): accept
/// short names (`svc`), singular and plural, with or without `.group`. Never called with `*`.
///
/// Entries that do not resolve are kept as written and matched as globs against
/// `resource.group` names, so `*.apps` works and a typo selects nothing rather than everything.
pub trait ResourceResolver {
    fn resolve(&self, entry: &str) -> Option<ResolvedResource>;
}

impl<F> ResourceResolver for F
where
    F: Fn(&str) -> Option<ResolvedResource>,
{
    fn resolve(&self, entry: &str) -> Option<ResolvedResource> {
        self(entry)
    }
}

/// Velero's `UseOldResourceFilters`: the old style is in use when `includeClusterResources` is
/// set or `includedResources`/`excludedResources` is non-empty. A spec with no resource filter at
/// all uses the new style.
pub fn uses_old_resource_filters(spec: &BackupSpec) -> bool {
    spec.include_cluster_resources.is_some()
        || non_empty(&spec.included_resources)
        || non_empty(&spec.excluded_resources)
}

/// Whether a spec sets both old-style and new-style resource filters, which Velero refuses.
pub fn old_and_new_filters_mixed(spec: &BackupSpec) -> bool {
    let new_style = non_empty(&spec.included_cluster_scoped_resources)
        || non_empty(&spec.excluded_cluster_scoped_resources)
        || non_empty(&spec.included_namespace_scoped_resources)
        || non_empty(&spec.excluded_namespace_scoped_resources);
    uses_old_resource_filters(spec) && new_style
}

fn non_empty(list: &Option<Vec<String>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

fn list(list: &Option<Vec<String>>) -> &[String] {
    list.as_deref().unwrap_or_default()
}

/// The resource-type filter of one backup, in whichever style its spec uses.
#[derive(Debug, Clone)]
pub struct ResourceFilter {
    style: Style,
    /// The backup's namespace filter includes everything (see
    /// [`NamespaceFilter::include_everything`]).
    namespaces_include_everything: bool,
    /// New style: the user named no cluster-scoped list and no namespaced restriction, apart from
    /// the auto-excluded VolumeSnapshot types.
    no_user_scoped_lists: bool,
}

#[derive(Debug, Clone)]
enum Style {
    Old {
        resources: IncludesExcludes,
        include_cluster_resources: Option<bool>,
    },
    New {
        namespaced: IncludesExcludes,
        cluster: IncludesExcludes,
    },
}

impl ResourceFilter {
    /// Builds the filter as Velero does when a backup starts, from the spec as prepared by
    /// [`prepare_backup_spec`](super::prepare_backup_spec) (so it carries the auto-exclusions).
    ///
    /// Old style: every entry except `*` is resolved; an excluded `*` is dropped. New style: an
    /// entry that resolves to a type of the other scope is dropped from that list (a cluster-scoped
    /// type in the namespace-scoped lists, and the reverse).
    pub fn from_spec<R: ResourceResolver + ?Sized>(
        spec: &BackupSpec,
        namespaces: &NamespaceFilter,
        resolver: &R,
    ) -> Self {
        let style = if uses_old_resource_filters(spec) {
            let resolve = |entry: &String| Some(resolve_old(entry, resolver));
            let includes = list(&spec.included_resources).iter().filter_map(|entry| {
                if entry == "*" {
                    Some(entry.clone())
                } else {
                    resolve(entry)
                }
            });
            let excludes = list(&spec.excluded_resources)
                .iter()
                .filter(|entry| *entry != "*")
                .filter_map(resolve);
            Style::Old {
                resources: IncludesExcludes::new(
                    includes.filter(|key| !key.is_empty()),
                    excludes.filter(|key| !key.is_empty()),
                ),
                include_cluster_resources: spec.include_cluster_resources,
            }
        } else {
            let scoped = |entries: &Option<Vec<String>>, namespaced: bool| {
                list(entries)
                    .iter()
                    .filter_map(|entry| resolve_scoped(entry, namespaced, resolver))
                    .collect::<Vec<_>>()
            };
            Style::New {
                namespaced: IncludesExcludes::new(
                    scoped(&spec.included_namespace_scoped_resources, true),
                    scoped(&spec.excluded_namespace_scoped_resources, true),
                ),
                cluster: IncludesExcludes::new(
                    scoped(&spec.included_cluster_scoped_resources, false),
                    scoped(&spec.excluded_cluster_scoped_resources, false),
                ),
            }
        };
        // Velero documents that a backup of all namespaces carries the cluster-scoped types, and
        // did so until v1.17 added the VolumeSnapshot auto-exclusions, which, read literally, end
        // that rule for every backup. We keep the documented behaviour: the auto-exclusions still
        // apply, but do not count as the user restricting the backup.
        let user_entries = |entries: &Option<Vec<String>>, auto: &[&str]| {
            list(entries)
                .iter()
                .filter(|e| !auto.contains(&e.as_str()))
                .count()
        };
        let namespaced_includes = list(&spec.included_namespace_scoped_resources);
        let no_user_scoped_lists = user_entries(&spec.included_cluster_scoped_resources, &[]) == 0
            && user_entries(
                &spec.excluded_cluster_scoped_resources,
                AUTO_EXCLUDED_CLUSTER_SCOPED,
            ) == 0
            && user_entries(
                &spec.excluded_namespace_scoped_resources,
                AUTO_EXCLUDED_NAMESPACE_SCOPED,
            ) == 0
            && (namespaced_includes.is_empty() || namespaced_includes.iter().all(|e| e == "*"));
        ResourceFilter {
            style,
            namespaces_include_everything: namespaces.include_everything(),
            no_user_scoped_lists,
        }
    }

    /// Whether the spec used the old-style fields.
    pub fn is_old_style(&self) -> bool {
        matches!(self.style, Style::Old { .. })
    }

    /// Whether items of this type are listed and collected.
    ///
    /// Old style: a cluster-scoped type is never collected with `includeClusterResources: false`;
    /// with it unset, only when the namespace filter includes everything (except `namespaces`
    /// itself, which the namespace tracker filters later); then the lists decide.
    ///
    /// New style: a namespaced type follows the namespace-scoped lists (empty include = all). A
    /// cluster-scoped type is out if the cluster excludes match; in if both cluster lists are
    /// empty and the namespace filter and the namespace-scoped lists include everything (a
    /// full-cluster backup); otherwise only if the cluster includes match, or it is `namespaces`.
    /// Since v1.17 the auto-excluded VolumeSnapshot types make both exclude lists non-empty, which
    /// in Velero's code ends the full-cluster branch for every backup; here they do not count (see
    /// [`ResourceFilter::from_spec`]), so a backup of everything still carries cluster-scoped types.
    pub fn should_include(&self, resource: &GroupResource, namespaced: bool) -> bool {
        let name = resource.to_string();
        match &self.style {
            Style::Old {
                resources,
                include_cluster_resources,
            } => {
                if !namespaced && *include_cluster_resources == Some(false) {
                    return false;
                }
                if !namespaced
                    && !resource.is_namespaces()
                    && include_cluster_resources.is_none()
                    && !self.namespaces_include_everything
                {
                    return false;
                }
                resources.should_include(&name)
            }
            Style::New {
                namespaced: ns_lists,
                cluster,
            } => {
                if namespaced {
                    if ns_lists.has_exclude("*") || ns_lists.excludes_match(&name) {
                        return false;
                    }
                    return ns_lists.include_count() == 0
                        || ns_lists.has_include("*")
                        || ns_lists.includes_match(&name);
                }
                if cluster.has_exclude("*") || cluster.excludes_match(&name) {
                    return false;
                }
                if self.no_user_scoped_lists && self.namespaces_include_everything {
                    return true;
                }
                cluster.has_include("*")
                    || cluster.includes_match(&name)
                    || resource.is_namespaces()
            }
        }
    }

    /// Velero's `ShouldExclude`: whether an item of this type must be dropped even when it comes
    /// in as an additional item of another (Velero asks it for cluster-scoped items other than
    /// Namespaces, and to decide whether to add CRDs of backed-up custom resources).
    ///
    /// Old style: explicitly excluded; or cluster-scoped with `includeClusterResources: false`; or
    /// cluster-scoped with it unset and not let through by the lists. New style: only an explicit
    /// exclude of the type's own scope.
    pub fn should_exclude_additional(&self, resource: &GroupResource, namespaced: bool) -> bool {
        let name = resource.to_string();
        match &self.style {
            Style::Old {
                resources,
                include_cluster_resources,
            } => {
                if resources.excludes_match(&name) {
                    return true;
                }
                if !namespaced {
                    match include_cluster_resources {
                        Some(false) => return true,
                        None if !resources.should_include(&name) => return true,
                        _ => {}
                    }
                }
                false
            }
            Style::New {
                namespaced: ns_lists,
                cluster,
            } => {
                if namespaced {
                    ns_lists.excludes_match(&name)
                } else {
                    cluster.excludes_match(&name)
                }
            }
        }
    }
}

fn resolve_old<R: ResourceResolver + ?Sized>(entry: &str, resolver: &R) -> String {
    match resolver.resolve(entry) {
        Some(resolved) => resolved.group_resource().to_string(),
        None => entry.to_string(),
    }
}

fn resolve_scoped<R: ResourceResolver + ?Sized>(
    entry: &str,
    namespaced: bool,
    resolver: &R,
) -> Option<String> {
    if entry == "*" {
        return Some(entry.to_string());
    }
    let key = match resolver.resolve(entry) {
        Some(resolved) if resolved.namespaced != namespaced => return None,
        Some(resolved) => resolved.group_resource().to_string(),
        None => entry.to_string(),
    };
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small discovery: (group, plural, singular, short names, namespaced).
    const TYPES: &[(&str, &str, &str, &[&str], bool)] = &[
        ("", "pods", "pod", &["po"], true),
        ("", "services", "service", &["svc"], true),
        ("", "secrets", "secret", &[], true),
        (
            "",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            &["pvc"],
            true,
        ),
        ("", "persistentvolumes", "persistentvolume", &["pv"], false),
        ("", "namespaces", "namespace", &["ns"], false),
        ("apps", "deployments", "deployment", &["deploy"], true),
        (
            "storage.k8s.io",
            "storageclasses",
            "storageclass",
            &["sc"],
            false,
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterroles",
            "clusterrole",
            &[],
            false,
        ),
        (
            "snapshot.storage.k8s.io",
            "volumesnapshots",
            "volumesnapshot",
            &["vs"],
            true,
        ),
        (
            "snapshot.storage.k8s.io",
            "volumesnapshotcontents",
            "volumesnapshotcontent",
            &["vsc"],
            false,
        ),
        (
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "customresourcedefinition",
            &["crd"],
            false,
        ),
    ];

    fn resolver(entry: &str) -> Option<ResolvedResource> {
        let parsed = GroupResource::parse(entry);
        TYPES
            .iter()
            .find(|(group, plural, singular, shorts, _)| {
                let name = parsed.resource.as_str();
                let name_ok = name == *plural || name == *singular || shorts.contains(&name);
                (name_ok && (parsed.group.is_empty() || parsed.group == *group))
                    || (entry == *plural || entry == *singular || shorts.contains(&entry))
            })
            .map(|(group, plural, _, _, namespaced)| ResolvedResource {
                group: group.to_string(),
                resource: plural.to_string(),
                namespaced: *namespaced,
            })
    }

    fn gr(name: &str) -> (GroupResource, bool) {
        let r = resolver(name).expect("known type");
        (r.group_resource(), r.namespaced)
    }

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    fn ns_filter(includes: &[&str], excludes: &[&str]) -> NamespaceFilter {
        let existing = ["default", "web", "kube-system"].map(String::from);
        NamespaceFilter::new(
            &strings(includes).unwrap(),
            &strings(excludes).unwrap(),
            &existing,
        )
        .unwrap()
    }

    fn includes(filter: &ResourceFilter, name: &str) -> bool {
        let (gr, namespaced) = gr(name);
        filter.should_include(&gr, namespaced)
    }

    fn excludes(filter: &ResourceFilter, name: &str) -> bool {
        let (gr, namespaced) = gr(name);
        filter.should_exclude_additional(&gr, namespaced)
    }

    #[test]
    fn group_resource_printing_and_parsing() {
        assert_eq!(GroupResource::new("", "pods").to_string(), "pods");
        assert_eq!(
            GroupResource::new("apps", "deployments").to_string(),
            "deployments.apps"
        );
        assert_eq!(
            GroupResource::parse("volumesnapshots.snapshot.storage.k8s.io"),
            GroupResource::new("snapshot.storage.k8s.io", "volumesnapshots")
        );
        assert_eq!(GroupResource::parse("svc"), GroupResource::new("", "svc"));
    }

    #[test]
    fn style_detection() {
        let mut spec = BackupSpec::default();
        assert!(!uses_old_resource_filters(&spec));
        spec.included_resources = Some(vec![]);
        assert!(!uses_old_resource_filters(&spec));
        spec.include_cluster_resources = Some(false);
        assert!(uses_old_resource_filters(&spec));
        assert!(!old_and_new_filters_mixed(&spec));
        spec.excluded_namespace_scoped_resources = strings(&["secrets"]);
        assert!(old_and_new_filters_mixed(&spec));
        let spec = BackupSpec {
            excluded_resources: strings(&["secrets"]),
            ..Default::default()
        };
        assert!(uses_old_resource_filters(&spec));
    }

    /// Old style, cluster-scoped type: includeClusterResources × namespace filter × whether the
    /// type is in the include list.
    #[test]
    fn old_style_cluster_scoped_table() {
        struct Case {
            icr: Option<bool>,
            ns_everything: bool,
            resource_includes: &'static [&'static str],
            storageclasses: bool,
            namespaces: bool,
        }
        let cases = [
            // nil: only a full-namespace backup collects cluster-scoped types…
            Case {
                icr: None,
                ns_everything: true,
                resource_includes: &[],
                storageclasses: true,
                namespaces: true,
            },
            Case {
                icr: None,
                ns_everything: false,
                resource_includes: &[],
                storageclasses: false,
                namespaces: true,
            },
            // …and even an explicit include does not help when namespaces are restricted.
            Case {
                icr: None,
                ns_everything: false,
                resource_includes: &["storageclasses"],
                storageclasses: false,
                namespaces: false,
            },
            Case {
                icr: None,
                ns_everything: true,
                resource_includes: &["storageclasses"],
                storageclasses: true,
                namespaces: false,
            },
            Case {
                icr: None,
                ns_everything: true,
                resource_includes: &["pods"],
                storageclasses: false,
                namespaces: false,
            },
            // true: the lists decide, whatever the namespaces.
            Case {
                icr: Some(true),
                ns_everything: false,
                resource_includes: &[],
                storageclasses: true,
                namespaces: true,
            },
            Case {
                icr: Some(true),
                ns_everything: true,
                resource_includes: &[],
                storageclasses: true,
                namespaces: true,
            },
            Case {
                icr: Some(true),
                ns_everything: false,
                resource_includes: &["sc"],
                storageclasses: true,
                namespaces: false,
            },
            Case {
                icr: Some(true),
                ns_everything: false,
                resource_includes: &["pods"],
                storageclasses: false,
                namespaces: false,
            },
            // false: never, not even Namespaces or an explicit include.
            Case {
                icr: Some(false),
                ns_everything: true,
                resource_includes: &[],
                storageclasses: false,
                namespaces: false,
            },
            Case {
                icr: Some(false),
                ns_everything: false,
                resource_includes: &[],
                storageclasses: false,
                namespaces: false,
            },
            Case {
                icr: Some(false),
                ns_everything: true,
                resource_includes: &["storageclasses", "namespaces"],
                storageclasses: false,
                namespaces: false,
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            // An exclude keeps the spec old-style when includeClusterResources is unset.
            let spec = BackupSpec {
                include_cluster_resources: case.icr,
                included_resources: strings(case.resource_includes),
                excluded_resources: strings(&["secrets"]),
                ..Default::default()
            };
            let namespaces = if case.ns_everything {
                ns_filter(&["*"], &[])
            } else {
                ns_filter(&["web"], &[])
            };
            let filter = ResourceFilter::from_spec(&spec, &namespaces, &resolver);
            assert!(filter.is_old_style());
            assert_eq!(
                includes(&filter, "storageclasses"),
                case.storageclasses,
                "case {i} storageclasses"
            );
            assert_eq!(
                includes(&filter, "namespaces"),
                case.namespaces,
                "case {i} namespaces"
            );
        }
    }

    #[test]
    fn old_style_any_namespace_exclude_turns_off_cluster_scoped_collection() {
        let spec = BackupSpec {
            excluded_resources: strings(&["secrets"]),
            ..Default::default()
        };
        let filter =
            ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &["kube-system"]), &resolver);
        assert!(!includes(&filter, "storageclasses"));
        assert!(includes(&filter, "pods"));
        assert!(!includes(&filter, "secrets"));
    }

    #[test]
    fn old_style_namespaced_types_follow_the_lists() {
        let spec = BackupSpec {
            included_resources: strings(&["po", "deployment", "*.apps"]),
            excluded_resources: strings(&["*"]),
            include_cluster_resources: Some(false),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["web"], &[]), &resolver);
        assert!(includes(&filter, "pods"));
        assert!(includes(&filter, "deployments"));
        // An excluded `*` is dropped in the old style.
        assert!(!includes(&filter, "secrets"));
        assert!(!excludes(&filter, "secrets"));
    }

    #[test]
    fn unresolvable_entries_are_matched_literally() {
        let spec = BackupSpec {
            included_resources: strings(&["widgets.example.com", "*.apps", "typo"]),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(filter.should_include(&GroupResource::new("example.com", "widgets"), true));
        assert!(filter.should_include(&GroupResource::new("apps", "statefulsets"), true));
        assert!(!filter.should_include(&GroupResource::new("", "pods"), true));
    }

    #[test]
    fn old_style_should_exclude_additional() {
        let with = |icr: Option<bool>, inc: &[&str], exc: &[&str]| {
            let spec = BackupSpec {
                include_cluster_resources: icr,
                included_resources: strings(inc),
                excluded_resources: strings(exc),
                ..Default::default()
            };
            ResourceFilter::from_spec(&spec, &ns_filter(&["web"], &[]), &resolver)
        };
        // nil: a PV comes in with its PVC unless the lists keep it out.
        let f = with(None, &[], &[]);
        assert!(!excludes(&f, "persistentvolumes"));
        assert!(!includes(&f, "persistentvolumes"));
        let f = with(None, &["pods", "pvc"], &[]);
        assert!(excludes(&f, "persistentvolumes"));
        assert!(!excludes(&f, "pods"));
        let f = with(None, &["pvc", "pv"], &[]);
        assert!(!excludes(&f, "persistentvolumes"));
        // false: every cluster-scoped type is out, namespaced ones only if listed.
        let f = with(Some(false), &[], &[]);
        assert!(excludes(&f, "persistentvolumes"));
        assert!(excludes(&f, "customresourcedefinitions"));
        assert!(!excludes(&f, "pods"));
        // true: only explicit excludes.
        let f = with(Some(true), &["pods"], &["pv", "secrets"]);
        assert!(excludes(&f, "persistentvolumes"));
        assert!(excludes(&f, "secrets"));
        assert!(!excludes(&f, "storageclasses"));
    }

    #[test]
    fn new_style_full_cluster_backup_is_only_without_any_list() {
        let spec = BackupSpec::default();
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(!filter.is_old_style());
        assert!(includes(&filter, "storageclasses"));
        assert!(includes(&filter, "pods"));
        // Restricted namespaces: no automatic cluster-scoped types, but Namespaces still.
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["web"], &[]), &resolver);
        assert!(!includes(&filter, "storageclasses"));
        assert!(includes(&filter, "namespaces"));
        // A namespaced include list also ends the full-cluster case.
        let spec = BackupSpec {
            included_namespace_scoped_resources: strings(&["pods"]),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(!includes(&filter, "storageclasses"));
        assert!(includes(&filter, "namespaces"));
        assert!(includes(&filter, "pods"));
        assert!(!includes(&filter, "secrets"));
    }

    #[test]
    fn new_style_auto_exclusions_keep_the_full_cluster_rule() {
        // What prepare_backup_spec turns a default spec into (Velero ≥ 1.17): the VolumeSnapshot
        // types are out, and a backup of everything still carries cluster-scoped types.
        let mut spec = BackupSpec::default();
        assert!(crate::prepare_backup_spec(&mut spec).is_empty());
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(includes(&filter, "storageclasses"));
        assert!(includes(&filter, "clusterroles"));
        assert!(includes(&filter, "namespaces"));
        assert!(includes(&filter, "pods"));
        assert!(!includes(&filter, "volumesnapshots"));
        assert!(!includes(&filter, "volumesnapshotcontents"));
        assert!(excludes(&filter, "volumesnapshotcontents"));
        assert!(!excludes(&filter, "storageclasses"));
    }

    #[test]
    fn new_style_cluster_scoped_lists() {
        let spec = BackupSpec {
            included_cluster_scoped_resources: strings(&["sc", "pods"]),
            excluded_cluster_scoped_resources: strings(&["clusterroles", "namespaces"]),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(includes(&filter, "storageclasses"));
        assert!(!includes(&filter, "clusterroles"));
        assert!(!includes(&filter, "persistentvolumes"));
        // Namespaces are in by default, but an explicit exclude wins.
        assert!(!includes(&filter, "namespaces"));
        // `pods` was dropped from the cluster list: it is namespaced. Namespaced lists are empty.
        assert!(includes(&filter, "pods"));
        assert!(excludes(&filter, "clusterroles"));
        assert!(!excludes(&filter, "persistentvolumes"));

        let spec = BackupSpec {
            included_cluster_scoped_resources: strings(&["*"]),
            excluded_namespace_scoped_resources: strings(&["*"]),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["web"], &[]), &resolver);
        assert!(includes(&filter, "persistentvolumes"));
        assert!(!includes(&filter, "pods"));
        assert!(excludes(&filter, "pods"));

        let spec = BackupSpec {
            excluded_cluster_scoped_resources: strings(&["*"]),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(!includes(&filter, "namespaces"));
        assert!(!includes(&filter, "storageclasses"));
        assert!(includes(&filter, "pods"));
    }

    #[test]
    fn new_style_namespaced_lists() {
        let spec = BackupSpec {
            included_namespace_scoped_resources: strings(&["deploy", "svc", "pv"]),
            excluded_namespace_scoped_resources: strings(&["services"]),
            ..Default::default()
        };
        let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
        assert!(includes(&filter, "deployments"));
        assert!(!includes(&filter, "services"));
        assert!(!includes(&filter, "pods"));
        // `pv` was dropped from the namespaced list (cluster-scoped); no cluster lists, not a
        // full-cluster backup (namespaced includes are set), so PVs are not collected.
        assert!(!includes(&filter, "persistentvolumes"));
    }

    fn type_name() -> impl Strategy<Value = &'static str> {
        prop::sample::select(TYPES.iter().map(|t| t.1).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn old_style_exclude_always_wins(
            inc in proptest::collection::vec(type_name(), 0..4),
            exc in proptest::collection::vec(type_name(), 1..4),
            icr in proptest::option::of(any::<bool>()),
            everything in any::<bool>(),
            probe in type_name(),
        ) {
            let spec = BackupSpec {
                included_resources: Some(inc.iter().map(|s| s.to_string()).collect()),
                excluded_resources: Some(exc.iter().map(|s| s.to_string()).collect()),
                include_cluster_resources: icr,
                ..Default::default()
            };
            let ns = if everything { ns_filter(&["*"], &[]) } else { ns_filter(&["web"], &[]) };
            let filter = ResourceFilter::from_spec(&spec, &ns, &resolver);
            if exc.contains(&probe) {
                prop_assert!(!includes(&filter, probe));
                prop_assert!(excludes(&filter, probe));
            }
        }

        #[test]
        fn new_style_exclude_always_wins(
            ns_inc in proptest::collection::vec(type_name(), 0..3),
            ns_exc in proptest::collection::vec(type_name(), 0..3),
            cl_inc in proptest::collection::vec(type_name(), 0..3),
            cl_exc in proptest::collection::vec(type_name(), 0..3),
            probe in type_name(),
        ) {
            let own = |v: &Vec<&str>| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            let spec = BackupSpec {
                included_namespace_scoped_resources: own(&ns_inc),
                excluded_namespace_scoped_resources: own(&ns_exc),
                included_cluster_scoped_resources: own(&cl_inc),
                excluded_cluster_scoped_resources: own(&cl_exc),
                ..Default::default()
            };
            let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["*"], &[]), &resolver);
            let (_, namespaced) = gr(probe);
            let excluded = if namespaced { ns_exc.contains(&probe) } else { cl_exc.contains(&probe) };
            if excluded {
                prop_assert!(!includes(&filter, probe));
                prop_assert!(excludes(&filter, probe));
            }
        }

        #[test]
        fn old_style_star_includes_every_namespaced_type(
            icr in proptest::option::of(any::<bool>()),
            probe in type_name(),
        ) {
            let spec = BackupSpec {
                included_resources: Some(vec!["*".to_string()]),
                include_cluster_resources: icr,
                ..Default::default()
            };
            let filter = ResourceFilter::from_spec(&spec, &ns_filter(&["web"], &[]), &resolver);
            let (_, namespaced) = gr(probe);
            if namespaced {
                prop_assert!(includes(&filter, probe));
            } else {
                // Unset: only Namespaces pass with restricted namespaces; true: all; false: none.
                let expected = icr == Some(true) || (icr.is_none() && probe == "namespaces");
                prop_assert_eq!(includes(&filter, probe), expected);
            }
        }
    }
}
