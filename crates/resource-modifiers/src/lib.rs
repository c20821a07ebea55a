//! Velero's restore resource modifiers (`internal/resourcemodifiers`): rules from a ConfigMap
//! that patch matching objects before they are created.
//!
//! ```yaml
//! version: v1
//! resourceModifierRules:
//! - conditions:
//!     groupResource: deployments.apps     # glob, '.' separates: "*" is every core type
//!     resourceNameRegex: "^nginx-.*$"     # optional, searched in metadata.name
//!     namespaces: [ns1, ns2]              # optional globs; ignored for cluster-scoped objects
//!     labelSelector: {matchLabels: {app: nginx}}
//!     matches:                            # optional; each path must hold the value
//!     - path: /spec/replicas
//!       value: "3"
//!   patches:                              # or mergePatches / strategicPatches: [{patchData: …}]
//!   - operation: replace
//!     path: /spec/replicas
//!     value: "1"
//! ```
//!
//! Conditions are evaluated against the object as it was before any rule of the ConfigMap
//! changed it; the patches of matching rules apply one after the other. A rule that fails leaves
//! the object as the previous rules made it and reports an error, and the object is restored
//! anyway, as in Velero.
//!
//! The ConfigMap is checked more strictly than Velero checks it: globs, regexes, label selectors
//! and JSON pointers are refused when it is loaded, where Velero would report an error for every
//! object the rule meets. Problems Velero only finds while patching (a `value` that is not JSON,
//! a `patchData` that is not YAML as go-yaml reads it, an operation name in upper case) are
//! reported per object, as Velero reports them: the object is restored without the rule's
//! patches and the restore ends PartiallyFailed. A rule with conditions and no patches is
//! accepted, as Velero accepts it; Velero's `applyPatch` then fails every object it matches with
//! "no patch data found", and so does this ([`ResourceModifiers::warnings`] says so up front).

mod go_yaml;
mod rfc6902;
mod scheme;
mod strategic;

use std::collections::BTreeMap;

use json_patch::jsonptr::{Pointer, PointerBuf};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use velero_api::item::str_or_empty;
use velero_filters::selector::Selector;
use velero_filters::{Glob, IncludesExcludes};

use go_yaml::{GoString, nullable};
use rfc6902::{Op, OpError, RawOp};

/// The only `version` Velero accepts (compared case-insensitively).
const SUPPORTED_VERSION: &str = "v1";

/// The operations Velero's validation accepts, in any case.
const OPERATIONS: [&str; 6] = ["add", "remove", "replace", "test", "move", "copy"];

/// The rules of one resource modifiers ConfigMap, validated and ready to apply.
#[derive(Debug, Clone)]
pub struct ResourceModifiers {
    rules: Vec<Rule>,
}

/// A ConfigMap that cannot be used. The restore is refused (`FailedValidation`); the caller adds
/// the ConfigMap's namespace and name.
#[derive(Debug, thiserror::Error)]
pub enum ModifierError {
    #[error(
        "the resource modifiers ConfigMap must have exactly one entry in data, holding the rules as YAML, but it has {count}"
    )]
    DataKeys { count: usize },
    #[error("failed to decode the YAML in data key {key:?} into resource modifiers: {message}")]
    Decode { key: String, message: String },
    #[error("unsupported resource modifier version {version:?}: the only supported version is v1")]
    UnsupportedVersion { version: String },
    #[error(
        "resource modifier rules cannot be empty: add at least one entry to resourceModifierRules"
    )]
    NoRules,
    #[error("resourceModifierRules[{rule}]: {problem}")]
    Rule { rule: usize, problem: RuleProblem },
}

/// What is wrong with one rule; fields are named as in the YAML.
#[derive(Debug, thiserror::Error)]
pub enum RuleProblem {
    #[error(
        "conditions.groupResource cannot be empty; name the type as resource.group (\"deployments.apps\", \"pods\" for core) or use a glob such as \"*.apps\""
    )]
    EmptyGroupResource,
    #[error("conditions.groupResource {pattern:?} is not a valid glob: {reason}")]
    InvalidGroupResource { pattern: String, reason: String },
    #[error("conditions.resourceNameRegex {regex:?} is not a valid regular expression: {reason}")]
    InvalidNameRegex { regex: String, reason: String },
    #[error("conditions.labelSelector is not a valid label selector: {reason}")]
    InvalidLabelSelector { reason: String },
    #[error("conditions.matches[{index}].path is required")]
    EmptyMatchPath { index: usize },
    #[error(
        "conditions.matches[{index}].path {path:?} is not a JSON pointer (like /spec/replicas): {reason}"
    )]
    InvalidMatchPath {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("only one of patches, mergePatches, strategicPatches can be specified")]
    SeveralPatchKinds,
    #[error(
        "patches[{index}].operation cannot be empty; use one of add, remove, replace, test, move, copy"
    )]
    EmptyOperation { index: usize },
    #[error(
        "patches[{index}]: unsupported operation {operation:?}; use one of add, remove, replace, test, move, copy"
    )]
    UnsupportedOperation { index: usize, operation: String },
    #[error("patches[{index}].path cannot be empty")]
    EmptyPath { index: usize },
    #[error(
        "patches[{index}].{field} {pointer:?} is not a JSON pointer (like /spec/replicas): {reason}"
    )]
    InvalidPointer {
        index: usize,
        field: &'static str,
        pointer: String,
        reason: String,
    },
}

/// What applying the rules did to one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Whether the object differs from what it was before.
    pub changed: bool,
    /// One restore error per failed rule, in rule order, worded as Velero words them.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    namespaces: IncludesExcludes,
    group_resource: Glob,
    name_regex: Option<Regex>,
    selector: Option<Selector>,
    /// The `matches` as `test` operations, or why they cannot be decoded.
    matches: Result<Vec<Op>, String>,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    /// Conditions without patches: Velero accepts the rule and errs on every object it matches.
    Nothing,
    Json(Result<Vec<Op>, String>),
    /// Each patch document as JSON, or why its YAML does not parse.
    Merge(Vec<Result<Value, String>>),
    Strategic(Vec<Result<Value, String>>),
}

impl ResourceModifiers {
    /// From a ConfigMap's `data`: exactly one key, whose value is YAML (strict: unknown fields
    /// are errors), version "v1", at least one rule, each rule with exactly one of patches/
    /// mergePatches/strategicPatches, valid regexes/globs/selectors, valid JSON pointers.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self, ModifierError> {
        let mut entries = data.iter();
        let (Some((key, yaml)), None) = (entries.next(), entries.next()) else {
            return Err(ModifierError::DataKeys { count: data.len() });
        };
        let raw: RawModifiers =
            go_yaml::from_str_strict(yaml).map_err(|e| ModifierError::Decode {
                key: key.clone(),
                message: e.to_string(),
            })?;
        if !raw.version.0.eq_ignore_ascii_case(SUPPORTED_VERSION) {
            return Err(ModifierError::UnsupportedVersion {
                version: raw.version.0,
            });
        }
        if raw.rules.is_empty() {
            return Err(ModifierError::NoRules);
        }
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                Rule::compile(rule).map_err(|problem| ModifierError::Rule {
                    rule: index,
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ResourceModifiers { rules })
    }

    /// What the restore log should say about the rules before any object meets them: rules that
    /// have conditions and nothing to apply.
    pub fn warnings(&self) -> Vec<String> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| matches!(rule.action, Action::Nothing))
            .map(|(index, _)| {
                format!(
                    "resource modifier rule resourceModifierRules[{index}] has conditions and no patches, mergePatches or strategicPatches: every object it matches gets the error \"no patch data found\" and is restored unpatched, as Velero does"
                )
            })
            .collect()
    }

    /// Applies every matching rule to `object` (a Kubernetes object as JSON) of type
    /// `group_resource` (e.g. "deployments.apps", "pods" for core). Returns Ok(true) if changed.
    /// Err(message) is a per-item restore error text (Velero-like wording); several failed
    /// rules are joined with "; ". Even on Err, `object` carries the changes of the rules that
    /// succeeded, and Velero restores it so.
    pub fn apply(&self, object: &mut Value, group_resource: &str) -> Result<bool, String> {
        let outcome = self.apply_rules(object, group_resource);
        if outcome.errors.is_empty() {
            Ok(outcome.changed)
        } else {
            Err(outcome.errors.join("; "))
        }
    }

    /// [`apply`](Self::apply) with one error per failed rule, as Velero records them.
    pub fn apply_rules(&self, object: &mut Value, group_resource: &str) -> ApplyOutcome {
        let mut outcome = ApplyOutcome::default();
        // Conditions see the object as it came in, not as earlier rules left it.
        let original = (self.rules.len() > 1).then(|| object.clone());
        for rule in &self.rules {
            let subject = original.as_ref().unwrap_or(&*object);
            match rule.matches(subject, group_resource) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    outcome.errors.push(error);
                    continue;
                }
            }
            match rule.action.apply(object) {
                Ok(changed) => outcome.changed |= changed,
                Err(error) => outcome.errors.push(error),
            }
        }
        outcome
    }
}

impl Rule {
    fn compile(raw: RawRule) -> Result<Self, RuleProblem> {
        let conditions = raw.conditions;
        let pattern = conditions.group_resource.0;
        if pattern.is_empty() {
            return Err(RuleProblem::EmptyGroupResource);
        }
        let group_resource = Glob::with_separators(&pattern, &['.']).map_err(|e| {
            RuleProblem::InvalidGroupResource {
                pattern: pattern.clone(),
                reason: e.to_string(),
            }
        })?;
        let name_regex = match conditions.resource_name_regex.0.as_str() {
            "" => None,
            regex => Some(
                Regex::new(regex).map_err(|e| RuleProblem::InvalidNameRegex {
                    regex: regex.to_string(),
                    reason: e.to_string(),
                })?,
            ),
        };
        let selector = conditions
            .label_selector
            .map(|raw| {
                Selector::new(&raw.into_label_selector()).map_err(|e| {
                    RuleProblem::InvalidLabelSelector {
                        reason: e.to_string(),
                    }
                })
            })
            .transpose()?;
        let mut tests = Vec::new();
        for (index, rule) in conditions.matches.into_iter().enumerate() {
            if rule.path.0.is_empty() {
                return Err(RuleProblem::EmptyMatchPath { index });
            }
            let path =
                parse_pointer(&rule.path.0).map_err(|reason| RuleProblem::InvalidMatchPath {
                    index,
                    path: rule.path.0.clone(),
                    reason,
                })?;
            tests.push(RawOp {
                operation: "test".to_string(),
                path,
                from: PointerBuf::new(),
                value: rule.value.0,
            });
        }

        let kinds = [
            !raw.patches.is_empty(),
            !raw.merge_patches.is_empty(),
            !raw.strategic_patches.is_empty(),
        ];
        let action = match kinds {
            [true, false, false] => Action::Json(rfc6902::decode(&compile_ops(raw.patches)?)),
            [false, true, false] => Action::Merge(documents(raw.merge_patches)),
            [false, false, true] => Action::Strategic(documents(raw.strategic_patches)),
            [false, false, false] => Action::Nothing,
            _ => return Err(RuleProblem::SeveralPatchKinds),
        };
        Ok(Rule {
            namespaces: IncludesExcludes::new(
                conditions.namespaces.into_iter().map(|ns| ns.0),
                Vec::<String>::new(),
            ),
            group_resource,
            name_regex,
            selector,
            matches: rfc6902::decode(&tests),
            action,
        })
    }

    /// Velero's order: namespace, type, name, labels, then the `matches`. Only the `matches` can
    /// fail here, as Velero fails them.
    fn matches(&self, object: &Value, group_resource: &str) -> Result<bool, String> {
        let namespace = str_or_empty(object, "/metadata/namespace");
        if !namespace.is_empty() && !self.namespaces.should_include(namespace) {
            return Ok(false);
        }
        if !self.group_resource.is_match(group_resource) {
            return Ok(false);
        }
        if let Some(regex) = &self.name_regex
            && !regex.is_match(str_or_empty(object, "/metadata/name"))
        {
            return Ok(false);
        }
        if let Some(selector) = &self.selector
            && !selector.matches(&labels(object))
        {
            return Ok(false);
        }
        let tests = self.matches.as_ref().map_err(Clone::clone)?;
        match rfc6902::test_all(object, tests) {
            Ok(()) => Ok(true),
            Err(OpError::TestFailed(_) | OpError::Missing(_)) => Ok(false),
            Err(OpError::Other(error)) => Err(error),
        }
    }
}

impl Action {
    /// Patches a copy and keeps it only if every patch of the rule applied.
    fn apply(&self, object: &mut Value) -> Result<bool, String> {
        let patched = match self {
            // Velero's message (internal/resourcemodifiers/resource_modifiers.go, applyPatch).
            Action::Nothing => return Err("no patch data found".to_string()),
            Action::Json(ops) => {
                let fail = |e: &dyn std::fmt::Display| {
                    format!("error in applying patch error in applying JSON Patch {e}")
                };
                let ops = ops.as_ref().map_err(|e| fail(e))?;
                let mut working = object.clone();
                match rfc6902::apply(&mut working, ops) {
                    Ok(()) => {}
                    // A failed `test` means "not this object": no change, no error.
                    Err(OpError::TestFailed(_)) => return Ok(false),
                    Err(e) => return Err(fail(&e)),
                }
                ensure_object_with_kind(&working)
                    .map_err(|e| format!("error in applying patch {e}"))?;
                working
            }
            Action::Merge(documents) => {
                let mut working = object.clone();
                for document in documents {
                    let patch = document.as_ref().map_err(|e| {
                        format!("error in applying patch error in converting YAML to JSON {e}")
                    })?;
                    if !patch.is_object() {
                        return Err(
                            "error in applying patch error in applying JSON Patch: Invalid JSON Patch: a merge patch must be a map"
                                .to_string(),
                        );
                    }
                    json_patch::merge(&mut working, patch);
                }
                ensure_object_with_kind(&working)
                    .map_err(|e| format!("error in applying patch {e}"))?;
                working
            }
            Action::Strategic(documents) => strategic_patch(object, documents)?,
        };
        let changed = patched != *object;
        *object = patched;
        Ok(changed)
    }
}

/// Velero looks the type up once, from the object before the rule's patches, and refuses kinds
/// its scheme does not register (custom resources among them).
fn strategic_patch(object: &Value, documents: &[Result<Value, String>]) -> Result<Value, String> {
    let api_version = str_or_empty(object, "/apiVersion");
    let kind = str_or_empty(object, "/kind");
    let schema = scheme::lookup(api_version, kind).ok_or_else(|| {
        if kind.is_empty() {
            format!(
                "error in applying patch no version {api_version:?} has been registered in scheme \"velero\""
            )
        } else {
            format!(
                "error in applying patch no kind {kind:?} is registered for version {api_version:?} in scheme \"velero\"; strategic merge patches work on built-in core, apps and batch types and Velero's own, use patches or mergePatches for other types"
            )
        }
    })?;
    let fail = |e: &dyn std::fmt::Display| {
        format!("error in applying patch error in applying Strategic Patch {e}")
    };
    let mut working = object.clone();
    for document in documents {
        let patch = document
            .as_ref()
            .map_err(|e| format!("error in applying patch error in converting YAML to JSON {e}"))?;
        let patch = match patch {
            // Go decodes `null` into an empty patch map.
            Value::Null => serde_json::Map::new(),
            Value::Object(map) => map.clone(),
            other => {
                return Err(fail(&format!(
                    "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                    json_type(other)
                )));
            }
        };
        let Value::Object(original) = std::mem::take(&mut working) else {
            return Err(fail(&"the object is not a JSON object"));
        };
        working = Value::Object(strategic::apply(original, patch, schema).map_err(|e| fail(&e))?);
        ensure_object_with_kind(&working).map_err(|e| fail(&e))?;
    }
    Ok(working)
}

/// Velero turns the patched JSON back into an object, which needs a kind.
fn ensure_object_with_kind(value: &Value) -> Result<(), String> {
    match value {
        Value::Object(map) => match map.get("kind") {
            Some(Value::String(kind)) if !kind.is_empty() => Ok(()),
            _ => Err(
                "error in unmarshalling modified object Object 'Kind' is missing in the patched object"
                    .to_string(),
            ),
        },
        other => Err(format!(
            "error in unmarshalling modified object json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(other)
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `GetLabels`: a label map with any non-string value reads as no labels at all.
fn labels(object: &Value) -> BTreeMap<String, String> {
    let Some(Value::Object(map)) = object.pointer("/metadata/labels") else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect::<Option<_>>()
        .unwrap_or_default()
}

fn parse_pointer(text: &str) -> Result<PointerBuf, String> {
    Pointer::parse(text)
        .map(Pointer::to_buf)
        .map_err(|e| e.to_string())
}

fn compile_ops(patches: Vec<RawJsonPatch>) -> Result<Vec<RawOp>, RuleProblem> {
    patches
        .into_iter()
        .enumerate()
        .map(|(index, patch)| {
            let operation = patch.operation.0;
            if operation.is_empty() {
                return Err(RuleProblem::EmptyOperation { index });
            }
            let lower = operation.to_ascii_lowercase();
            if !OPERATIONS.contains(&lower.as_str()) {
                return Err(RuleProblem::UnsupportedOperation { index, operation });
            }
            if patch.path.0.is_empty() {
                return Err(RuleProblem::EmptyPath { index });
            }
            let pointer = |field: &'static str, text: &str| {
                parse_pointer(text).map_err(|reason| RuleProblem::InvalidPointer {
                    index,
                    field,
                    pointer: text.to_string(),
                    reason,
                })
            };
            let path = pointer("path", &patch.path.0)?;
            // Only move and copy read `from`; Velero ignores it elsewhere.
            let from = if matches!(lower.as_str(), "move" | "copy") {
                pointer("from", &patch.from.0)?
            } else {
                PointerBuf::new()
            };
            Ok(RawOp {
                operation,
                path,
                from,
                value: patch.value.0,
            })
        })
        .collect()
}

fn documents(patches: Vec<RawPatchData>) -> Vec<Result<Value, String>> {
    patches
        .into_iter()
        .map(|p| go_yaml::patch_to_json(&p.patch_data.0))
        .collect()
}

// The ConfigMap's YAML, field for field as Velero's Go structs declare it. Unknown fields are
// errors, as with Velero's strict decoding; a null is an empty value, as in Go.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModifiers {
    #[serde(default, deserialize_with = "nullable")]
    version: GoString,
    #[serde(
        default,
        rename = "resourceModifierRules",
        deserialize_with = "nullable"
    )]
    rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default, deserialize_with = "nullable")]
    conditions: RawConditions,
    #[serde(default, deserialize_with = "nullable")]
    patches: Vec<RawJsonPatch>,
    #[serde(default, deserialize_with = "nullable")]
    merge_patches: Vec<RawPatchData>,
    #[serde(default, deserialize_with = "nullable")]
    strategic_patches: Vec<RawPatchData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConditions {
    #[serde(default, deserialize_with = "nullable")]
    namespaces: Vec<GoString>,
    #[serde(default, deserialize_with = "nullable")]
    group_resource: GoString,
    #[serde(default, deserialize_with = "nullable")]
    resource_name_regex: GoString,
    #[serde(default)]
    label_selector: Option<RawLabelSelector>,
    #[serde(default, deserialize_with = "nullable")]
    matches: Vec<RawMatch>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default, deserialize_with = "nullable")]
    path: GoString,
    #[serde(default, deserialize_with = "nullable")]
    value: GoString,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonPatch {
    #[serde(default, deserialize_with = "nullable")]
    operation: GoString,
    #[serde(default, deserialize_with = "nullable")]
    from: GoString,
    #[serde(default, deserialize_with = "nullable")]
    path: GoString,
    #[serde(default, deserialize_with = "nullable")]
    value: GoString,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPatchData {
    #[serde(default, deserialize_with = "nullable")]
    patch_data: GoString,
}

/// A `metav1.LabelSelector`, decoded strictly (k8s-openapi's own decoder ignores unknown fields).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLabelSelector {
    #[serde(default, deserialize_with = "nullable")]
    match_labels: BTreeMap<String, GoString>,
    #[serde(default, deserialize_with = "nullable")]
    match_expressions: Vec<RawRequirement>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    #[serde(default, deserialize_with = "nullable")]
    key: GoString,
    #[serde(default, deserialize_with = "nullable")]
    operator: GoString,
    #[serde(default, deserialize_with = "nullable")]
    values: Vec<GoString>,
}

impl RawLabelSelector {
    fn into_label_selector(self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                self.match_labels
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            ),
            match_expressions: Some(
                self.match_expressions
                    .into_iter()
                    .map(|r| LabelSelectorRequirement {
                        key: r.key.0,
                        operator: r.operator.0,
                        values: Some(r.values.into_iter().map(|v| v.0).collect()),
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
