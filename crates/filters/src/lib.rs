//! Velero's backup and restore filters as pure logic: which namespaces, which resource types, in
//! which order, which labels, and whether a spec's filter fields are valid at all.
//!
//! Everything here follows Velero's behaviour to the letter, including its surprises, because a
//! Backup written for Velero must select the same objects here. Where Velero's behaviour looks
//! unintended the item's doc comment says so. Nothing here talks to a cluster: existing
//! namespaces and resource discovery are handed in by the caller.

mod glob;
mod includes_excludes;
mod k8s;
mod namespaces;
mod ordered;
mod resources;
mod spec;

pub use glob::{Glob, GlobError, PatternError, validate_namespace_pattern};
pub use includes_excludes::{
    IncludesExcludes, ListError, validate_includes_excludes, validate_namespace_includes_excludes,
    validate_scoped_includes_excludes,
};
pub use namespaces::{
    ListScope, NamespaceCandidate, NamespaceFilter, WildcardError, keep_namespace,
};
pub use ordered::{OrderedItems, OrderedResourcesError, parse_ordered_resources, sort_by_order};
pub use resources::{
    AUTO_EXCLUDED_CLUSTER_SCOPED, AUTO_EXCLUDED_NAMESPACE_SCOPED, GroupResource, ResolvedResource,
    ResourceFilter, ResourceResolver, old_and_new_filters_mixed, uses_old_resource_filters,
};
pub use spec::{prepare_backup_spec, validate_backup_spec};

pub use k8s::dns1123_label_errors;
pub(crate) use k8s::{go_quote, label_key_errors, label_value_errors};

pub mod selector;
