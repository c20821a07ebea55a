//! The tarball format against an independent tar implementation (Python's `tarfile`, which reads
//! and writes what Go's `archive/tar` does): what we write is what Velero's reader expects, and
//! what Velero writes (PAX long names, no directory entries, format 1.1.0 or 1.0) reads here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::io::Write;
use std::process::{Command, Stdio};

use velero_archive::{ItemPath, TarballWriter, read_all};

fn python(script: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (installed by scripts/setup-control-plane.sh)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn what_we_write_reads_as_velero_reads_it() {
    let crd_name = "backupstoragelocations.velero.io";
    let crd = ItemPath {
        group_resource: "customresourcedefinitions.apiextensions.k8s.io",
        namespace: None,
        name: crd_name,
    };
    let pod = ItemPath {
        group_resource: "pods",
        namespace: Some("shop"),
        name: "web-0",
    };
    let mut writer = TarballWriter::new(Vec::new()).await.unwrap();
    for (path, body) in [
        (
            crd.clone(),
            r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition"}"#,
        ),
        (pod.clone(), r#"{"apiVersion":"v1","kind":"Pod"}"#),
    ] {
        for entry in path.entries("v1", true) {
            writer.append(&entry, body.as_bytes()).await.unwrap();
        }
    }
    let tarball = writer.finish().await.unwrap();
    // Entry type, mode and name of every member, in order, and the version file's content.
    let listing = python(
        "import sys, tarfile\n\
         t = tarfile.open(fileobj=sys.stdin.buffer, mode='r:gz')\n\
         for m in t.getmembers():\n    print(m.type.decode(), oct(m.mode), m.name)\n\
",
        &tarball,
    );
    let listing = String::from_utf8(listing).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines[0], "0 0o755 metadata/version");
    assert_eq!(
        &lines[1..],
        [
            "0 0o755 resources/customresourcedefinitions.apiextensions.k8s.io/cluster/backupstoragelocations.velero.io.json",
            "0 0o755 resources/customresourcedefinitions.apiextensions.k8s.io/v1-preferredversion/cluster/backupstoragelocations.velero.io.json",
            "0 0o755 resources/pods/namespaces/shop/web-0.json",
            "0 0o755 resources/pods/v1-preferredversion/namespaces/shop/web-0.json",
        ]
    );
    let version = python(
        "import sys, tarfile\nt = tarfile.open(fileobj=sys.stdin.buffer, mode='r:gz')\nsys.stdout.buffer.write(t.extractfile('metadata/version').read())",
        &tarball,
    );
    assert_eq!(version, b"1.1.0\n");
}

/// A tarball as Go's archive/tar writes it for Velero: PAX records for names past 100 bytes,
/// regular files only, mode 0755.
fn velero_style_tarball(files: &[(&str, &str)]) -> Vec<u8> {
    let spec = serde_json::to_vec(files).unwrap();
    python(
        "import sys, io, json, tarfile, gzip, time\n\
         buf = io.BytesIO()\n\
         with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:\n\
         \x20   for name, content in json.load(sys.stdin):\n\
         \x20       data = content.encode()\n\
         \x20       info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o755; info.mtime = time.time()\n\
         \x20       t.addfile(info, io.BytesIO(data))\n\
         sys.stdout.buffer.write(gzip.compress(buf.getvalue()))\n",
        &spec,
    )
}

#[test]
fn velero_written_tarballs_read_here() {
    let long = format!(
        "resources/widgets.example.com/v1-preferredversion/namespaces/shop/{}.json",
        "w".repeat(120)
    );
    let tarball = velero_style_tarball(&[
        ("metadata/version", "1.1.0\n"),
        (
            "resources/configmaps/namespaces/shop/settings.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
        ),
        (
            "resources/configmaps/v1-preferredversion/namespaces/shop/settings.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
        ),
        (&long, "{}"),
    ]);
    let entries = read_all(&tarball[..]).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries["metadata/version"], b"1.1.0\n");
    assert_eq!(entries[&long], b"{}");

    // Format 1.0: no version directories.
    let old = velero_style_tarball(&[(
        "resources/persistentvolumes/cluster/pv-1.json",
        r#"{"kind":"PersistentVolume"}"#,
    )]);
    let entries = read_all(&old[..]).unwrap();
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["resources/persistentvolumes/cluster/pv-1.json"]
    );
}
