//! The restore commands, as a user runs them, against a real control plane. No Velero server runs:
//! the test plays the restore controller's part by writing the Restore's status itself (Velero's
//! CRDs have no status subresource, so an ordinary patch does).

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{run, text, velero};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use velero_api::v1::{Backup, Restore};

const NS: &str = "velero";

async fn backup(
    client: &kube::Client,
    name: &str,
    labels: &[(&str, &str)],
    status: serde_json::Value,
) -> anyhow::Result<()> {
    let api: Api<Backup> = Api::namespaced(client.clone(), NS);
    let mut backup = Backup::new(name, Default::default());
    backup.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    api.create(&PostParams::default(), &backup).await?;
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

fn restore_names(kubeconfig: &Path) -> Vec<String> {
    let listed = text(&run(velero(kubeconfig).args(["restore", "get"])).stdout);
    listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_create_get_describe_wait_delete() -> anyhow::Result<()> {
    let cp = common::control_plane_with_crds().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let client = cp.client().await?;
    backup(&client, "shop-1", &[], json!({"phase": "Completed"})).await?;

    let created = run(velero(&kubeconfig).args([
        "restore",
        "create",
        "r1",
        "--from-backup",
        "shop-1",
        "--include-namespaces",
        "shop",
        "--namespace-mappings",
        "shop:shop-copy",
        "--existing-resource-policy",
        "update",
        "--selector",
        "app=web",
        "--restore-volumes=false",
        "--labels",
        "team=a",
    ]));
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(
        text(&created.stdout),
        "Restore request \"r1\" submitted successfully.\nRun `velero restore describe r1` or `velero restore logs r1` for more details.\n"
    );
    let restores: Api<Restore> = Api::namespaced(client.clone(), NS);
    let r1 = serde_json::to_value(restores.get("r1").await?)?;
    assert_eq!(
        r1["spec"],
        json!({
            "backupName": "shop-1",
            "includedNamespaces": ["shop"],
            "namespaceMapping": {"shop": "shop-copy"},
            "existingResourcePolicy": "update",
            "labelSelector": {"matchLabels": {"app": "web"}},
            "restorePVs": false,
            "uploaderConfig": {},
        })
    );
    assert_eq!(r1["metadata"]["labels"], json!({"team": "a"}));

    // Without a name, the restore is named after its backup and the time.
    let unnamed = run(velero(&kubeconfig).args(["restore", "create", "--from-backup", "shop-1"]));
    assert!(unnamed.status.success(), "{}", text(&unnamed.stderr));
    let stdout = text(&unnamed.stdout);
    let generated = stdout
        .strip_prefix("Restore request \"shop-1-")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default();
    assert!(
        generated.len() == 14 && generated.bytes().all(|b| b.is_ascii_digit()),
        "{stdout}"
    );

    // Bad input is refused, and nothing is created.
    for (args, want) in [
        (
            vec!["bad", "--from-backup", "missing"],
            "backup \"missing\" not found in namespace \"velero\"",
        ),
        (
            vec!["bad", "--from-schedule", "nightly"],
            "No backups found for the schedule nightly",
        ),
        (
            vec!["bad", "--from-schedule", "nightly", "--dry-run"],
            "--dry-run needs --from-backup",
        ),
        (
            vec!["bad"],
            "either a backup or schedule must be specified, but not both",
        ),
        (
            vec![
                "bad",
                "--from-backup",
                "shop-1",
                "--namespace-mappings",
                "shop",
            ],
            "\"shop\" is not a src:dst pair",
        ),
        (
            vec![
                "bad",
                "--from-backup",
                "shop-1",
                "--existing-resource-policy",
                "replace",
            ],
            "existing-resource-policy has invalid value",
        ),
    ] {
        let out = run(velero(&kubeconfig).args(["restore", "create"]).args(&args));
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        restore_names(&kubeconfig).len(),
        2,
        "only r1 and shop-1-<time>"
    );

    // --from-schedule names the schedule; --allow-partially-failed picks its newest usable backup.
    let schedule = [("velero.io/schedule-name", "daily")];
    backup(
        &client,
        "daily-1",
        &schedule,
        json!({"phase": "Completed", "startTimestamp": "2026-01-01T00:00:00Z"}),
    )
    .await?;
    backup(
        &client,
        "daily-2",
        &schedule,
        json!({"phase": "PartiallyFailed", "startTimestamp": "2026-01-02T00:00:00Z"}),
    )
    .await?;
    let printed = |extra: &[&str]| -> anyhow::Result<serde_json::Value> {
        let out = run(velero(&kubeconfig)
            .args([
                "restore",
                "create",
                "x",
                "--from-schedule",
                "daily",
                "-o",
                "json",
            ])
            .args(extra));
        assert!(out.status.success(), "{}", text(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let from_schedule = printed(&[])?;
    assert_eq!(from_schedule["spec"]["scheduleName"], "daily");
    let newest = printed(&["--allow-partially-failed"])?;
    assert_eq!(newest["spec"]["backupName"], "daily-2");
    assert!(newest["spec"].get("scheduleName").is_none());
    assert!(
        !restore_names(&kubeconfig).contains(&"x".to_string()),
        "-o prints without creating"
    );

    let listed = text(&run(velero(&kubeconfig).args(["restore", "get", "r1"])).stdout);
    let mut lines = listed.lines();
    assert_eq!(
        lines.next().unwrap_or_default(),
        "NAME   BACKUP   STATUS   STARTED   COMPLETED   ERRORS   WARNINGS   CREATED                         SELECTOR"
    );
    let row = lines.next().unwrap_or_default();
    assert!(
        row.starts_with("r1     shop-1   New      <nil>     <nil>       0        0          20"),
        "{listed}"
    );
    assert!(row.ends_with("+0000 UTC   app=web"), "{listed}");
    let json_out = run(velero(&kubeconfig).args(["restore", "get", "-l", "team=a", "-o", "json"]));
    let one: serde_json::Value = serde_json::from_slice(&json_out.stdout)?;
    assert_eq!(
        one["metadata"]["name"], "r1",
        "a list of one prints the object"
    );

    let described = text(&run(velero(&kubeconfig).args(["restore", "describe", "r1"])).stdout);
    for want in [
        "Name:         r1\nNamespace:    velero\nLabels:       team=a\n",
        "\nPhase:  New\n",
        "\nStarted:    <n/a>\nCompleted:  <n/a>\n",
        "\nBackup:  shop-1\n",
        "  Included:  shop\n",
        "Namespace mappings:  shop=shop-copy\n",
        "Label selector:  app=web\n",
        "Restore PVs:  false\n",
        "Existing Resource Policy:   update\n",
    ] {
        assert!(
            described.contains(want),
            "describe lacks {want:?}:\n{described}"
        );
    }

    let logs = run(velero(&kubeconfig).args(["restore", "logs", "r1"]));
    assert!(!logs.status.success());
    assert!(
        text(&logs.stderr)
            .contains("Logs for restore \"r1\" are not available until it's finished processing."),
        "{}",
        text(&logs.stderr)
    );

    // --wait follows the status the controller writes until the restore is done.
    let waiting = velero(&kubeconfig)
        .args([
            "restore",
            "create",
            "r2",
            "--from-backup",
            "shop-1",
            "--wait",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut seen = false;
    for _ in 0..120 {
        if restores.get_opt("r2").await?.is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen, "r2 is created before waiting");
    for status in [
        json!({"phase": "InProgress", "progress": {"totalItems": 4, "itemsRestored": 1}}),
        json!({"phase": "Completed", "progress": {"totalItems": 4, "itemsRestored": 4}}),
    ] {
        restores
            .patch(
                "r2",
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let waited = tokio::task::spawn_blocking(move || waiting.wait_with_output()).await??;
    let stdout = text(&waited.stdout);
    assert!(waited.status.success(), "{stdout}{}", text(&waited.stderr));
    assert!(
        stdout.contains("InProgress: 1/4 items restored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Restore completed with status: Completed. You may check for more information using the commands `velero restore describe r2` and `velero restore logs r2`."),
        "{stdout}"
    );

    let deleted = run(velero(&kubeconfig).args(["restore", "delete", "r1", "r2", "--confirm"]));
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(
        text(&deleted.stdout).contains("Request to delete restore \"r1\" submitted successfully.\nThe restore will be fully deleted after all associated data (restore files in object storage) are removed."),
        "{}",
        text(&deleted.stdout)
    );
    assert!(restores.get_opt("r1").await?.is_none(), "r1 is gone");
    assert!(restores.get_opt("r2").await?.is_none(), "r2 is gone");
    let missing = run(velero(&kubeconfig).args(["restore", "delete", "r1", "--confirm"]));
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("restore \"r1\" not found"));
    let all = run(velero(&kubeconfig).args(["restore", "delete", "--all", "--confirm"]));
    assert!(all.status.success(), "{}", text(&all.stderr));
    let all_again = run(velero(&kubeconfig).args(["restore", "delete", "--all", "--confirm"]));
    assert_eq!(text(&all_again.stdout), "No restores found\n");
    Ok(())
}
