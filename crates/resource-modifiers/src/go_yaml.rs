//! YAML as Velero reads it: `sigs.k8s.io/yaml` on top of go-yaml v2.
//!
//! Two of its habits change what a modifier does, so they are kept:
//! * a YAML number or boolean written where Go expects a string becomes its text, with floats
//!   printed the way Go prints a float32 (`value: 1.0` is the string `"1"`), and `null` becomes
//!   the empty string;
//! * patch documents reach the object through a JSON round trip in Go, so a whole-number float
//!   (`replicas: 2.0`) arrives as the integer `2`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::{Number, Value};
use serde_saphyr::options::DuplicateKeyPolicy;

/// A string field of Velero's Go structs, decoded as `sigs.k8s.io/yaml` decodes one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GoString(pub String);

impl<'de> Deserialize<'de> for GoString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GoStringVisitor)
    }
}

struct GoStringVisitor;

impl<'de> Visitor<'de> for GoStringVisitor {
    type Value = GoString;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string (numbers and booleans are taken as their text)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<GoString, E> {
        Ok(GoString(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<GoString, E> {
        Ok(GoString(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<GoString, E> {
        Ok(GoString(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoString, E> {
        Ok(GoString(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoString, E> {
        Ok(GoString(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<GoString, E> {
        Ok(GoString(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<GoString, E> {
        Ok(GoString(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<GoString, E> {
        Ok(GoString(format_float32(v)))
    }

    // Go leaves a string field untouched when the JSON holds null.
    fn visit_unit<E: de::Error>(self) -> Result<GoString, E> {
        Ok(GoString::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<GoString, E> {
        Ok(GoString::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<GoString, D::Error> {
        GoString::deserialize(deserializer)
    }
}

/// Go's `json: null` into a slice, map or struct leaves it empty; serde would refuse the null.
pub(super) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `strconv.FormatFloat(v, 'g', -1, 32)`: the shortest digits that survive a float32 round trip,
/// in exponent form when the exponent is below -4 or at least 6 (`1e+06`, `1.5e-05`).
pub(super) fn format_float32(value: f64) -> String {
    // Rounding to float32 is the point: Go formats the value as a float32.
    #[allow(clippy::cast_possible_truncation)]
    let x = value as f32;
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0");
    }
    // Rust's `{:e}` prints the same shortest round-trip digits Go computes, as `d.ddde±x`.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: Vec<char> = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::from(sign);
    if !(-4..6).contains(&exponent) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push('.');
            out.extend(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
        return out;
    }
    // Plain notation: `decimal_point` digits before the point.
    let decimal_point = exponent + 1;
    let digit_at = |i: i32| -> char {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or('0')
    };
    if decimal_point > 0 {
        (0..decimal_point).for_each(|i| out.push(digit_at(i)));
    } else {
        out.push('0');
    }
    let fraction = i32::try_from(digits.len()).unwrap_or(i32::MAX) - decimal_point;
    if fraction > 0 {
        out.push('.');
        (0..fraction).for_each(|i| out.push(digit_at(decimal_point + i)));
    }
    out
}

fn options(duplicate_keys: DuplicateKeyPolicy) -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: duplicate_keys,
        // go-yaml v2 reads `0755` as octal.
        legacy_octal_numbers: true,
        // The message ends up in a restore's status and log: one line, no source excerpt.
        with_snippet: false,
    }
}

/// Decodes the ConfigMap's YAML strictly (`yaml.UnmarshalStrict`): duplicate keys are errors.
/// An empty document decodes as Go's zero value.
pub(super) fn from_str_strict<T>(text: &str) -> Result<T, serde_saphyr::Error>
where
    T: for<'de> Deserialize<'de> + Default,
{
    let value: Option<T> =
        serde_saphyr::from_str_with_options(text, options(DuplicateKeyPolicy::Error))?;
    Ok(value.unwrap_or_default())
}

/// `yaml.YAMLToJSON` for a patch document: lenient about duplicate keys (the last one wins), an
/// empty document is `null`, and numbers are normalised as Go's JSON round trip does.
pub(super) fn patch_to_json(text: &str) -> Result<Value, String> {
    if let Some(error) = go_flow_syntax_error(text) {
        return Err(error);
    }
    let value: Option<Value> =
        serde_saphyr::from_str_with_options(text, options(DuplicateKeyPolicy::LastWins))
            .map_err(|e| e.to_string())?;
    let mut value = value.unwrap_or(Value::Null);
    whole_floats_to_integers(&mut value);
    Ok(value)
}

/// Where go-yaml v2 (the libyaml port `sigs.k8s.io/yaml` decodes with) refuses a flow collection
/// that a YAML 1.2 parser reads: inside `{...}` and `[...]` a `:` that starts a token is always a
/// value indicator and a `?` always ends a plain scalar (`yaml_parser_fetch_next_token` and
/// `yaml_parser_scan_plain_scalar` in goyaml.v2/scannerc.go). So `{"a"::1}`, which YAML 1.2 reads
/// as `{"a": ":1"}`, is a syntax error for Velero, and a patch Velero cannot parse must not be
/// applied here. The message is the one go-yaml gives.
fn go_flow_syntax_error(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let blank = |i: usize| chars.get(i).is_none_or(|c| c.is_whitespace());
    let mut line = 1;
    // The open flow collections, innermost last.
    let mut flow: Vec<char> = Vec::new();
    // In a flow collection: whether the last token was a value indicator.
    let mut after_value = false;
    // At the start of a token: after a blank, a line start or an indicator.
    let mut token_start = true;
    // The indentation of the line a block scalar (`|`, `>`) started on, while its lines are skipped.
    let mut block_scalar: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            token_start = true;
            if let Some(parent) = block_scalar {
                // The block scalar goes on while lines are empty or indented deeper than its parent.
                let indent = chars[i..].iter().take_while(|c| **c == ' ').count();
                let rest = chars.get(i + indent).copied();
                if rest.is_some_and(|c| c != '\n') && indent <= parent {
                    block_scalar = None;
                } else {
                    i += indent;
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                }
            }
            continue;
        }
        if c.is_whitespace() {
            token_start = true;
            i += 1;
            continue;
        }
        if c == '#' && token_start {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if token_start && (c == '"' || c == '\'') {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\n' {
                    line += 1;
                }
                // `\"` inside double quotes; `''` inside single quotes.
                if (c == '"' && chars[i] == '\\')
                    || (c == '\'' && chars.get(i + 1) == Some(&'\'') && chars[i] == '\'')
                {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            after_value = false;
            token_start = false;
            continue;
        }
        if flow.is_empty() {
            if token_start && (c == '{' || c == '[') {
                flow.push(c);
                after_value = false;
                i += 1;
                continue;
            } else if token_start && (c == '|' || c == '>') {
                let line_start = chars[..i]
                    .iter()
                    .rposition(|c| *c == '\n')
                    .map_or(0, |p| p + 1);
                block_scalar = Some(
                    chars[line_start..]
                        .iter()
                        .take_while(|c| **c == ' ')
                        .count(),
                );
            }
            token_start = matches!(c, ':' | '-' | '?') && blank(i + 1);
            i += 1;
            continue;
        }
        match c {
            '{' | '[' => {
                flow.push(c);
                after_value = false;
            }
            '}' | ']' => {
                flow.pop();
                after_value = false;
            }
            ',' | '?' => after_value = false,
            ':' => {
                if after_value {
                    return Some(go_yaml_error(line, "did not find expected node content"));
                }
                after_value = true;
            }
            _ => {
                // A plain scalar (or an anchor, tag or alias): up to a flow indicator, a `:`
                // before a blank, or a comment; blanks inside it are part of it. Its first
                // character is no indicator (those were matched above).
                i += 1;
                while i < chars.len() {
                    let c = chars[i];
                    if matches!(c, ',' | '[' | ']' | '{' | '}') || (c == ':' && blank(i + 1)) {
                        break;
                    }
                    if c == '#' && i > 0 && chars[i - 1].is_whitespace() {
                        break;
                    }
                    if c == '?' {
                        let close = if flow.last() == Some(&'[') { ']' } else { '}' };
                        return Some(go_yaml_error(
                            line,
                            &format!("did not find expected ',' or '{close}'"),
                        ));
                    }
                    if c == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                after_value = false;
                token_start = chars[i - 1].is_whitespace();
                continue;
            }
        }
        token_start = true;
        i += 1;
    }
    None
}

/// A parser error as go-yaml v2 words it (`parser.fail` in goyaml.v2/yaml.go): the problem's line
/// counted from 0, and left out on the first line. `line` counts from 1.
fn go_yaml_error(line: usize, problem: &str) -> String {
    match line.saturating_sub(1) {
        0 => format!("yaml: {problem}"),
        zero_based => format!("yaml: line {zero_based}: {problem}"),
    }
}

/// Go marshals a whole float64 below 1e21 without a fraction (`2.0` as `2`), and the object
/// decoder then reads it back as an int64. Without this an API server would see `2.0` where it
/// expects an integer and refuse the object.
pub(super) fn whole_floats_to_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 1e21
                && f >= i64::MIN as f64
                && f < i64::MAX as f64
            {
                // Whole and within i64's range (checked above): nothing is cut off.
                #[allow(clippy::cast_possible_truncation)]
                let whole = f as i64;
                *n = Number::from(whole);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(whole_floats_to_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_go_float32() {
        for (value, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (std::f64::consts::PI, "3.1415927"),
            (123.456, "123.456"),
            (16777217.0, "1.6777216e+07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e21, "1e+21"),
            (1.0e100, "+Inf"),
            (0.0, "0"),
        ] {
            assert_eq!(format_float32(value), want, "{value}");
        }
    }

    #[test]
    fn patch_yaml_becomes_json_with_go_numbers() {
        let value = patch_to_json("a: 2.0\nb: 2.5\nc: yes\nd: 0755\ne: [1, x]\n").unwrap();
        assert_eq!(
            value,
            json!({"a": 2, "b": 2.5, "c": true, "d": 493, "e": [1, "x"]})
        );
    }

    #[test]
    fn patch_yaml_keeps_the_last_duplicate_key_and_reads_empty_as_null() {
        assert_eq!(patch_to_json("a: 1\na: 2\n").unwrap(), json!({"a": 2}));
        assert_eq!(patch_to_json("").unwrap(), Value::Null);
        assert!(patch_to_json("a: b:").is_err());
    }

    #[test]
    fn flow_collections_are_read_as_go_yaml_reads_them() {
        for refused in [
            "{\"a\"::1}",
            "{a: :1}",
            "[a, {\"b\"::c}]",
            "metadata:\n  labels: {\"x\"::y}\n",
            "{url: http://example.com/?q=1}",
            "[a?b]",
            "{a: 1,\n b: :2}",
        ] {
            assert!(
                patch_to_json(refused).is_err(),
                "{refused:?} must be refused"
            );
        }
        assert_eq!(
            go_flow_syntax_error("{a: 1,\n b: :2}").as_deref(),
            Some("yaml: line 1: did not find expected node content")
        );
        assert_eq!(
            go_flow_syntax_error("[a?b]").as_deref(),
            Some("yaml: did not find expected ',' or ']'")
        );
        for (accepted, want) in [
            ("{\"a\":1}", json!({"a": 1})),
            ("{a: b:c}", json!({"a": "b:c"})),
            ("{a: b :c}", json!({"a": "b :c"})),
            (
                "{url: \"http://x/?q=1\", 'it''s': \"\\\"::\"}",
                json!({"url": "http://x/?q=1", "it's": "\"::"}),
            ),
            ("a: b{::}?\n", json!({"a": "b{::}?"})),
            (
                "a: |\n  {\"x\"::1}\nb: 2\n",
                json!({"a": "{\"x\"::1}\n", "b": 2}),
            ),
            (
                "# {\"a\"::1}\na: [1, {b: c}] # ? ::\n",
                json!({"a": [1, {"b": "c"}]}),
            ),
            (
                "spec:\n  template: {metadata: {labels: {app: web}}}\n",
                json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}),
            ),
        ] {
            assert_eq!(patch_to_json(accepted).unwrap(), want, "{accepted:?}");
        }
    }

    #[test]
    fn scalars_decode_as_go_strings() {
        #[derive(serde::Deserialize, Default)]
        struct S {
            #[serde(default)]
            v: Vec<GoString>,
        }
        let s: S = from_str_strict("v: [1, 1.0, 0.5, true, yes, ~, \"x\", '\"q\"']").unwrap();
        let texts: Vec<&str> = s.v.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["1", "1", "0.5", "true", "true", "", "x", "\"q\""]);
    }
}
