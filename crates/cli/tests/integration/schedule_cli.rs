//! The schedule commands, and `backup create --from-schedule`, as a user runs them against a real
//! control plane. No Velero server runs, so schedules stay `New` and never fire: what is checked
//! is the objects the CLI writes and what it prints.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{run, text, velero};
use kube::api::Api;
use serde_json::json;
use velero_api::v1::{Backup, Schedule};

const NS: &str = "velero";

fn schedule_names(kubeconfig: &Path) -> Vec<String> {
    let listed = text(&run(velero(kubeconfig).args(["schedule", "get"])).stdout);
    listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Runs `velero ARGS`, expecting success, and returns its stdout.
fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = run(velero(kubeconfig).args(args));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `velero ARGS`, expecting failure, and returns its stdout and stderr.
fn fails(kubeconfig: &Path, args: &[&str]) -> (String, String) {
    let out = run(velero(kubeconfig).args(args));
    assert!(!out.status.success(), "{args:?} should fail");
    (text(&out.stdout), text(&out.stderr))
}

async fn spec(api: &Api<Schedule>, name: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(api.get(name).await?)?["spec"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_create_get_describe_pause_delete_and_backups_from_it() -> anyhow::Result<()> {
    let cp = common::control_plane_with_crds().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let kc = kubeconfig.as_path();
    let client = cp.client().await?;
    let schedules: Api<Schedule> = Api::namespaced(client.clone(), NS);

    // Bad input is refused, and nothing is created.
    for (args, want) in [
        (vec!["bad"], "An error occurred: --schedule is required"),
        (vec!["bad", "--schedule", ""], "--schedule is required"),
        (
            vec![
                "bad",
                "--schedule",
                "@daily",
                "-l",
                "a=b",
                "--or-selector",
                "c=d",
            ],
            "either a 'selector' or an 'or-selector' can be specified, but not both",
        ),
        (
            vec![
                "bad",
                "--schedule",
                "@daily",
                "--storage-location",
                "nowhere",
            ],
            "backup storage location \"nowhere\" does not exist",
        ),
    ] {
        let (_, stderr) = fails(kc, &[&["schedule", "create"], args.as_slice()].concat());
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let (_, stderr) = fails(kc, &["schedule", "create", "--schedule", "@daily"]);
    assert!(stderr.contains("<NAME>"), "NAME is required: {stderr}");
    assert!(schedule_names(kc).is_empty(), "bad input created nothing");

    // -o prints without creating.
    let printed = ok(
        kc,
        &[
            "schedule",
            "create",
            "dry",
            "--schedule",
            "@daily",
            "-o",
            "json",
        ],
    );
    let dry: serde_json::Value = serde_json::from_str(&printed)?;
    assert_eq!(dry["kind"], "Schedule");
    assert_eq!(dry["spec"]["schedule"], "@daily");
    assert!(schedules.get_opt("dry").await?.is_none());

    let created = ok(
        kc,
        &[
            "schedule",
            "create",
            "nightly",
            "--schedule",
            "0 1 * * *",
            "--include-namespaces",
            "shop",
            "--ttl",
            "72h",
            "--labels",
            "team=a",
            "--annotations",
            "note=x",
            "--use-owner-references-in-backup",
            "--skip-immediately",
            "false",
        ],
    );
    assert_eq!(created, "Schedule \"nightly\" created successfully.\n");
    let nightly = serde_json::to_value(schedules.get("nightly").await?)?;
    assert_eq!(
        nightly["spec"],
        json!({
            "schedule": "0 1 * * *",
            "useOwnerReferencesInBackup": true,
            "skipImmediately": false,
            "template": {"includedNamespaces": ["shop"], "ttl": "72h0m0s"},
        })
    );
    assert_eq!(nightly["metadata"]["labels"], json!({"team": "a"}));
    assert_eq!(nightly["metadata"]["annotations"], json!({"note": "x"}));
    ok(
        kc,
        &[
            "schedule",
            "create",
            "weekly",
            "--schedule",
            "@every 168h",
            "--paused",
        ],
    );
    assert_eq!(spec(&schedules, "weekly").await?["paused"], true);
    let (_, stderr) = fails(
        kc,
        &["schedule", "create", "weekly", "--schedule", "@daily"],
    );
    assert!(
        stderr.contains("a schedule named \"weekly\" already exists"),
        "{stderr}"
    );

    let listed = ok(kc, &["schedule", "get"]);
    let mut lines = listed.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("NAME      STATUS   CREATED                         SCHEDULE      BACKUP TTL   LAST BACKUP   SELECTOR   PAUSED"),
        "{listed}"
    );
    let row: Vec<&str> = lines.next().unwrap_or_default().split("   ").collect();
    let cells: Vec<&str> = row
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells.len(), 8, "{listed}");
    assert_eq!(
        (
            cells[0], cells[1], cells[3], cells[4], cells[5], cells[6], cells[7]
        ),
        (
            "nightly",
            "New",
            "0 1 * * *",
            "72h0m0s",
            "n/a",
            "<none>",
            "false"
        ),
        "{listed}"
    );
    assert!(cells[2].ends_with(" +0000 UTC"), "{listed}");
    assert!(
        lines.next().unwrap_or_default().ends_with("   true"),
        "{listed}"
    );
    let one: serde_json::Value =
        serde_json::from_str(&ok(kc, &["schedules", "get", "-l", "team=a", "-o", "json"]))?;
    assert_eq!(
        one["metadata"]["name"], "nightly",
        "a list of one prints the object"
    );

    let described = ok(kc, &["schedule", "describe", "nightly"]);
    for want in [
        "Name:         nightly\nNamespace:    velero\nLabels:       team=a\nAnnotations:  note=x\n",
        "\nPhase:  New\n\nPaused:  false\n\nSchedule:  0 1 * * *\n\nBackup Template:\n  Namespaces:\n    Included:  shop\n",
        "\n  TTL:  72h0m0s\n",
        "\nLast Backup:  <never>\n",
    ] {
        assert!(
            described.contains(want),
            "describe lacks {want:?}:\n{described}"
        );
    }

    // Pause and unpause set spec.paused, copy --skip-immediately, and skip what is already so.
    let paused = ok(kc, &["schedule", "pause", "nightly", "weekly"]);
    assert_eq!(
        paused,
        "Schedule nightly paused successfully\nSchedule weekly is already paused, skip\n"
    );
    let nightly = spec(&schedules, "nightly").await?;
    assert_eq!(nightly["paused"], true);
    assert!(
        nightly.get("skipImmediately").is_none(),
        "unset is copied: {nightly}"
    );
    let unpaused = ok(
        kc,
        &["schedule", "unpause", "--all", "--skip-immediately", "true"],
    );
    assert_eq!(
        unpaused,
        "Schedule nightly unpaused successfully\nSchedule weekly unpaused successfully\n"
    );
    for name in ["nightly", "weekly"] {
        let s = spec(&schedules, name).await?;
        assert!(s.get("paused").is_none(), "{name}: {s}");
        assert_eq!(s["skipImmediately"], true, "{name}: {s}");
    }
    assert_eq!(
        ok(kc, &["schedule", "unpause", "-l", "team=a"]),
        "Schedule nightly is already unpaused, skip\n"
    );
    let (_, stderr) = fails(kc, &["schedule", "pause"]);
    assert!(
        stderr.contains("you must specify exactly one of: specific schedule name(s), the --all flag, or the --selector flag"),
        "{stderr}"
    );
    let (stdout, stderr) = fails(kc, &["schedule", "pause", "missing"]);
    assert_eq!(stdout, "No schedules found\n");
    assert!(
        stderr.contains("schedule \"missing\" not found"),
        "{stderr}"
    );

    // A backup from the schedule: its template, its labels and annotations, owned by it.
    let from = ok(kc, &["backup", "create", "--from-schedule", "nightly"]);
    let name = from
        .strip_prefix(
            "Creating backup from schedule, all other filters are ignored.\nBackup request \"",
        )
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    let stamp = name.strip_prefix("nightly-").unwrap_or_default();
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{from}"
    );
    let backups: Api<Backup> = Api::namespaced(client.clone(), NS);
    let backup = serde_json::to_value(backups.get(&name).await?)?;
    let schedule = serde_json::to_value(schedules.get("nightly").await?)?;
    assert_eq!(backup["spec"], schedule["spec"]["template"]);
    assert_eq!(
        backup["metadata"]["labels"],
        json!({"team": "a", "velero.io/schedule-name": "nightly"})
    );
    assert_eq!(backup["metadata"]["annotations"], json!({"note": "x"}));
    assert_eq!(
        backup["metadata"]["ownerReferences"],
        json!([{
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "name": "nightly",
            "uid": schedule["metadata"]["uid"],
            "controller": true,
        }])
    );
    // -o prints only the object; flags' labels win over the schedule's.
    let printed = ok(
        kc,
        &[
            "backup",
            "create",
            "mine",
            "--from-schedule",
            "nightly",
            "--labels",
            "team=b",
            "-o",
            "json",
        ],
    );
    let mine: serde_json::Value = serde_json::from_str(&printed)?;
    assert_eq!(mine["metadata"]["name"], "mine");
    assert_eq!(mine["metadata"]["labels"]["team"], "b");
    assert!(backups.get_opt("mine").await?.is_none());
    let (_, stderr) = fails(kc, &["backup", "create", "--from-schedule", "missing"]);
    assert!(
        stderr.contains("schedule \"missing\" not found"),
        "{stderr}"
    );
    let (_, stderr) = fails(kc, &["backup", "create", "--from-schedule", " "]);
    assert!(
        stderr.contains("flag must have a non-empty value: --from-schedule"),
        "{stderr}"
    );

    // Delete asks first; declining changes nothing.
    let mut asking = velero(kc)
        .args(["schedule", "delete", "nightly"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = asking.stdin.take() {
        stdin.write_all(b"n\n")?;
    }
    let declined = asking.wait_with_output()?;
    assert!(declined.status.success(), "{}", text(&declined.stderr));
    assert_eq!(
        text(&declined.stdout),
        "Are you sure you want to continue (Y/N)? "
    );
    assert!(schedules.get_opt("nightly").await?.is_some());

    assert_eq!(
        ok(kc, &["schedule", "delete", "nightly", "--confirm"]),
        "Schedule deleted: nightly\n"
    );
    assert!(schedules.get_opt("nightly").await?.is_none());
    let (_, stderr) = fails(kc, &["schedule", "delete", "--confirm"]);
    assert!(
        stderr.contains("you must specify exactly one of"),
        "{stderr}"
    );
    assert_eq!(
        ok(kc, &["schedule", "delete", "--all", "--confirm"]),
        "Schedule deleted: weekly\n"
    );
    assert_eq!(
        ok(kc, &["schedule", "delete", "--all", "--confirm"]),
        "No schedules found\n"
    );
    Ok(())
}
