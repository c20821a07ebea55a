//! Reading an item (a Kubernetes object as JSON, as listed or as stored in a backup) the way
//! Velero's Go code reads an unstructured object: a missing field, or one of another type, reads
//! as absent.

use std::collections::BTreeMap;

use serde_json::Value;

/// The string at `pointer` (a JSON pointer such as `/metadata/name`), if there is one.
pub fn str_at<'a>(item: &'a Value, pointer: &str) -> Option<&'a str> {
    item.pointer(pointer).and_then(Value::as_str)
}

/// The string at `pointer`, or `""` as Go's `NestedString` gives for a missing one.
pub fn str_or_empty<'a>(item: &'a Value, pointer: &str) -> &'a str {
    str_at(item, pointer).unwrap_or_default()
}

/// A map of strings (labels, annotations), its entries that are not strings left out.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The item's labels.
pub fn labels(item: &Value) -> BTreeMap<String, String> {
    string_map(item.pointer("/metadata/labels"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_of_another_type_read_as_absent() {
        let item = json!({"metadata": {"name": "web", "generation": 3,
            "labels": {"app": "web", "broken": 1}}});
        assert_eq!(str_at(&item, "/metadata/name"), Some("web"));
        assert_eq!(str_at(&item, "/metadata/generation"), None);
        assert_eq!(str_or_empty(&item, "/metadata/namespace"), "");
        assert_eq!(
            labels(&item),
            BTreeMap::from([("app".into(), "web".into())])
        );
        assert!(string_map(None).is_empty());
    }
}
