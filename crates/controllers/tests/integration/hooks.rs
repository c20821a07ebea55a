//! Backup and restore hooks on a real node: commands run in real busybox pods through the API
//! server's exec, with what they print in the operation's log and their counts in its status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};
use velero_api::v1::BackupPhase;
use velero_test_harness::{BUSYBOX_IMAGE, create_object};

use crate::support::{self, Env, wait_for};

const NS: &str = "hooks";

/// A busybox pod with an emptyDir at /data, labelled `case=<name>` plus `labels`.
fn pod(namespace: &str, name: &str, labels: Value, annotations: Value) -> Value {
    let mut all = json!({ "case": name });
    if let (Some(all), Some(extra)) = (all.as_object_mut(), labels.as_object()) {
        all.extend(extra.clone());
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "labels": all, "annotations": annotations },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }],
            }],
            "volumes": [{ "name": "data", "emptyDir": {} }],
        },
    })
}

/// A hook command through the shell.
fn sh(script: &str) -> String {
    json!(["/bin/sh", "-c", script]).to_string()
}

/// The log lines about pod `name` that contain `text`.
fn lines<'a>(log: &'a str, name: &str, text: &str) -> Vec<&'a str> {
    let pod = format!(" name={name} ");
    log.lines()
        .filter(|l| l.contains(text) && (l.contains(&pod) || l.ends_with(&pod[..pod.len() - 1])))
        .collect()
}

/// `status.hookStatus` as (attempted, failed).
fn counts(status: Option<velero_api::v1::HookStatus>) -> (i32, i32) {
    let s = status.unwrap_or_default();
    (s.hooks_attempted.unwrap_or(0), s.hooks_failed.unwrap_or(0))
}

fn hook_status(b: &velero_api::v1::Backup) -> (i32, i32) {
    counts(b.status.as_ref().and_then(|s| s.hook_status.clone()))
}

fn pod_in_tarball(entries: &BTreeMap<String, Vec<u8>>, name: &str) -> bool {
    entries.contains_key(&format!("resources/pods/namespaces/{NS}/{name}.json"))
}

fn errors_text(results: &Value) -> String {
    results["errors"].to_string()
}

async fn exec(
    env: &Env,
    pod: &str,
    script: &str,
) -> anyhow::Result<velero_cluster::exec::ExecOutput> {
    Ok(velero_cluster::exec::exec_in_pod(
        &env.client,
        NS,
        pod,
        None,
        &["/bin/sh".to_string(), "-c".to_string(), script.to_string()],
        std::time::Duration::from_secs(20),
    )
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_hooks_run_in_real_pods_around_their_items() -> anyhow::Result<()> {
    let env = support::setup_with_node().await?;
    let c = &env.client;
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}}),
    )
    .await?;
    let pre = "pre.hook.backup.velero.io";
    let post = "post.hook.backup.velero.io";
    let pods = [
        // 1. Annotation hooks: the pre hook leaves a marker, the post hook finds and removes it.
        pod(
            NS,
            "marked",
            json!({}),
            json!({
                format!("{pre}/command"): sh("echo frozen > /data/marker && echo pre-ran"),
                format!("{post}/command"): sh("cat /data/marker && rm /data/marker && echo post-ran"),
            }),
        ),
        // 2. Spec hooks by namespace and label; an annotation overrides them for its phase.
        pod(NS, "spec-only", json!({"tier": "db"}), json!({})),
        pod(
            NS,
            "overridden",
            json!({"tier": "db"}),
            json!({ format!("{pre}/command"): sh("echo annotation-pre") }),
        ),
        pod("elsewhere", "other-ns", json!({"tier": "db"}), json!({})),
        // 3. A failing pre hook: Fail keeps the pod out, Continue does not.
        pod(
            NS,
            "fail-hard",
            json!({}),
            json!({ format!("{pre}/command"): sh("exit 3"), format!("{pre}/on-error"): "Fail" }),
        ),
        pod(
            NS,
            "fail-soft",
            json!({}),
            json!({ format!("{pre}/command"): sh("exit 4"), format!("{pre}/on-error"): "Continue" }),
        ),
        // 4. A hook that outlives its timeout.
        pod(
            NS,
            "slow",
            json!({}),
            json!({ format!("{pre}/command"): sh("sleep 60"), format!("{pre}/timeout"): "2s", format!("{pre}/on-error"): "Continue" }),
        ),
        // 5. Hooks that cannot run as written.
        pod(
            NS,
            "no-container",
            json!({}),
            json!({ format!("{pre}/command"): sh("true"), format!("{pre}/container"): "nope" }),
        ),
        pod(
            NS,
            "bad-command",
            json!({}),
            json!({ format!("{pre}/command"): "[\"/bin/sh\", \"-c\"" }),
        ),
        pod(
            NS,
            "bad-timeout",
            json!({}),
            json!({ format!("{pre}/command"): sh("true"), format!("{pre}/timeout"): "soon" }),
        ),
        // 6. Two pods whose slow hooks run side by side.
        pod(
            NS,
            "together-1",
            json!({"pair": "yes"}),
            json!({ format!("{pre}/command"): sh("date +%s; sleep 3; date +%s") }),
        ),
        pod(
            NS,
            "together-2",
            json!({"pair": "yes"}),
            json!({ format!("{pre}/command"): sh("date +%s; sleep 3; date +%s") }),
        ),
    ];
    for p in &pods {
        create_object(c, p.clone()).await?;
    }
    // A pod that never runs (its image is not on the node and may not be pulled).
    let mut pending = pod(
        NS,
        "pending",
        json!({}),
        json!({ format!("{pre}/command"): sh("true") }),
    );
    pending["spec"]["containers"][0]["image"] = json!("busybox:not-on-this-node");
    create_object(c, pending).await?;
    let names: Vec<&str> = pods
        .iter()
        .filter(|p| p["metadata"]["namespace"] == NS)
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    support::wait_running(&env.client, NS, &names).await?;
    support::wait_running(&env.client, "elsewhere", &["other-ns"]).await?;

    let only = |cases: &[&str]| json!({ "matchExpressions": [{ "key": "case", "operator": "In", "values": cases }] });

    // 1. Pre writes the marker, post sees it and removes it.
    let b = support::backup_ended(
        c,
        "marked",
        json!({ "includedNamespaces": [NS], "labelSelector": only(&["marked"]) }),
    )
    .await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );
    assert_eq!(hook_status(&b), (2, 0));
    let (log, _, entries) = support::backup_files(&env, "marked")?;
    assert!(pod_in_tarball(&entries, "marked"));
    assert_eq!(lines(&log, "marked", "stdout: pre-ran").len(), 1, "{log}");
    assert_eq!(
        lines(&log, "marked", "stdout: frozen\\npost-ran").len(),
        1,
        "{log}"
    );
    let gone = exec(&env, "marked", "test -e /data/marker").await?;
    assert_eq!(gone.exit_code, 1, "the post hook removed the marker");

    // 2. Spec hooks selected by namespace and label.
    let spec_hooks = json!({ "resources": [{
        "name": "db-freeze",
        "includedNamespaces": [NS],
        "labelSelector": { "matchLabels": { "tier": "db" } },
        "pre": [{ "exec": { "command": ["/bin/sh", "-c", "echo spec-pre"] } }],
        "post": [{ "exec": { "command": ["/bin/sh", "-c", "echo spec-post"], "container": "app" } }],
    }]});
    let b = support::backup_ended(
        c,
        "spec",
        json!({
            "includedNamespaces": [NS, "elsewhere"],
            "labelSelector": only(&["spec-only", "overridden", "other-ns"]),
            "hooks": spec_hooks,
        }),
    )
    .await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );
    let (log, _, _) = support::backup_files(&env, "spec")?;
    assert_eq!(
        lines(&log, "spec-only", "stdout: spec-pre").len(),
        1,
        "{log}"
    );
    assert_eq!(
        lines(&log, "spec-only", "stdout: spec-post").len(),
        1,
        "{log}"
    );
    assert_eq!(
        lines(&log, "overridden", "stdout: annotation-pre").len(),
        1,
        "{log}"
    );
    assert!(
        lines(&log, "overridden", "stdout: spec-pre").is_empty(),
        "the annotation wins: {log}"
    );
    assert_eq!(
        lines(&log, "overridden", "stdout: spec-post").len(),
        1,
        "no post annotation, so the spec's post hook: {log}"
    );
    assert!(
        lines(&log, "other-ns", "running exec hook").is_empty(),
        "the namespace is not selected: {log}"
    );
    assert_eq!(hook_status(&b), (4, 0));

    // 3. Fail keeps the pod out; Continue backs it up; both are errors.
    let b = support::backup_ended(
        c,
        "failing",
        json!({ "includedNamespaces": [NS], "labelSelector": only(&["fail-hard", "fail-soft"]) }),
    )
    .await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::PartiallyFailed),
        "{:?}",
        b.status
    );
    assert_eq!(hook_status(&b), (2, 2));
    let (_, results, entries) = support::backup_files(&env, "failing")?;
    assert!(
        !pod_in_tarball(&entries, "fail-hard"),
        "a failed Fail pre hook keeps the pod out"
    );
    assert!(
        pod_in_tarball(&entries, "fail-soft"),
        "Continue backs the pod up"
    );
    let errors = errors_text(&results);
    assert!(
        errors.contains("command terminated with exit code 3"),
        "{errors}"
    );
    assert!(
        errors.contains("command terminated with exit code 4"),
        "{errors}"
    );
    assert!(
        errors.contains("Error running pre hooks for pod"),
        "{errors}"
    );

    // 4. A hook past its timeout fails within seconds and the backup goes on.
    let started = std::time::Instant::now();
    let b = support::backup_ended(
        c,
        "slow",
        json!({ "includedNamespaces": [NS], "labelSelector": only(&["slow"]) }),
    )
    .await?;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the 60 s hook was cut at 2 s"
    );
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::PartiallyFailed),
        "{:?}",
        b.status
    );
    let (_, results, entries) = support::backup_files(&env, "slow")?;
    assert!(
        errors_text(&results).contains("timed out after 2s"),
        "{results}"
    );
    assert!(pod_in_tarball(&entries, "slow"));

    // 5. Hooks that cannot run: each a clear error, every pod still backed up; a pod that is
    // not running gets a warning and no hook.
    let b = support::backup_ended(c, "bad", json!({ "includedNamespaces": [NS], "labelSelector": only(&["no-container", "bad-command", "bad-timeout", "pending", "marked"]) })).await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::PartiallyFailed),
        "{:?}",
        b.status
    );
    assert_eq!(
        hook_status(&b),
        (5, 3),
        "pending's hook is not attempted; marked's two succeed"
    );
    let (_, results, entries) = support::backup_files(&env, "bad")?;
    let errors = errors_text(&results);
    assert!(
        errors.contains("no such container: \\\"nope\\\""),
        "{errors}"
    );
    assert!(
        errors.contains("pre.hook.backup.velero.io/command starts with '['"),
        "{errors}"
    );
    assert!(
        errors.contains("pre.hook.backup.velero.io/timeout is \\\"soon\\\""),
        "{errors}"
    );
    let warnings = results["warnings"].to_string();
    assert!(warnings.contains("the pod is not running"), "{warnings}");
    for name in [
        "no-container",
        "bad-command",
        "bad-timeout",
        "pending",
        "marked",
    ] {
        assert!(pod_in_tarball(&entries, name), "{name} is backed up");
    }

    // 6. Independent pods' hooks overlap in time.
    let b = support::backup_ended(c, "pair", json!({ "includedNamespaces": [NS], "labelSelector": { "matchLabels": { "pair": "yes" } } })).await?;
    assert_eq!(hook_status(&b), (2, 0));
    let (log, _, _) = support::backup_files(&env, "pair")?;
    let span = |name: &str| -> anyhow::Result<(u64, u64)> {
        let line = lines(&log, name, "stdout: ")
            .first()
            .copied()
            .unwrap_or_default()
            .to_string();
        let text = line.split("stdout: ").nth(1).unwrap_or_default();
        let numbers: Vec<u64> = text
            .split("\\n")
            .filter_map(|t| t.trim_matches('"').trim().parse().ok())
            .collect();
        anyhow::ensure!(numbers.len() == 2, "start and end of {name} in {line:?}");
        Ok((numbers[0], numbers[1]))
    };
    let (a, b) = (span("together-1")?, span("together-2")?);
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the two 3 s hooks ran at the same time: {a:?} {b:?}"
    );
    Ok(())
}

fn restore_hook_status(r: &velero_api::v1::Restore) -> (i32, i32) {
    counts(r.status.as_ref().and_then(|s| s.hook_status.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_hooks_add_init_containers_and_run_once_containers_are_up() -> anyhow::Result<()> {
    use velero_api::v1::{Restore, RestorePhase};
    let env = support::setup_with_node().await?;
    let c = &env.client;
    let source = "source";
    let target = "restored";
    create_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": source}}),
    )
    .await?;
    let post = "post.hook.restore.velero.io";
    let init = "init.hook.restore.velero.io";
    let pods = [
        // The annotation's init container (it mounts nothing, as in Velero) and exec hook.
        pod(
            source,
            "seeded",
            json!({}),
            json!({
                format!("{init}/container-image"): BUSYBOX_IMAGE,
                format!("{init}/command"): sh("echo init-ran"),
                format!("{post}/command"): sh("echo exec-ran"),
            }),
        ),
        // Spec hooks, matched on the namespace after mapping: an init container and two exec
        // hooks that must run in order.
        pod(source, "spec-hooked", json!({"tier": "db"}), json!({})),
        // A failing exec hook with onError Fail.
        pod(
            source,
            "failing",
            json!({}),
            json!({
                format!("{post}/command"): sh("exit 5"),
                format!("{post}/on-error"): "Fail",
            }),
        ),
    ];
    for p in &pods {
        create_object(c, p.clone()).await?;
    }
    // A pod whose container never starts: its exec hook waits 3 s and fails.
    let mut never = pod(
        source,
        "never-up",
        json!({}),
        json!({
            format!("{post}/command"): sh("true"),
            format!("{post}/wait-timeout"): "3s",
        }),
    );
    never["spec"]["containers"][0]["image"] = json!("busybox:not-on-this-node");
    create_object(c, never).await?;
    support::wait_running(&env.client, source, &["seeded", "spec-hooked", "failing"]).await?;
    // Init and exec hooks are for the restore; the backup itself runs none.
    let b = support::backup_ended(c, "apps", json!({ "includedNamespaces": [source] })).await?;
    assert_eq!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed),
        "{:?}",
        b.status
    );

    let spec_hooks = json!({ "resources": [
        { "name": "on-target", "includedNamespaces": [target], "labelSelector": { "matchLabels": { "tier": "db" } },
          "postHooks": [
            { "init": { "initContainers": [{ "name": "seed-spec", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", "echo from-init > /data/order"],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }] } },
            { "exec": { "container": "app", "command": ["/bin/sh", "-c", "echo first >> /data/order"] } },
            { "exec": { "command": ["/bin/sh", "-c", "echo second >> /data/order && cat /data/order"], "waitForReady": true } },
          ] },
        { "name": "on-source", "includedNamespaces": [source],
          "postHooks": [ { "init": { "initContainers": [{ "name": "wrong-namespace", "image": BUSYBOX_IMAGE, "command": ["true"] }] } } ] },
    ]});
    let api: Api<Restore> = Api::namespaced(c.clone(), "velero");
    let object: Restore = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": { "name": "with-hooks", "namespace": "velero" },
        "spec": { "backupName": "apps", "namespaceMapping": { source: target }, "hooks": spec_hooks },
    }))?;
    api.create(&Default::default(), &object).await?;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = wait_for("the restore to end", || {
        let (api, seen) = (api.clone(), seen.clone());
        async move {
            let r = api.get("with-hooks").await.ok()?;
            let phase = r.status.as_ref()?.phase?;
            let mut seen = velero_report::locked(&seen);
            if seen.last() != Some(&phase) {
                seen.push(phase);
            }
            phase.is_terminal().then_some(r)
        }
    })
    .await?;
    let phases = velero_report::locked(&seen).clone();
    assert!(
        phases.contains(&RestorePhase::FinalizingPartiallyFailed)
            || phases.contains(&RestorePhase::Finalizing),
        "the restore waits for its exec hooks in Finalizing: {phases:?}"
    );
    assert_eq!(
        support::phase(&done),
        Some(RestorePhase::PartiallyFailed),
        "{:?}",
        done.status
    );
    assert_eq!(
        restore_hook_status(&done),
        (5, 2),
        "4 pods' exec hooks: 1 + 2 + 1 + 1, two of them failed: {}",
        support::restore_files(&env, "with-hooks")?.1
    );

    let restored: Api<Pod> = Api::namespaced(c.clone(), target);
    let init_names = |p: &Pod| -> Vec<String> {
        p.spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .map(|c| c.name.clone())
            .collect()
    };
    let seeded = restored.get("seeded").await?;
    let names = init_names(&seeded);
    assert!(
        names.len() == 1 && names[0].starts_with("velero-restore-init-"),
        "{names:?}"
    );
    let init_exit = seeded
        .status
        .iter()
        .flat_map(|s| s.init_container_statuses.iter().flatten())
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
        .collect::<Vec<_>>();
    assert_eq!(
        init_exit,
        [0],
        "the annotation's init container ran before the app"
    );
    assert_eq!(
        init_names(&restored.get("spec-hooked").await?),
        ["seed-spec"],
        "matched on the target namespace only"
    );

    let (_, results) = support::restore_files(&env, "with-hooks")?;
    let log = support::gunzip_text(
        &env.bucket
            .join("restores/with-hooks/restore-with-hooks-logs.gz"),
    )?;
    assert_eq!(lines(&log, "seeded", "stdout: exec-ran").len(), 1, "{log}");
    assert_eq!(
        lines(&log, "spec-hooked", "stdout: from-init\\nfirst\\nsecond").len(),
        1,
        "{log}"
    );
    let errors = results["errors"].to_string();
    assert!(
        errors.contains("command terminated with exit code 5"),
        "{errors}"
    );
    assert!(
        errors.contains("never-up") && errors.contains("not up within 3s"),
        "{errors}"
    );
    Ok(())
}
