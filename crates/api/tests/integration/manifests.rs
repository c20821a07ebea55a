//! Manifests written for Velero read here unchanged, and what we write back says the same thing.

use serde_json::{Value, json};
use velero_api::manifest::VeleroObject;
use velero_api::{Duration, v1};
use velero_test_harness::manifests::{prune_nulls, sample_manifests};

fn manifests() -> Vec<(String, Value)> {
    let out = sample_manifests().expect("sample manifests");
    assert!(out.len() >= 13, "one manifest per kind at least");
    out
}

/// Field-by-field equality, where two durations are equal if Go would parse them to the same value
/// (`10m` is written back as `10m0s`, as Velero does).
fn assert_same(path: &str, want: &Value, got: &Value) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => assert_same(&format!("{path}.{k}"), x, y),
                    (x, y) => panic!("{path}.{k}: manifest has {x:?}, round trip has {y:?}"),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: array length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same(&format!("{path}[{i}]"), x, y);
            }
        }
        (Value::String(a), Value::String(b)) if a != b => {
            let (x, y) = (Duration::parse(a), Duration::parse(b));
            assert!(x.is_ok() && x == y, "{path}: {a:?} became {b:?}");
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

#[test]
fn every_manifest_reads_and_writes_back_unchanged() {
    for (file, value) in manifests() {
        let typed =
            VeleroObject::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let written = typed.to_value();
        let mut want = prune_nulls(&value);
        // A missing spec is defaulted to {}, as the API server does.
        want.as_object_mut()
            .unwrap()
            .entry("spec")
            .or_insert(json!({}));
        assert_same(&file, &want, &written);
        // And reading what we wrote gives the same object.
        assert_eq!(VeleroObject::from_value(written).unwrap(), typed, "{file}");
    }
}

#[test]
fn unknown_kinds_and_bad_fields_are_named_in_the_error() {
    let err = VeleroObject::from_value(json!({"apiVersion": "v1", "kind": "Pod"})).unwrap_err();
    assert!(err.to_string().contains("not a Velero object"), "{err}");

    let err = VeleroObject::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "b"}, "spec": {"ttl": "3 days"}
    }))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("invalid Backup \"b\"") && text.contains("invalid duration"),
        "{text}"
    );
}

/// What Velero's Go types would write for the same Backup: the same keys, and nothing for the
/// fields that are unset (Go's omitempty).
#[test]
fn a_backup_we_write_has_velero_field_names_and_omits_unset_fields() {
    let mut backup = v1::Backup::new(
        "nightly",
        v1::BackupSpec {
            included_namespaces: Some(vec!["app".into()]),
            ttl: Some(Duration::from_hours(720)),
            storage_location: Some("default".into()),
            default_volumes_to_fs_backup: Some(false),
            csi_snapshot_timeout: Some(Duration::from_secs(600)),
            data_mover: Some("velero".into()),
            ..Default::default()
        },
    );
    backup.metadata.namespace = Some("velero".into());
    backup.status = Some(v1::BackupStatus {
        version: Some(1),
        format_version: Some("1.1.0".into()),
        phase: Some(v1::BackupPhase::Completed),
        csi_volume_snapshots_attempted: Some(0),
        progress: Some(v1::BackupProgress {
            total_items: Some(3),
            items_backed_up: Some(3),
        }),
        ..Default::default()
    });
    let written = serde_json::to_value(&backup).unwrap();
    assert_eq!(
        written,
        json!({
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {"name": "nightly", "namespace": "velero"},
            "spec": {
                "includedNamespaces": ["app"],
                "ttl": "720h0m0s",
                "storageLocation": "default",
                "defaultVolumesToFsBackup": false,
                "csiSnapshotTimeout": "10m0s",
                "datamover": "velero"
            },
            "status": {
                "version": 1,
                "formatVersion": "1.1.0",
                "phase": "Completed",
                "csiVolumeSnapshotsAttempted": 0,
                "progress": {"totalItems": 3, "itemsBackedUp": 3}
            }
        })
    );
}

#[test]
fn a_spec_less_backup_reads_as_back_up_everything() {
    let backup: v1::Backup = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "everything"}, "spec": {}
    }))
    .unwrap();
    assert_eq!(backup.spec, v1::BackupSpec::default());
}
