//! Which namespaces a backup covers: Velero's `NamespaceIncludesExcludes` with wildcard expansion
//! against the namespaces that exist, and the "namespace tracker" that decides which Namespace
//! objects themselves go into the backup.

use std::collections::{BTreeMap, BTreeSet};

use super::glob::{Glob, GlobError, PatternError, validate_namespace_pattern};
use super::includes_excludes::IncludesExcludes;
use crate::selector::BackupSelector;

/// Why the namespace lists could not be expanded; Velero fails the backup (phase `Failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WildcardError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Glob(#[from] GlobError),
}

fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Where to list namespaced resources: everywhere at once, or namespace by namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    AllNamespaces,
    Namespaces(Vec<String>),
}

/// The backup's namespace filter, after Velero's wildcard expansion.
///
/// Expansion happens when the include list is non-empty, has no bare `*`, and some include or
/// exclude contains `*`, `?` or `[`. Each wildcard is then replaced by the existing namespaces it
/// matches (plain names stay as written), so the filter is fixed to the namespaces of the moment
/// the backup starts.
#[derive(Debug, Clone)]
pub struct NamespaceFilter {
    lists: IncludesExcludes,
    wildcard_expanded: bool,
}

impl NamespaceFilter {
    /// Velero's construction of a backup's namespace filter (`getNamespaceIncludesExcludes`):
    /// `existing` is every namespace in the cluster, whatever its phase.
    pub fn new(
        includes: &[String],
        excludes: &[String],
        existing: &[String],
    ) -> Result<Self, WildcardError> {
        let lists = IncludesExcludes::new(includes.iter().cloned(), excludes.iter().cloned());
        let includes: Vec<String> = lists.includes().map(str::to_string).collect();
        let excludes: Vec<String> = lists.excludes().map(str::to_string).collect();
        let should_expand = !includes.is_empty()
            && !includes.iter().any(|i| i == "*")
            && includes.iter().chain(&excludes).any(|p| has_wildcard(p));
        if !should_expand {
            return Ok(NamespaceFilter {
                lists,
                wildcard_expanded: false,
            });
        }
        let includes = expand(&includes, existing)?;
        let excludes = expand(&excludes, existing)?;
        Ok(NamespaceFilter {
            lists: IncludesExcludes::new(includes, excludes),
            wildcard_expanded: true,
        })
    }

    /// Velero's `ShouldInclude` for a namespace name.
    ///
    /// When wildcards were expanded and no include survived, nothing is included, although an
    /// empty include list normally means "everything".
    pub fn should_include(&self, namespace: &str) -> bool {
        if self.wildcard_expanded && self.lists.include_count() == 0 {
            return false;
        }
        self.lists.should_include(namespace)
    }

    /// Whether the backup covers all namespaces with no exclusions: this turns on automatic
    /// collection of cluster-scoped resources and limits which Namespace objects are kept.
    ///
    /// Velero quirk kept as is: after an expansion that matched nothing (and no excludes), this is
    /// `true` even though [`should_include`](Self::should_include) is `false` for every name, so
    /// such a backup collects cluster-scoped resources as a full backup would.
    pub fn include_everything(&self) -> bool {
        self.lists.include_everything()
    }

    pub fn is_wildcard_expanded(&self) -> bool {
        self.wildcard_expanded
    }

    /// The lists after expansion, for logs and for the Namespace tracker.
    pub fn lists(&self) -> &IncludesExcludes {
        &self.lists
    }

    /// Velero's `getNamespacesToList`: one cluster-wide list when the filter lets the literal
    /// name `*` through, else every include that the filter keeps.
    ///
    /// Because the test is on the literal string `*`, an exclude such as `?` (which matches the
    /// one-character name `*`) turns an include-everything backup into one that lists nothing.
    pub fn namespaces_to_list(&self) -> ListScope {
        if self.should_include("*") {
            return ListScope::AllNamespaces;
        }
        ListScope::Namespaces(
            self.lists
                .includes()
                .filter(|ns| self.should_include(ns))
                .map(str::to_string)
                .collect(),
        )
    }

    /// Velero's `ResolveNamespaceList`: the existing namespaces the backup covers, in the order
    /// given. The backup queue uses this to find backups that overlap.
    pub fn resolve(&self, existing: &[String]) -> Vec<String> {
        existing
            .iter()
            .filter(|ns| self.should_include(ns))
            .cloned()
            .collect()
    }

    /// Included names (not `*`) that do not exist; Velero logs each as an error, which makes the
    /// backup PartiallyFailed.
    pub fn missing_includes(&self, existing: &[String]) -> Vec<String> {
        let existing: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
        self.lists
            .includes()
            .filter(|ns| *ns != "*" && !existing.contains(ns))
            .map(str::to_string)
            .collect()
    }
}

fn expand(patterns: &[String], existing: &[String]) -> Result<Vec<String>, WildcardError> {
    for pattern in patterns {
        validate_namespace_pattern(pattern)?;
    }
    let mut matched = BTreeSet::new();
    for pattern in patterns {
        if !has_wildcard(pattern) {
            matched.insert(pattern.clone());
            continue;
        }
        let glob = Glob::new(pattern)?;
        matched.extend(existing.iter().filter(|ns| glob.is_match(ns)).cloned());
    }
    Ok(matched.into_iter().collect())
}

/// A Namespace object met while collecting, and what the collection saw of it.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceCandidate<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// `status.phase == Active`. Namespaces being deleted are kept only for their items.
    pub active: bool,
    /// Some namespaced item collected for the backup lives in this namespace.
    pub has_collected_items: bool,
}

/// Velero's namespace tracker: whether a Namespace object goes into the backup.
///
/// Kept if an item of the backup lives in it; else, if it is Active, when its labels match the
/// backup's label selector or any OR selector, or when the namespace filter includes its name.
/// The last rule is skipped when the filter includes everything and a selector is set, so a
/// `-l app=x` backup does not carry every Namespace of the cluster (velero#7105).
pub fn keep_namespace(
    namespace: &NamespaceCandidate<'_>,
    filter: &NamespaceFilter,
    selector: &BackupSelector,
) -> bool {
    if namespace.has_collected_items {
        return true;
    }
    if !namespace.active {
        return false;
    }
    if selector.any_selector_matches(namespace.labels) {
        return true;
    }
    if filter.include_everything() && selector.is_set() {
        return false;
    }
    filter.should_include(namespace.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::parse_label_selector;
    use proptest::prelude::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn filter(includes: &[&str], excludes: &[&str], existing: &[&str]) -> NamespaceFilter {
        NamespaceFilter::new(&strings(includes), &strings(excludes), &strings(existing)).unwrap()
    }

    const EXISTING: &[&str] = &["default", "kube-system", "app-1", "app-2", "web"];

    #[test]
    fn pattern_validation_messages() {
        let err = |p: &str| validate_namespace_pattern(p).unwrap_err().to_string();
        assert!(validate_namespace_pattern("app-*").is_ok());
        assert!(validate_namespace_pattern("app-?").is_ok());
        assert!(validate_namespace_pattern("app-[12]").is_ok());
        assert!(validate_namespace_pattern("[[a]").is_ok());
        assert_eq!(
            err("{a,b}"),
            "wildcard pattern contains unsupported characters: |, (, ), !, {, }, ,"
        );
        assert_eq!(err("a|b"), err("{a,b}"));
        assert_eq!(err("[!a]"), err("{a,b}"));
        assert_eq!(
            err("a**"),
            "wildcard pattern contains consecutive asterisks (only single * allowed)"
        );
        assert_eq!(
            err("a[]"),
            "wildcard pattern contains empty bracket pattern '[]'"
        );
        assert_eq!(err("a[b"), "wildcard pattern contains unclosed bracket '['");
        assert_eq!(
            err("a]"),
            "wildcard pattern contains unmatched closing bracket ']'"
        );
        assert_eq!(
            err("[a]]"),
            "wildcard pattern contains unmatched closing bracket ']'"
        );
    }

    #[test]
    fn no_expansion_without_wildcards_or_with_bare_star() {
        let f = filter(&["default"], &[], EXISTING);
        assert!(!f.is_wildcard_expanded());
        let f = filter(&["*"], &["kube-*"], EXISTING);
        assert!(!f.is_wildcard_expanded());
        assert!(!f.should_include("kube-system"));
        assert!(f.should_include("default"));
        let f = filter(&[], &["kube-*"], EXISTING);
        assert!(!f.is_wildcard_expanded());
        assert!(f.should_include("web"));
    }

    #[test]
    fn expansion_replaces_patterns_by_existing_namespaces() {
        let f = filter(&["app-*", "web", "later"], &["app-2"], EXISTING);
        assert!(f.is_wildcard_expanded());
        assert_eq!(
            f.lists().includes().collect::<Vec<_>>(),
            vec!["app-1", "app-2", "later", "web"]
        );
        assert!(f.should_include("app-1"));
        assert!(!f.should_include("app-2"));
        // A namespace created after the backup started is not covered by the pattern.
        assert!(!f.should_include("app-3"));
        assert_eq!(f.resolve(&strings(EXISTING)), vec!["app-1", "web"]);
        assert_eq!(f.missing_includes(&strings(EXISTING)), vec!["later"]);
    }

    #[test]
    fn wildcard_in_excludes_alone_triggers_expansion_of_both_lists() {
        let f = filter(&["web", "default"], &["kube-*"], EXISTING);
        assert!(f.is_wildcard_expanded());
        assert_eq!(
            f.lists().excludes().collect::<Vec<_>>(),
            vec!["kube-system"]
        );
        assert!(f.should_include("web"));
    }

    #[test]
    fn expansion_that_matches_nothing_includes_nothing() {
        let f = filter(&["nomatch-*"], &[], EXISTING);
        assert!(f.is_wildcard_expanded());
        for ns in EXISTING {
            assert!(!f.should_include(ns));
        }
        assert_eq!(f.namespaces_to_list(), ListScope::Namespaces(vec![]));
        assert!(f.resolve(&strings(EXISTING)).is_empty());
        // Velero quirk: the empty expanded lists read as "include everything".
        assert!(f.include_everything());
    }

    #[test]
    fn expansion_errors() {
        // No `*`, `?` or `[`: no expansion, so no pattern check here.
        assert!(NamespaceFilter::new(&strings(&["app-{1,2}"]), &[], &strings(EXISTING)).is_ok());
        let err = NamespaceFilter::new(&strings(&["app-*", "app-{1,2}"]), &[], &strings(EXISTING))
            .unwrap_err();
        assert_eq!(
            err,
            WildcardError::Pattern(PatternError::UnsupportedCharacters)
        );
        // Passes Velero's pattern check, but gobwas cannot compile it.
        let err =
            NamespaceFilter::new(&strings(&["app-[a-z0-9]"]), &[], &strings(EXISTING)).unwrap_err();
        assert_eq!(err.to_string(), "expected close range character");
        // Plain names are validated too once expansion happens.
        let err =
            NamespaceFilter::new(&strings(&["a*", "b]"]), &[], &strings(EXISTING)).unwrap_err();
        assert_eq!(
            err,
            WildcardError::Pattern(PatternError::UnmatchedClosingBracket)
        );
        // Without expansion nothing is checked here (validation does it earlier).
        assert!(NamespaceFilter::new(&strings(&["*"]), &strings(&["[z-a]"]), &[]).is_ok());
    }

    #[test]
    fn namespaces_to_list() {
        assert_eq!(
            filter(&["*"], &[], EXISTING).namespaces_to_list(),
            ListScope::AllNamespaces
        );
        assert_eq!(
            filter(&[], &[], EXISTING).namespaces_to_list(),
            ListScope::AllNamespaces
        );
        assert_eq!(
            filter(&["*"], &["web"], EXISTING).namespaces_to_list(),
            ListScope::AllNamespaces
        );
        assert_eq!(
            filter(&["web", "default", "x"], &["x"], EXISTING).namespaces_to_list(),
            ListScope::Namespaces(strings(&["default", "web"]))
        );
        // Velero quirk: `?` matches the literal name "*", so nothing is listed.
        assert_eq!(
            filter(&["*"], &["?"], EXISTING).namespaces_to_list(),
            ListScope::Namespaces(vec![])
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(label: Option<&str>, or: &[&str]) -> BackupSelector {
        let label = label.map(|s| parse_label_selector(s).unwrap());
        let or: Vec<_> = or
            .iter()
            .map(|s| parse_label_selector(s).unwrap())
            .collect();
        BackupSelector::new(label.as_ref(), &or).unwrap()
    }

    fn keep(
        name: &str,
        ns_labels: &[(&str, &str)],
        active: bool,
        has_items: bool,
        filter: &NamespaceFilter,
        selector: &BackupSelector,
    ) -> bool {
        let labels = labels(ns_labels);
        keep_namespace(
            &NamespaceCandidate {
                name,
                labels: &labels,
                active,
                has_collected_items: has_items,
            },
            filter,
            selector,
        )
    }

    #[test]
    fn tracker_without_selectors_follows_the_filter() {
        let none = selector(None, &[]);
        let all = filter(&["*"], &[], EXISTING);
        assert!(keep("web", &[], true, false, &all, &none));
        let some = filter(&["web"], &[], EXISTING);
        assert!(keep("web", &[], true, false, &some, &none));
        assert!(!keep("default", &[], true, false, &some, &none));
        assert!(keep("default", &[], true, true, &some, &none));
    }

    #[test]
    fn tracker_with_selector_and_everything_filter_keeps_only_matching_or_used() {
        let all = filter(&["*"], &[], EXISTING);
        let sel = selector(Some("app=x"), &[]);
        assert!(keep("web", &[("app", "x")], true, false, &all, &sel));
        assert!(!keep("web", &[("app", "y")], true, false, &all, &sel));
        assert!(keep("web", &[("app", "y")], true, true, &all, &sel));
        // An empty selector `{}` is set and matches every namespace.
        let empty = selector(Some(""), &[]);
        assert!(keep("web", &[], true, false, &all, &empty));
    }

    #[test]
    fn tracker_with_selector_and_restricted_filter_takes_the_union() {
        let some = filter(&["web"], &[], EXISTING);
        let sel = selector(Some("app=x"), &[]);
        assert!(keep("web", &[], true, false, &some, &sel));
        assert!(keep("default", &[("app", "x")], true, false, &some, &sel));
        assert!(!keep("default", &[], true, false, &some, &sel));
    }

    #[test]
    fn tracker_with_or_selectors() {
        let all = filter(&["*"], &[], EXISTING);
        let sel = selector(None, &["a=1", "b=2"]);
        assert!(keep("web", &[("b", "2")], true, false, &all, &sel));
        assert!(keep("web", &[("a", "1")], true, false, &all, &sel));
        assert!(!keep("web", &[("a", "2")], true, false, &all, &sel));
    }

    #[test]
    fn tracker_skips_inactive_namespaces_unless_items_live_there() {
        let all = filter(&["*"], &[], EXISTING);
        let none = selector(None, &[]);
        assert!(!keep("web", &[], false, false, &all, &none));
        let sel = selector(Some("app=x"), &[]);
        assert!(!keep("web", &[("app", "x")], false, false, &all, &sel));
        assert!(keep("web", &[], false, true, &all, &none));
    }

    #[test]
    fn tracker_with_excluding_filter_is_not_everything() {
        let f = filter(&["*"], &["default"], EXISTING);
        let sel = selector(Some("app=x"), &[]);
        assert!(keep("web", &[], true, false, &f, &sel));
        assert!(!keep("default", &[], true, false, &f, &sel));
    }

    proptest! {
        #[test]
        fn plain_names_survive_expansion(
            names in proptest::collection::btree_set("[a-d]{1,3}", 1..4),
            existing in proptest::collection::vec("[a-d]{1,3}", 0..6),
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let mut includes = names.clone();
            includes.push("z*".to_string());
            let f = NamespaceFilter::new(&includes, &[], &existing).unwrap();
            prop_assert!(f.is_wildcard_expanded());
            for name in &names {
                prop_assert!(f.should_include(name));
            }
        }

        #[test]
        fn resolve_is_the_existing_namespaces_the_filter_includes(
            includes in proptest::collection::vec(prop_oneof!["[a-c]{1,2}", "[a-c]\\*"], 0..3),
            excludes in proptest::collection::vec(prop_oneof!["[a-c]{1,2}", "[a-c]\\?"], 0..3),
            existing in proptest::collection::vec("[a-c]{1,2}", 0..6),
        ) {
            let f = NamespaceFilter::new(&includes, &excludes, &existing).unwrap();
            let resolved = f.resolve(&existing);
            for ns in &existing {
                prop_assert_eq!(resolved.contains(ns), f.should_include(ns));
                // With or without expansion, a namespace matched by an exclude is never included.
                if excludes.iter().any(|e| Glob::new(e).unwrap().is_match(ns)) {
                    prop_assert!(!resolved.contains(ns));
                }
            }
        }
    }
}
