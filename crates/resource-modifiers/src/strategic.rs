//! Kubernetes strategic merge patch, as apimachinery's `strategicpatch.StrategicMergeMapPatch`
//! applies it on the server side (nulls delete, parallel lists are honoured), over JSON values
//! and with the merge keys of [`super::scheme`].
//!
//! Maps merge recursively; a list replaces the original unless its field has a merge strategy,
//! in which case elements merge by the field's merge key (lists of scalars merge as sets). The
//! directives `$patch` (`replace`, `delete`, and `merge` in lists), `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` work as in Kubernetes,
//! element order included.
//!
//! One difference from apimachinery: directives inside values that are copied from the patch
//! without merging (a new field, a replaced list) are removed here, where apimachinery only
//! removes maps carrying `$patch` and would leave e.g. a `$retainKeys` key in the object.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::scheme::{ListMeta, Schema};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// A patch apimachinery would refuse; messages are apimachinery's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct SmpError(String);

type Result<T> = std::result::Result<T, SmpError>;

type Object = Map<String, Value>;

/// Applies `patch` to `original`, an object of the type `schema` describes.
pub(super) fn apply(original: Object, patch: Object, schema: Schema) -> Result<Object> {
    merge_map(original, patch, schema)
}

/// The Go type a decoded JSON value has, which decides whether two values merge or one replaces
/// the other, and whether list elements are alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Map,
}

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

fn go_type(value: &Value) -> &'static str {
    match kind_of(value) {
        Kind::Null => "<nil>",
        Kind::Bool => "bool",
        Kind::Int => "int64",
        Kind::Float => "float64",
        Kind::String => "string",
        Kind::List => "[]interface {}",
        Kind::Map => "map[string]interface {}",
    }
}

fn bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    SmpError(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn expected_map(actual: &Value) -> SmpError {
    bad_arg_type("map[string]interface {}", actual)
}

fn expected_list(actual: &Value) -> SmpError {
    bad_arg_type("[]interface {}", actual)
}

fn no_merge_key(map: &Object, key: &str) -> SmpError {
    SmpError(format!(
        "map: {} does not contain declared merge key: {key}",
        Value::Object(map.clone())
    ))
}

fn bad_patch_type(directive: &Value, map: &Object) -> SmpError {
    let directive = match directive {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    SmpError(format!(
        "unknown patch type: {directive} in map: {}",
        Value::Object(map.clone())
    ))
}

fn merge_map(mut original: Object, mut patch: Object, schema: Schema) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(clean_map(patch))
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
        } else {
            (key, false)
        };
        // A null deletes the field; a null for a field the original lacks is dropped.
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(slot) = original.get_mut(&key) else {
            if !delete_list {
                set_from_patch(&mut original, key, patch_value);
            }
            continue;
        };
        if kind_of(slot) != kind_of(&patch_value) {
            if !delete_list {
                set_from_patch(&mut original, key, patch_value);
            }
            continue;
        }
        match (std::mem::take(slot), patch_value) {
            (Value::Object(orig), Value::Object(patch)) => {
                *slot = Value::Object(merge_map(orig, patch, schema.object(&key))?);
            }
            (Value::Array(orig), Value::Array(patch)) => {
                *slot = Value::Array(merge_list(orig, patch, schema.list(&key), delete_list)?);
            }
            (_, scalar) => *slot = scalar,
        }
    }
    Ok(original)
}

/// A value taken from the patch as it is: nulls inside it mean nothing, directives are removed.
fn set_from_patch(original: &mut Object, key: String, mut value: Value) {
    discard_nulls(&mut value);
    match remove_directives(value) {
        Some(value) => {
            original.insert(key, value);
        }
        None => {
            original.remove(&key);
        }
    }
}

fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// `None` when the value is a map carrying `$patch`, which must not appear in the result.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key(DIRECTIVE) => None,
        Value::Object(map) => Some(Value::Object(clean_map(map))),
        Value::Array(items) => Some(Value::Array(remove_directives_in_list(items))),
        other => Some(other),
    }
}

fn remove_directives_in_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(remove_directives).collect()
}

fn clean_map(map: Object) -> Object {
    map.into_iter()
        .filter(|(key, _)| !is_directive_key(key))
        .filter_map(|(key, value)| remove_directives(value).map(|value| (key, value)))
        .collect()
}

fn is_directive_key(key: &str) -> bool {
    key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// `$deleteFromPrimitiveList/finalizers` → `finalizers`.
fn extract_key(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_string()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(SmpError(
            "invalid patch format of primitive list".to_string(),
        )),
        _ => Err(SmpError(
            "invalid patch format of setElementOrder list".to_string(),
        )),
    }
}

/// `$retainKeys: [a, b]` drops every field of the original not listed; every field the patch
/// sets must be listed.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || SmpError("invalid patch format of retainKeys".to_string());
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let listed = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(key) {
            return Err(bad());
        }
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// `$setElementOrder/<field>`: merges `<field>` now and orders the result as the directive
/// lists, keeping elements only the original has near their original neighbours.
fn merge_set_element_order(
    original: &mut Object,
    patch: &mut Object,
    schema: Schema,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(expected_list(&order));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER)?;
        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(expected_list(other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(expected_list(other)),
        };
        let meta = schema.list(&field);
        let merge_key = meta.merge_key.unwrap_or("");
        validate_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;

        let merged = match (&original_list, &patch_list) {
            (Some(orig), None) => orig.clone(),
            (None, Some(list)) => remove_directives_in_list(list.clone()),
            (Some(orig), Some(list)) => merge_list(orig.clone(), list.clone(), meta, false)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) = partition(merged, &order, merge_key)?;
        let original_list = original_list.unwrap_or_default();
        let kind = element_kind(&[&original_list, patch_list.as_deref().unwrap_or(&[])])?;
        let ordered = normalize_order(
            patch_items,
            server_only,
            &order,
            &original_list,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(ordered));
        patch.remove(&field);
    }
    Ok(())
}

/// The patch's elements must appear in the `$setElementOrder` list, in the same relative order.
fn validate_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let kept: Vec<Value> = if merge_key.is_empty() {
        patch_list.to_vec()
    } else {
        split_deletions(patch_list.to_vec())?.0
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE))
        {
            p += 1;
            continue;
        }
        if merge_key_values_equal(&kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(SmpError(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn merge_key_values_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let left = left.as_object().ok_or_else(|| expected_map(left))?;
    let right = right.as_object().ok_or_else(|| expected_map(right))?;
    let l = left
        .get(merge_key)
        .ok_or_else(|| no_merge_key(left, merge_key))?;
    let r = right
        .get(merge_key)
        .ok_or_else(|| no_merge_key(right, merge_key))?;
    Ok(l == r)
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: ListMeta,
    delete_list: bool,
) -> Result<Vec<Value>> {
    match meta.merge_key {
        Some(key) => merge_slice(original, patch, meta.elem, key, delete_list),
        // A `$deleteFromPrimitiveList` applies whatever the field's strategy.
        None if delete_list => merge_slice(original, patch, meta.elem, "", true),
        None => Ok(remove_directives_in_list(patch)),
    }
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    merge_key: &str,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch])?;
    let (original, patch, merged) = if kind != Kind::Map {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let both = original.iter().chain(&patch).cloned().collect();
        let merged = deduplicate(both);
        (original, patch, merged)
    } else {
        if merge_key.is_empty() {
            return Err(SmpError(
                "cannot merge lists without merge key for struct".to_string(),
            ));
        }
        let (original, patch) = apply_list_directives(original, patch, merge_key)?;
        let merged = merge_elements(original.clone(), &patch, merge_key, elem)?;
        (original, patch, merged)
    };
    let (patch_items, server_only) = partition(merged, &patch, merge_key)?;
    normalize_order(patch_items, server_only, &patch, &original, merge_key, kind)
}

/// The common type of the elements of `lists`; lists of lists and mixed types are refused.
fn element_kind(lists: &[&[Value]]) -> Result<Kind> {
    let mut found = None;
    for value in lists.iter().flat_map(|l| l.iter()) {
        let kind = kind_of(value);
        match found {
            None if kind == Kind::List => {
                return Err(SmpError("lists of lists are not supported".to_string()));
            }
            None => found = Some(kind),
            Some(previous) if previous != kind || kind == Kind::Null => {
                let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                return Err(SmpError(format!(
                    "list element types are not identical: {}",
                    Value::Array(all)
                )));
            }
            Some(_) => {}
        }
    }
    match found {
        Some(Kind::Null) => Err(SmpError(
            "list elements cannot be null in a merged list".to_string(),
        )),
        Some(kind) => Ok(kind),
        None => Err(SmpError(
            "no elements in any of the given slices".to_string(),
        )),
    }
}

/// Go's in-place de-duplication: a duplicate is overwritten by the last element.
fn deduplicate(mut values: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i + 1 < values.len() {
        let mut j = i + 1;
        while j < values.len() {
            if values[i] == values[j] {
                values.swap_remove(j);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    values
}

/// Handles the elements carrying `$patch`: `delete` removes the original elements with the same
/// merge key, `replace` makes the rest of the patch the whole list.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(expected_map(&item));
        };
        match map.get(DIRECTIVE) {
            None => plain.push(item),
            Some(directive) => match directive.as_str() {
                Some("delete") => {
                    let value = map
                        .get(merge_key)
                        .ok_or_else(|| no_merge_key(map, merge_key))?;
                    original.retain(|v| {
                        v.as_object()
                            .and_then(|m| m.get(merge_key))
                            .is_none_or(|k| k != value)
                    });
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(SmpError(
                        "merging lists cannot yet be specified in the patch".to_string(),
                    ));
                }
                _ => return Err(bad_patch_type(directive, map)),
            },
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Merges each patch element into the original element with the same merge key, or appends it.
fn merge_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    elem: Schema,
) -> Result<Vec<Value>> {
    for item in patch {
        let Value::Object(map) = item else {
            return Err(expected_map(item));
        };
        let key_value = map
            .get(merge_key)
            .ok_or_else(|| no_merge_key(map, merge_key))?;
        match find_by_key(&original, merge_key, key_value)? {
            Some(index) => {
                let Value::Object(existing) = std::mem::take(&mut original[index]) else {
                    return Err(SmpError(format!("value for key {index} is not a map")));
                };
                original[index] = Value::Object(merge_map(existing, map.clone(), elem)?);
            }
            None => original.extend(remove_directives(item.clone())),
        }
    }
    Ok(original)
}

fn find_by_key(list: &[Value], merge_key: &str, value: &Value) -> Result<Option<usize>> {
    for (index, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(SmpError(format!("value for key {index} is not a map")));
        };
        if map.get(merge_key) == Some(value) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Splits `merged` into the elements `by` names and the others.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for value in merged {
        let found = if merge_key.is_empty() {
            by.contains(&value)
        } else {
            let map = value.as_object().ok_or_else(|| expected_map(&value))?;
            let key_value = map
                .get(merge_key)
                .ok_or_else(|| no_merge_key(map, merge_key))?;
            find_by_key(by, merge_key, key_value)?.is_some()
        };
        if found {
            named.push(value);
        } else {
            others.push(value);
        }
    }
    Ok((named, others))
}

/// Orders the patch's elements as `patch_order` and the original-only elements as
/// `server_order`, then interleaves them, keeping both relative orders.
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;
    Ok(interleave(
        server_only,
        patch_items,
        server_order,
        merge_key,
        kind,
    ))
}

fn sort_by_order(
    values: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let (mut values, deletions) = if kind == Kind::Map {
        for item in values.iter().chain(order) {
            let map = item.as_object().ok_or_else(|| expected_map(item))?;
            if !map.contains_key(merge_key) {
                return Err(no_merge_key(map, merge_key));
            }
        }
        split_deletions(values)?
    } else {
        (values, Vec::new())
    };
    // Stable; an element the order does not name (which Kubernetes never produces) goes last.
    values.sort_by_key(|v| position(order, v, merge_key, kind).unwrap_or(usize::MAX));
    values.extend(deletions);
    Ok(values)
}

/// Elements marked `$patch: delete` and the others.
fn split_deletions(values: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut kept = Vec::new();
    let mut deletions = Vec::new();
    for value in values {
        let map = value.as_object().ok_or_else(|| expected_map(&value))?;
        if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            deletions.push(value);
        } else {
            kept.push(value);
        }
    }
    Ok((kept, deletions))
}

fn position(list: &[Value], value: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    let identity = |v: &'_ Value| -> Option<Value> {
        if kind == Kind::Map {
            v.as_object().and_then(|m| m.get(merge_key)).cloned()
        } else {
            Some(v.clone())
        }
    };
    let wanted = identity(value);
    list.iter().position(|item| identity(item) == wanted)
}

/// apimachinery's `mergeSortedSlice`: walks both lists, taking the original-only element first
/// only when the original order puts it before the patch element; an element new to the list
/// therefore comes before the original-only elements that follow it.
fn interleave(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let mut left = VecDeque::from(left);
    let mut right = VecDeque::from(right);
    let mut out = Vec::with_capacity(left.len() + right.len());
    loop {
        let take_left = match (left.front(), right.front()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position(server_order, l, merge_key, kind),
                    position(server_order, r, merge_key, kind),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left {
            left.pop_front()
        } else {
            right.pop_front()
        };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme;
    use proptest::prelude::*;
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> Result<Value> {
        let (api_version, kind) = kind.split_once(' ').unwrap();
        let schema = scheme::lookup(api_version, kind).unwrap();
        let Value::Object(original) = original else {
            panic!()
        };
        let Value::Object(patch) = patch else {
            panic!()
        };
        apply(original, patch, schema).map(Value::Object)
    }

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": ["a", "b"]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}
        })
    }

    #[test]
    fn containers_merge_by_name() {
        let original = deployment(json!([
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "proxy:1"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
        ]}}}});
        let got = smp("apps/v1 Deployment", original, patch).unwrap();
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "app", "image": "app:2", "env": [
                    {"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}
                ]},
                {"name": "sidecar", "image": "proxy:1"}
            ])
        );
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "spec": {
            "tolerations": [{"key": "a"}, {"key": "b"}],
            "containers": [{"name": "c", "args": ["x", "y"]}]
        }});
        let patch = json!({"spec": {
            "tolerations": [{"key": "c"}],
            "containers": [{"name": "c", "args": ["z"]}]
        }});
        let got = smp("v1 Pod", original, patch).unwrap();
        assert_eq!(got["spec"]["tolerations"], json!([{"key": "c"}]));
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "c", "args": ["z"]}])
        );
    }

    #[test]
    fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
        let original = deployment(json!([]));
        let patch = json!({"metadata": {
            "finalizers": ["b", "c"],
            "$deleteFromPrimitiveList/finalizers": ["a"]
        }});
        let got = smp("apps/v1 Deployment", original, patch).unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["b", "c"]));
    }

    #[test]
    fn patch_delete_and_replace_in_lists() {
        let original = deployment(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "$patch": "delete"}
        ]}}}});
        let got = smp("apps/v1 Deployment", original.clone(), patch).unwrap();
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a"}, {"name": "c"}])
        );

        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "z"}, {"$patch": "replace"}
        ]}}}});
        let got = smp("apps/v1 Deployment", original, patch).unwrap();
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "z"}])
        );
    }

    #[test]
    fn patch_directive_on_a_map() {
        let original =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "2"}});
        let got = smp(
            "v1 ConfigMap",
            original.clone(),
            json!({"data": {"$patch": "replace", "c": "3"}}),
        )
        .unwrap();
        assert_eq!(got["data"], json!({"c": "3"}));
        let got = smp(
            "v1 ConfigMap",
            original.clone(),
            json!({"data": {"$patch": "delete"}}),
        )
        .unwrap();
        assert_eq!(got["data"], json!({}));
        let err = smp(
            "v1 ConfigMap",
            original,
            json!({"data": {"$patch": "nope"}}),
        )
        .unwrap_err();
        assert!(err.0.starts_with("unknown patch type: nope"), "{err}");
    }

    #[test]
    fn nulls_delete_and_unmatched_nulls_vanish() {
        let original = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}});
        let got = smp(
            "v1 ConfigMap",
            original,
            json!({"data": {"a": null, "b": null}, "extra": {"x": null, "y": 1}}),
        )
        .unwrap();
        assert_eq!(got["data"], json!({}));
        assert_eq!(got["extra"], json!({"y": 1}));
    }

    #[test]
    fn directives_never_reach_the_result() {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "spec": {}});
        let patch = json!({"spec": {
            "containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}], "$retainKeys": ["name"]}],
            "$setElementOrder/volumes": [{"name": "v"}],
            "volumes": [{"name": "v", "$retainKeys": ["name"]}]
        }});
        let got = smp("v1 Pod", original, patch).unwrap();
        assert_eq!(
            got["spec"],
            json!({"containers": [{"name": "a", "env": []}], "volumes": [{"name": "v"}]})
        );
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"volumes": [
            {"name": "vol1", "nfs": {"path": "/x"}}, {"name": "vol2", "emptyDir": {}}
        ]}});
        let patch = json!({"spec": {"volumes": [
            {"$retainKeys": ["name", "persistentVolumeClaim"], "name": "vol1", "persistentVolumeClaim": {"claimName": "pvc1"}}
        ]}});
        let got = smp("v1 Pod", original.clone(), patch).unwrap();
        assert_eq!(
            got["spec"]["volumes"],
            json!([{"name": "vol1", "persistentVolumeClaim": {"claimName": "pvc1"}}, {"name": "vol2", "emptyDir": {}}])
        );
        let bad =
            json!({"spec": {"volumes": [{"$retainKeys": ["name"], "name": "vol1", "nfs": {}}]}});
        assert_eq!(
            smp("v1 Pod", original, bad).unwrap_err().0,
            "invalid patch format of retainKeys"
        );
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let original = json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [
            {"name": "a", "port": 8001}, {"name": "b", "port": 8000}, {"name": "c", "port": 8002}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 8001}, {"port": 9000}, {"port": 8002}],
            "ports": [{"name": "b", "port": 9000}, {"$patch": "delete", "port": 8000}]
        }});
        let got = smp("v1 Service", original.clone(), patch).unwrap();
        assert_eq!(
            got["spec"]["ports"],
            json!([{"name": "a", "port": 8001}, {"name": "b", "port": 9000}, {"name": "c", "port": 8002}])
        );
        let out_of_order = json!({"spec": {
            "$setElementOrder/ports": [{"port": 8002}, {"port": 8001}],
            "ports": [{"name": "x", "port": 8001}, {"name": "y", "port": 8002}]
        }});
        let err = smp("v1 Service", original, out_of_order).unwrap_err();
        assert!(err.0.starts_with("The order in patch list"), "{err}");
    }

    // The next three are apimachinery's own "preserve order" cases (patch_test.go, three-way
    // patch applied to the current object), on fields with the same strategy.

    #[test]
    fn an_item_added_to_a_primitive_list_keeps_the_server_order() {
        let original =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["1", "4", "2"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["3", "1", "2"],
            "finalizers": ["3"]
        }});
        let got = smp("v1 Pod", original, patch).unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["3", "1", "4", "2"]));
    }

    fn pod_with_containers(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": containers}})
    }

    #[test]
    fn an_item_added_to_a_merging_list_keeps_the_server_order() {
        let original = pod_with_containers(json!([
            {"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}
        ]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "1"}, {"name": "2"}],
            "containers": [{"name": "3", "value": "3"}]
        }});
        let got = smp("v1 Pod", original, patch).unwrap();
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "3", "value": "3"}, {"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}])
        );
    }

    #[test]
    fn server_only_items_stay_near_their_neighbours() {
        let names = |list: &Value| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        let original = pod_with_containers(json!([
            {"name": "1", "other": "a"}, {"name": "2"}, {"name": "7"}, {"name": "9"},
            {"name": "8"}, {"name": "3"}, {"name": "4"}
        ]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]
        }});
        let got = smp("v1 Pod", original, patch).unwrap();
        assert_eq!(
            names(&got["spec"]["containers"]),
            ["2", "1", "7", "9", "8", "4", "3"]
        );
    }

    #[test]
    fn merge_errors_are_apimachinery_errors() {
        let original = deployment(json!([{"name": "a"}]));
        let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = smp("apps/v1 Deployment", original.clone(), missing_key).unwrap_err();
        assert!(
            err.0.ends_with("does not contain declared merge key: name"),
            "{err}"
        );
        let mixed = json!({"metadata": {"finalizers": [1]}});
        let err = smp("apps/v1 Deployment", original, mixed).unwrap_err();
        assert!(
            err.0.starts_with("list element types are not identical"),
            "{err}"
        );
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::from),
        ]
    }

    /// Objects with keys from a small alphabet, so that patches hit existing fields.
    fn json_object(with_lists: bool) -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, move |inner| {
            let map = prop::collection::btree_map("[a-d]", inner.clone(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()));
            if with_lists {
                prop_oneof![
                    map,
                    prop::collection::vec(inner, 0..3).prop_map(Value::Array)
                ]
                .boxed()
            } else {
                map.boxed()
            }
        })
    }

    proptest! {
        /// Without lists and directives a strategic merge patch is a JSON merge patch.
        #[test]
        fn without_lists_it_is_a_json_merge_patch(
            original in prop::collection::btree_map("[a-d]", json_object(true), 0..4),
            patch in prop::collection::btree_map("[a-d]", json_object(false), 0..4),
        ) {
            let original: Object = original.into_iter().collect();
            let patch: Object = patch.into_iter().collect();
            let mut expected = Value::Object(original.clone());
            json_patch::merge(&mut expected, &Value::Object(patch.clone()));
            let got = apply(original, patch, Schema::OPAQUE).unwrap();
            prop_assert_eq!(Value::Object(got), expected);
        }

        /// Merging containers by name keeps every original name once and adds the new ones.
        #[test]
        fn merged_containers_are_the_union_by_name(
            original in prop::collection::btree_set("[a-f]", 0..5),
            patch in prop::collection::btree_set("[a-f]", 0..5),
        ) {
            let list = |names: &std::collections::BTreeSet<String>, tag: &str| -> Value {
                names.iter().map(|n| json!({"name": n, tag: true})).collect()
            };
            let pod = pod_with_containers(list(&original, "old"));
            let patch_doc = json!({"spec": {"containers": list(&patch, "new")}});
            let got = smp("v1 Pod", pod, patch_doc).unwrap();
            let merged = got["spec"]["containers"].as_array().unwrap();
            let names: std::collections::BTreeSet<String> =
                merged.iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
            prop_assert_eq!(merged.len(), names.len());
            prop_assert_eq!(names, original.union(&patch).cloned().collect());
            for c in merged {
                let name = c["name"].as_str().unwrap();
                prop_assert_eq!(c.get("old").is_some(), original.contains(name));
                prop_assert_eq!(c.get("new").is_some(), patch.contains(name));
            }
        }
    }
}
