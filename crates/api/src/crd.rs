//! The CustomResourceDefinitions of every Velero kind, generated from the types in this crate and
//! brought in line with the ones Velero ships.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::{v1, v2alpha1};

/// The generator of every Velero CRD, in the order `velero install` writes them.
const ALL: &[fn() -> CustomResourceDefinition] = &[
    v1::Backup::crd,
    v1::BackupRepository::crd,
    v1::BackupStorageLocation::crd,
    v1::DeleteBackupRequest::crd,
    v1::DownloadRequest::crd,
    v1::PodVolumeBackup::crd,
    v1::PodVolumeRestore::crd,
    v1::Restore::crd,
    v1::Schedule::crd,
    v1::ServerStatusRequest::crd,
    v1::VolumeSnapshotLocation::crd,
    v2alpha1::DataDownload::crd,
    v2alpha1::DataUpload::crd,
];

/// Every Velero CRD, in the order `velero install` writes them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    ALL.iter().map(|crd| finish(crd())).collect()
}

fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let names = &mut crd.spec.names;
    names.list_kind = Some(format!("{}List", names.kind));
    crd.metadata
        .labels
        .get_or_insert_default()
        .insert("component".into(), "velero".into());
    for version in &mut crd.spec.versions {
        // Velero serves status as part of the main resource, not as a subresource (velero#4950):
        // backup sync creates Backups with their status in one call and Velero's controllers write
        // status with ordinary patches; a status subresource would silently drop both.
        version.subresources = None;
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        walk(root);
        let spec_has_required_fields = root
            .properties
            .as_ref()
            .and_then(|p| p.get("spec"))
            .is_some_and(|spec| spec.required.as_ref().is_some_and(|r| !r.is_empty()));
        if !spec_has_required_fields {
            // Velero accepts a Backup or Restore without any `spec` ("back up everything").
            // Defaulting it to `{}` keeps such manifests valid while every stored object still
            // has a spec to read.
            if let Some(required) = root.required.as_mut() {
                required.retain(|r| r != "spec");
                if required.is_empty() {
                    root.required = None;
                }
            }
            if let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) {
                spec.default = Some(JSON(serde_json::json!({})));
            }
        }
    }
    crd
}

/// Schema details where the derived schema is stricter than Velero's.
fn walk(schema: &mut JSONSchemaProps) {
    // Fields that deserialize to a Rust default get a derived `default`; Velero's CRDs have none,
    // and the API server would write those values into every stored object.
    schema.default = None;
    // An `Option<enum>` derives `null` as an enum member; Velero's enums list only real values.
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    // Object references (SecretKeySelector) treat `name` as optional, as Kubernetes itself does.
    if let (Some(props), Some(required)) = (schema.properties.as_ref(), schema.required.as_mut())
        && props.contains_key("key")
        && props.contains_key("name")
    {
        required.retain(|r| r != "name");
    }
    if schema.required.as_ref().is_some_and(Vec::is_empty) {
        schema.required = None;
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        walk(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        walk(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        walk(extra);
    }
}
