//! The `patches` of a rule (and the `matches` of its conditions): RFC 6902 operations whose
//! `value` is written as a string, applied with evanphx/json-patch v5's semantics where they
//! differ from the RFC in a way a rule can observe.

use json_patch::jsonptr::{Pointer, PointerBuf};
use json_patch::{
    AddOperation, CopyOperation, MoveOperation, PatchOperation, RemoveOperation, ReplaceOperation,
};
use serde_json::Value;

/// One operation as it sits in the ConfigMap, validated enough to be kept.
#[derive(Debug, Clone)]
pub(super) struct RawOp {
    pub operation: String,
    pub path: PointerBuf,
    /// Only `move` and `copy` read it.
    pub from: PointerBuf,
    pub value: String,
}

/// An operation ready to apply. `test` is evaluated here; the others go to `json_patch`.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Test { path: PointerBuf, value: Value },
    Other(PatchOperation),
}

/// Why applying operations stopped.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum OpError {
    /// A `test` compared unequal: Velero leaves the object as it was, without an error.
    TestFailed(String),
    /// A `test` path does not lead anywhere: a failed condition, but an error in `patches`.
    Missing(String),
    Other(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::TestFailed(m) | OpError::Missing(m) | OpError::Other(m) => f.write_str(m),
        }
    }
}

/// Velero builds the patch document by pasting each operation into a JSON template, so decoding
/// can fail on the value or on an operation name in the wrong case (validation lower-cases it,
/// the patch library does not). The failure belongs to every object the rule matches, not to
/// the ConfigMap, so it is kept until then.
pub(super) fn decode(raw: &[RawOp]) -> Result<Vec<Op>, String> {
    raw.iter()
        .enumerate()
        .map(|(index, op)| {
            let value = patch_value(&op.value).map_err(|reason| {
                format!(
                    "error in decoding json patch the value {:?} of operation {index} is not valid JSON ({reason}); wrap a plain string in quotes",
                    op.value
                )
            })?;
            let path = op.path.clone();
            // What `add` and `replace` write reaches the object through Go's JSON round trip;
            // `test` compares the value as written.
            let mut written = value.clone();
            super::go_yaml::whole_floats_to_integers(&mut written);
            Ok(match op.operation.as_str() {
                "test" => Op::Test { path, value },
                "add" => Op::Other(PatchOperation::Add(AddOperation {
                    path,
                    value: written,
                })),
                "replace" => Op::Other(PatchOperation::Replace(ReplaceOperation {
                    path,
                    value: written,
                })),
                "remove" => Op::Other(PatchOperation::Remove(RemoveOperation { path })),
                "move" => Op::Other(PatchOperation::Move(MoveOperation {
                    from: op.from.clone(),
                    path,
                })),
                "copy" => Op::Other(PatchOperation::Copy(CopyOperation {
                    from: op.from.clone(),
                    path,
                })),
                other => {
                    return Err(format!(
                        "error in decoding json patch invalid operation {other:?} in operation {index}: unsupported operation (operation names are lower case)"
                    ));
                }
            })
        })
        .collect()
}

/// The JSON a patch `value` stands for. Velero quotes it as a JSON string unless it is `null`,
/// `true`/`false` (any case), starts with `{` or `[`, or parses as a Go float; a value wrapped
/// in double quotes is always a string (`"\"true\""` is the string `true`). An unquoted value is
/// pasted as is, so `True` or `+1` is a decoding error, as it is in Velero.
pub(super) fn patch_value(raw: &str) -> Result<Value, serde_json::Error> {
    let text = match forced_string(raw) {
        Some(inner) => format!("\"{inner}\""),
        None if needs_quotes(raw) => format!("\"{raw}\""),
        None => raw.to_string(),
    };
    serde_json::from_str(&text)
}

/// The inside of a value written between double quotes; the empty value is the empty string.
fn forced_string(raw: &str) -> Option<&str> {
    if raw.is_empty() {
        return Some("");
    }
    let inner = raw.strip_prefix('"')?;
    // Go checks both ends on the original text, then trims each end once: `"` alone is "".
    if !raw.ends_with('"') {
        return None;
    }
    Some(inner.strip_suffix('"').unwrap_or(inner))
}

fn needs_quotes(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    !(raw == "null"
        || lower == "true"
        || lower == "false"
        || raw.starts_with('{')
        || raw.starts_with('[')
        || go_parses_float(raw))
}

/// Whether Go's `strconv.ParseFloat(s, 64)` succeeds: decimal floats, `inf`/`infinity`/`nan`,
/// hexadecimal floats with a `p` exponent, but not values out of float64 range.
fn go_parses_float(s: &str) -> bool {
    let (signed, body) = match s.strip_prefix(['+', '-']) {
        Some(body) => (true, body),
        None => (false, s),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return go_hex_float(hex);
    }
    let lower = body.to_ascii_lowercase();
    if lower == "nan" {
        return !signed;
    }
    if lower == "inf" || lower == "infinity" {
        return true;
    }
    if body.contains(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))) {
        return false;
    }
    matches!(s.parse::<f64>(), Ok(f) if f.is_finite())
}

fn go_hex_float(s: &str) -> bool {
    let Some((mantissa, exponent)) = s.split_once(['p', 'P']) else {
        return false;
    };
    let mantissa: String = mantissa.chars().filter(|c| *c != '_').collect();
    let exponent: String = exponent.chars().filter(|c| *c != '_').collect();
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(&exponent);
    mantissa.chars().filter(|c| *c == '.').count() <= 1
        && mantissa.chars().any(|c| c.is_ascii_hexdigit())
        && mantissa.chars().all(|c| c.is_ascii_hexdigit() || c == '.')
        && !exponent.is_empty()
        && exponent.chars().all(|c| c.is_ascii_digit())
}

/// Applies `ops` in order and stops at the first failure. On failure `doc` holds the operations
/// before it: callers work on a copy.
pub(super) fn apply(doc: &mut Value, ops: &[Op]) -> Result<(), OpError> {
    for op in ops {
        match op {
            Op::Test { path, value } => test(doc, path, value)?,
            Op::Other(op) => json_patch::patch(doc, std::slice::from_ref(op)).map_err(|e| {
                OpError::Other(format!(
                    "{} operation failed at path '{}': {}",
                    operation_name(op),
                    op.path(),
                    e.kind
                ))
            })?,
        }
    }
    Ok(())
}

/// Evaluates `test` operations only, without copying the object.
pub(super) fn test_all(doc: &Value, ops: &[Op]) -> Result<(), OpError> {
    for op in ops {
        if let Op::Test { path, value } = op {
            test(doc, path, value)?;
        }
    }
    Ok(())
}

fn operation_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// evanphx's `test`, which differs from RFC 6902 in ways conditions rely on: a missing member of
/// an existing object, or a JSON null, equals `null`; a path whose parent is missing or not a
/// container is "missing", not "unequal"; an empty token names the container itself; array
/// indices are Go integers, negative ones counting from the end.
fn test(doc: &Value, path: &Pointer, expected: &Value) -> Result<(), OpError> {
    let failed = || OpError::TestFailed(format!("testing value {path} failed: test failed"));
    if path.is_root() {
        return if doc == expected {
            Ok(())
        } else {
            Err(failed())
        };
    }
    let tokens: Vec<String> = path.tokens().map(|t| t.decoded().into_owned()).collect();
    let Some((last, parents)) = tokens.split_last() else {
        return Err(failed());
    };
    let mut container = doc;
    for token in parents {
        match child(container, token) {
            Ok(Some(next @ (Value::Object(_) | Value::Array(_)))) => container = next,
            _ => {
                return Err(OpError::Missing(format!(
                    "test operation does not apply: is missing path: {path}: missing value"
                )));
            }
        }
    }
    let actual = child(container, last)
        .map_err(|reason| OpError::Other(format!("error in test for path: '{path}': {reason}")))?;
    match (actual.filter(|v| !v.is_null()), expected.is_null()) {
        (None, true) => Ok(()),
        (Some(actual), false) if actual == expected => Ok(()),
        _ => Err(failed()),
    }
}

/// The member or element `token` names in `container`: `Ok(None)` for a missing object member,
/// an error for an index that is not an integer or out of range.
fn child<'a>(container: &'a Value, token: &str) -> Result<Option<&'a Value>, String> {
    if token.is_empty() {
        return Ok(Some(container));
    }
    match container {
        Value::Object(map) => Ok(map.get(token)),
        Value::Array(items) => {
            let index = go_atoi(token)
                .ok_or_else(|| format!("strconv.Atoi: parsing {token:?}: invalid syntax"))?;
            let len = items.len() as i64;
            let resolved = if index < 0 { index + len } else { index };
            if (0..len).contains(&resolved) {
                Ok(usize::try_from(resolved).ok().and_then(|i| items.get(i)))
            } else {
                Err(format!(
                    "Unable to access invalid index: {index}: invalid index referenced"
                ))
            }
        }
        _ => Ok(None),
    }
}

/// `strconv.Atoi`: an optional sign and decimal digits.
fn go_atoi(token: &str) -> Option<i64> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(raw: &str) -> Value {
        patch_value(raw).unwrap()
    }

    #[test]
    fn values_that_look_like_json_are_json() {
        assert_eq!(value("3"), json!(3));
        assert_eq!(value("-2.5"), json!(-2.5));
        assert_eq!(value("1e3"), json!(1000.0));
        assert_eq!(value("2.0"), json!(2.0));
        assert_eq!(value("true"), json!(true));
        assert_eq!(value("false"), json!(false));
        assert_eq!(value("null"), Value::Null);
        assert_eq!(value(r#"{"a": [1]}"#), json!({"a": [1]}));
        assert_eq!(value("[1, 2]"), json!([1, 2]));
    }

    #[test]
    fn other_values_are_strings() {
        assert_eq!(value("premium"), json!("premium"));
        assert_eq!(value(""), json!(""));
        assert_eq!(value("1_000"), json!("1_000"));
        assert_eq!(value("1e400"), json!("1e400"));
        assert_eq!(value("0x10"), json!("0x10"));
        assert_eq!(value("Null"), json!("Null"));
        assert_eq!(value(" 1"), json!(" 1"));
    }

    #[test]
    fn quoted_values_are_strings_even_when_they_look_like_json() {
        assert_eq!(value(r#""true""#), json!("true"));
        assert_eq!(value(r#""3""#), json!("3"));
        assert_eq!(value(r#""null""#), json!("null"));
        assert_eq!(value(r#""""#), json!(""));
        assert_eq!(value(r#"""#), json!(""));
    }

    #[test]
    fn values_velero_pastes_unquoted_but_are_not_json_fail() {
        for raw in [
            "True", "FALSE", "+1", ".5", "5.", "Inf", "NaN", "0x1p4", "{a", "[1,",
        ] {
            assert!(patch_value(raw).is_err(), "{raw}");
        }
        // Quoted text is pasted unescaped too: a quote inside breaks the JSON.
        assert!(patch_value(r#"say "hi""#).is_err());
        assert_eq!(value(r"tab\there"), json!("tab\there"));
    }

    fn ops(list: &[(&str, &str, &str)]) -> Vec<Op> {
        let raw: Vec<RawOp> = list
            .iter()
            .map(|(op, path, v)| RawOp {
                operation: op.to_string(),
                path: PointerBuf::parse(*path).unwrap(),
                from: PointerBuf::new(),
                value: v.to_string(),
            })
            .collect();
        decode(&raw).unwrap()
    }

    #[test]
    fn test_treats_missing_members_as_null() {
        let doc = json!({"spec": {"a": null, "list": [1, 2]}});
        assert_eq!(test_all(&doc, &ops(&[("test", "/spec/b", "null")])), Ok(()));
        assert_eq!(test_all(&doc, &ops(&[("test", "/spec/a", "null")])), Ok(()));
        assert!(matches!(
            test_all(&doc, &ops(&[("test", "/spec/b", "x")])),
            Err(OpError::TestFailed(_))
        ));
        assert!(matches!(
            test_all(&doc, &ops(&[("test", "/nope/b", "null")])),
            Err(OpError::Missing(_))
        ));
        assert!(matches!(
            test_all(&doc, &ops(&[("test", "/spec/list/x", "1")])),
            Err(OpError::Other(_))
        ));
        assert_eq!(
            test_all(&doc, &ops(&[("test", "/spec/list/-1", "2")])),
            Ok(())
        );
    }

    #[test]
    fn operations_apply_in_order() {
        let mut doc = json!({"spec": {"replicas": 1, "list": ["a"]}});
        apply(
            &mut doc,
            &ops(&[
                ("test", "/spec/replicas", "1"),
                ("replace", "/spec/replicas", "2"),
                ("add", "/spec/list/-", "b"),
                ("remove", "/spec/list/0", ""),
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"spec": {"replicas": 2, "list": ["b"]}}));
    }

    #[test]
    fn whole_floats_are_written_as_integers_but_tested_as_written() {
        let mut doc = json!({"spec": {"replicas": 1}});
        apply(
            &mut doc,
            &ops(&[
                ("replace", "/spec/replicas", "2.0"),
                ("add", "/spec/big", "1e3"),
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"spec": {"replicas": 2, "big": 1000}}));
        assert!(matches!(
            test_all(&doc, &ops(&[("test", "/spec/replicas", "2.0")])),
            Err(OpError::TestFailed(_))
        ));
    }

    #[test]
    fn operation_names_are_case_sensitive_when_applied() {
        let raw = [RawOp {
            operation: "Replace".into(),
            path: PointerBuf::parse("/a").unwrap(),
            from: PointerBuf::new(),
            value: "1".into(),
        }];
        assert!(decode(&raw).unwrap_err().contains("unsupported operation"));
    }
}
