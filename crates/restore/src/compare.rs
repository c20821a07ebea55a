//! Comparing a backed-up object with the cluster's: the normalisation the restore applies to
//! objects that already exist (Velero's existing-resource check in pkg/restore/restore.go), the
//! merge patch between two versions, and a field-level list of differences that restore plans
//! and `velero backup diff` show.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::item::reset_metadata;

/// For comparing an existing object with the backed-up one: server bookkeeping removed.
pub fn comparable(item: &Value) -> Value {
    let mut item = item.clone();
    reset_metadata(&mut item);
    if let Some(obj) = item.as_object_mut() {
        obj.remove("status");
    }
    // Field ownership records timestamps, so it always differs; Velero compares it anyway and warns
    // about every existing object. We leave it out of the comparison.
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    item
}

/// An RFC 7386 merge patch turning `from` into `to` (Velero's `generatePatch`); `None` if equal.
pub fn merge_patch(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (k, v) in b {
                match a.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => {
                        if let Some(p) = merge_patch(old, v) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (a, b) if a == b => None,
        (_, b) => Some(b.clone()),
    }
}

/// One field that differs: where, and its value on each side (`None`: absent there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// kubectl-style: `spec.replicas`, `metadata.labels["app.kubernetes.io/name"]`,
    /// `spec.containers[0].image`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Value>,
}

/// The leaves where `backup` and `cluster` differ, in a stable order. Objects are compared key by
/// key; lists of equal length element by element; anything else as a whole.
pub fn field_diff(backup: &Value, cluster: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    diff_at(String::new(), Some(backup), Some(cluster), &mut changes);
    changes
}

fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_string())),
    }
}

fn diff_at(
    path: String,
    backup: Option<&Value>,
    cluster: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    match (backup, cluster) {
        (Some(a), Some(b)) if a == b => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a
                .keys()
                .chain(b.keys().filter(|k| !a.contains_key(*k)))
                .collect();
            keys.sort();
            for key in keys {
                diff_at(key_path(&path, key), a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_at(format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) => out.push(FieldChange {
            path,
            backup: a.cloned(),
            cluster: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_that_differ_are_named_kubectl_style() {
        let backup = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "a:1", "name": "c"}]}}},
            "metadata": {"labels": {"app.kubernetes.io/name": "web", "same": "x"}}, "data": {"gone": "1"}});
        let cluster = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "a:2", "name": "c"}]}}},
            "metadata": {"labels": {"same": "x"}}, "data": {"new": "2"}});
        let changes = field_diff(&backup, &cluster);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "data.gone",
                "data.new",
                "metadata.labels[\"app.kubernetes.io/name\"]",
                "spec.replicas",
                "spec.template.spec.containers[0].image",
            ]
        );
        assert_eq!(changes[0].cluster, None);
        assert_eq!(changes[1].backup, None);
        assert_eq!(changes[3].backup, Some(json!(1)));
        assert_eq!(changes[3].cluster, Some(json!(3)));
        assert!(field_diff(&backup, &backup).is_empty());
        let grown = field_diff(&json!({"a": [1]}), &json!({"a": [1, 2]}));
        assert_eq!(grown.len(), 1);
        assert_eq!(grown[0].path, "a");
    }

    #[test]
    fn comparable_drops_what_the_server_owns() {
        let live = json!({"metadata": {"name": "n", "uid": "u", "resourceVersion": "9", "managedFields": [],
            "creationTimestamp": "t", "labels": {"a": "b"}}, "status": {"x": 1}, "spec": {"k": 1}});
        assert_eq!(
            comparable(&live),
            json!({"metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"k": 1}})
        );
    }
}
