//! The filter part of Velero's `prepareBackupRequest` (`pkg/controller/backup_controller.go`): normalise a Backup's
//! filter fields and collect the validation errors that put it in phase `FailedValidation`.

use velero_api::v1::BackupSpec;

use super::includes_excludes::{
    validate_includes_excludes, validate_namespace_includes_excludes,
    validate_scoped_includes_excludes,
};
use super::resources::{
    AUTO_EXCLUDED_CLUSTER_SCOPED, AUTO_EXCLUDED_NAMESPACE_SCOPED, old_and_new_filters_mixed,
    uses_old_resource_filters,
};

const MIXED_STYLES: &str = "include-resources, exclude-resources and include-cluster-resources are old filter parameters.\n\
include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources are new filter parameters.\n\
They cannot be used together";

const BOTH_SELECTORS: &str = "encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified";

/// Validates a Backup's filters and rewrites them the way Velero stores them, returning Velero's
/// `status.validationErrors` entries for the filters (empty = valid).
///
/// In Velero's order: old and new resource styles mixed; the resource lists of the style in use
/// (each valid pair then gets the auto-exclusions added to its exclude list and removed from its
/// include list); an empty `includedNamespaces` becomes `["*"]`; the namespace lists; and
/// `labelSelector` with `orLabelSelectors`. Call it after appending the namespaces labelled
/// `velero.io/exclude-from-backup=true` to `excludedNamespaces`, as Velero does.
///
/// Removing an auto-excluded type from an include list can empty it, and an empty include list
/// means "all": `includedNamespaceScopedResources: [volumesnapshots.snapshot.storage.k8s.io]`
/// ends up including every namespaced type except VolumeSnapshots. That is Velero's behaviour.
pub fn prepare_backup_spec(spec: &mut BackupSpec) -> Vec<String> {
    let mut errors = Vec::new();

    if old_and_new_filters_mixed(spec) {
        errors.push(MIXED_STYLES.to_string());
    }

    if uses_old_resource_filters(spec) {
        let errs = validate_includes_excludes(
            list(&spec.included_resources),
            list(&spec.excluded_resources),
        );
        if errs.is_empty() {
            let added: Vec<&str> = AUTO_EXCLUDED_NAMESPACE_SCOPED
                .iter()
                .chain(AUTO_EXCLUDED_CLUSTER_SCOPED)
                .copied()
                .collect();
            add_exclusions(
                &mut spec.included_resources,
                &mut spec.excluded_resources,
                &added,
            );
        }
        errors.extend(
            errs.into_iter()
                .map(|e| format!("Invalid included/excluded resource lists: {e}")),
        );
    } else {
        let errs = validate_scoped_includes_excludes(
            list(&spec.included_cluster_scoped_resources),
            list(&spec.excluded_cluster_scoped_resources),
        );
        if errs.is_empty() {
            add_exclusions(
                &mut spec.included_cluster_scoped_resources,
                &mut spec.excluded_cluster_scoped_resources,
                AUTO_EXCLUDED_CLUSTER_SCOPED,
            );
        }
        errors.extend(
            errs.into_iter()
                .map(|e| format!("Invalid cluster-scoped included/excluded resource lists: {e}")),
        );

        let errs = validate_scoped_includes_excludes(
            list(&spec.included_namespace_scoped_resources),
            list(&spec.excluded_namespace_scoped_resources),
        );
        if errs.is_empty() {
            add_exclusions(
                &mut spec.included_namespace_scoped_resources,
                &mut spec.excluded_namespace_scoped_resources,
                AUTO_EXCLUDED_NAMESPACE_SCOPED,
            );
        }
        errors
            .extend(errs.into_iter().map(|e| {
                format!("Invalid namespace-scoped included/excluded resource lists: {e}")
            }));
    }

    if list(&spec.included_namespaces).is_empty() {
        spec.included_namespaces = Some(vec!["*".to_string()]);
    }
    errors.extend(
        validate_namespace_includes_excludes(
            list(&spec.included_namespaces),
            list(&spec.excluded_namespaces),
        )
        .into_iter()
        .map(|e| format!("Invalid included/excluded namespace lists: {e}")),
    );

    if spec.label_selector.is_some() && spec.or_label_selectors.is_some() {
        errors.push(BOTH_SELECTORS.to_string());
    }

    errors
}

/// The validation errors [`prepare_backup_spec`] would report, leaving the spec as it is.
pub fn validate_backup_spec(spec: &BackupSpec) -> Vec<String> {
    prepare_backup_spec(&mut spec.clone())
}

fn list(list: &Option<Vec<String>>) -> &[String] {
    list.as_deref().unwrap_or_default()
}

/// Velero's `modifyResourceIncludeExclude`: append what is not yet excluded, then drop from the
/// includes every entry equal to an exclude. Empty lists are left unset, as Go omits them.
fn add_exclusions(
    includes: &mut Option<Vec<String>>,
    excludes: &mut Option<Vec<String>>,
    added: &[&str],
) {
    let mut new_excludes = excludes.take().unwrap_or_default();
    for item in added {
        if !new_excludes.iter().any(|e| e == item) {
            new_excludes.push(item.to_string());
        }
    }
    if let Some(list) = includes.as_mut() {
        list.retain(|i| !new_excludes.contains(i));
        if list.is_empty() {
            *includes = None;
        }
    }
    *excludes = (!new_excludes.is_empty()).then_some(new_excludes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    const VS: &str = "volumesnapshots.snapshot.storage.k8s.io";
    const VSC: &str = "volumesnapshotcontents.snapshot.storage.k8s.io";

    #[test]
    fn default_spec_is_valid_and_gets_new_style_exclusions() {
        let mut spec = BackupSpec::default();
        assert!(prepare_backup_spec(&mut spec).is_empty());
        assert_eq!(spec.included_namespaces, strings(&["*"]));
        assert_eq!(spec.excluded_cluster_scoped_resources, strings(&[VSC]));
        assert_eq!(spec.excluded_namespace_scoped_resources, strings(&[VS]));
        assert_eq!(spec.included_cluster_scoped_resources, None);
        assert_eq!(spec.excluded_resources, None);
    }

    #[test]
    fn old_style_gets_both_exclusions_in_its_single_list() {
        let mut spec = BackupSpec {
            include_cluster_resources: Some(true),
            excluded_resources: strings(&["secrets", VSC]),
            included_resources: strings(&["pods", VS]),
            ..Default::default()
        };
        // VS in both lists is a user error only when the user wrote both.
        let errors = prepare_backup_spec(&mut spec);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(spec.excluded_resources, strings(&["secrets", VSC, VS]));
        assert_eq!(spec.included_resources, strings(&["pods"]));
        assert_eq!(spec.excluded_cluster_scoped_resources, None);
    }

    #[test]
    fn removing_the_only_include_leaves_an_include_everything_list() {
        let mut spec = BackupSpec {
            included_namespace_scoped_resources: strings(&[VS]),
            included_cluster_scoped_resources: strings(&["storageclasses", VSC]),
            ..Default::default()
        };
        assert!(prepare_backup_spec(&mut spec).is_empty());
        assert_eq!(spec.included_namespace_scoped_resources, None);
        assert_eq!(spec.excluded_namespace_scoped_resources, strings(&[VS]));
        assert_eq!(
            spec.included_cluster_scoped_resources,
            strings(&["storageclasses"])
        );
        assert_eq!(spec.excluded_cluster_scoped_resources, strings(&[VSC]));
    }

    #[test]
    fn mixed_styles() {
        let spec = BackupSpec {
            included_resources: strings(&["pods"]),
            excluded_cluster_scoped_resources: strings(&["storageclasses"]),
            ..Default::default()
        };
        assert_eq!(validate_backup_spec(&spec), vec![MIXED_STYLES.to_string()]);
        assert!(MIXED_STYLES.ends_with("new filter parameters.\nThey cannot be used together"));
    }

    #[test]
    fn invalid_lists_are_reported_and_not_modified() {
        let mut spec = BackupSpec {
            included_resources: strings(&["*", "pods"]),
            excluded_resources: strings(&["pods"]),
            ..Default::default()
        };
        assert_eq!(
            prepare_backup_spec(&mut spec),
            vec![
                "Invalid included/excluded resource lists: includes list must either contain '*' only, or a non-empty list of items",
                "Invalid included/excluded resource lists: excludes list cannot contain an item in the includes list: pods",
            ]
        );
        assert_eq!(spec.excluded_resources, strings(&["pods"]));

        let mut spec = BackupSpec {
            included_cluster_scoped_resources: strings(&["sc"]),
            excluded_cluster_scoped_resources: strings(&["*"]),
            excluded_namespace_scoped_resources: strings(&["*", "pods"]),
            ..Default::default()
        };
        assert_eq!(
            prepare_backup_spec(&mut spec),
            vec![
                "Invalid cluster-scoped included/excluded resource lists: when exclude is '*', include cannot have value",
                "Invalid namespace-scoped included/excluded resource lists: excludes list must either contain '*' only, or a non-empty list of items",
            ]
        );
        assert_eq!(spec.excluded_cluster_scoped_resources, strings(&["*"]));
        assert_eq!(
            spec.excluded_namespace_scoped_resources,
            strings(&["*", "pods"])
        );
    }

    #[test]
    fn one_valid_scoped_pair_is_modified_even_when_the_other_is_not() {
        let mut spec = BackupSpec {
            excluded_cluster_scoped_resources: strings(&["*", "x"]),
            ..Default::default()
        };
        assert_eq!(prepare_backup_spec(&mut spec).len(), 1);
        assert_eq!(spec.excluded_cluster_scoped_resources, strings(&["*", "x"]));
        assert_eq!(spec.excluded_namespace_scoped_resources, strings(&[VS]));
    }

    #[test]
    fn namespace_errors() {
        let spec = BackupSpec {
            included_namespaces: strings(&["Prod"]),
            excluded_namespaces: strings(&["*"]),
            ..Default::default()
        };
        let errors = validate_backup_spec(&spec);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0],
            "Invalid included/excluded namespace lists: excludes list cannot contain '*'"
        );
        assert!(errors[1].starts_with(
            "Invalid included/excluded namespace lists: invalid namespace \"Prod\": a lowercase RFC 1123 label"
        ));
        // The exclude `*` against the normalised include `*`.
        let spec = BackupSpec {
            excluded_namespaces: strings(&["*"]),
            ..Default::default()
        };
        assert_eq!(
            validate_backup_spec(&spec),
            vec![
                "Invalid included/excluded namespace lists: excludes list cannot contain '*'",
                "Invalid included/excluded namespace lists: excludes list cannot contain an item in the includes list: *",
            ]
        );
    }

    #[test]
    fn both_selectors() {
        let spec = BackupSpec {
            label_selector: Some(LabelSelector::default()),
            or_label_selectors: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            validate_backup_spec(&spec),
            vec![BOTH_SELECTORS.to_string()]
        );
        let spec = BackupSpec {
            or_label_selectors: Some(vec![LabelSelector::default()]),
            ..Default::default()
        };
        assert!(validate_backup_spec(&spec).is_empty());
    }

    #[test]
    fn validate_does_not_touch_the_spec() {
        let spec = BackupSpec::default();
        assert!(validate_backup_spec(&spec).is_empty());
        assert_eq!(spec, BackupSpec::default());
    }

    #[test]
    fn errors_come_in_velero_order() {
        let spec = BackupSpec {
            included_resources: strings(&["*", "a"]),
            included_namespace_scoped_resources: strings(&["pods"]),
            excluded_namespaces: strings(&["*"]),
            label_selector: Some(LabelSelector::default()),
            or_label_selectors: Some(vec![]),
            ..Default::default()
        };
        let errors = validate_backup_spec(&spec);
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert_eq!(errors[0], MIXED_STYLES);
        assert!(errors[1].starts_with("Invalid included/excluded resource lists:"));
        assert!(errors[2].starts_with("Invalid included/excluded namespace lists:"));
        assert!(errors[3].starts_with("Invalid included/excluded namespace lists:"));
        assert_eq!(errors[4], BOTH_SELECTORS);
    }
}
