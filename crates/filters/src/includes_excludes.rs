//! Glob include/exclude lists (Velero's `collections.IncludesExcludes`) and the checks Velero runs
//! on them before a backup starts.

use std::collections::{BTreeMap, BTreeSet};

use super::glob::Glob;
use super::glob::{PatternError, validate_namespace_pattern};
use super::k8s::{dns1123_label_errors, go_quote};

/// A set of glob patterns, kept sorted and de-duplicated as Go's `sets.String` is, because the
/// order decides one of Velero's quirks (see [`GlobList::matches`]).
#[derive(Debug, Clone, Default)]
struct GlobList {
    patterns: BTreeMap<String, Option<Glob>>,
}

impl GlobList {
    fn insert(&mut self, pattern: String) {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.patterns.entry(pattern) {
            let glob = Glob::new(entry.key()).ok();
            entry.insert(glob);
        }
    }

    fn has(&self, pattern: &str) -> bool {
        self.patterns.contains_key(pattern)
    }

    fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Velero stops at the first pattern (in sorted order) that does not compile and answers
    /// "no match", even if a later pattern would have matched.
    fn matches(&self, candidate: &str) -> bool {
        for glob in self.patterns.values() {
            match glob {
                None => return false,
                Some(glob) if glob.is_match(candidate) => return true,
                Some(_) => {}
            }
        }
        false
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.patterns.keys().map(String::as_str)
    }
}

/// Include and exclude lists of glob patterns: everything included except what is excluded.
///
/// An empty include list, or one containing `*`, includes everything. This is the matcher for
/// namespaces, resource types (once resolved) and hook selectors alike.
#[derive(Debug, Clone, Default)]
pub struct IncludesExcludes {
    includes: GlobList,
    excludes: GlobList,
}

impl IncludesExcludes {
    pub fn new<I, E>(includes: I, excludes: E) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
        E: IntoIterator,
        E::Item: Into<String>,
    {
        let mut out = IncludesExcludes::default();
        for include in includes {
            out.includes.insert(include.into());
        }
        for exclude in excludes {
            out.excludes.insert(exclude.into());
        }
        out
    }

    /// Velero's `ShouldInclude`: an exclude match always wins.
    pub fn should_include(&self, candidate: &str) -> bool {
        if self.excludes.matches(candidate) {
            return false;
        }
        self.includes.len() == 0 || self.includes.has("*") || self.includes.matches(candidate)
    }

    /// True only for "no excludes and no include restriction"; a list that merely happens to match
    /// everything (`includes: ["*", "x"]`, or any exclude at all) does not count. Velero uses this
    /// to decide whether a backup is a full-cluster one.
    pub fn include_everything(&self) -> bool {
        self.excludes.len() == 0
            && (self.includes.len() == 0 || (self.includes.len() == 1 && self.includes.has("*")))
    }

    /// The include patterns, sorted and de-duplicated.
    pub fn includes(&self) -> impl Iterator<Item = &str> {
        self.includes.iter()
    }

    /// The exclude patterns, sorted and de-duplicated.
    pub fn excludes(&self) -> impl Iterator<Item = &str> {
        self.excludes.iter()
    }

    /// The includes as Velero logs them (`Including namespaces: …`): comma list, or `*`.
    pub fn includes_string(&self) -> String {
        join_or(self.includes(), "*")
    }

    /// The excludes as Velero logs them: comma list, or `<none>`.
    pub fn excludes_string(&self) -> String {
        join_or(self.excludes(), "<none>")
    }

    pub(crate) fn has_include(&self, pattern: &str) -> bool {
        self.includes.has(pattern)
    }

    pub(crate) fn has_exclude(&self, pattern: &str) -> bool {
        self.excludes.has(pattern)
    }

    pub(crate) fn include_count(&self) -> usize {
        self.includes.len()
    }

    pub(crate) fn includes_match(&self, candidate: &str) -> bool {
        self.includes.matches(candidate)
    }

    pub(crate) fn excludes_match(&self, candidate: &str) -> bool {
        self.excludes.matches(candidate)
    }
}

fn join_or<'a>(items: impl Iterator<Item = &'a str>, empty: &str) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(", ")
    }
}

/// Why an include/exclude list pair is refused. The texts are Velero's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("includes list must either contain '*' only, or a non-empty list of items")]
    IncludesStarNotAlone,
    #[error("excludes list cannot contain '*'")]
    ExcludesContainStar,
    #[error("excludes list must either contain '*' only, or a non-empty list of items")]
    ExcludesStarNotAlone,
    #[error("when exclude is '*', include cannot have value")]
    IncludesWithExcludeStar,
    #[error("excludes list cannot contain an item in the includes list: {0}")]
    InBothLists(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("invalid namespace {}: {message}", go_quote(.name))]
    InvalidNamespace { name: String, message: String },
}

fn sorted_set(items: &[String]) -> BTreeSet<&str> {
    items.iter().map(String::as_str).collect()
}

/// Velero's `ValidateIncludesExcludes`, used for the old-style resource lists: `*` only alone in
/// the includes, never in the excludes, and no entry in both.
pub fn validate_includes_excludes(includes: &[String], excludes: &[String]) -> Vec<ListError> {
    let includes = sorted_set(includes);
    let excludes = sorted_set(excludes);
    let mut errs = Vec::new();
    if includes.len() > 1 && includes.contains("*") {
        errs.push(ListError::IncludesStarNotAlone);
    }
    if excludes.contains("*") {
        errs.push(ListError::ExcludesContainStar);
    }
    errs.extend(in_both(&includes, &excludes));
    errs
}

fn in_both<'a>(
    includes: &'a BTreeSet<&str>,
    excludes: &'a BTreeSet<&str>,
) -> impl Iterator<Item = ListError> + 'a {
    excludes
        .iter()
        .filter(|item| includes.contains(*item))
        .map(|item| ListError::InBothLists(item.to_string()))
}

/// Velero's `ValidateNamespaceIncludesExcludes`: the generic checks, then every entry (includes
/// first, each list sorted) must be a usable wildcard pattern and, with `* ? [ ]` replaced by
/// `x`, a valid namespace name. The empty string is allowed (Velero reads it as "no namespace").
pub fn validate_namespace_includes_excludes(
    includes: &[String],
    excludes: &[String],
) -> Vec<ListError> {
    let mut errs = validate_includes_excludes(includes, excludes);
    for name in sorted_set(includes).into_iter().chain(sorted_set(excludes)) {
        errs.extend(validate_namespace_entry(name));
    }
    errs
}

fn validate_namespace_entry(name: &str) -> Vec<ListError> {
    if name.is_empty() {
        return Vec::new();
    }
    if let Err(err) = validate_namespace_pattern(name) {
        return vec![err.into()];
    }
    let masked: String = name
        .chars()
        .map(|c| {
            if matches!(c, '*' | '?' | '[' | ']') {
                'x'
            } else {
                c
            }
        })
        .collect();
    dns1123_label_errors(&masked)
        .into_iter()
        .map(|message| ListError::InvalidNamespace {
            name: name.to_string(),
            message,
        })
        .collect()
}

/// Velero's `ValidateScopedIncludesExcludes`, for each pair of the new-style resource lists:
/// here `*` may be an exclude, but then alone and with no includes.
pub fn validate_scoped_includes_excludes(
    includes: &[String],
    excludes: &[String],
) -> Vec<ListError> {
    let includes = sorted_set(includes);
    let excludes = sorted_set(excludes);
    let mut errs = Vec::new();
    if includes.len() > 1 && includes.contains("*") {
        errs.push(ListError::IncludesStarNotAlone);
    }
    if excludes.len() > 1 && excludes.contains("*") {
        errs.push(ListError::ExcludesStarNotAlone);
    }
    if !includes.is_empty() && excludes.contains("*") {
        errs.push(ListError::IncludesWithExcludeStar);
    }
    errs.extend(in_both(&includes, &excludes));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ie(includes: &[&str], excludes: &[&str]) -> IncludesExcludes {
        IncludesExcludes::new(includes.iter().copied(), excludes.iter().copied())
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn messages(errs: Vec<ListError>) -> Vec<String> {
        errs.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn should_include_table() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "anything", true),
            (&["*"], &[], "anything", true),
            (&["a", "b"], &[], "b", true),
            (&["a", "b"], &[], "c", false),
            (&["*"], &["b"], "b", false),
            (&[], &["b"], "a", true),
            (&["a"], &["a"], "a", false),
            (&["app-*"], &[], "app-1", true),
            (&["app-*"], &["app-2"], "app-2", false),
            (&["*"], &["kube-*"], "kube-system", false),
            (&["*"], &["kube-*"], "default", true),
            (&["*", "x"], &[], "y", true),
            (&["pods"], &[], "pods", true),
            (&["*.apps"], &[], "deployments.apps", true),
            (&["*.apps"], &[], "pods", false),
        ];
        for (includes, excludes, candidate, expected) in cases {
            assert_eq!(
                ie(includes, excludes).should_include(candidate),
                *expected,
                "includes {includes:?} excludes {excludes:?} candidate {candidate}"
            );
        }
    }

    #[test]
    fn a_broken_pattern_stops_matching_at_that_point() {
        // Sorted: "[" < "b*": the broken "[" comes first and Velero answers "no match" before
        // it gets to "b*".
        let filter = ie(&["[", "b*"], &[]);
        assert!(!filter.should_include("bar"));
        // Sorted: "A*" < "[": "A*" is tried first and matches.
        let filter = ie(&["[", "A*"], &[]);
        assert!(filter.should_include("Abc"));
        // A broken exclude excludes nothing.
        let filter = ie(&[], &["["]);
        assert!(filter.should_include("["));
    }

    #[test]
    fn include_everything() {
        assert!(ie(&[], &[]).include_everything());
        assert!(ie(&["*"], &[]).include_everything());
        assert!(ie(&["*", "*"], &[]).include_everything());
        assert!(!ie(&["*", "a"], &[]).include_everything());
        assert!(!ie(&["*"], &["x"]).include_everything());
        assert!(!ie(&["a"], &[]).include_everything());
    }

    #[test]
    fn log_strings() {
        assert_eq!(ie(&[], &[]).includes_string(), "*");
        assert_eq!(ie(&[], &[]).excludes_string(), "<none>");
        assert_eq!(ie(&["b", "a", "b"], &["z"]).includes_string(), "a, b");
        assert_eq!(ie(&["b"], &["z", "y"]).excludes_string(), "y, z");
    }

    #[test]
    fn old_style_list_validation() {
        assert!(validate_includes_excludes(&strings(&["*"]), &strings(&["a"])).is_empty());
        assert!(validate_includes_excludes(&strings(&["*", "*"]), &[]).is_empty());
        assert_eq!(
            messages(validate_includes_excludes(
                &strings(&["*", "b", "a"]),
                &strings(&["*", "b", "a"])
            )),
            vec![
                "includes list must either contain '*' only, or a non-empty list of items",
                "excludes list cannot contain '*'",
                "excludes list cannot contain an item in the includes list: *",
                "excludes list cannot contain an item in the includes list: a",
                "excludes list cannot contain an item in the includes list: b",
            ]
        );
    }

    #[test]
    fn scoped_list_validation() {
        assert!(validate_scoped_includes_excludes(&[], &strings(&["*"])).is_empty());
        assert!(validate_scoped_includes_excludes(&strings(&["*"]), &[]).is_empty());
        assert_eq!(
            messages(validate_scoped_includes_excludes(
                &strings(&["pods"]),
                &strings(&["*"])
            )),
            vec!["when exclude is '*', include cannot have value"]
        );
        assert_eq!(
            messages(validate_scoped_includes_excludes(
                &strings(&["*", "pods"]),
                &strings(&["*", "secrets", "pods"])
            )),
            vec![
                "includes list must either contain '*' only, or a non-empty list of items",
                "excludes list must either contain '*' only, or a non-empty list of items",
                "when exclude is '*', include cannot have value",
                "excludes list cannot contain an item in the includes list: *",
                "excludes list cannot contain an item in the includes list: pods",
            ]
        );
    }

    #[test]
    fn namespace_list_validation() {
        assert!(
            validate_namespace_includes_excludes(
                &strings(&["*"]),
                &strings(&["kube-*", "ns-?", "ns-[ab]", ""])
            )
            .is_empty()
        );
        assert_eq!(
            messages(validate_namespace_includes_excludes(
                &strings(&["Foo", "a.b", "x{y}"]),
                &strings(&["*", "a**"])
            )),
            vec![
                "excludes list cannot contain '*'".to_string(),
                "invalid namespace \"Foo\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string(),
                "invalid namespace \"a.b\": must not contain dots".to_string(),
                "wildcard pattern contains unsupported characters: |, (, ), !, {, }, ,".to_string(),
                "wildcard pattern contains consecutive asterisks (only single * allowed)".to_string(),
            ]
        );
        // The masked name must still be a valid namespace name: a leading `-` is not.
        assert_eq!(
            messages(validate_namespace_includes_excludes(&strings(&["-*"]), &[])).len(),
            1
        );
        // `*` together with names in the includes.
        assert_eq!(
            messages(validate_namespace_includes_excludes(
                &strings(&["*", "a"]),
                &[]
            )),
            vec!["includes list must either contain '*' only, or a non-empty list of items"]
        );
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{1,3}",
            "[a-c]{0,2}\\*",
            "\\*[a-c]{0,2}",
            "[a-c]\\?",
            Just("*".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn an_exclude_always_wins(
            includes in proptest::collection::vec(pattern(), 0..4),
            excludes in proptest::collection::vec(pattern(), 1..4),
            candidate in "[a-c]{0,4}",
        ) {
            let filter = IncludesExcludes::new(includes, excludes.clone());
            let excluded = excludes.iter().any(|e| Glob::new(e).unwrap().is_match(&candidate));
            if excluded {
                prop_assert!(!filter.should_include(&candidate));
            }
        }

        #[test]
        fn star_without_excludes_includes_everything(
            extra in proptest::collection::vec(pattern(), 0..3),
            candidate in "\\PC{0,12}",
        ) {
            let mut includes = extra;
            includes.push("*".to_string());
            let filter = IncludesExcludes::new(includes, Vec::<String>::new());
            prop_assert!(filter.should_include(&candidate));
        }

        #[test]
        fn empty_include_list_includes_whatever_is_not_excluded(
            excludes in proptest::collection::vec("[a-c]{1,3}", 0..4),
            candidate in "[a-c]{1,3}",
        ) {
            let filter = IncludesExcludes::new(Vec::<String>::new(), excludes.clone());
            prop_assert_eq!(filter.should_include(&candidate), !excludes.contains(&candidate));
        }
    }
}
