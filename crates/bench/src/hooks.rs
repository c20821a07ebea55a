//! The hooks half (`velero-bench --hooks [--hook-pods N]`): N running pods on a real node, each
//! with a 1 s `pre` and a 1 s `post` backup hook (`sleep 1`), backed up by velero-rs's server and,
//! as the baseline in the same run, by Velero 1.18.1's own server (found as the tests find it,
//! `velero_test_harness::tools`) on the same cluster and bucket. Without Velero at hand the
//! baseline is the same hooks run one after another through the API server's exec, which is the
//! order Velero runs them in. It prints both times and their ratio; it asserts nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{KillOnDrop, checked};
use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use velero_test_harness::{BUSYBOX_IMAGE, ControlPlane, S3Server, tools};

const NAMESPACE: &str = "hooks-bench";

pub struct HookArgs {
    pub pods: usize,
}

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("app-{i}"), "namespace": NAMESPACE, "labels": {"app": "bench"},
            "annotations": {
                "pre.hook.backup.velero.io/command": "[\"sleep\", \"1\"]",
                "post.hook.backup.velero.io/command": "[\"sleep\", \"1\"]"}},
        "spec": {"terminationGracePeriodSeconds": 0, "automountServiceAccountToken": false,
            "containers": [{"name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"]}]}})
}

async fn create(client: &kube::Client, path: &str, body: &Value) -> anyhow::Result<()> {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)?;
    client
        .request::<Value>(request)
        .await
        .with_context(|| format!("POST {path}"))?;
    Ok(())
}

/// A Backup of the bench namespace through the CLI `cli`, waited for; its time and hook status.
fn timed_backup(
    cli: &mut Command,
    name: &str,
    cp: &ControlPlane,
) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let out = checked(cli.args([
        "backup",
        "create",
        name,
        "--include-namespaces",
        NAMESPACE,
        "--wait",
    ]))?;
    let took = started.elapsed();
    if !out.contains("Completed") {
        bail!("backup {name} did not complete: {out}");
    }
    let hooks = cp
        .kubectl()
        .args([
            "-n",
            "velero",
            "get",
            "backup",
            name,
            "-o",
            "jsonpath={.status.hookStatus}",
        ])
        .output()?;
    Ok((took, String::from_utf8_lossy(&hooks.stdout).into_owned()))
}

/// Velero's order without Velero: every pod's pre hook, then its post hook, one exec at a time.
async fn serial_execs(client: &kube::Client, pods: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let command = ["sleep".to_string(), "1".to_string()];
    for i in 0..pods {
        for _ in ["pre", "post"] {
            velero_cluster::exec::exec_in_pod(
                client,
                NAMESPACE,
                &format!("app-{i}"),
                Some("app"),
                &command,
                Duration::from_secs(30),
            )
            .await?;
        }
    }
    Ok(started.elapsed())
}

pub async fn run(args: &HookArgs, velero: &Path) -> anyhow::Result<()> {
    let cp = ControlPlane::start_with_node().await?;
    let client = cp.client().await?;
    create(
        &client,
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .await?;
    let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.pods)
        .map(|i| {
            let client = client.clone();
            async move {
                create(
                    &client,
                    &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
                    &pod(i),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    crate::wait_running(&client, NAMESPACE, args.pods).await?;
    eprintln!(
        "{} pods running in {:.1}s",
        args.pods,
        started.elapsed().as_secs_f64()
    );

    let s3 = S3Server::start().await?;
    s3.create_bucket("velero")?;
    let work = tempfile::tempdir()?;
    velero_test_harness::install::install_on_s3(velero, &cp, &s3, work.path(), None)?;
    let ours = |extra: &[&str]| {
        let mut cmd = Command::new(velero);
        cmd.env("KUBECONFIG", cp.kubeconfig_path()).args(extra);
        cmd
    };

    // (b) velero-rs.
    let server = ours(&["server", "--metrics-address", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("server.log"))?)
        .spawn()?;
    let server = KillOnDrop(server);
    velero_test_harness::install::location_available(&cp).await?;
    let (rs_time, rs_hooks) = timed_backup(&mut ours(&[]), "rs-hooks", &cp)?;
    drop(server);

    // (a) the baseline.
    let (baseline, what) = match tools::find(tools::VELERO)? {
        Some(tool) if tools::find(tools::VELERO_AWS_PLUGIN)?.is_some() => {
            let home = work.path().join("home");
            std::fs::create_dir_all(&home)?;
            let _velero = tools::VeleroServer::start(&tool, cp.kubeconfig_path(), work.path())?;
            velero_test_harness::install::location_available(&cp).await?;
            let (took, hooks) = timed_backup(
                &mut tools::velero_cli(&tool, cp.kubeconfig_path(), &home),
                "velero-hooks",
                &cp,
            )?;
            eprintln!("Velero 1.18.1 hook status: {hooks}");
            (took, "Velero 1.18.1's server")
        }
        _ => {
            eprintln!(
                "Velero 1.18.1 is not available (velero_test_harness::tools); the baseline is the same hooks run one after another"
            );
            (
                serial_execs(&client, args.pods).await?,
                "the hooks one after another (Velero's order)",
            )
        }
    };

    println!(
        "hooks: {} pods, each with a 1 s pre and a 1 s post backup hook",
        args.pods
    );
    println!("  (a) {what}: {:.1}s", baseline.as_secs_f64());
    println!(
        "  (b) velero-rs backup: {:.1}s (hook status {rs_hooks})",
        rs_time.as_secs_f64()
    );
    println!(
        "  (b)/(a): {:.2}",
        rs_time.as_secs_f64() / baseline.as_secs_f64()
    );
    Ok(())
}
