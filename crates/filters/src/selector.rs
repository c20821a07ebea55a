//! Kubernetes label selectors as Velero uses them: parsed from `velero backup create -l` and
//! `--or-selector`, matched against labels (the namespace tracker), and turned back into the
//! `labelSelector` query parameter so the API server does the filtering of list calls.
//!
//! Parsing follows apimachinery's `labels.Parse` and `metav1.ParseToLabelSelector` to the error
//! message; matching and rendering follow `metav1.LabelSelectorAsSelector`.

use std::collections::BTreeMap;
use std::fmt;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::{go_quote, label_key_errors, label_value_errors};

/// A selector Velero would refuse. Texts are apimachinery's, so they read as in Velero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The string does not parse; `reason` says which token or which key/value is wrong.
    #[error("couldn't parse the selector string \"{selector}\": {reason}")]
    Syntax { selector: String, reason: String },
    /// `>`/`<` (`gt`/`lt`): valid in field selectors, not in label selectors.
    #[error("{} isn't supported in label selectors", go_quote(.0))]
    UnsupportedOperator(String),
    /// An operator a LabelSelector cannot hold; `!=` is one (write `key notin (value)`).
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    InvalidOperator(String),
    /// A LabelSelector object with an invalid key, value or value count.
    #[error("{0}")]
    InvalidRequirement(String),
}

/// Velero's parsing of `-l/--selector` (`metav1.ParseToLabelSelector`): `a=b` and `a==b` go to
/// `matchLabels`; `a in (x,y)`, `a notin (x)`, `a` and `!a` to `matchExpressions`, in key order
/// with sorted, de-duplicated values. An empty string gives an empty selector, which matches
/// everything.
///
/// `a!=b` is refused, as by Velero: LabelSelector has no not-equals operator.
pub fn parse_label_selector(selector: &str) -> Result<LabelSelector, SelectorError> {
    let requirements = Parser::parse(selector).map_err(|reason| SelectorError::Syntax {
        selector: selector.to_string(),
        reason,
    })?;
    let mut match_labels = BTreeMap::new();
    let mut match_expressions = Vec::new();
    for req in requirements {
        let operator = match req.op {
            ParsedOp::Equals | ParsedOp::DoubleEquals => {
                let value = req.values.into_iter().next().unwrap_or_default();
                match_labels.insert(req.key, value);
                continue;
            }
            ParsedOp::In => "In",
            ParsedOp::NotIn => "NotIn",
            ParsedOp::Exists => "Exists",
            ParsedOp::DoesNotExist => "DoesNotExist",
            ParsedOp::GreaterThan => return Err(SelectorError::UnsupportedOperator("gt".into())),
            ParsedOp::LessThan => return Err(SelectorError::UnsupportedOperator("lt".into())),
            ParsedOp::NotEquals => return Err(SelectorError::InvalidOperator("!=".into())),
        };
        match_expressions.push(LabelSelectorRequirement {
            key: req.key,
            operator: operator.to_string(),
            // Go leaves an empty value list out of the JSON (omitempty).
            values: (!req.values.is_empty()).then_some(req.values),
        });
    }
    Ok(LabelSelector {
        match_labels: (!match_labels.is_empty()).then_some(match_labels),
        match_expressions: (!match_expressions.is_empty()).then_some(match_expressions),
    })
}

/// Velero's parsing of `--or-selector`: split on ` or ` (with the spaces), each part a
/// selector. The backup then selects what matches any of them.
pub fn parse_or_label_selectors(value: &str) -> Result<Vec<LabelSelector>, SelectorError> {
    value.split(" or ").map(parse_label_selector).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.contains(v)),
            Op::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = || {
            let mut values = self.values.clone();
            values.sort();
            values.join(",")
        };
        match self.op {
            Op::Equals => write!(f, "{}={}", self.key, values()),
            Op::In => write!(f, "{} in ({})", self.key, values()),
            Op::NotIn => write!(f, "{} notin ({})", self.key, values()),
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A validated LabelSelector, ready to match labels or to be sent to the API server.
///
/// Its `Display` is the `labelSelector` query parameter (`app=web,tier in (a,b),!legacy`),
/// requirements ordered by key; an empty selector displays as the empty string and matches
/// everything. (Velero sends `<none>` for an empty selector, which the API server rejects.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// `metav1.LabelSelectorAsSelector` for a present selector: every key and value must be
    /// valid, `In`/`NotIn` need values, `Exists`/`DoesNotExist` must have none.
    pub fn new(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(requirement(key, Op::Equals, std::slice::from_ref(value))?);
        }
        for expr in selector.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError::InvalidOperator(other.to_string())),
            };
            let values = expr.values.as_deref().unwrap_or_default();
            requirements.push(requirement(&expr.key, op, values)?);
        }
        // Stable: a key in matchLabels comes before the same key in matchExpressions.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, req) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{req}")?;
        }
        Ok(())
    }
}

/// `labels.NewRequirement`'s checks, with its field-error texts.
fn requirement(key: &str, op: Op, values: &[String]) -> Result<Requirement, SelectorError> {
    let mut errors: Vec<String> = Vec::new();
    let key_errors = label_key_errors(key);
    if !key_errors.is_empty() {
        errors.push(format!(
            "key: Invalid value: {}: {}",
            go_quote(key),
            key_errors.join("; ")
        ));
    }
    let count_error = match op {
        Op::In | Op::NotIn if values.is_empty() => {
            Some("for 'in', 'notin' operators, values set can't be empty")
        }
        Op::Equals if values.len() != 1 => {
            Some("exact-match compatibility requires one single value")
        }
        Op::Exists | Op::DoesNotExist if !values.is_empty() => {
            Some("values set must be empty for exists and does not exist")
        }
        _ => None,
    };
    if let Some(message) = count_error {
        // Go reports a nil slice (no values given) as `null`.
        let shown = if values.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(values).unwrap_or_default()
        };
        errors.push(format!("values: Invalid value: {shown}: {message}"));
    }
    errors.extend(value_errors(key, values));
    if !errors.is_empty() {
        return Err(SelectorError::InvalidRequirement(aggregate(errors)));
    }
    Ok(Requirement {
        key: key.to_string(),
        op,
        values: values.to_vec(),
    })
}

fn value_errors(key: &str, values: &[String]) -> Vec<String> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, value)| {
            let errs = label_value_errors(value);
            (!errs.is_empty()).then(|| {
                format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(value),
                    errs.join("; ")
                )
            })
        })
        .collect()
}

/// apimachinery's aggregate error text: one message alone, several de-duplicated in brackets.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        unique.remove(0)
    } else {
        format!("[{}]", unique.join(", "))
    }
}

/// The label selection of one backup: `labelSelector`, or the `orLabelSelectors` alternatives.
#[derive(Debug, Clone, Default)]
pub struct BackupSelector {
    label: Option<Selector>,
    or: Vec<Selector>,
}

impl BackupSelector {
    /// From a Backup's `labelSelector` and `orLabelSelectors` (both set is a validation error
    /// caught earlier). Velero logs an invalid selector and goes on, after which every list call
    /// fails; here it is an error the caller can fail the backup with.
    pub fn new(
        label_selector: Option<&LabelSelector>,
        or_label_selectors: &[LabelSelector],
    ) -> Result<Self, SelectorError> {
        Ok(BackupSelector {
            label: label_selector.map(Selector::new).transpose()?,
            or: or_label_selectors
                .iter()
                .map(Selector::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// [`new`](Self::new) with a Backup's fields.
    pub fn from_spec(spec: &velero_api::v1::BackupSpec) -> Result<Self, SelectorError> {
        BackupSelector::new(
            spec.label_selector.as_ref(),
            spec.or_label_selectors.as_deref().unwrap_or_default(),
        )
    }

    /// Whether the backup restricts by labels at all (an empty `labelSelector: {}` counts).
    pub fn is_set(&self) -> bool {
        self.label.is_some() || !self.or.is_empty()
    }

    /// Whether a list call of the backup returns an object with these labels: any OR selector
    /// if there are some, else the label selector, else everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if !self.or.is_empty() {
            return self.or.iter().any(|s| s.matches(labels));
        }
        self.label.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// The `labelSelector` parameter of each list call Velero makes per resource and namespace:
    /// one per OR selector (results concatenated; an object matching two is listed twice), else
    /// one with the label selector, `""` when there is none.
    pub fn list_selectors(&self) -> Vec<String> {
        if !self.or.is_empty() {
            return self.or.iter().map(Selector::to_string).collect();
        }
        vec![
            self.label
                .as_ref()
                .map(Selector::to_string)
                .unwrap_or_default(),
        ]
    }

    /// The namespace tracker's test: the label selector or any OR selector matches. False when
    /// no selector is set.
    pub(crate) fn any_selector_matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.label.as_ref().is_some_and(|s| s.matches(labels))
            || self.or.iter().any(|s| s.matches(labels))
    }
}

// ---------------------------------------------------------------------------------------------
// The selector string parser (apimachinery labels.Parse).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn symbol_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Tokens with their literal text, read byte-wise as Go does (a NUL byte ends the input here).
fn lex(input: &str) -> Vec<(Tok, &str)> {
    let bytes = input.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < end && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos >= end {
            out.push((Tok::EndOfString, ""));
            return out;
        }
        let start = pos;
        if is_special(bytes[pos]) {
            // Longest run of special characters that is still a token (`!=`, `==`, else one).
            let mut best = None;
            while pos < end && is_special(bytes[pos]) {
                match symbol_token(&input[start..=pos]) {
                    Some(tok) => best = Some((tok, pos + 1)),
                    None if best.is_some() => break,
                    None => {}
                }
                pos += 1;
            }
            // Every single special character is a token, so `best` is always set; were it not,
            // the character would read as part of an identifier, which the parser refuses.
            let (tok, stop) = best.unwrap_or((Tok::Identifier, start + 1));
            pos = stop;
            out.push((tok, &input[start..stop]));
        } else {
            while pos < end && !is_special(bytes[pos]) && !is_whitespace(bytes[pos]) {
                pos += 1;
            }
            let literal = &input[start..pos];
            let tok = match symbol_token(literal) {
                Some(tok) => tok,
                None => Tok::Identifier,
            };
            out.push((tok, literal));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParsedOp {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

struct ParsedRequirement {
    key: String,
    op: ParsedOp,
    /// Sorted and de-duplicated, as Go's string set gives them.
    values: Vec<String>,
}

struct Parser<'a> {
    tokens: Vec<(Tok, &'a str)>,
    position: usize,
}

/// Where a token is read: in values, `in` and `notin` are plain identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

impl<'a> Parser<'a> {
    fn parse(input: &'a str) -> Result<Vec<ParsedRequirement>, String> {
        let mut parser = Parser {
            tokens: lex(input),
            position: 0,
        };
        let mut requirements = parser.requirements()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(requirements)
    }

    fn token(&self, index: usize, context: Context) -> (Tok, &'a str) {
        let (tok, lit) = self.tokens[index.min(self.tokens.len() - 1)];
        match tok {
            Tok::In | Tok::NotIn if context == Context::Values => (Tok::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn lookahead(&self, context: Context) -> (Tok, &'a str) {
        self.token(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Tok, &'a str) {
        let token = self.token(self.position, context);
        self.position += 1;
        token
    }

    fn requirements(&mut self) -> Result<Vec<ParsedRequirement>, String> {
        let mut out = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let req = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(req);
                    let (tok, lit) = self.consume(Context::Values);
                    match tok {
                        Tok::EndOfString => return Ok(out),
                        Tok::Comma => {
                            let (next, next_lit) = self.lookahead(Context::Values);
                            if next != Tok::Identifier && next != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{next_lit}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!("found '{lit}', expected: ',' or 'end of string'"));
                        }
                    }
                }
                Tok::EndOfString => return Ok(out),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<ParsedRequirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(op) = inferred {
            return Ok(ParsedRequirement {
                key,
                op,
                values: Vec::new(),
            });
        }
        let op = self.operator()?;
        let values = match op {
            ParsedOp::In | ParsedOp::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        let mut errors = Vec::new();
        if matches!(op, ParsedOp::GreaterThan | ParsedOp::LessThan) {
            for (i, value) in values.iter().enumerate() {
                if value.parse::<i64>().is_err() {
                    errors.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(value)
                    ));
                }
            }
        }
        errors.extend(value_errors(&key, &values));
        if !errors.is_empty() {
            return Err(aggregate(errors));
        }
        Ok(ParsedRequirement { key, op, values })
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<ParsedOp>), String> {
        let (mut tok, mut lit) = self.consume(Context::Values);
        let mut not = false;
        if tok == Tok::DoesNotExist {
            not = true;
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errors = label_key_errors(lit);
        if !key_errors.is_empty() {
            // Go's parser has no field path here and prints a nil one.
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(lit),
                key_errors.join("; ")
            ));
        }
        if not {
            // Whatever follows `!key` must then be `,` or the end (`!a=b` fails there).
            return Ok((lit.to_string(), Some(ParsedOp::DoesNotExist)));
        }
        let (next, _) = self.lookahead(Context::Values);
        let op = (next == Tok::EndOfString || next == Tok::Comma).then_some(ParsedOp::Exists);
        Ok((lit.to_string(), op))
    }

    fn operator(&mut self) -> Result<ParsedOp, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Tok::In => ParsedOp::In,
            Tok::Equals => ParsedOp::Equals,
            Tok::DoubleEquals => ParsedOp::DoubleEquals,
            Tok::GreaterThan => ParsedOp::GreaterThan,
            Tok::LessThan => ParsedOp::LessThan,
            Tok::NotIn => ParsedOp::NotIn,
            Tok::NotEquals => ParsedOp::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let values = self.identifiers()?;
                self.consume(Context::Values); // the `)` identifiers() stopped at
                Ok(values)
            }
            Tok::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A comma list of possibly empty identifiers, up to (not including) `)`.
    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Tok::Identifier => {
                    set.insert(lit.to_string());
                    let (next, next_lit) = self.lookahead(Context::Values);
                    match next {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set.into_iter().collect()),
                        _ => return Err(format!("found '{next_lit}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Tok::ClosedPar {
                        set.insert(String::new());
                        return Ok(set.into_iter().collect());
                    }
                    if next == Tok::Comma {
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Tok::EndOfString || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Tok::Identifier {
            return Ok(vec![lit.to_string()]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn parse_err(s: &str) -> String {
        parse_label_selector(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_supported_form() {
        let sel = parse_label_selector(
            "app=web, tier==front,env in (prod,dev,prod),zone notin (a),release,!legacy",
        )
        .unwrap();
        assert_eq!(
            sel.match_labels,
            Some(labels(&[("app", "web"), ("tier", "front")]))
        );
        assert_eq!(
            sel.match_expressions,
            Some(vec![
                expr("env", "In", &["dev", "prod"]),
                expr("legacy", "DoesNotExist", &[]),
                expr("release", "Exists", &[]),
                expr("zone", "NotIn", &["a"]),
            ])
        );
    }

    #[test]
    fn json_is_what_velero_writes() {
        let sel = parse_label_selector("b=c,!a,x in (y)").unwrap();
        assert_eq!(
            serde_json::to_value(&sel).unwrap(),
            serde_json::json!({
                "matchLabels": {"b": "c"},
                "matchExpressions": [
                    {"key": "a", "operator": "DoesNotExist"},
                    {"key": "x", "operator": "In", "values": ["y"]},
                ],
            })
        );
        assert_eq!(
            serde_json::to_value(parse_label_selector("").unwrap()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn empty_string_is_an_empty_selector() {
        let sel = parse_label_selector("").unwrap();
        assert_eq!(sel, LabelSelector::default());
        assert!(
            Selector::new(&sel)
                .unwrap()
                .matches(&labels(&[("any", "thing")]))
        );
        assert_eq!(
            parse_label_selector("  ").unwrap(),
            LabelSelector::default()
        );
    }

    #[test]
    fn empty_values() {
        let sel = parse_label_selector("a=,b in (),c in (,x)").unwrap();
        assert_eq!(sel.match_labels, Some(labels(&[("a", "")])));
        assert_eq!(
            sel.match_expressions,
            Some(vec![expr("b", "In", &[""]), expr("c", "In", &["", "x"])])
        );
    }

    #[test]
    fn keywords_are_values_and_keys_where_they_fit() {
        let sel = parse_label_selector("in=notin,x in (in,notin)").unwrap();
        assert_eq!(sel.match_labels, Some(labels(&[("in", "notin")])));
        assert_eq!(
            sel.match_expressions,
            Some(vec![expr("x", "In", &["in", "notin"])])
        );
    }

    #[test]
    fn prefixed_keys() {
        let sel = parse_label_selector("app.kubernetes.io/name=web").unwrap();
        assert_eq!(
            sel.match_labels,
            Some(labels(&[("app.kubernetes.io/name", "web")]))
        );
    }

    #[test]
    fn later_equals_for_the_same_key_wins() {
        let sel = parse_label_selector("a=1,a=2").unwrap();
        assert_eq!(sel.match_labels, Some(labels(&[("a", "2")])));
    }

    #[test]
    fn not_equals_and_comparisons_are_refused_as_by_velero() {
        assert_eq!(
            parse_err("a!=b"),
            "\"!=\" is not a valid label selector operator"
        );
        assert_eq!(
            parse_err("a>1"),
            "\"gt\" isn't supported in label selectors"
        );
        assert_eq!(
            parse_err("a<1"),
            "\"lt\" isn't supported in label selectors"
        );
        assert_eq!(
            parse_err("a>x"),
            "couldn't parse the selector string \"a>x\": unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            parse_err("!a=b"),
            "couldn't parse the selector string \"!a=b\": found '=', expected: ',' or 'end of string'"
        );
    }

    #[test]
    fn syntax_errors_name_the_bad_token() {
        assert_eq!(
            parse_err("a=b c"),
            "couldn't parse the selector string \"a=b c\": found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("a=b,"),
            "couldn't parse the selector string \"a=b,\": found '', expected: identifier after ','"
        );
        assert_eq!(
            parse_err("=b"),
            "couldn't parse the selector string \"=b\": found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a in b"),
            "couldn't parse the selector string \"a in b\": unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            parse_err("a in (b c)"),
            "couldn't parse the selector string \"a in (b c)\": unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (=)"),
            "couldn't parse the selector string \"a in (=)\": unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("a in (,=)"),
            "couldn't parse the selector string \"a in (,=)\": unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(
            parse_err("a b"),
            "couldn't parse the selector string \"a b\": unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("a=!b"),
            "couldn't parse the selector string \"a=!b\": unable to parse requirement: found '!', expected: identifier"
        );
        assert_eq!(
            parse_err("!=a"),
            "couldn't parse the selector string \"!=a\": found '!=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a=(b)"),
            "couldn't parse the selector string \"a=(b)\": unable to parse requirement: found '(', expected: identifier"
        );
    }

    #[test]
    fn invalid_keys_and_values_name_them() {
        assert!(parse_err("-a=b").starts_with(
            "couldn't parse the selector string \"-a=b\": unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters"
        ));
        assert!(parse_err("a=-b").starts_with(
            "couldn't parse the selector string \"a=-b\": unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string"
        ));
        let both = parse_err("a in (-x,-y)");
        assert!(both.contains("unable to parse requirement: [values[0][a]: Invalid value: \"-x\""));
        assert!(both.contains(", values[1][a]: Invalid value: \"-y\""));
    }

    #[test]
    fn or_selectors_split_on_spaced_or() {
        let sels = parse_or_label_selectors("app=a or app=b,tier in (x)").unwrap();
        assert_eq!(sels.len(), 2);
        assert_eq!(sels[0].match_labels, Some(labels(&[("app", "a")])));
        assert_eq!(sels[1].match_labels, Some(labels(&[("app", "b")])));
        // Without spaces `or` is part of a value.
        let sels = parse_or_label_selectors("app=aorb").unwrap();
        assert_eq!(sels.len(), 1);
        assert!(parse_or_label_selectors("app=a or a!=b").is_err());
        assert_eq!(
            parse_or_label_selectors("").unwrap(),
            vec![LabelSelector::default()]
        );
    }

    #[test]
    fn matching() {
        let sel = Selector::new(
            &parse_label_selector("app=web,env in (prod,dev),zone notin (a),release,!legacy")
                .unwrap(),
        )
        .unwrap();
        let good = labels(&[("app", "web"), ("env", "dev"), ("release", "1")]);
        assert!(sel.matches(&good));
        let mut l = good.clone();
        l.insert("zone".into(), "b".into());
        assert!(sel.matches(&l), "notin passes for another value");
        l.insert("zone".into(), "a".into());
        assert!(!sel.matches(&l), "notin fails for a listed value");
        let mut l = good.clone();
        l.insert("legacy".into(), "".into());
        assert!(
            !sel.matches(&l),
            "DoesNotExist fails when present, even empty"
        );
        let mut l = good.clone();
        l.remove("release");
        assert!(!sel.matches(&l), "Exists fails when absent");
        let mut l = good.clone();
        l.insert("env".into(), "qa".into());
        assert!(!sel.matches(&l), "In fails for another value");
        l.remove("env");
        assert!(!sel.matches(&l), "In fails when absent");
        let mut l = good;
        l.insert("app".into(), "db".into());
        assert!(!sel.matches(&l));
    }

    #[test]
    fn empty_selector_matches_everything_and_renders_empty() {
        let sel = Selector::new(&LabelSelector::default()).unwrap();
        assert!(sel.is_empty());
        assert!(sel.matches(&BTreeMap::new()));
        assert_eq!(sel.to_string(), "");
    }

    #[test]
    fn renders_the_api_server_form() {
        let ls = LabelSelector {
            match_labels: Some(labels(&[("b", "2"), ("a", "1")])),
            match_expressions: Some(vec![
                expr("z", "In", &["y", "x"]),
                expr("a", "NotIn", &["q"]),
                expr("m", "Exists", &[]),
                expr("n", "DoesNotExist", &[]),
            ]),
        };
        assert_eq!(
            Selector::new(&ls).unwrap().to_string(),
            "a=1,a notin (q),b=2,m,!n,z in (x,y)"
        );
    }

    #[test]
    fn invalid_label_selector_objects() {
        let err = |ls: LabelSelector| Selector::new(&ls).unwrap_err().to_string();
        let only = |e: LabelSelectorRequirement| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![e]),
        };
        assert_eq!(
            err(only(expr("a", "Gt", &["1"]))),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            err(only(expr("a", "In", &[]))),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(only(expr("a", "Exists", &["x"]))),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
        assert!(
            err(only(expr("-a", "Exists", &[])))
                .starts_with("key: Invalid value: \"-a\": name part")
        );
        let two = err(only(expr("-a", "In", &[])));
        assert!(two.starts_with("[key: Invalid value: \"-a\""));
        assert!(two.ends_with(
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty]"
        ));
        assert!(
            err(LabelSelector {
                match_labels: Some(labels(&[("a", "-")])),
                match_expressions: None,
            })
            .starts_with("values[0][a]: Invalid value: \"-\"")
        );
    }

    #[test]
    fn backup_selector() {
        let one = |s: &str| parse_label_selector(s).unwrap();
        let none = BackupSelector::new(None, &[]).unwrap();
        assert!(!none.is_set());
        assert!(none.matches(&labels(&[])));
        assert_eq!(none.list_selectors(), vec![""]);
        assert!(!none.any_selector_matches(&labels(&[])));

        let single = BackupSelector::new(Some(&one("app=web")), &[]).unwrap();
        assert!(single.is_set());
        assert!(single.matches(&labels(&[("app", "web")])));
        assert!(!single.matches(&labels(&[("app", "db")])));
        assert_eq!(single.list_selectors(), vec!["app=web"]);

        let or = BackupSelector::new(None, &[one("app=web"), one("tier in (db)")]).unwrap();
        assert!(or.matches(&labels(&[("tier", "db")])));
        assert!(!or.matches(&labels(&[("tier", "x")])));
        assert_eq!(or.list_selectors(), vec!["app=web", "tier in (db)"]);

        let empty = BackupSelector::new(Some(&LabelSelector::default()), &[]).unwrap();
        assert!(empty.is_set());
        assert_eq!(empty.list_selectors(), vec![""]);
        assert!(empty.any_selector_matches(&labels(&[])));

        let spec = velero_api::v1::BackupSpec {
            or_label_selectors: Some(vec![one("a=1"), one("b=2")]),
            ..Default::default()
        };
        assert_eq!(
            BackupSelector::from_spec(&spec).unwrap().list_selectors(),
            vec!["a=1", "b=2"]
        );

        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("a", "Foo", &[])]),
        };
        assert!(BackupSelector::new(None, &[bad]).is_err());
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9]{0,5}",
            "[a-z]{1,4}\\.io/[a-z][a-z0-9._-]{0,4}[a-z0-9]",
            Just("in".to_string()),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[A-Za-z0-9]([A-Za-z0-9._-]{0,5}[A-Za-z0-9])?",
            Just("notin".to_string()),
        ]
    }

    fn term() -> impl Strategy<Value = String> {
        prop_oneof![
            (key(), value()).prop_map(|(k, v)| format!("{k}={v}")),
            (key(), value()).prop_map(|(k, v)| format!("{k} == {v}")),
            (key(), proptest::collection::vec(value(), 1..4))
                .prop_map(|(k, vs)| format!("{k} in ({})", vs.join(","))),
            (key(), proptest::collection::vec(value(), 1..4))
                .prop_map(|(k, vs)| format!("{k} notin ({})", vs.join(","))),
            key(),
            key().prop_map(|k| format!("!{k}")),
        ]
    }

    proptest! {
        #[test]
        fn string_to_selector_to_string_round_trips(
            terms in proptest::collection::vec(term(), 0..5),
        ) {
            let input = terms.join(",");
            let first = parse_label_selector(&input).unwrap();
            let rendered = Selector::new(&first).unwrap().to_string();
            let second = parse_label_selector(&rendered).unwrap();
            prop_assert_eq!(&first, &second);
            let rendered_again = Selector::new(&second).unwrap().to_string();
            prop_assert_eq!(rendered, rendered_again);
        }

        #[test]
        fn parsed_selector_matches_like_its_rendered_form(
            terms in proptest::collection::vec(term(), 0..4),
            label_pairs in proptest::collection::btree_map(key(), value(), 0..4),
        ) {
            let parsed = parse_label_selector(&terms.join(",")).unwrap();
            let selector = Selector::new(&parsed).unwrap();
            let reparsed = Selector::new(&parse_label_selector(&selector.to_string()).unwrap()).unwrap();
            prop_assert_eq!(selector.matches(&label_pairs), reparsed.matches(&label_pairs));
        }

        #[test]
        fn a_selector_built_from_labels_matches_them(
            label_pairs in proptest::collection::btree_map(key(), value(), 0..5),
            extra in proptest::collection::btree_map(key(), value(), 0..3),
        ) {
            let input = label_pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let selector = Selector::new(&parse_label_selector(&input).unwrap()).unwrap();
            let mut superset = extra;
            superset.extend(label_pairs.clone());
            prop_assert!(selector.matches(&superset));
        }
    }
}
