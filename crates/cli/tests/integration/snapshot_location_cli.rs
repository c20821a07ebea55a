//! `velero snapshot-location create|get|set`, as a user runs them, against a real control plane.

use crate::common;

use common::{run, text, velero};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_location_create_get_set() -> anyhow::Result<()> {
    let cp = common::control_plane_with_crds().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();

    let create = [
        "snapshot-location",
        "create",
        "primary",
        "--provider",
        "aws",
        "--config",
        "region=us-east-1,profile=default",
        "--credential",
        "cloud-credentials=cloud",
        "--labels",
        "team=storage",
    ];
    let created = run(velero(&kubeconfig).args(create));
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(
        text(&created.stdout),
        "Snapshot volume location \"primary\" configured successfully.\n"
    );
    let second = run(velero(&kubeconfig).args([
        "snapshot-location",
        "create",
        "secondary",
        "--provider",
        "velero.io/gcp",
    ]));
    assert!(second.status.success(), "{}", text(&second.stderr));

    // The table: NAME and PROVIDER, as Velero's printer.
    let listed = run(velero(&kubeconfig).args(["snapshot-location", "get"]));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["NAME", "PROVIDER"],
            vec!["primary", "aws"],
            vec!["secondary", "velero.io/gcp"],
        ],
        "{listed}"
    );
    let selected = text(
        &run(velero(&kubeconfig).args(["snapshot-location", "get", "-l", "team=storage"])).stdout,
    );
    assert!(
        selected.contains("primary") && !selected.contains("secondary"),
        "{selected}"
    );

    // One name in JSON is the object itself, as Velero prints it.
    let json_out =
        run(velero(&kubeconfig).args(["snapshot-location", "get", "primary", "-o", "json"]));
    assert!(json_out.status.success(), "{}", text(&json_out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&json_out.stdout)?;
    assert_eq!(value["kind"], "VolumeSnapshotLocation");
    assert_eq!(value["metadata"]["labels"]["team"], "storage");
    assert_eq!(value["spec"]["provider"], "aws");
    assert_eq!(value["spec"]["config"]["region"], "us-east-1");
    assert_eq!(
        value["spec"]["credential"],
        serde_json::json!({"name": "cloud-credentials", "key": "cloud"})
    );
    let all: serde_json::Value = serde_json::from_slice(
        &run(velero(&kubeconfig).args(["snapshot-location", "get", "-o", "json"])).stdout,
    )?;
    assert_eq!(all["kind"], "VolumeSnapshotLocationList");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));

    // set --credential replaces the credential and leaves the rest.
    let set = run(velero(&kubeconfig).args([
        "snapshot-location",
        "set",
        "primary",
        "--credential",
        "other-secret=key2",
    ]));
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert_eq!(
        text(&set.stdout),
        "Volume snapshot location \"primary\" configured successfully.\n"
    );
    let value: serde_json::Value = serde_json::from_slice(
        &run(velero(&kubeconfig).args(["snapshot-location", "get", "primary", "-o", "json"]))
            .stdout,
    )?;
    assert_eq!(
        value["spec"]["credential"],
        serde_json::json!({"name": "other-secret", "key": "key2"})
    );
    assert_eq!(value["spec"]["config"]["region"], "us-east-1");

    // Refused: an unknown provider (nothing created), a taken name, a missing location, no flag.
    for (args, want) in [
        (
            vec![
                "snapshot-location",
                "create",
                "odd",
                "--provider",
                "openstack",
            ],
            "unknown volume snapshot provider \"openstack\": use one of aws, gcp, azure",
        ),
        (
            create.to_vec(),
            "a volume snapshot location named \"primary\" already exists",
        ),
        (
            vec!["snapshot-location", "set", "missing", "--credential", "a=b"],
            "volume snapshot location \"missing\" not found",
        ),
        (
            vec!["snapshot-location", "set", "primary"],
            "nothing to set: pass --credential",
        ),
        (
            vec!["snapshot-location", "get", "missing"],
            "volume snapshot location \"missing\" not found",
        ),
    ] {
        let out = run(velero(&kubeconfig).args(&args));
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let listed = text(&run(velero(&kubeconfig).args(["snapshot-location", "get"])).stdout);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(!listed.contains("odd"), "{listed}");
    Ok(())
}
