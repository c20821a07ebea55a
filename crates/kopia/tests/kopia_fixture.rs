//! A repository kopia 0.22.3 wrote, kept in the tree (`fixtures/kopia-0.22.3-repository`, made by
//! `fixtures/make-fixture.sh`), so the read path is tested on every machine, kopia or not: its
//! snapshot lists with kopia's source and tags and restores file for file, zstd-compressed
//! contents and an indirect object included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;

use velero_kopia::{FsBlobStore, Repository, RestoreOptions};

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kopia-0.22.3-repository");
    let mut stack = vec![from.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let to = dir.path().join(path.strip_prefix(&from).unwrap());
            if path.is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                stack.push(path);
            } else {
                std::fs::copy(&path, &to).unwrap();
            }
        }
    }
    dir
}

#[test]
fn a_repository_kopia_wrote_lists_and_restores() {
    let repo_dir = fixture_copy();
    let repo = Repository::open(
        Arc::new(FsBlobStore::open(repo_dir.path()).unwrap()),
        "static-passw0rd",
    )
    .unwrap();
    let snapshots = repo.snapshots(None).unwrap();
    assert_eq!(snapshots.len(), 1);
    let s = &snapshots[0].snapshot;
    assert_eq!(
        (s.source.user_name.as_str(), s.source.host.as_str()),
        ("default", "default")
    );
    assert_eq!(s.source.path, "/snapshot-pod-volume/kopia/app/writer/data");
    assert_eq!(s.description, "Kopia Uploader");
    assert_eq!(
        s.tags.get("tag:snapshot-requester").map(String::as_str),
        Some("snapshot-pod-volume")
    );

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("volume");
    let stats = velero_kopia::restore(
        &repo,
        &snapshots[0].id,
        &target,
        RestoreOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!((stats.files, stats.symlinks), (7, 1), "{stats:?}");
    assert_eq!(
        std::fs::read(target.join("hello.txt")).unwrap(),
        b"hello from kopia\n"
    );
    for i in 1..=5 {
        let expected = format!("line {i}\n").repeat(i);
        assert_eq!(
            std::fs::read_to_string(target.join(format!("sub/f{i}"))).unwrap(),
            expected
        );
    }
    let zeros = std::fs::read(target.join("zeros.bin")).unwrap();
    assert_eq!(zeros.len(), 3 << 20);
    assert!(zeros.iter().all(|&b| b == 0));
    assert_eq!(
        std::fs::read_link(target.join("link")).unwrap(),
        Path::new("hello.txt")
    );
    assert!(target.join("empty").is_dir());
    let hello = std::fs::metadata(target.join("hello.txt")).unwrap();
    assert_eq!(hello.permissions().mode() & 0o7777, 0o640);
    // 2021-03-04 05:06:07.123456789 in the machine's zone when the fixture was made (UTC).
    assert_eq!(
        (hello.mtime(), hello.mtime_nsec()),
        (1_614_834_367, 123_456_789)
    );

    // The wrong password is refused as such.
    let wrong = Repository::open(
        Arc::new(FsBlobStore::open(repo_dir.path()).unwrap()),
        "static-password",
    )
    .unwrap_err();
    assert!(
        matches!(wrong, velero_kopia::KopiaError::WrongPassword),
        "{wrong}"
    );
}
