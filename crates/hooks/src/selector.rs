//! Which pods a `spec.hooks.resources[]` entry applies to (Velero's `ResourceHookSelector` in
//! internal/hook/item_hook_handler.go).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use velero_filters::IncludesExcludes;
use velero_filters::selector::Selector;

/// A hook entry whose label selector cannot be used. Velero fails the whole backup or restore on
/// it (`getResourceHooks`), and so do we: running the other hooks and not this one would leave the
/// application in a state its owner did not plan for.
#[derive(Debug, thiserror::Error)]
#[error("invalid label selector in hook {hook:?}: {source}")]
pub struct SelectorError {
    pub hook: String,
    #[source]
    pub source: velero_filters::selector::SelectorError,
}

/// Namespaces and resource types (include/exclude, globs), and a label selector.
#[derive(Debug, Clone, Default)]
pub struct HookSelector {
    namespaces: IncludesExcludes,
    resources: IncludesExcludes,
    labels: Option<Selector>,
}

/// The selector fields every hook spec has, borrowed.
pub struct SelectorSpec<'a> {
    pub name: &'a str,
    pub included_namespaces: Option<&'a [String]>,
    pub excluded_namespaces: Option<&'a [String]>,
    pub included_resources: Option<&'a [String]>,
    pub excluded_resources: Option<&'a [String]>,
    pub label_selector: Option<&'a LabelSelector>,
}

/// The hook specs of Backups and Restores, which select pods with the same fields.
pub trait HookSpecSelector {
    fn selector_spec(&self) -> SelectorSpec<'_>;
}

macro_rules! hook_spec_selector {
    ($($spec:ty),*) => {$(
        impl HookSpecSelector for $spec {
            fn selector_spec(&self) -> SelectorSpec<'_> {
                SelectorSpec {
                    name: &self.name,
                    included_namespaces: self.included_namespaces.as_deref(),
                    excluded_namespaces: self.excluded_namespaces.as_deref(),
                    included_resources: self.included_resources.as_deref(),
                    excluded_resources: self.excluded_resources.as_deref(),
                    label_selector: self.label_selector.as_ref(),
                }
            }
        }
    )*};
}

hook_spec_selector!(
    velero_api::v1::BackupResourceHookSpec,
    velero_api::v1::RestoreResourceHookSpec
);

impl HookSelector {
    /// Resource entries (`pods`, `pod`, `po`, `*`) go through `resolve` to group-resource names,
    /// as Velero resolves them through discovery; entries it does not know are dropped, as Velero
    /// drops them.
    pub fn new(
        spec: &SelectorSpec<'_>,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SelectorError> {
        let resources = |list: Option<&[String]>| -> Vec<String> {
            list.unwrap_or_default()
                .iter()
                .filter_map(|entry| {
                    if entry == "*" {
                        Some(entry.clone())
                    } else {
                        resolve(entry)
                    }
                })
                .collect()
        };
        let labels = spec
            .label_selector
            .map(Selector::new)
            .transpose()
            .map_err(|source| SelectorError {
                hook: spec.name.to_string(),
                source,
            })?;
        Ok(HookSelector {
            namespaces: IncludesExcludes::new(
                spec.included_namespaces.unwrap_or_default().iter().cloned(),
                spec.excluded_namespaces.unwrap_or_default().iter().cloned(),
            ),
            resources: IncludesExcludes::new(
                resources(spec.included_resources),
                resources(spec.excluded_resources),
            ),
            labels,
        })
    }

    /// Velero's `applicableTo`.
    pub fn applies_to(
        &self,
        group_resource: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        self.namespaces.should_include(namespace)
            && self.resources.should_include(group_resource)
            && self.labels.as_ref().is_none_or(|s| s.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(entry: &str) -> Option<String> {
        matches!(entry, "pods" | "pod" | "po").then(|| "pods".to_string())
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn namespaces_resources_and_labels_all_have_to_match() {
        let included = strings(&["app-*"]);
        let excluded = strings(&["app-old"]);
        let resources = strings(&["po", "unknown"]);
        let selector = LabelSelector {
            match_labels: Some([("tier".to_string(), "db".to_string())].into()),
            ..Default::default()
        };
        let s = HookSelector::new(
            &SelectorSpec {
                name: "h",
                included_namespaces: Some(&included),
                excluded_namespaces: Some(&excluded),
                included_resources: Some(&resources),
                excluded_resources: None,
                label_selector: Some(&selector),
            },
            &resolve,
        )
        .expect("valid selector");
        let db: BTreeMap<String, String> = [("tier".to_string(), "db".to_string())].into();
        assert!(s.applies_to("pods", "app-new", &db));
        assert!(!s.applies_to("pods", "app-old", &db));
        assert!(!s.applies_to("pods", "other", &db));
        assert!(!s.applies_to("pods", "app-new", &BTreeMap::new()));
        assert!(!s.applies_to("deployments.apps", "app-new", &db));
    }

    #[test]
    fn an_empty_selector_applies_everywhere_and_a_bad_one_names_its_hook() {
        let empty = SelectorSpec {
            name: "all",
            included_namespaces: None,
            excluded_namespaces: None,
            included_resources: None,
            excluded_resources: None,
            label_selector: None,
        };
        let s = HookSelector::new(&empty, &resolve).expect("valid");
        assert!(s.applies_to("pods", "anything", &BTreeMap::new()));

        let bad = LabelSelector {
            match_labels: Some([("bad key!".to_string(), "x".to_string())].into()),
            ..Default::default()
        };
        let err = HookSelector::new(
            &SelectorSpec {
                name: "freeze",
                label_selector: Some(&bad),
                ..empty
            },
            &resolve,
        )
        .expect_err("an invalid key is refused");
        assert!(err.to_string().contains("\"freeze\""), "{err}");
    }
}
