use super::*;
use proptest::prelude::*;
use serde_json::json;

fn data(yaml: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("rules.yaml".to_string(), yaml.to_string())])
}

fn load(yaml: &str) -> ResourceModifiers {
    ResourceModifiers::from_config_map_data(&data(yaml)).unwrap()
}

fn load_err(yaml: &str) -> ModifierError {
    ResourceModifiers::from_config_map_data(&data(yaml)).unwrap_err()
}

fn rule_problem(yaml: &str) -> (usize, RuleProblem) {
    match load_err(yaml) {
        ModifierError::Rule { rule, problem } => (rule, problem),
        other => panic!("expected a rule problem, got {other}"),
    }
}

/// One rule on `groupResource: <gr>` with the given body (indented YAML under the rule).
fn one_rule(conditions: &str, body: &str) -> String {
    format!("version: v1\nresourceModifierRules:\n- conditions:\n{conditions}\n{body}\n")
}

fn json_patch_rule(conditions: &str, op: &str, path: &str, value: &str) -> ResourceModifiers {
    load(&one_rule(
        conditions,
        &format!("  patches:\n  - operation: {op}\n    path: {path}\n    value: '{value}'"),
    ))
}

fn pvc(name: &str, namespace: &str, class: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "db", "tier": "data"}},
        "spec": {"storageClassName": class, "resources": {"requests": {"storage": "1Gi"}}}
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-web", "namespace": "shop", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [
                    {"name": "nginx", "image": "nginx:1.25",
                     "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "info"}]},
                    {"name": "sidecar", "image": "envoy:1.30"}
                ]}
            }
        }
    })
}

// ---- Loading the ConfigMap ----

#[test]
fn config_map_needs_exactly_one_data_key() {
    let none = ResourceModifiers::from_config_map_data(&BTreeMap::new()).unwrap_err();
    assert!(matches!(none, ModifierError::DataKeys { count: 0 }));
    let mut two = data("version: v1");
    two.insert("other.yaml".into(), "version: v1".into());
    let err = ResourceModifiers::from_config_map_data(&two).unwrap_err();
    assert!(matches!(err, ModifierError::DataKeys { count: 2 }));
    assert!(
        err.to_string().contains("exactly one entry in data"),
        "{err}"
    );
}

#[test]
fn version_must_be_v1_in_any_case() {
    let err = load_err(
        "version: v2\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: remove, path: /a}]",
    );
    assert!(
        matches!(&err, ModifierError::UnsupportedVersion { version } if version == "v2"),
        "{err}"
    );
    let upper = load(
        "version: V1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: remove, path: /a}]",
    );
    assert_eq!(upper.rules.len(), 1);
    // An empty ConfigMap entry is Go's zero value: no version.
    assert!(matches!(
        load_err(""),
        ModifierError::UnsupportedVersion { version } if version.is_empty()
    ));
}

#[test]
fn unknown_fields_and_duplicate_keys_are_refused() {
    let top = load_err("version: v1\nversion1: v1\nresourceModifierRules: []");
    assert!(
        matches!(&top, ModifierError::Decode { key, .. } if key == "rules.yaml"),
        "{top}"
    );
    assert!(top.to_string().contains("version1"), "{top}");
    let nested = load_err(&one_rule(
        "    groupResource: pods\n    namespace: [a]",
        "  patches: [{operation: remove, path: /a}]",
    ));
    assert!(nested.to_string().contains("namespace"), "{nested}");
    let selector = load_err(&one_rule(
        "    groupResource: pods\n    labelSelector: {matchLabel: {a: b}}",
        "  patches: [{operation: remove, path: /a}]",
    ));
    assert!(matches!(selector, ModifierError::Decode { .. }));
    let duplicate = load_err("version: v1\nversion: v1\nresourceModifierRules: []");
    assert!(matches!(duplicate, ModifierError::Decode { .. }));
}

#[test]
fn rules_cannot_be_empty() {
    assert!(matches!(
        load_err("version: v1\nresourceModifierRules: []"),
        ModifierError::NoRules
    ));
    assert!(matches!(load_err("version: v1"), ModifierError::NoRules));
}

#[test]
fn a_rule_has_exactly_one_kind_of_patch() {
    let (rule, problem) = rule_problem(&one_rule(
        "    groupResource: pods",
        "  patches: [{operation: remove, path: /a}]\n  mergePatches: [{patchData: '{}'}]",
    ));
    assert_eq!(rule, 0);
    assert!(matches!(problem, RuleProblem::SeveralPatchKinds));
}

#[test]
fn a_rule_without_patches_is_accepted_and_errs_on_what_it_matches() {
    let rules = load(
        "version: v1\nresourceModifierRules:\n\
         - conditions: {groupResource: persistentvolumeclaims, namespaces: [shop]}\n\
         - conditions: {groupResource: persistentvolumeclaims}\n  patches: [{operation: add, path: /metadata/labels/seen, value: 'yes'}]\n",
    );
    let warnings = rules.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("resourceModifierRules[0]"),
        "{warnings:?}"
    );

    // Matched: Velero's error, and the next rule still applies.
    let mut matched = pvc("a", "shop", "standard");
    let outcome = rules.apply_rules(&mut matched, "persistentvolumeclaims");
    assert_eq!(outcome.errors, ["no patch data found"]);
    assert!(outcome.changed);
    assert_eq!(matched["metadata"]["labels"]["seen"], json!("yes"));

    // Not matched: nothing to say.
    let mut other = pvc("a", "other", "standard");
    let outcome = rules.apply_rules(&mut other, "persistentvolumeclaims");
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
}

#[test]
fn bad_conditions_are_refused_with_the_rule_index() {
    let yaml = "version: v1\nresourceModifierRules:\n\
        - conditions: {groupResource: pods}\n  patches: [{operation: remove, path: /a}]\n\
        - conditions: {groupResource: pods, resourceNameRegex: '[a-z'}\n  patches: [{operation: remove, path: /a}]\n";
    let err = load_err(yaml);
    assert!(
        matches!(&err, ModifierError::Rule { rule: 1, problem: RuleProblem::InvalidNameRegex { regex, .. } } if regex == "[a-z"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("resourceModifierRules[1]: conditions.resourceNameRegex"),
        "{err}"
    );

    let body = "  patches: [{operation: remove, path: /a}]";
    let (_, problem) = rule_problem(&one_rule("    groupResource: ''", body));
    assert!(matches!(problem, RuleProblem::EmptyGroupResource));
    let (_, problem) = rule_problem(&one_rule("    groupResource: '[pods'", body));
    assert!(matches!(problem, RuleProblem::InvalidGroupResource { .. }));
    let (_, problem) = rule_problem(&one_rule(
        "    groupResource: pods\n    labelSelector:\n      matchExpressions: [{key: app, operator: Bogus}]",
        body,
    ));
    assert!(
        matches!(problem, RuleProblem::InvalidLabelSelector { .. }),
        "{problem}"
    );
    let (_, problem) = rule_problem(&one_rule(
        "    groupResource: pods\n    matches: [{value: x}]",
        body,
    ));
    assert!(matches!(problem, RuleProblem::EmptyMatchPath { index: 0 }));
    let (_, problem) = rule_problem(&one_rule(
        "    groupResource: pods\n    matches: [{path: /a, value: x}, {path: 'spec/x', value: x}]",
        body,
    ));
    assert!(
        matches!(problem, RuleProblem::InvalidMatchPath { index: 1, .. }),
        "{problem}"
    );
}

#[test]
fn bad_json_patches_are_refused() {
    let problem = |patch: &str| rule_problem(&one_rule("    groupResource: pods", patch)).1;
    assert!(matches!(
        problem("  patches: [{path: /a}]"),
        RuleProblem::EmptyOperation { index: 0 }
    ));
    assert!(matches!(
        problem("  patches: [{operation: remove, path: /a}, {operation: delete, path: /a}]"),
        RuleProblem::UnsupportedOperation { index: 1, operation } if operation == "delete"
    ));
    assert!(matches!(
        problem("  patches: [{operation: remove}]"),
        RuleProblem::EmptyPath { index: 0 }
    ));
    assert!(matches!(
        problem("  patches: [{operation: replace, path: spec/replicas, value: '1'}]"),
        RuleProblem::InvalidPointer { field: "path", .. }
    ));
    assert!(matches!(
        problem("  patches: [{operation: copy, from: '/a~2', path: /b}]"),
        RuleProblem::InvalidPointer { field: "from", .. }
    ));
    // `from` means nothing to other operations, so Velero never reads it there.
    load(&one_rule(
        "    groupResource: pods",
        "  patches: [{operation: add, from: junk, path: /b, value: x}]",
    ));
}

// ---- Conditions ----

#[test]
fn group_resource_is_a_glob_with_dot_separators() {
    let rules = json_patch_rule("    groupResource: '*'", "add", "/x", "1");
    assert_eq!(rules.apply(&mut json!({"kind": "Pod"}), "pods"), Ok(true));
    assert_eq!(
        rules.apply(&mut json!({"kind": "Deployment"}), "deployments.apps"),
        Ok(false)
    );
    let rules = json_patch_rule("    groupResource: '*.apps'", "add", "/x", "1");
    assert_eq!(
        rules.apply(&mut json!({"kind": "Deployment"}), "deployments.apps"),
        Ok(true)
    );
    assert_eq!(
        rules.apply(&mut json!({"kind": "Job"}), "jobs.batch"),
        Ok(false)
    );
    let rules = json_patch_rule("    groupResource: '**'", "add", "/x", "1");
    assert_eq!(
        rules.apply(
            &mut json!({"kind": "Ingress"}),
            "ingresses.networking.k8s.io"
        ),
        Ok(true)
    );
}

#[test]
fn namespaces_only_constrain_namespaced_objects() {
    let rules = json_patch_rule(
        "    groupResource: '*'\n    namespaces: [shop, 'team-*']",
        "add",
        "/metadata/labels/patched",
        "yes",
    );
    let mut inside = pvc("data", "team-a", "standard");
    assert_eq!(rules.apply(&mut inside, "persistentvolumeclaims"), Ok(true));
    assert_eq!(inside["metadata"]["labels"]["patched"], "yes");

    let mut outside = pvc("data", "other", "standard");
    let before = outside.clone();
    assert_eq!(
        rules.apply(&mut outside, "persistentvolumeclaims"),
        Ok(false)
    );
    assert_eq!(outside, before);

    let mut cluster_scoped =
        json!({"kind": "PersistentVolume", "metadata": {"name": "pv1", "labels": {}}});
    assert_eq!(
        rules.apply(&mut cluster_scoped, "persistentvolumes"),
        Ok(true)
    );
}

#[test]
fn resource_name_regex_searches_the_name() {
    let rules = json_patch_rule(
        "    groupResource: persistentvolumeclaims\n    resourceNameRegex: 'db-[0-9]+'",
        "replace",
        "/spec/storageClassName",
        "premium",
    );
    let mut matching = pvc("data-db-12-x", "shop", "standard");
    assert_eq!(
        rules.apply(&mut matching, "persistentvolumeclaims"),
        Ok(true)
    );
    assert_eq!(matching["spec"]["storageClassName"], "premium");
    let mut other = pvc("cache", "shop", "standard");
    assert_eq!(rules.apply(&mut other, "persistentvolumeclaims"), Ok(false));
    assert_eq!(other["spec"]["storageClassName"], "standard");
}

#[test]
fn label_selector_matches_labels() {
    let rules = json_patch_rule(
        "    groupResource: persistentvolumeclaims\n    labelSelector:\n      matchLabels: {app: db}\n      matchExpressions: [{key: tier, operator: In, values: [data, cache]}]",
        "replace",
        "/spec/storageClassName",
        "premium",
    );
    let mut matching = pvc("a", "shop", "standard");
    assert_eq!(
        rules.apply(&mut matching, "persistentvolumeclaims"),
        Ok(true)
    );
    let mut other = pvc("a", "shop", "standard");
    other["metadata"]["labels"]["tier"] = json!("web");
    assert_eq!(rules.apply(&mut other, "persistentvolumeclaims"), Ok(false));
    assert_eq!(other["spec"]["storageClassName"], "standard");
}

#[test]
fn matches_compare_values_at_json_pointers() {
    let rules = load(&one_rule(
        "    groupResource: deployments.apps\n    matches:\n    - path: /spec/replicas\n      value: '3'\n    - path: /spec/template/spec/containers/0/name\n      value: nginx",
        "  mergePatches: [{patchData: '{\"spec\": {\"replicas\": 1}}'}]",
    ));
    let mut three = deployment();
    assert_eq!(rules.apply(&mut three, "deployments.apps"), Ok(true));
    assert_eq!(three["spec"]["replicas"], 1);

    let mut two = deployment();
    two["spec"]["replicas"] = json!(2);
    assert_eq!(rules.apply(&mut two, "deployments.apps"), Ok(false));
    assert_eq!(two["spec"]["replicas"], 2);
}

#[test]
fn a_match_on_a_missing_path_is_no_match_but_a_bad_index_is_an_error() {
    let missing = load(&one_rule(
        "    groupResource: '*'\n    matches: [{path: /metadata/labels/app/x, value: db}]",
        "  patches: [{operation: remove, path: /spec}]",
    ));
    let mut object = pvc("a", "shop", "standard");
    assert_eq!(
        missing.apply(&mut object, "persistentvolumeclaims"),
        Ok(false)
    );
    assert!(object.get("spec").is_some());

    // evanphx reports a bad index on the way to the value as missing, and at the end as an error.
    let through_bad_index = load(&one_rule(
        "    groupResource: deployments.apps\n    matches: [{path: /spec/template/spec/containers/9/name, value: x}]",
        "  patches: [{operation: remove, path: /spec}]",
    ));
    let mut object = deployment();
    assert_eq!(
        through_bad_index.apply(&mut object, "deployments.apps"),
        Ok(false)
    );
    let bad_index = load(&one_rule(
        "    groupResource: deployments.apps\n    matches: [{path: /spec/template/spec/containers/9, value: x}]",
        "  patches: [{operation: remove, path: /spec}]",
    ));
    let err = bad_index
        .apply(&mut object, "deployments.apps")
        .unwrap_err();
    assert!(err.contains("invalid index"), "{err}");
    assert!(object.get("spec").is_some());
}

// ---- JSON patches ----

fn replaced(value: &str) -> Value {
    let rules = json_patch_rule(
        "    groupResource: persistentvolumeclaims",
        "replace",
        "/spec/storageClassName",
        value,
    );
    let mut object = pvc("a", "shop", "standard");
    rules.apply(&mut object, "persistentvolumeclaims").unwrap();
    object["spec"]["storageClassName"].clone()
}

#[test]
fn patch_values_follow_velero_quoting_rules() {
    assert_eq!(replaced("42"), json!(42));
    assert_eq!(replaced("1.5"), json!(1.5));
    assert_eq!(replaced("true"), json!(true));
    assert_eq!(replaced("false"), json!(false));
    assert_eq!(replaced("null"), Value::Null);
    assert_eq!(replaced(r#"{"a": [1]}"#), json!({"a": [1]}));
    assert_eq!(replaced("[1, 2]"), json!([1, 2]));
    assert_eq!(replaced("premium"), json!("premium"));
    assert_eq!(replaced(r#""true""#), json!("true"));
    assert_eq!(replaced(r#""42""#), json!("42"));
    assert_eq!(replaced(""), json!(""));
}

#[test]
fn yaml_scalars_reach_the_patch_as_go_strings() {
    // `value: 1.0` is the float 1, which Go turns into the text "1", a JSON integer.
    let rules = load(&one_rule(
        "    groupResource: deployments.apps",
        "  patches:\n  - operation: replace\n    path: /spec/replicas\n    value: 1.0",
    ));
    let mut object = deployment();
    rules.apply(&mut object, "deployments.apps").unwrap();
    assert_eq!(object["spec"]["replicas"], json!(1));

    let rules = load(&one_rule(
        "    groupResource: deployments.apps",
        "  patches:\n  - operation: add\n    path: /spec/paused\n    value: yes",
    ));
    let mut object = deployment();
    rules.apply(&mut object, "deployments.apps").unwrap();
    assert_eq!(object["spec"]["paused"], json!(true));
}

#[test]
fn values_velero_cannot_decode_fail_each_matching_item() {
    for value in ["FALSE", "True", "+1"] {
        let rules = json_patch_rule(
            "    groupResource: persistentvolumeclaims",
            "replace",
            "/spec/storageClassName",
            value,
        );
        let mut object = pvc("a", "shop", "standard");
        let err = rules
            .apply(&mut object, "persistentvolumeclaims")
            .unwrap_err();
        assert!(
            err.starts_with(
                "error in applying patch error in applying JSON Patch error in decoding json patch"
            ),
            "{err}"
        );
        assert_eq!(object["spec"]["storageClassName"], "standard");
    }
}

#[test]
fn operation_case_is_checked_only_when_applying() {
    let rules = json_patch_rule(
        "    groupResource: persistentvolumeclaims",
        "Replace",
        "/spec/storageClassName",
        "premium",
    );
    let mut unrelated = json!({"kind": "Pod"});
    assert_eq!(rules.apply(&mut unrelated, "pods"), Ok(false));
    let mut object = pvc("a", "shop", "standard");
    let err = rules
        .apply(&mut object, "persistentvolumeclaims")
        .unwrap_err();
    assert!(err.contains("unsupported operation"), "{err}");
}

#[test]
fn failing_test_operation_leaves_the_object_unchanged() {
    let rules = load(&one_rule(
        "    groupResource: persistentvolumeclaims",
        "  patches:\n  - {operation: add, path: /metadata/labels/seen, value: 'yes'}\n  - {operation: test, path: /spec/storageClassName, value: standard}\n  - {operation: replace, path: /spec/storageClassName, value: premium}",
    ));
    let mut standard = pvc("a", "shop", "standard");
    assert_eq!(
        rules.apply(&mut standard, "persistentvolumeclaims"),
        Ok(true)
    );
    assert_eq!(standard["spec"]["storageClassName"], "premium");
    assert_eq!(standard["metadata"]["labels"]["seen"], "yes");

    // The add before the failing test is undone too: the whole list is skipped, without error.
    let mut gold = pvc("a", "shop", "gold");
    let before = gold.clone();
    assert_eq!(rules.apply(&mut gold, "persistentvolumeclaims"), Ok(false));
    assert_eq!(gold, before);
}

#[test]
fn a_test_whose_parent_is_missing_is_an_error_in_patches() {
    let rules = json_patch_rule("    groupResource: '*'", "test", "/status/phase", "Bound");
    let mut object = pvc("a", "shop", "standard");
    let err = rules
        .apply(&mut object, "persistentvolumeclaims")
        .unwrap_err();
    assert!(err.contains("missing path"), "{err}");
}

#[test]
fn move_copy_and_remove() {
    let rules = load(&one_rule(
        "    groupResource: deployments.apps",
        "  patches:\n  - {operation: copy, from: /spec/template/spec/containers/0, path: /spec/template/spec/containers/-}\n  - {operation: replace, path: /spec/template/spec/containers/2/name, value: copy}\n  - {operation: move, from: /metadata/labels/app, path: /metadata/labels/was}\n  - {operation: remove, path: /spec/template/spec/containers/1}",
    ));
    let mut object = deployment();
    assert_eq!(rules.apply(&mut object, "deployments.apps"), Ok(true));
    let names: Vec<&str> = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "copy"]);
    assert_eq!(object["metadata"]["labels"], json!({"was": "nginx"}));
}

#[test]
fn a_failed_operation_is_an_error_and_changes_nothing() {
    let rules = json_patch_rule("    groupResource: '*'", "replace", "/spec/missing", "x");
    let mut object = pvc("a", "shop", "standard");
    let before = object.clone();
    let err = rules
        .apply(&mut object, "persistentvolumeclaims")
        .unwrap_err();
    assert!(
        err.starts_with(
            "error in applying patch error in applying JSON Patch replace operation failed"
        ),
        "{err}"
    );
    assert_eq!(object, before);
}

// ---- Several rules ----

const STANDARD_TO_PREMIUM: &str = "- conditions:\n    groupResource: persistentvolumeclaims\n    matches: [{path: /spec/storageClassName, value: standard}]\n  patches: [{operation: replace, path: /spec/storageClassName, value: premium}]\n";

#[test]
fn conditions_see_the_object_before_any_rule_changed_it() {
    let rules = load(&format!(
        "version: v1\nresourceModifierRules:\n{STANDARD_TO_PREMIUM}\
         - conditions:\n    groupResource: persistentvolumeclaims\n    matches: [{{path: /spec/storageClassName, value: premium}}]\n  patches: [{{operation: replace, path: /spec/storageClassName, value: gold}}]\n"
    ));
    let mut object = pvc("a", "shop", "standard");
    assert_eq!(rules.apply(&mut object, "persistentvolumeclaims"), Ok(true));
    assert_eq!(object["spec"]["storageClassName"], "premium");
}

#[test]
fn patches_of_matching_rules_accumulate_in_order() {
    let rules = load(&format!(
        "version: v1\nresourceModifierRules:\n{STANDARD_TO_PREMIUM}\
         - conditions:\n    groupResource: persistentvolumeclaims\n    matches: [{{path: /spec/storageClassName, value: standard}}]\n  patches: [{{operation: replace, path: /spec/storageClassName, value: gold}}]\n\
         - conditions: {{groupResource: persistentvolumeclaims}}\n  mergePatches: [{{patchData: 'metadata: {{labels: {{tier: null, class: moved}}}}'}}]\n"
    ));
    let mut object = pvc("a", "shop", "standard");
    assert_eq!(rules.apply(&mut object, "persistentvolumeclaims"), Ok(true));
    assert_eq!(object["spec"]["storageClassName"], "gold");
    assert_eq!(
        object["metadata"]["labels"],
        json!({"app": "db", "class": "moved"})
    );
}

#[test]
fn a_failing_rule_keeps_the_others_and_reports_each_error() {
    let rules = load(
        "version: v1\nresourceModifierRules:\n\
         - conditions: {groupResource: '*'}\n  patches: [{operation: replace, path: /nope, value: x}]\n\
         - conditions: {groupResource: '*'}\n  patches: [{operation: add, path: /metadata/labels/ok, value: 'true'}]\n\
         - conditions: {groupResource: '*'}\n  mergePatches: [{patchData: 'a: b:'}]\n",
    );
    let mut object = pvc("a", "shop", "standard");
    let outcome = rules.apply_rules(&mut object, "persistentvolumeclaims");
    assert!(outcome.changed);
    assert_eq!(outcome.errors.len(), 2, "{:?}", outcome.errors);
    assert!(
        outcome.errors[1].contains("error in converting YAML to JSON"),
        "{:?}",
        outcome.errors
    );
    assert_eq!(object["metadata"]["labels"]["ok"], json!(true));

    let mut again = pvc("a", "shop", "standard");
    let joined = rules
        .apply(&mut again, "persistentvolumeclaims")
        .unwrap_err();
    assert_eq!(joined, outcome.errors.join("; "));
}

// ---- Merge patches ----

#[test]
fn merge_patch_follows_rfc_7386() {
    let rules = load(&one_rule(
        "    groupResource: persistentvolumeclaims",
        "  mergePatches:\n  - patchData: |\n      metadata:\n        labels:\n          app: null\n          new: label\n      spec:\n        storageClassName: premium\n        resources: {requests: {storage: 2Gi}}",
    ));
    let mut object = pvc("a", "shop", "standard");
    assert_eq!(rules.apply(&mut object, "persistentvolumeclaims"), Ok(true));
    assert_eq!(
        object["metadata"]["labels"],
        json!({"tier": "data", "new": "label"})
    );
    assert_eq!(object["spec"]["storageClassName"], "premium");
    assert_eq!(object["spec"]["resources"]["requests"]["storage"], "2Gi");
}

#[test]
fn a_merge_patch_may_not_remove_the_kind() {
    let rules = load(&one_rule(
        "    groupResource: '*'",
        "  mergePatches: [{patchData: '{\"kind\": null}'}]",
    ));
    let mut object = pvc("a", "shop", "standard");
    let err = rules
        .apply(&mut object, "persistentvolumeclaims")
        .unwrap_err();
    assert!(err.contains("Object 'Kind' is missing"), "{err}");
    assert_eq!(object["kind"], "PersistentVolumeClaim");
}

// ---- Strategic merge patches ----

fn strategic(conditions: &str, patch: &str) -> ResourceModifiers {
    let indented: String = patch.lines().map(|l| format!("      {l}\n")).collect();
    load(&one_rule(
        conditions,
        &format!("  strategicPatches:\n  - patchData: |\n{indented}"),
    ))
}

fn containers(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"]
}

#[test]
fn strategic_patch_changes_a_container_image_by_name() {
    let rules = strategic(
        "    groupResource: deployments.apps",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        image: envoy:1.31",
    );
    let mut object = deployment();
    assert_eq!(rules.apply(&mut object, "deployments.apps"), Ok(true));
    assert_eq!(containers(&object)[0]["image"], "nginx:1.25");
    assert_eq!(containers(&object)[1]["image"], "envoy:1.31");
    assert_eq!(containers(&object).as_array().unwrap().len(), 2);
}

#[test]
fn strategic_patch_merges_env_by_name() {
    let rules = strategic(
        "    groupResource: deployments.apps",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: nginx\n        env:\n        - name: LOG\n          value: debug\n        - name: NEW\n          value: '1'",
    );
    let mut object = deployment();
    rules.apply(&mut object, "deployments.apps").unwrap();
    assert_eq!(
        containers(&object)[0]["env"],
        json!([
            {"name": "MODE", "value": "prod"},
            {"name": "LOG", "value": "debug"},
            {"name": "NEW", "value": "1"}
        ])
    );
}

#[test]
fn strategic_patch_deletes_a_container() {
    let rules = strategic(
        "    groupResource: deployments.apps",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        $patch: delete",
    );
    let mut object = deployment();
    rules.apply(&mut object, "deployments.apps").unwrap();
    assert_eq!(
        containers(&object),
        &json!([{"name": "nginx", "image": "nginx:1.25",
                 "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "info"}]}])
    );
}

#[test]
fn strategic_patch_is_refused_for_kinds_outside_velero_scheme() {
    let rules = strategic("    groupResource: '**'", "spec:\n  size: 3");
    let mut custom = json!({
        "apiVersion": "example.com/v1", "kind": "Database",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"size": 1}
    });
    let before = custom.clone();
    let err = rules
        .apply(&mut custom, "databases.example.com")
        .unwrap_err();
    assert!(
        err.starts_with(
            "error in applying patch no kind \"Database\" is registered for version \"example.com/v1\""
        ),
        "{err}"
    );
    assert_eq!(custom, before);

    // A built-in type Velero's scheme lacks fails the same way.
    let mut ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": {}});
    assert!(
        rules
            .apply(&mut ingress, "ingresses.networking.k8s.io")
            .is_err()
    );
}

#[test]
fn strategic_patch_replaces_a_volume_source() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod1", "namespace": "fake"},
        "spec": {
            "containers": [{"name": "fake", "image": "fake", "volumeMounts": [
                {"mountPath": "/fake1", "name": "vol1"}, {"mountPath": "/fake2", "name": "vol2"}
            ]}],
            "volumes": [{"name": "vol1", "nfs": {"path": "/fake2"}}, {"name": "vol2", "emptyDir": {}}]
        }
    });
    let mut want = pod.clone();
    want["spec"]["volumes"][0] =
        json!({"name": "vol1", "persistentVolumeClaim": {"claimName": "pvc1"}});
    for patch in [
        r#"{"spec":{"volumes":[{"nfs":null,"name":"vol1","persistentVolumeClaim":{"claimName":"pvc1"}}]}}"#,
        r#"{"spec":{"volumes":[{"$retainKeys":["name","persistentVolumeClaim"],"name":"vol1","persistentVolumeClaim":{"claimName":"pvc1"}}]}}"#,
    ] {
        let rules = strategic("    groupResource: pods\n    namespaces: [fake]", patch);
        let mut object = pod.clone();
        assert_eq!(rules.apply(&mut object, "pods"), Ok(true));
        assert_eq!(object, want, "{patch}");
    }
}

#[test]
fn strategic_patch_orders_service_ports_with_set_element_order() {
    let service = |middle: Value| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc1", "namespace": "fake"},
            "spec": {"ports": [
                {"name": "fake1", "port": 8001, "protocol": "TCP", "targetPort": 8001},
                middle,
                {"name": "fake2", "port": 8002, "protocol": "TCP", "targetPort": 8002}
            ]}
        })
    };
    let rules = strategic(
        "    groupResource: services",
        r#"{"spec":{"$setElementOrder/ports":[{"port":8001},{"port":9000},{"port":8002}],"ports":[{"name":"fake","port":9000,"protocol":"TCP","targetPort":9000},{"$patch":"delete","port":8000}]}}"#,
    );
    let mut object =
        service(json!({"name": "fake", "port": 8000, "protocol": "TCP", "targetPort": 8000}));
    rules.apply(&mut object, "services").unwrap();
    assert_eq!(
        object,
        service(json!({"name": "fake", "port": 9000, "protocol": "TCP", "targetPort": 9000}))
    );
}

#[test]
fn strategic_patches_of_one_rule_apply_in_turn() {
    let rules = load(&one_rule(
        "    groupResource: configmaps",
        "  strategicPatches:\n  - patchData: 'data: {a: \"2\"}'\n  - patchData: 'data: {b: null}'",
    ));
    let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "1"}});
    rules.apply(&mut object, "configmaps").unwrap();
    assert_eq!(object["data"], json!({"a": "2"}));
}

// ---- Properties ----

fn label_value() -> impl Strategy<Value = String> {
    // Text without `"` and `\`, which Velero pastes into JSON unescaped.
    "[ -!#-\\[\\]-~éü漢]{0,20}"
}

proptest! {
    #[test]
    fn a_quoted_value_is_always_that_string(text in label_value()) {
        let rules = json_patch_rule(
            "    groupResource: persistentvolumeclaims",
            "add",
            "/metadata/labels/x",
            &format!("\"{}\"", text.replace('\'', "''")),
        );
        let mut object = pvc("a", "shop", "standard");
        rules.apply(&mut object, "persistentvolumeclaims").unwrap();
        prop_assert_eq!(&object["metadata"]["labels"]["x"], &json!(text));
    }

    #[test]
    fn integers_are_written_as_numbers(n in any::<i64>()) {
        let rules = json_patch_rule(
            "    groupResource: deployments.apps",
            "replace",
            "/spec/replicas",
            &n.to_string(),
        );
        let mut object = deployment();
        rules.apply(&mut object, "deployments.apps").unwrap();
        prop_assert_eq!(&object["spec"]["replicas"], &json!(n));
    }

    #[test]
    fn unmatched_objects_are_never_touched(name in "[a-z]{1,10}", ns in "[a-z]{1,10}") {
        let rules = json_patch_rule(
            "    groupResource: persistentvolumeclaims\n    namespaces: [shop]",
            "replace",
            "/spec/storageClassName",
            "premium",
        );
        let mut object = pvc(&name, &ns, "standard");
        let before = object.clone();
        let changed = rules.apply(&mut object, "persistentvolumeclaims").unwrap();
        prop_assert_eq!(changed, ns == "shop");
        prop_assert_eq!(object == before, ns != "shop");
    }
}
