use super::*;
use serde_json::json;

fn policies(yaml: &str) -> ResourcePolicies {
    ResourcePolicies::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn pv(spec: Value) -> VolumeFacts {
    VolumeFacts::from_persistent_volume(&json!({ "spec": spec }))
}

#[test]
fn the_first_matching_policy_decides() {
    let p = policies(
        r#"
version: v1
volumePolicies:
- conditions:
    capacity: "0,10Gi"
    storageClass: [fast]
  action: {type: skip}
- conditions:
    storageClass: [fast, slow]
  action: {type: fs-backup}
- conditions:
    volumeTypes: [emptyDir]
  action: {type: skip}
"#,
    );
    let small_fast = pv(
        json!({"capacity": {"storage": "5Gi"}, "storageClassName": "fast", "local": {"path": "/x"}}),
    );
    let big_fast = pv(json!({"capacity": {"storage": "50Gi"}, "storageClassName": "fast"}));
    let slow = pv(json!({"capacity": {"storage": "1Gi"}, "storageClassName": "slow"}));
    let other = pv(json!({"capacity": {"storage": "1Gi"}, "storageClassName": "other"}));
    assert_eq!(p.volume_action(&small_fast), Some(ActionType::Skip));
    assert_eq!(p.volume_action(&big_fast), Some(ActionType::FsBackup));
    assert_eq!(p.volume_action(&slow), Some(ActionType::FsBackup));
    assert_eq!(p.volume_action(&other), None);
    let scratch = VolumeFacts::from_pod_volume(&json!({"name": "s", "emptyDir": {}}));
    assert_eq!(scratch.volume_type.as_deref(), Some("emptyDir"));
    assert_eq!(p.volume_action(&scratch), Some(ActionType::Skip));
    assert_eq!(small_fast.volume_type.as_deref(), Some("local"));
}

#[test]
fn capacity_bounds_are_inclusive_and_open_when_empty() {
    let range = |text: &str| Capacity::parse(Some(text)).unwrap_or_else(|e| panic!("{e}"));
    let q = |s: &str| Quantity::parse(s).unwrap_or_else(|e| panic!("{e}"));
    assert!(range("10Gi,100Gi").contains(q("10Gi")));
    assert!(range("10Gi,100Gi").contains(q("100Gi")));
    assert!(!range("10Gi,100Gi").contains(q("101Gi")));
    assert!(range("10Gi,").contains(q("1Ti")));
    assert!(!range("10Gi,").contains(q("1Gi")));
    assert!(range(",10Gi").contains(q("0")));
    assert!(range(",").contains(q("1Pi")));
    assert!(Capacity::parse(None).is_ok_and(|c| c.contains(q("3Gi"))));
    assert!(Capacity::parse(Some("100Gi,10Gi")).is_err());
    assert!(Capacity::parse(Some("10Gi")).is_err());
    assert!(Capacity::parse(Some("1,2,3")).is_err());
    assert!(Capacity::parse(Some("ten,")).is_err());
}

#[test]
fn nfs_csi_labels_and_phase_conditions() {
    let p = policies(
        r#"
version: v1
volumePolicies:
- conditions: {nfs: {server: 10.0.0.1}}
  action: {type: skip}
- conditions: {nfs: {}}
  action: {type: snapshot}
- conditions: {csi: {driver: ebs, volumeAttributes: {tier: gold}}}
  action: {type: fs-backup}
- conditions: {csi: {}}
  action: {type: custom, parameters: {plugin: x}}
- conditions: {pvcLabels: {app: db}, pvcPhase: [Bound]}
  action: {type: fs-backup}
"#,
    );
    let nfs = |server: &str| pv(json!({"nfs": {"server": server, "path": "/e"}}));
    assert_eq!(p.volume_action(&nfs("10.0.0.1")), Some(ActionType::Skip));
    assert_eq!(
        p.volume_action(&nfs("10.0.0.2")),
        Some(ActionType::Snapshot)
    );
    let csi =
        |attributes: Value| pv(json!({"csi": {"driver": "ebs", "volumeAttributes": attributes}}));
    assert_eq!(
        p.volume_action(&csi(json!({"tier": "gold", "zone": "a"}))),
        Some(ActionType::FsBackup)
    );
    assert_eq!(
        p.volume_action(&csi(json!({"tier": "bronze"}))),
        Some(ActionType::Custom)
    );
    let claim =
        json!({"metadata": {"labels": {"app": "db", "x": "y"}}, "status": {"phase": "Bound"}});
    let labelled = pv(json!({"local": {"path": "/d"}})).with_claim(&claim);
    assert_eq!(p.volume_action(&labelled), Some(ActionType::FsBackup));
    let pending = pv(json!({})).with_claim(
        &json!({"metadata": {"labels": {"app": "db"}}, "status": {"phase": "Pending"}}),
    );
    assert_eq!(p.volume_action(&pending), None);
    assert_eq!(
        p.volume_action(&pv(json!({"hostPath": {"path": "/"}}))),
        None
    );
}

#[test]
fn a_policy_without_conditions_matches_every_volume() {
    let p = policies("version: v1\nvolumePolicies:\n- action: {type: skip}\n");
    assert_eq!(
        p.volume_action(&VolumeFacts::default()),
        Some(ActionType::Skip)
    );
    assert_eq!(
        policies("version: v1\n").volume_action(&VolumeFacts::default()),
        None
    );
}

#[test]
fn bad_configmaps_are_refused_with_the_problem_named() {
    let err = |yaml: &str| match ResourcePolicies::from_yaml(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    };
    assert!(err("version: v2\n").contains("incompatible version number v2"));
    assert!(err("volumePolicies: []\n").contains("incompatible version number"));
    let e = err("version: v1\nvolumePolicies:\n- action: {type: delete}\n");
    assert!(e.contains("invalid action type \"delete\""), "{e}");
    let e =
        err("version: v1\nvolumePolicies:\n- conditions: {colour: red}\n  action: {type: skip}\n");
    assert!(e.contains("colour"), "{e}");
    let e = err(
        "version: v1\nvolumePolicies:\n- conditions: {capacity: \"10Gi,1Gi\"}\n  action: {type: skip}\n",
    );
    assert!(
        e.contains("volumePolicies[0]") && e.contains("capacity"),
        "{e}"
    );
    let e = err(
        "version: v1\nvolumePolicies:\n- conditions: {csi: {volumeAttributes: {a: b}}}\n  action: {type: skip}\n",
    );
    assert!(e.contains("csi driver should not be empty"), "{e}");
    let e = err("version: v1\nincludeExcludePolicy: {includedClusterScopedResources: ['*']}\n");
    assert!(e.contains("cannot use '*'"), "{e}");
    let e = err(
        "version: v1\nincludeExcludePolicy: {includedNamespaceScopedResources: [pods], excludedNamespaceScopedResources: [pods]}\n",
    );
    assert!(e.contains("pods"), "{e}");
    assert!(err("version: v1\nunknownPolicy: 1\n").contains("unknownPolicy"));
    let two = BTreeMap::from([
        ("a".to_string(), "version: v1".to_string()),
        ("b".to_string(), String::new()),
    ]);
    let e = ResourcePolicies::from_config_map_data(&two)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("exactly one entry") && e.contains('2'), "{e}");
}

#[test]
fn include_exclude_policy_is_kept() {
    let p = policies(
        "version: v1\nincludeExcludePolicy:\n  excludedNamespaceScopedResources: [events]\n",
    );
    assert_eq!(
        p.include_exclude()
            .map(|i| i.excluded_namespace_scoped_resources.clone()),
        Some(vec!["events".to_string()])
    );
}
