//! The generated CRDs describe Velero's kinds the way Velero's own CRDs do.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

fn by_name() -> BTreeMap<
    String,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
> {
    velero_api::crds()
        .into_iter()
        .map(|c| (c.metadata.name.clone().unwrap(), c))
        .collect()
}

fn prop<'a>(schema: &'a JSONSchemaProps, path: &[&str]) -> &'a JSONSchemaProps {
    path.iter().fold(schema, |s, p| {
        s.properties
            .as_ref()
            .and_then(|m| m.get(*p))
            .unwrap_or_else(|| panic!("no property {p}"))
    })
}

#[test]
fn all_thirteen_kinds_with_velero_names() {
    let crds = by_name();
    let names: Vec<_> = crds.keys().cloned().collect();
    assert_eq!(
        names,
        [
            "backuprepositories.velero.io",
            "backups.velero.io",
            "backupstoragelocations.velero.io",
            "datadownloads.velero.io",
            "datauploads.velero.io",
            "deletebackuprequests.velero.io",
            "downloadrequests.velero.io",
            "podvolumebackups.velero.io",
            "podvolumerestores.velero.io",
            "restores.velero.io",
            "schedules.velero.io",
            "serverstatusrequests.velero.io",
            "volumesnapshotlocations.velero.io",
        ]
    );
    for crd in crds.values() {
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.group, "velero.io");
        let names = &crd.spec.names;
        assert_eq!(
            names.list_kind.as_deref(),
            Some(format!("{}List", names.kind).as_str())
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert!(v.served && v.storage);
        assert!(
            v.subresources.is_none(),
            "{}: Velero has no status subresource",
            names.kind
        );
    }
    let short = |n: &str| crds[n].spec.names.short_names.clone().unwrap_or_default();
    assert_eq!(short("backupstoragelocations.velero.io"), ["bsl"]);
    assert_eq!(short("volumesnapshotlocations.velero.io"), ["vsl"]);
    assert_eq!(short("serverstatusrequests.velero.io"), ["ssr"]);
    assert_eq!(
        crds["datauploads.velero.io"].spec.versions[0].name,
        "v2alpha1"
    );
}

#[test]
fn printer_columns_match_velero() {
    let crds = by_name();
    let columns = |n: &str| -> Vec<(String, String, String)> {
        crds[n].spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.type_, c.json_path))
            .collect()
    };
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        columns("backupstoragelocations.velero.io"),
        [
            s("Phase", "string", ".status.phase"),
            s("Last Validated", "date", ".status.lastValidationTime"),
            s("Age", "date", ".metadata.creationTimestamp"),
            s("Default", "boolean", ".spec.default"),
        ]
    );
    assert_eq!(
        columns("schedules.velero.io"),
        [
            s("Status", "string", ".status.phase"),
            s("Schedule", "string", ".spec.schedule"),
            s("LastBackup", "date", ".status.lastBackup"),
            s("Age", "date", ".metadata.creationTimestamp"),
            s("Paused", "boolean", ".spec.paused"),
        ]
    );
    assert_eq!(columns("backups.velero.io"), []);
    assert_eq!(columns("podvolumebackups.velero.io").len(), 9);
    assert_eq!(columns("datauploads.velero.io").len(), 8);
}

#[test]
fn schemas_are_structural_with_velero_enums() {
    let crds = by_name();
    let root = |n: &str| {
        crds[n].spec.versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema
            .unwrap()
    };
    let backup = root("backups.velero.io");
    let phase = prop(&backup, &["status", "phase"]);
    let values: Vec<String> = phase
        .enum_
        .clone()
        .unwrap()
        .into_iter()
        .map(|v| v.0.as_str().unwrap().to_string())
        .collect();
    assert_eq!(values.len(), 13);
    assert_eq!(values[0], "New");
    assert_eq!(values[12], "Deleting");
    assert_eq!(
        prop(&backup, &["spec", "ttl"]).type_.as_deref(),
        Some("string")
    );
    // A Backup needs no spec at all; it is defaulted to {} so stored objects always have one.
    assert!(backup.required.is_none());
    assert!(prop(&backup, &["spec"]).default.is_some());

    let restore = root("restores.velero.io");
    let init = prop(&restore, &["spec", "hooks", "resources"]);
    let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) = &init.items else {
        panic!("hook resources are an array");
    };
    let post = prop(items, &["postHooks"]);
    let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(post_items)) = &post.items else {
        panic!("postHooks are an array");
    };
    let containers = prop(post_items, &["init", "initContainers"]);
    let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(c)) = &containers.items else {
        panic!("initContainers are an array");
    };
    assert_eq!(c.x_kubernetes_preserve_unknown_fields, Some(true));

    // The velero-rs retention extension: optional, non-negative counts.
    let schedule = root("schedules.velero.io");
    let retention = prop(&schedule, &["spec", "retention"]);
    assert!(retention.required.is_none());
    let mut kinds: Vec<_> = retention.properties.clone().unwrap().into_keys().collect();
    kinds.sort();
    assert_eq!(kinds, ["daily", "hourly", "monthly", "weekly", "yearly"]);
    let daily = prop(retention, &["daily"]);
    assert_eq!(daily.type_.as_deref(), Some("integer"));
    assert_eq!(daily.minimum, Some(0.0));
    let mut spec_required = prop(&schedule, &["spec"]).required.clone().unwrap();
    spec_required.sort();
    assert_eq!(spec_required, ["schedule", "template"]);

    let bsl = root("backupstoragelocations.velero.io");
    let mut required = prop(&bsl, &["spec"]).required.clone().unwrap();
    required.sort();
    assert_eq!(required, ["objectStorage", "provider"]);
    assert_eq!(
        prop(&bsl, &["spec", "objectStorage", "caCert"])
            .format
            .as_deref(),
        Some("byte")
    );
    assert_eq!(
        prop(&bsl, &["spec", "credential"])
            .required
            .clone()
            .unwrap(),
        ["key"]
    );

    // No derived `anyOf`/`oneOf`, which structural schemas forbid at these places.
    for (name, crd) in &crds {
        let text = serde_json::to_string(&crd.spec).unwrap();
        assert!(
            !text.contains("anyOf") && !text.contains("oneOf") && !text.contains("$ref"),
            "{name}"
        );
        assert!(!text.contains("null]"), "{name}: null left in an enum");
    }
}
