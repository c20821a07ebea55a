//! velero-kopia against kopia 0.22.3 itself (found as `velero_test_harness::tools::kopia_or_skip`
//! looks: `$KOPIA`, `PATH`, the tools directory): a repository kopia wrote opens and restores
//! here file for file; a repository written here is listed, verified (every file, every content)
//! and restored by kopia; a second snapshot of unchanged files reads none of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Seek as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;

use velero_kopia::{FsBlobStore, Repository, RestoreOptions, SnapshotOptions, SourceInfo};

const PASSWORD: &str = "static-passw0rd";

struct Kopia {
    cli: velero_test_harness::tools::KopiaCli,
    home: tempfile::TempDir,
}

impl Kopia {
    fn find(test: &str) -> Option<Kopia> {
        let bin = velero_test_harness::tools::kopia_or_skip(test)?;
        let home = tempfile::tempdir().unwrap();
        Some(Kopia {
            cli: velero_test_harness::tools::KopiaCli::new(&bin, home.path(), PASSWORD),
            home,
        })
    }

    fn run(&self, args: &[&str]) -> String {
        self.cli.run(args).unwrap()
    }

    fn connect(&self, repo: &Path) {
        self.cli.connect_filesystem(repo).unwrap();
    }
}

/// A volume's worth of cases: a file split into several contents, many small files, a symlink,
/// a hard link, modes (setuid, private), fixed mtimes, a sparse file, an empty file and an empty
/// directory.
fn make_tree(root: &Path) {
    let sub = root.join("sub/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    let mut big = Vec::with_capacity(12 << 20);
    let mut x = 0x2545_f491u32;
    while big.len() < 12 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("big.bin"), &big).unwrap();
    for i in 0..300 {
        std::fs::write(
            sub.join(format!("f{i}")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )
        .unwrap();
    }
    std::fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("hello.txt"), root.join("sub/hard")).unwrap();
    let mut sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.seek(std::io::SeekFrom::Start(5 << 20)).unwrap();
    sparse.write_all(b"tail").unwrap();
    drop(sparse);
    std::fs::set_permissions(
        root.join("hello.txt"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::set_permissions(root.join("empty"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let t = filetime::FileTime::from_unix_time(1_704_164_645, 123_456_789);
    filetime::set_file_times(root.join("sub/deeper/f1"), t, t).unwrap();
    filetime::set_file_times(root.join("empty-dir"), t, t).unwrap();
}

/// Kind, mode, size, mtime seconds and nanoseconds, and content (or symlink target).
type Fingerprint = (char, u32, u64, i64, i64, Vec<u8>);

/// Path → [`Fingerprint`] of everything below `root`.
fn fingerprint(root: &Path) -> BTreeMap<String, Fingerprint> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let (kind, body) = if meta.is_dir() {
                stack.push(path.clone());
                ('d', Vec::new())
            } else if meta.file_type().is_symlink() {
                (
                    'l',
                    std::fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else {
                ('f', std::fs::read(&path).unwrap())
            };
            let mtime = if kind == 'l' { 0 } else { meta.mtime() };
            let nanos = if kind == 'l' { 0 } else { meta.mtime_nsec() };
            let size = if kind == 'd' { 0 } else { meta.len() };
            out.insert(rel, (kind, meta.mode() & 0o7777, size, mtime, nanos, body));
        }
    }
    out
}

/// Directory times compared or not: kopia's own restore gives a directory the newest time found
/// below it (its summary's `maxTime`, kopia's snapshotfs), not the directory's own.
#[derive(Clone, Copy, PartialEq)]
enum DirTimes {
    Compared,
    Kopias,
}

fn assert_same_tree(expected: &Path, actual: &Path, dir_times: DirTimes) {
    let (a, b) = (fingerprint(expected), fingerprint(actual));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same paths"
    );
    for (path, want) in &a {
        let got = &b[path];
        let times = |f: &Fingerprint| {
            if f.0 == 'd' && dir_times == DirTimes::Kopias {
                (0, 0)
            } else {
                (f.3, f.4)
            }
        };
        assert_eq!(
            (want.0, want.1, want.2, times(want)),
            (got.0, got.1, got.2, times(got)),
            "{path}: kind, mode, size, mtime"
        );
        assert!(want.5 == got.5, "{path}: content differs");
    }
}

/// A work directory with the test tree in `data/` and a new repository of ours in `repo/`.
struct Fresh {
    work: tempfile::TempDir,
    repo_dir: std::path::PathBuf,
    data: std::path::PathBuf,
    store: Arc<FsBlobStore>,
    repo: Repository,
    /// The first snapshot of the tree, taken as Velero's kopia uploader takes one.
    first: velero_kopia::UploadOutcome,
}

fn fresh() -> Fresh {
    let work = tempfile::tempdir().unwrap();
    let (repo_dir, data) = (work.path().join("repo"), work.path().join("data"));
    make_tree(&data);
    let store = Arc::new(FsBlobStore::open(&repo_dir).unwrap());
    let mut repo = Repository::create(store.clone(), PASSWORD).unwrap();
    let (first, _) =
        velero_kopia::snapshot_directory(&mut repo, &data, &velero_options(), &|_| {}).unwrap();
    Fresh {
        work,
        repo_dir,
        data,
        store,
        repo,
        first,
    }
}

/// A snapshot as Velero's kopia uploader takes it: its source, description, tags and pin.
fn velero_options() -> SnapshotOptions {
    SnapshotOptions {
        source: source(),
        description: "Kopia Uploader".into(),
        tags: BTreeMap::from([
            ("snapshot-requester".into(), "snapshot-pod-volume".into()),
            ("snapshot-uploader".into(), "kopia".into()),
        ]),
        pins: vec!["velero-pin".into()],
        parent: None,
    }
}

fn source() -> SourceInfo {
    SourceInfo {
        host: "default".into(),
        user_name: "default".into(),
        path: "snapshot-pod-volume/kopia/ns/pod/data".into(),
    }
}

#[test]
fn a_repository_kopia_wrote_restores_here_file_for_file() {
    let Some(kopia) = Kopia::find("a_repository_kopia_wrote_restores_here_file_for_file") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (repo_dir, data) = (work.path().join("repo"), work.path().join("data"));
    make_tree(&data);
    kopia.run(&[
        "repository",
        "create",
        "filesystem",
        &format!("--path={}", repo_dir.display()),
        &format!(
            "--cache-directory={}",
            kopia.home.path().join("cache").display()
        ),
    ]);
    kopia.run(&[
        "snapshot",
        "create",
        &data.to_string_lossy(),
        "--tags=env:test",
    ]);
    let listed = kopia.run(&["snapshot", "list", "--json", &data.to_string_lossy()]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let kopia_id = listed[0]["id"].as_str().unwrap().to_string();

    let store = Arc::new(FsBlobStore::open(&repo_dir).unwrap());
    let repo = Repository::open(store.clone(), PASSWORD).unwrap();
    let snapshots = repo.snapshots(None).unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].id, kopia_id);
    assert_eq!(
        snapshots[0]
            .snapshot
            .tags
            .get("tag:env")
            .map(String::as_str),
        Some("test")
    );
    let target = work.path().join("restored");
    let stats = velero_kopia::restore(
        &repo,
        &kopia_id,
        &target,
        RestoreOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(stats.symlinks, 1);
    assert_same_tree(&data, &target, DirTimes::Compared);

    // A wrong password is refused by name, and a damaged pack is reported by name.
    let wrong = Repository::open(store.clone(), "not-it").unwrap_err();
    assert!(wrong.to_string().contains("password"), "{wrong}");
    let pack = velero_kopia::BlobStore::list(&*store, "p")
        .unwrap()
        .into_iter()
        .max_by_key(|b| b.length)
        .unwrap();
    let mut bytes = velero_kopia::BlobStore::get(&*store, &pack.id).unwrap();
    bytes[100] ^= 0xff;
    velero_kopia::BlobStore::put(&*store, &pack.id, bytes).unwrap();
    let err = velero_kopia::restore(
        &repo,
        &kopia_id,
        &work.path().join("again"),
        RestoreOptions::default(),
        &|_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains(&pack.id), "{err}");
}

#[test]
fn kopia_verifies_and_restores_what_is_written_here_and_a_second_snapshot_reads_nothing() {
    let Some(kopia) = Kopia::find(
        "kopia_verifies_and_restores_what_is_written_here_and_a_second_snapshot_reads_nothing",
    ) else {
        return;
    };
    let (fresh, options) = (fresh(), velero_options());
    let mut repo = fresh.repo;
    assert_eq!(fresh.first.files, 305);
    assert!(fresh.first.added_bytes >= 12 << 20, "{:?}", fresh.first);

    kopia.connect(&fresh.repo_dir);
    let listed = kopia.run(&["snapshot", "list", "--all", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], fresh.first.snapshot_id.as_str());
    assert_eq!(listed[0]["source"]["path"], source().path.as_str());
    assert_eq!(listed[0]["tags"]["snapshot-uploader"], "kopia");
    kopia.run(&[
        "snapshot",
        "verify",
        "--verify-files-percent=100",
        &fresh.first.snapshot_id,
    ]);
    kopia.run(&["content", "verify", "--full"]);
    let by_kopia = fresh.work.path().join("by-kopia");
    kopia.run(&[
        "snapshot",
        "restore",
        &fresh.first.snapshot_id,
        &by_kopia.to_string_lossy(),
    ]);
    assert_same_tree(&fresh.data, &by_kopia, DirTimes::Kopias);

    // Unchanged: every file is reused from the parent, nothing of theirs is read or stored.
    let second_options = SnapshotOptions {
        parent: Some(fresh.first.snapshot_id.clone()),
        ..options
    };
    let read = std::sync::atomic::AtomicU64::new(0);
    let (second, _) =
        velero_kopia::snapshot_directory(&mut repo, &fresh.data, &second_options, &|n| {
            read.store(n, std::sync::atomic::Ordering::Relaxed)
        })
        .unwrap();
    assert_eq!(second.cached_files, 305, "{second:?}");
    assert!(second.added_bytes < 64 << 10, "{second:?}");
    let ours = fresh.work.path().join("ours");
    let reopened = Repository::open(fresh.store.clone(), PASSWORD).unwrap();
    velero_kopia::restore(
        &reopened,
        &second.snapshot_id,
        &ours,
        RestoreOptions { sparse: true },
        &|_| {},
    )
    .unwrap();
    assert_same_tree(&fresh.data, &ours, DirTimes::Compared);
    kopia.run(&[
        "snapshot",
        "verify",
        "--verify-files-percent=100",
        &second.snapshot_id,
    ]);
}

/// Deleting a snapshot and running maintenance: with kopia's safety margins nothing young is
/// touched; without them the deleted snapshot's contents leave the index, and the repository stays
/// one kopia verifies, restores from and runs its own full maintenance on.
#[test]
fn maintenance_keeps_the_repository_whole_for_kopia() {
    let Some(kopia) = Kopia::find("maintenance_keeps_the_repository_whole_for_kopia") else {
        return;
    };
    use velero_kopia::maintenance::{Safety, run_full};
    let (fresh, options) = (fresh(), velero_options());
    let mut repo = fresh.repo;
    std::fs::remove_file(fresh.data.join("big.bin")).unwrap();
    std::fs::write(
        fresh.data.join("new.txt"),
        b"after the fresh.first snapshot\n",
    )
    .unwrap();
    let (second, _) =
        velero_kopia::snapshot_directory(&mut repo, &fresh.data, &options, &|_| {}).unwrap();
    let mut writer = velero_kopia::writer::Writer::new(&mut repo).unwrap();
    writer.delete_manifest(&fresh.first.snapshot_id);
    writer.flush().unwrap();

    let careful = run_full(&mut repo, "default@default", Safety::FULL).unwrap();
    assert_eq!(
        careful.contents_deleted, 0,
        "nothing a day old yet: {careful:?}"
    );
    assert_eq!(careful.blobs_deleted, 0, "{careful:?}");
    let eager = run_full(&mut repo, "default@default", Safety::NONE).unwrap();
    assert!(eager.contents_deleted >= 3, "big.bin's parts: {eager:?}");
    assert!(eager.watermark.is_some(), "{eager:?}");
    assert_eq!(repo.snapshots(None).unwrap().len(), 1);
    let refused = run_full(&mut repo, "someone@else", Safety::NONE).unwrap_err();
    assert!(refused.to_string().contains("default@default"), "{refused}");

    kopia.connect(&fresh.repo_dir);
    kopia.run(&[
        "snapshot",
        "verify",
        "--verify-files-percent=100",
        &second.snapshot_id,
    ]);
    kopia.run(&["content", "verify", "--full"]);
    kopia.run(&["maintenance", "run", "--full", "--safety=none"]);
    kopia.run(&["content", "verify", "--full"]);
    let back = fresh.work.path().join("back");
    kopia.run(&[
        "snapshot",
        "restore",
        &second.snapshot_id,
        &back.to_string_lossy(),
    ]);
    assert_same_tree(&fresh.data, &back, DirTimes::Kopias);
    // And it still opens and restores here after kopia's own maintenance.
    let reopened = Repository::open(fresh.store.clone(), PASSWORD).unwrap();
    let ours = fresh.work.path().join("ours");
    velero_kopia::restore(
        &reopened,
        &second.snapshot_id,
        &ours,
        RestoreOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert_same_tree(&fresh.data, &ours, DirTimes::Compared);
}

/// Sets the store time of every blob whose ID starts with `prefix` back by `seconds` (a
/// filesystem repository's blob time is its file's mtime; kopia's sharding splits the ID into
/// directories).
fn age_blobs(repo_dir: &Path, prefix: &str, seconds: i64) -> usize {
    fn walk(dir: &Path, id: &str, prefix: &str, seconds: i64, aged: &mut usize) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{id}{name}"), prefix, seconds, aged);
            } else if let Some(stem) = name.strip_suffix(".f")
                && format!("{id}{stem}").starts_with(prefix)
            {
                let meta = entry.metadata().unwrap();
                let t = filetime::FileTime::from_unix_time(meta.mtime() - seconds, 0);
                filetime::set_file_mtime(entry.path(), t).unwrap();
                *aged += 1;
            }
        }
    }
    let mut aged = 0;
    walk(repo_dir, "", prefix, seconds, &mut aged);
    aged
}

/// Kopia's epoch maintenance done here: settled epochs are compacted and folded into a range
/// checkpoint that kopia reads in place of the blobs it replaced, old markers go, and an epoch's
/// uncompacted index blobs are deleted once its compaction is old enough for every client to
/// have seen it. Every snapshot stays listed and whole, for kopia and for velero-kopia, and
/// kopia's own maintenance carries on from there.
#[test]
fn epoch_maintenance_compacts_indexes_kopia_reads_in_their_place() {
    let Some(kopia) = Kopia::find("epoch_maintenance_compacts_indexes_kopia_reads_in_their_place")
    else {
        return;
    };
    use velero_kopia::BlobStore as _;
    use velero_kopia::maintenance::{Safety, run_full};
    let (fresh, options) = (fresh(), velero_options());
    let mut repo = fresh.repo;
    let mut snapshots = vec![fresh.first.snapshot_id.clone()];
    // Ten epochs with a snapshot each. Each marker stands for a day of writes: kopia advances the
    // write epoch once it spans a day and holds 20 index blobs or 10 MB (compaction's unit tests
    // check that rule), which a test cannot wait for.
    for epoch in 1..=10 {
        fresh
            .store
            .put(&format!("xe{epoch}"), b"epoch-marker".to_vec())
            .unwrap();
        std::fs::write(fresh.data.join("changing"), format!("epoch {epoch}\n")).unwrap();
        let (snap, _) =
            velero_kopia::snapshot_directory(&mut repo, &fresh.data, &options, &|_| {}).unwrap();
        snapshots.push(snap.snapshot_id);
    }
    let listed = |prefix: &str| fresh.store.list(prefix).unwrap().len();
    assert_eq!(listed("xn"), 11, "one index blob per snapshot");
    let settled_uncompacted = || {
        fresh
            .store
            .list("xn")
            .unwrap()
            .iter()
            .filter(|b| velero_kopia::epoch::epoch_of(&b.id).is_some_and(|e| e <= 8))
            .count()
    };

    let report = run_full(&mut repo, "default@default", Safety::FULL)
        .unwrap()
        .epochs;
    assert_eq!(report.compacted_epoch, Some(0), "{report:?}");
    assert_eq!(
        report.range,
        Some((0, 8)),
        "epochs 0-8 are settled: {report:?}"
    );
    assert_eq!(report.advanced_to, None, "epoch 10 is young: {report:?}");
    assert_eq!((listed("xs0_"), listed("xr0_8_")), (1, 1));
    assert_eq!(listed("xe"), 2, "markers before epoch 9 are gone");
    assert_eq!(
        settled_uncompacted(),
        9,
        "nothing replaced is deleted within the safety margin"
    );

    // The range checkpoint, not the blobs it replaced, is what readers read now.
    let state = velero_kopia::epoch::Epochs::from_listing(&fresh.store.list("x").unwrap());
    assert!(state.index_blobs[0].starts_with("xr0_8_"), "{state:?}");
    assert!(
        state.index_blobs[1..]
            .iter()
            .all(|b| velero_kopia::epoch::epoch_of(b).is_some_and(|e| e > 8)),
        "the range and the epochs after it: {state:?}"
    );
    // Out of the way while kopia reads: it must find everything through the range checkpoint.
    let replaced: Vec<(String, Vec<u8>)> = fresh
        .store
        .list("xn")
        .unwrap()
        .into_iter()
        .filter(|b| velero_kopia::epoch::epoch_of(&b.id).is_some_and(|e| e <= 8))
        .map(|b| (b.id.clone(), fresh.store.get(&b.id).unwrap()))
        .collect();
    assert_eq!(replaced.len(), settled_uncompacted());
    for (id, _) in &replaced {
        fresh.store.delete(id).unwrap();
    }
    kopia.connect(&fresh.repo_dir);
    let verify_all = || {
        let list: serde_json::Value =
            serde_json::from_str(&kopia.run(&["snapshot", "list", "--all", "--json"])).unwrap();
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert_eq!(ids.len(), snapshots.len(), "{list}");
        assert!(
            snapshots.iter().all(|s| ids.contains(&s.as_str())),
            "{list}"
        );
        kopia.run(&["content", "verify", "--full"]);
        kopia.run(&["snapshot", "verify", "--verify-files-percent=100"]);
    };
    verify_all();
    let reopened = Repository::open(fresh.store.clone(), PASSWORD).unwrap();
    assert_eq!(reopened.snapshots(None).unwrap().len(), snapshots.len());
    for (id, data) in replaced {
        fresh.store.put(&id, data).unwrap();
    }

    // Five hours later (by the store's clock: the newest index blob) epoch 0's compaction has had
    // time to reach every client: its uncompacted blob goes.
    assert_eq!(age_blobs(&fresh.repo_dir, "xs0_", 5 * 3600), 1);
    let report = run_full(&mut repo, "default@default", Safety::FULL)
        .unwrap()
        .epochs;
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(listed("xn0_"), 0);
    assert_eq!(
        settled_uncompacted(),
        8,
        "epochs 1-8 have no compaction of their own"
    );
    verify_all();

    // kopia's own full maintenance carries on from what was done here.
    kopia.run(&["maintenance", "run", "--full", "--safety=none"]);
    verify_all();
    let reopened = Repository::open(fresh.store.clone(), PASSWORD).unwrap();
    let back = fresh.work.path().join("back");
    velero_kopia::restore(
        &reopened,
        snapshots.last().unwrap(),
        &back,
        RestoreOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert_same_tree(&fresh.data, &back, DirTimes::Compared);
}
