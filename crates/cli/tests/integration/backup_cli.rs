//! `velero server` and the backup commands, as a user runs them, against a real control plane and a
//! `local` storage location.

use crate::common;

use std::path::Path;

use common::{eventually, run, start_server, start_server_with, text, velero};
use velero_test_harness::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_get_describe_logs_download_delete() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let storage = tempfile::tempdir()?;
    let bucket = storage.path().join("backups");
    let install = run(velero(&kubeconfig)
        .args(["install", "--provider", "local", "--bucket"])
        .arg(&bucket)
        .args(["--no-secret", "--use-volume-snapshots=false"]));
    assert!(install.status.success(), "{}", text(&install.stderr));
    // The repositories' password: random, never printed, kept by a second install.
    let password = || -> anyhow::Result<String> {
        let out = cp
            .kubectl()
            .args([
                "-n",
                "velero",
                "get",
                "secret",
                "velero-repo-credentials",
                "-o",
                "jsonpath={.data.repository-password}",
            ])
            .output()?;
        anyhow::ensure!(out.status.success(), "{}", text(&out.stderr));
        Ok(text(&out.stdout))
    };
    let first = password()?;
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, first.trim())?;
    assert_eq!(decoded.len(), 64, "a 64-character random password");
    assert!(!text(&install.stdout).contains(&String::from_utf8_lossy(&decoded).to_string()));
    let again = run(velero(&kubeconfig)
        .args(["install", "--provider", "local", "--bucket"])
        .arg(&bucket)
        .args(["--no-secret", "--use-volume-snapshots=false"]));
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(password()?, first, "an existing password is never replaced");
    let _server = start_server(&kubeconfig, storage.path()).await?;
    let locations = text(&run(velero(&kubeconfig).args(["backup-location", "get"])).stdout);
    assert!(
        locations.starts_with("NAME      PROVIDER   BUCKET/PREFIX"),
        "{locations}"
    );
    assert!(locations.contains("ReadWrite     true"), "{locations}");

    for args in [
        vec!["create", "namespace", "shop"],
        vec![
            "-n",
            "shop",
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ],
    ] {
        let out = cp.kubectl().args(&args).output()?;
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // Bad input is refused before anything is created.
    for (args, want) in [
        (vec!["b", "--selector", "app in ((x"], "invalid --selector"),
        (
            vec![
                "b",
                "--include-resources",
                "pods",
                "--include-cluster-scoped-resources",
                "sc",
            ],
            "old filter parameters",
        ),
        (
            vec!["b", "--storage-location", "nowhere"],
            "backup storage location \"nowhere\" does not exist",
        ),
        (
            vec!["b", "--selector", "a=b", "--or-selector", "c=d"],
            "not both",
        ),
        (
            vec!["b", "--include-namespaces", "*,shop"],
            "Invalid included/excluded namespace lists",
        ),
    ] {
        let out = run(velero(&kubeconfig).args(["backup", "create"]).args(&args));
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let none = text(&run(velero(&kubeconfig).args(["backup", "get"])).stdout);
    assert_eq!(
        none.lines().count(),
        1,
        "no backup may exist after bad input: {none}"
    );

    // -o prints without submitting.
    let printed = run(velero(&kubeconfig).args([
        "backup",
        "create",
        "dry",
        "--include-namespaces",
        "shop",
        "-o",
        "json",
    ]));
    let object: serde_json::Value = serde_json::from_slice(&printed.stdout)?;
    assert_eq!(
        object["spec"]["includedNamespaces"],
        serde_json::json!(["shop"])
    );
    assert!(!text(&run(velero(&kubeconfig).args(["backup", "get"])).stdout).contains("dry"));

    let created = run(velero(&kubeconfig).args([
        "backup",
        "create",
        "shop-1",
        "--include-namespaces",
        "shop",
        "--wait",
    ]));
    let stdout = text(&created.stdout);
    assert!(
        created.status.success(),
        "{stdout}{}",
        text(&created.stderr)
    );
    assert!(
        stdout.contains("Backup request \"shop-1\" submitted successfully."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Backup completed with status: Completed."),
        "{stdout}"
    );
    assert!(
        stdout.contains("items backed up"),
        "progress is shown: {stdout}"
    );

    let listed = text(&run(velero(&kubeconfig).args(["backup", "get"])).stdout);
    let header = listed.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME     STATUS      ERRORS   WARNINGS   CREATED"),
        "{listed}"
    );
    let row = listed.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("shop-1   Completed   0        0"),
        "{listed}"
    );
    assert!(row.contains("29d") && row.contains("default"), "{listed}");

    let described =
        text(&run(velero(&kubeconfig).args(["backup", "describe", "shop-1", "--details"])).stdout);
    for want in [
        "Phase:  Completed",
        "Included:  shop",
        "Resource List:",
        "v1/ConfigMap:",
        "- shop/settings",
        "Errors:  <none>",
    ] {
        assert!(
            described.contains(want),
            "describe lacks {want:?}:\n{described}"
        );
    }

    let logs = run(velero(&kubeconfig).args(["backup", "logs", "shop-1"]));
    let logs_text = text(&logs.stdout);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    // The local location's files came from the server over HTTP, not from its directory.
    let requests: kube::Api<velero_api::v1::DownloadRequest> =
        kube::Api::namespaced(cp.client().await?, "velero");
    let urls: Vec<String> = requests
        .list(&Default::default())
        .await?
        .into_iter()
        .filter_map(|r| r.status?.download_url)
        .collect();
    assert!(
        !urls.is_empty()
            && urls.iter().all(|u| u.starts_with("http://127.0.0.1:")
                && u.contains("/download?location=default&key=backups%2Fshop-1%2F")
                && u.contains("&signature=")),
        "{urls:?}"
    );
    assert!(logs_text.contains("msg=\"Backing up item\" backup=velero/shop-1 namespace=shop resource=configmaps name=settings"), "{logs_text}");

    let tarball = storage.path().join("shop-1.tar.gz");
    let downloaded = run(velero(&kubeconfig)
        .args(["backup", "download", "shop-1", "-o"])
        .arg(&tarball));
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));
    let entries = velero_archive_entries(&tarball)?;
    assert!(
        entries
            .iter()
            .any(|e| e == "resources/configmaps/namespaces/shop/settings.json"),
        "{entries:?}"
    );
    let again = run(velero(&kubeconfig)
        .args(["backup", "download", "shop-1", "-o"])
        .arg(&tarball));
    assert!(
        text(&again.stderr).contains("already exists"),
        "downloads do not overwrite without --force"
    );

    // A restore of it, and its log and details, through the same server.
    let restored = run(velero(&kubeconfig).args([
        "restore",
        "create",
        "shop-copy",
        "--from-backup",
        "shop-1",
        "--namespace-mappings",
        "shop:shop-copy",
        "--wait",
    ]));
    assert!(
        text(&restored.stdout).contains("Restore completed with status: Completed"),
        "{}{}",
        text(&restored.stdout),
        text(&restored.stderr)
    );
    let restore_logs = run(velero(&kubeconfig).args(["restore", "logs", "shop-copy"]));
    assert!(
        restore_logs.status.success(),
        "{}",
        text(&restore_logs.stderr)
    );
    assert!(
        text(&restore_logs.stdout).contains("restore=velero/shop-copy"),
        "{}",
        text(&restore_logs.stdout)
    );
    let restore_details = text(
        &run(velero(&kubeconfig).args(["restore", "describe", "shop-copy", "--details"])).stdout,
    );
    assert!(
        restore_details.contains("shop-copy/settings(created)"),
        "{restore_details}"
    );

    // A resource name the cluster does not serve (a typo) backs up nothing for it, and says so.
    let typo = run(velero(&kubeconfig).args([
        "backup",
        "create",
        "typo",
        "--include-namespaces",
        "shop",
        "--include-resources",
        "configmaps,deploymnets",
        "--wait",
    ]));
    assert!(
        text(&typo.stdout).contains("Backup completed with status: Completed"),
        "{}{}",
        text(&typo.stdout),
        text(&typo.stderr)
    );
    let listed = text(&run(velero(&kubeconfig).args(["backup", "get", "typo"])).stdout);
    assert!(
        listed
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .take(4)
            .eq(["typo", "Completed", "0", "1"]),
        "one warning: {listed}"
    );
    let typo_log = text(&run(velero(&kubeconfig).args(["backup", "logs", "typo"])).stdout);
    for want in [
        "includedResources resolved to: configmaps, deploymnets",
        r#"\"deploymnets\" in spec.includedResources (--include-resources) is not a resource type the cluster serves"#,
    ] {
        assert!(typo_log.contains(want), "{want:?} in {typo_log}");
    }
    // -n is Velero's namespace; a user who meant the items' one is told which flag to use.
    let misplaced = run(velero(&kubeconfig).args([
        "backup",
        "get-item",
        "shop-1",
        "cm/settings",
        "-n",
        "shop",
    ]));
    assert!(!misplaced.status.success());
    assert!(
        text(&misplaced.stderr).contains("use --item-namespace shop"),
        "{}",
        text(&misplaced.stderr)
    );
    // A kubeconfig that skips TLS verification: kubectl and Velero say nothing of it, nor do we.
    let insecure = storage.path().join("insecure-kubeconfig");
    let config = std::fs::read_to_string(&kubeconfig)?;
    let config: String = config
        .lines()
        .map(
            |line| match line.trim_start().starts_with("certificate-authority-data:") {
                true => "    insecure-skip-tls-verify: true",
                false => line,
            },
        )
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&insecure, config)?;
    let quiet = run(velero(&insecure).args(["backup", "get"]));
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(
        quiet.stderr.is_empty(),
        "nothing on stderr: {}",
        text(&quiet.stderr)
    );
    // The server's log goes to a file here: plain text, no terminal colours.
    let server_log = std::fs::read_to_string(storage.path().join("server.log"))?;
    assert!(server_log.contains("INFO"), "{server_log}");
    assert!(
        !server_log.contains('\u{1b}'),
        "no escape codes in a log that is not a terminal"
    );

    let deleted = run(velero(&kubeconfig).args(["backup", "delete", "shop-1", "--confirm"]));
    assert!(
        text(&deleted.stdout)
            .contains("Request to delete backup \"shop-1\" submitted successfully.")
    );
    eventually("the backup to be deleted", || {
        !run(velero(&kubeconfig).args(["backup", "get", "shop-1"]))
            .status
            .success()
    })
    .await;
    assert!(
        !bucket.join("backups/shop-1").exists(),
        "the backup's files are gone"
    );
    Ok(())
}

/// `velero backup create NAME --include-namespaces default --wait`, then `velero backup logs NAME`,
/// which goes through a DownloadRequest: both must succeed and the log must be this backup's.
fn back_up_default_and_read_its_log(kubeconfig: &Path, name: &str) {
    let created = run(velero(kubeconfig).args([
        "backup",
        "create",
        name,
        "--include-namespaces",
        "default",
        "--wait",
    ]));
    assert!(
        text(&created.stdout).contains("Completed"),
        "{}{}",
        text(&created.stdout),
        text(&created.stderr)
    );
    let logs = run(velero(kubeconfig).args(["backup", "logs", name]));
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    assert!(
        text(&logs.stdout).contains(&format!("backup=velero/{name}")),
        "{}",
        text(&logs.stdout)
    );
}

fn velero_archive_entries(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut names = Vec::new();
    for entry in archive.entries()? {
        names.push(entry?.path()?.to_string_lossy().into_owned());
    }
    Ok(names)
}

/// The same story against an S3 location: logs and downloads come through signed URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_downloads_through_s3_signed_urls() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let s3 = velero_test_harness::S3Server::start().await?;
    s3.create_bucket("velero")?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let work = tempfile::tempdir()?;
    common::install_on_s3(&cp, &s3, work.path(), Some("c1"))?;
    let _server = start_server_with(
        &kubeconfig,
        work.path(),
        &["--metrics-address", "127.0.0.1:0", "--log-format", "json"],
    )
    .await?;

    back_up_default_and_read_its_log(&kubeconfig, "all");
    // --log-format json off a terminal: one JSON object per line, no escape codes.
    let server_log = std::fs::read_to_string(work.path().join("server.log"))?;
    assert!(server_log.lines().count() > 3, "{server_log}");
    for line in server_log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{e}: a log line that is not JSON: {line:?}"))?;
        assert!(entry.get("level").is_some(), "{line}");
    }
    let tarball = work.path().join("all.tar.gz");
    let downloaded = run(velero(&kubeconfig)
        .args(["backup", "download", "all", "-o"])
        .arg(&tarball));
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));
    let entries = velero_archive_entries(&tarball)?;
    assert!(entries.contains(&"metadata/version".to_string()));
    assert!(
        entries
            .iter()
            .any(|e| e == "resources/namespaces/cluster/default.json"),
        "{entries:?}"
    );
    assert!(
        s3.root()
            .join("velero/c1/backups/all/velero-backup.json")
            .exists()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_location_create_get_set_delete() -> anyhow::Result<()> {
    let cp = common::control_plane_with_crds().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();

    let first = run(velero(&kubeconfig).args([
        "backup-location",
        "create",
        "primary",
        "--provider",
        "aws",
        "--bucket",
        "velero",
        "--prefix",
        "c1",
        "--config",
        "region=us-east-1,s3ForcePathStyle=true",
        "--credential",
        "cloud-credentials=cloud",
        "--default",
    ]));
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout)
            .contains("Backup storage location \"primary\" configured successfully.")
    );
    let archive = [
        "backup-location",
        "create",
        "archive",
        "--provider",
        "local",
        "--bucket",
        "/srv/velero",
        "--access-mode",
        "ReadOnly",
    ];
    // A second default is refused, as by Velero, and nothing is created.
    let refused = run(velero(&kubeconfig).args(archive).arg("--default"));
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr)
            .contains("there is already a default backup storage location (primary)"),
        "{}",
        text(&refused.stderr)
    );
    let second = run(velero(&kubeconfig).args(archive));
    assert!(second.status.success(), "{}", text(&second.stderr));
    let moved = run(velero(&kubeconfig).args(["backup-location", "set", "archive", "--default"]));
    assert!(moved.status.success(), "{}", text(&moved.stderr));

    // Making one location the default unsets the other.
    let listed = text(&run(velero(&kubeconfig).args(["backup-location", "get"])).stdout);
    let row = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("archive").contains("local")
            && row("archive").contains("ReadOnly")
            && row("archive").ends_with("true"),
        "{listed}"
    );
    assert!(
        row("primary").contains("velero/c1") && row("primary").ends_with("false"),
        "{listed}"
    );
    let default_only =
        text(&run(velero(&kubeconfig).args(["backup-location", "get", "--default"])).stdout);
    assert_eq!(default_only.lines().count(), 2, "{default_only}");

    let json_out =
        run(velero(&kubeconfig).args(["backup-location", "get", "primary", "-o", "json"]));
    let value: serde_json::Value = serde_json::from_slice(&json_out.stdout)?;
    let spec = &value["items"][0]["spec"];
    assert_eq!(
        spec["credential"],
        serde_json::json!({"name": "cloud-credentials", "key": "cloud"})
    );
    assert_eq!(spec["config"]["region"], "us-east-1");

    let set = run(velero(&kubeconfig).args(["backup-location", "set", "primary", "--default"]));
    assert!(set.status.success(), "{}", text(&set.stderr));
    let listed =
        text(&run(velero(&kubeconfig).args(["backup-location", "get", "--default"])).stdout);
    assert!(
        listed.contains("primary") && !listed.contains("archive"),
        "{listed}"
    );

    // Bad input: a second pair for --credential, an unknown access mode, nothing to set.
    for (args, want) in [
        (
            vec![
                "backup-location",
                "create",
                "x",
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--credential",
                "a=b,c=d",
            ],
            "exactly one secret=key pair",
        ),
        (
            vec![
                "backup-location",
                "create",
                "x",
                "--provider",
                "aws",
                "--bucket",
                "b",
                "--access-mode",
                "WriteOnly",
            ],
            "invalid value 'WriteOnly'",
        ),
        (vec!["backup-location", "set", "primary"], "nothing to set"),
        (
            vec![
                "backup-location",
                "create",
                "primary",
                "--provider",
                "aws",
                "--bucket",
                "b",
            ],
            "already exists",
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

    let deleted =
        run(velero(&kubeconfig).args(["backup-location", "delete", "archive", "--confirm"]));
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let listed = text(&run(velero(&kubeconfig).args(["backup-location", "get"])).stdout);
    assert!(
        !listed.contains("archive") && listed.contains("primary"),
        "{listed}"
    );
    Ok(())
}

/// An address the API server accepts as a pod IP and reaches this machine at: the source address
/// of the default route, or, on a machine without one, 0.0.0.0 (the API server refuses loopback
/// pod IPs, not the unspecified address, which Linux connects to the local host).
fn host_address() -> std::net::IpAddr {
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|socket| {
        // Connecting a UDP socket sends nothing; it only picks the route.
        socket.connect("10.255.255.255:9")?;
        Ok(socket.local_addr()?.ip())
    });
    match routed {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        _ => std::net::Ipv4Addr::UNSPECIFIED.into(),
    }
}

/// In a cluster, the local provider's files are fetched through the API server's proxy to the
/// server's pod with the CLI's kubeconfig, so no port needs exposing. Here a Pod object stands for
/// the server's pod (this control plane runs no kubelet): its IP is this machine's, where the
/// server listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_come_through_the_api_server_proxy_to_the_server_pod() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    let cp = ControlPlane::start().await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let client = cp.client().await?;
    let storage = tempfile::tempdir()?;
    let install = run(velero(&kubeconfig)
        .args(["install", "--provider", "local", "--bucket"])
        .arg(storage.path().join("backups"))
        .args(["--no-secret", "--use-volume-snapshots=false"]));
    assert!(install.status.success(), "{}", text(&install.stderr));

    let ip = host_address();
    let port = std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "velero");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "velero-7d9f-x2x4q" },
        "spec": { "containers": [{ "name": "velero", "image": "velero/velero" }] },
    }))?;
    pods.create(&Default::default(), &pod).await?;
    pods.patch_status(
        "velero-7d9f-x2x4q",
        &Default::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "status": { "phase": "Running", "podIP": ip.to_string(), "podIPs": [{ "ip": ip.to_string() }] },
        })),
    )
    .await?;
    let base = format!("/api/v1/namespaces/velero/pods/http:velero-7d9f-x2x4q:{port}/proxy");
    let address = format!("0.0.0.0:{port}");
    let _server = start_server_with(
        &kubeconfig,
        storage.path(),
        &["--metrics-address", &address, "--download-url-base", &base],
    )
    .await?;

    back_up_default_and_read_its_log(&kubeconfig, "b1");
    let described =
        text(&run(velero(&kubeconfig).args(["backup", "describe", "b1", "--details"])).stdout);
    assert!(described.contains("Resource List:"), "{described}");
    let tarball = storage.path().join("b1.tar.gz");
    let downloaded = run(velero(&kubeconfig)
        .args(["backup", "download", "b1", "-o"])
        .arg(&tarball));
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));
    assert_eq!(
        std::fs::read(&tarball)?,
        std::fs::read(storage.path().join("backups/backups/b1/b1.tar.gz"))?,
        "the download is the stored tarball, byte for byte"
    );

    // The pod is gone (restarted under another name): the error says what to do.
    pods.delete("velero-7d9f-x2x4q", &Default::default())
        .await?;
    let stale = run(velero(&kubeconfig).args(["backup", "logs", "b1"]));
    assert!(!stale.status.success());
    let error = text(&stale.stderr);
    assert!(
        error.contains("refused to proxy the download") && error.contains("run the command again"),
        "{error}"
    );
    Ok(())
}
