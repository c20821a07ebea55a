//! The `velero` binary as a user runs it.

use std::process::{Command, Output, Stdio};

use velero_test_harness::ControlPlane;

fn velero() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_velero"));
    // Never pick up the developer's own cluster or client config.
    cmd.env_remove("KUBECONFIG")
        .env_remove("VELERO_NAMESPACE")
        .env("HOME", env!("CARGO_TARGET_TMPDIR"));
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the velero binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_client_only() {
    let out = run(velero().args(["version", "--client-only"]));
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Client:\n\tVersion: v"), "{stdout}");
    assert!(stdout.contains("\tGit commit: "), "{stdout}");
    assert!(!stdout.contains("Server:"), "{stdout}");
}

#[test]
fn completion_scripts() {
    for (shell, marker) in [
        ("bash", "_velero()"),
        ("zsh", "#compdef velero"),
        ("fish", "complete -c velero"),
    ] {
        let out = run(velero().args(["completion", shell]));
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        assert!(
            script.contains("install"),
            "{shell} script completes subcommands"
        );
    }
    let out = run(velero().args(["completion", "powershell"]));
    assert!(!out.status.success());
}

#[test]
fn install_rejects_bad_input_with_a_clear_error() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    let secret_path = secret.path().to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--provider", "s3", "--bucket", "b", "--no-secret"],
            "unknown --provider \"s3\"",
        ),
        (
            vec!["--provider", "aws", "--no-secret"],
            "--bucket is required",
        ),
        (
            vec!["--bucket", "b", "--no-secret"],
            "--provider is required",
        ),
        (
            vec![
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--secret-file",
                "/nonexistent/credentials",
            ],
            "cannot read --secret-file /nonexistent/credentials",
        ),
        (
            vec!["--provider", "aws", "--bucket", "b"],
            "one of --secret-file or --no-secret is required",
        ),
        (
            vec![
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--no-secret",
                "--secret-file",
                &secret_path,
            ],
            "cannot use both --secret-file and --no-secret",
        ),
        (
            vec![
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--no-secret",
                "--backup-location-config",
                "region",
            ],
            "not a key=value pair",
        ),
        (
            vec![
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--no-secret",
                "--use-node-agent",
                "--kubelet-root-dir",
                "var/lib/kubelet",
            ],
            "--kubelet-root-dir \"var/lib/kubelet\" is not an absolute path",
        ),
        (
            vec![
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--no-secret",
                "--use-node-agent",
                "--kubelet-root-dir",
                "/var/lib/kubelet/../..",
            ],
            "contains . or .. components",
        ),
    ];
    for (args, want) in cases {
        let out = run(velero()
            .arg("install")
            .args(&args)
            .args(["--dry-run", "-o", "yaml"]));
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(want),
            "{args:?}: {stderr:?} should mention {want:?}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing is printed when the input is bad"
        );
    }
}

#[test]
fn dry_run_prints_a_list_without_a_cluster() {
    let out = run(velero().args([
        "install",
        "--provider",
        "aws",
        "--bucket",
        "b",
        "--no-secret",
        "--dry-run",
        "-o",
        "json",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .count(),
        13
    );
    assert!(items.iter().any(|o| o["kind"] == "Deployment"));
}

/// `velero install --dry-run -o yaml | kubectl apply -f -` works, and a second apply changes
/// nothing; then `velero version` reports the missing server, and uninstall cleans up.
///
/// kubectl maps every object of its input before creating any, so Velero's kinds can only be
/// applied once their CRDs exist: the CRDs go first (`--crds-only`), as with Velero itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_output_applies_with_kubectl_and_twice_changes_nothing() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let kubeconfig = cp.kubeconfig_path().to_str().unwrap().to_string();
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(
        secret.path(),
        "[default]\naws_access_key_id=a\naws_secret_access_key=b\n",
    )?;
    let render = |extra: &[&str]| -> Vec<u8> {
        let out = run(velero()
            .args([
                "install",
                "--provider",
                "aws",
                "--bucket",
                "velero",
                "--secret-file",
            ])
            .arg(secret.path())
            .args([
                "--backup-location-config",
                "region=minio,s3ForcePathStyle=true",
            ])
            .args([
                "--snapshot-location-config",
                "region=minio",
                "--dry-run",
                "-o",
                "yaml",
            ])
            .args(extra));
        assert!(out.status.success(), "{}", text(&out.stderr));
        out.stdout
    };

    let crds = crate::common::kubectl_apply(&cp, &render(&["--crds-only"]));
    assert_eq!(
        crds.lines().filter(|l| l.ends_with(" created")).count(),
        13,
        "{crds}"
    );
    let wait = cp
        .kubectl()
        .args([
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd",
            "-l",
            "component=velero",
        ])
        .output()?;
    assert!(wait.status.success(), "{}", text(&wait.stderr));

    let everything = render(&[]);
    let first = crate::common::kubectl_apply(&cp, &everything);
    assert!(first.contains("deployment.apps/velero created"), "{first}");
    assert!(
        first.contains("backupstoragelocation.velero.io/default created"),
        "{first}"
    );
    assert!(
        first.contains("customresourcedefinition.apiextensions.k8s.io/backups.velero.io unchanged"),
        "{first}"
    );

    let second = crate::common::kubectl_apply(&cp, &everything);
    let changed: Vec<&str> = second
        .lines()
        .filter(|l| !l.ends_with(" unchanged"))
        .collect();
    assert!(
        changed.is_empty(),
        "applying the same install again changed: {changed:?}"
    );
    assert_eq!(second.lines().count(), 13 + 7, "{second}");

    let version = run(velero().args(["version", "--timeout", "1s", "--kubeconfig", &kubeconfig]));
    assert!(version.status.success());
    let stdout = text(&version.stdout);
    assert!(
        stdout.contains("<error getting server version: timed out waiting for server status request to be processed>"),
        "{stdout}"
    );

    let uninstall = run(velero().args(["uninstall", "--force", "--kubeconfig", &kubeconfig]));
    assert!(uninstall.status.success(), "{}", text(&uninstall.stderr));
    assert!(text(&uninstall.stdout).contains("Velero uninstalled"));
    let ns = cp.kubectl().args(["get", "namespace", "velero"]).output()?;
    assert!(
        !ns.status.success(),
        "namespace velero still exists after uninstall"
    );
    Ok(())
}

/// `velero install` itself applies everything in one go (waiting for the CRDs in between), and
/// running it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_applies_in_one_step_and_is_idempotent() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let kubeconfig = cp.kubeconfig_path().to_str().unwrap().to_string();
    let install = || {
        run(velero().args([
            "install",
            "--provider",
            "local",
            "--bucket",
            "/var/lib/velero-backups",
            "--no-secret",
            "--use-volume-snapshots=false",
            "--kubeconfig",
            &kubeconfig,
        ]))
    };
    let first = install();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("BackupStorageLocation/default: created"),
        "{stdout}"
    );
    assert!(stdout.contains("Velero is installed!"), "{stdout}");
    let second = install();
    assert!(second.status.success(), "{}", text(&second.stderr));
    let results: Vec<String> = text(&second.stdout)
        .lines()
        .filter(|l| !l.contains("attempting") && l.contains(": "))
        .map(str::to_string)
        .collect();
    assert_eq!(results.len(), 13 + 5, "{results:?}");
    assert!(
        results.iter().all(|l| l.ends_with(": unchanged")),
        "{results:?}"
    );
    Ok(())
}

/// `--wait` returns once the server Deployment is available. The harness has no kubelet, so the
/// test plays its part: it marks the server pod Running and Ready, as a node would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_wait_returns_when_the_deployment_is_ready() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, Patch, PatchParams};

    let cp = ControlPlane::start().await?;
    let client = cp.client().await?;
    let kubeconfig = cp.kubeconfig_path().to_str().unwrap().to_string();
    let mut install = velero()
        .args([
            "install",
            "--provider",
            "aws",
            "--bucket",
            "velero",
            "--no-secret",
            "--use-volume-snapshots=false",
            "--wait",
            "--wait-timeout=90s",
            "--kubeconfig",
            &kubeconfig,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    let pods: Api<Pod> = Api::namespaced(client, "velero");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let pod = loop {
        assert!(
            install.try_wait()?.is_none(),
            "install returned before its pod was ready"
        );
        let listed = pods
            .list(&ListParams::default().labels("deploy=velero"))
            .await;
        if let Some(pod) = listed.ok().and_then(|l| l.items.into_iter().next()) {
            break pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no velero pod was created"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let name = pod.metadata.name.clone().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        install.try_wait()?.is_none(),
        "install must wait while the pod is Pending"
    );

    let now = "2026-01-01T00:00:00Z";
    let status = serde_json::json!({ "status": {
        "phase": "Running",
        "conditions": [
            { "type": "Ready", "status": "True", "lastTransitionTime": now },
            { "type": "ContainersReady", "status": "True", "lastTransitionTime": now },
        ],
    }});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;

    let out = tokio::task::spawn_blocking(move || install.wait_with_output()).await??;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Waiting for Velero deployment to be ready."),
        "{stdout}"
    );
    assert!(stdout.contains("Velero is installed!"), "{stdout}");
    Ok(())
}
