use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, ensure};
use velero_repository::{
    ByteProgress, RepositoryError, RepositoryLocation, ResticRepository, SnapshotInfo,
};

pub(crate) const PASSWORD: &str = "a-password-only-this-test-knows";

/// A volume's worth of files: one large file, many small ones in subdirectories, a symlink,
/// several modes, a sparse file and fixed modification times.
fn fixture(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir.join("small/nested"))?;
    // 12 MiB of bytes that do not compress or repeat: many chunks, no deduplication inside.
    let mut big = fs::File::create(dir.join("big.bin"))?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..12 {
        for b in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        big.write_all(&block)?;
    }
    for i in 0..600 {
        let sub = if i % 2 == 0 { "small" } else { "small/nested" };
        fs::write(
            dir.join(sub).join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )?;
    }
    fs::write(dir.join("script.sh"), "#!/bin/sh\necho hi\n")?;
    fs::set_permissions(dir.join("script.sh"), fs::Permissions::from_mode(0o755))?;
    fs::write(dir.join("secret.txt"), "only the owner reads this\n")?;
    fs::set_permissions(dir.join("secret.txt"), fs::Permissions::from_mode(0o600))?;
    std::os::unix::fs::symlink("small/f0.txt", dir.join("link"))?;
    // Two names of one file, in different directories.
    fs::write(dir.join("shared.txt"), "one file, two names\n")?;
    fs::hard_link(
        dir.join("shared.txt"),
        dir.join("small/nested/also-shared.txt"),
    )?;
    let mut sparse = fs::File::create(dir.join("sparse.img"))?;
    sparse.set_len(16 << 20)?;
    sparse.seek(SeekFrom::Start(9 << 20))?;
    sparse.write_all(b"data in the middle of a hole")?;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for name in [
        "big.bin",
        "script.sh",
        "secret.txt",
        "sparse.img",
        "small/f0.txt",
    ] {
        fs::File::options()
            .write(true)
            .open(dir.join(name))?
            .set_modified(when)?;
    }
    Ok(())
}

/// A work directory holding the [`fixture`] at `volume/`, and that path.
pub(crate) fn fixture_volume() -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf)> {
    let work = tempfile::tempdir()?;
    let source = work.path().join("volume");
    fixture(&source)?;
    Ok((work, source))
}

/// Everything comparable about a tree: per relative path, its kind, mode, mtime (seconds) and
/// content (or link target).
pub(crate) fn same_tree(expected: &Path, actual: &Path) -> anyhow::Result<()> {
    velero_test_harness::tree::same_tree(expected, actual).map_err(anyhow::Error::msg)
}

/// The sizes of the regular files under `dir`, summed, a file with several names once.
fn regular_file_bytes(dir: &Path) -> anyhow::Result<u64> {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<u64>) -> anyhow::Result<u64> {
        let mut sum = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                sum += walk(&entry.path(), seen)?;
            } else if kind.is_file() {
                let meta = entry.metadata()?;
                if seen.insert(std::os::unix::fs::MetadataExt::ino(&meta)) {
                    sum += meta.len();
                }
            }
        }
        Ok(sum)
    }
    walk(dir, &mut std::collections::HashSet::new())
}

fn restic(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    restic_with(&repo.to_string_lossy(), &[], args)
}

/// Debian's restic on the repository `repo` (a path or a backend URL), with `env` added.
fn restic_with(repo: &str, env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("restic")
        .args(["--repo", repo, "--no-cache"])
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .envs(env.iter().copied())
        .output()
        .context("running restic (scripts/setup-control-plane.sh installs Debian's restic)")?;
    ensure!(
        output.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

fn location(bucket: &Path, namespace: &str) -> anyhow::Result<RepositoryLocation> {
    let store = object_store::local::LocalFileSystem::new_with_prefix(bucket)?;
    Ok(RepositoryLocation {
        store: Arc::new(store),
        root: object_store::path::Path::from(format!("restic/{namespace}")),
        cache_dir: None,
    })
}

/// Runs a repository operation on a blocking thread, as the node agent does.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce(tokio::runtime::Handle) -> Result<T, RepositoryError> + Send + 'static,
) -> anyhow::Result<T> {
    let handle = tokio::runtime::Handle::current();
    Ok(tokio::task::spawn_blocking(move || f(handle)).await??)
}

fn tags() -> Vec<String> {
    ["backup=b1", "ns=app", "pod=web-0", "volume=data"]
        .map(String::from)
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_reads_what_we_write_and_maintenance_keeps_what_is_referenced() -> anyhow::Result<()>
{
    let (work, source) = fixture_volume()?;
    let bucket = work.path().join("bucket");
    fs::create_dir_all(&bucket)?;
    let loc = location(&bucket, "app")?;
    let repo_dir = bucket.join("restic/app");

    let (l, s) = (loc.clone(), source.clone());
    let progress = Arc::new(ByteProgress::default());
    let counted = progress.clone();
    let first: SnapshotInfo = blocking(move |rt| {
        let repo = ResticRepository::open_or_init_with_progress(&l, PASSWORD, rt, counted)?;
        Ok(repo.backup(&s, "velero", &tags(), None)?.1)
    })
    .await?;
    let (done, total) = progress.get();
    // The scan also counts the symlink's target, which is not file data.
    ensure!(
        done == first.total_bytes && total >= done && total - done < 64,
        "progress counted {done} of {total} bytes, the snapshot holds {}",
        first.total_bytes
    );
    ensure!(
        first.files == 607,
        "606 file names (two of one file) and a link: {first:?}"
    );
    ensure!(
        first.added_bytes > 12 << 20,
        "the first backup stores the data: {first:?}"
    );

    // restic lists our snapshot with our tags and restores it byte for byte.
    let listed: serde_json::Value =
        serde_json::from_str(&restic(&repo_dir, &["snapshots", "--json"])?)?;
    let snap = &listed[0];
    ensure!(snap["id"] == first.id.as_str(), "{listed}");
    ensure!(
        snap["hostname"] == "velero" && snap["tags"].to_string().contains("pod=web-0"),
        "{listed}"
    );
    let out = work.path().join("restic-out");
    restic(
        &repo_dir,
        &[
            "restore",
            &first.id,
            "--target",
            out.to_str().unwrap_or_default(),
        ],
    )?;
    let inner = out.join(source.strip_prefix("/")?);
    same_tree(&source, &inner)?;
    restic(&repo_dir, &["check", "--read-data"])?;

    // Unchanged data: the second snapshot adds next to nothing.
    let (l, s, parent) = (loc.clone(), source.clone(), first.id.clone());
    let second = blocking(move |rt| {
        let repo = ResticRepository::open_or_init(&l, PASSWORD, rt)?;
        Ok(repo.backup(&s, "velero", &tags(), Some(&parent))?.1)
    })
    .await?;
    ensure!(
        second.added_bytes < 64 << 10,
        "an unchanged volume adds {} bytes",
        second.added_bytes
    );
    // The newest snapshot of a tag is the one a claim's next backup starts from.
    let l = loc.clone();
    let (latest, none) = blocking(move |rt| {
        let repo = ResticRepository::open_or_init(&l, PASSWORD, rt)?;
        Ok((
            repo.latest_with_tag("volume=data")?,
            repo.latest_with_tag("pvc-uid=other")?,
        ))
    })
    .await?;
    ensure!(latest.as_deref() == Some(second.id.as_str()), "{latest:?}");
    ensure!(none.is_none(), "{none:?}");

    // Forget the first, prune: the second still restores, and restic finds the repository sound.
    let (l, forget, keep) = (loc.clone(), first.id.clone(), second.id.clone());
    let target = work.path().join("ours-out");
    // A reused volume's leftovers: symlinks where the backup has a file and a directory, pointing
    // out of the volume. The restore replaces them and writes nothing outside.
    let outside = work.path().join("outside");
    fs::create_dir_all(outside.join("dir"))?;
    fs::write(outside.join("victim.txt"), "untouched")?;
    fs::create_dir_all(&target)?;
    std::os::unix::fs::symlink(outside.join("victim.txt"), target.join("big.bin"))?;
    std::os::unix::fs::symlink(outside.join("dir"), target.join("small"))?;
    let t = target.clone();
    let restore_progress = Arc::new(ByteProgress::default());
    let counted = restore_progress.clone();
    let left = blocking(move |rt| {
        let repo = ResticRepository::open_or_init(&l, PASSWORD, rt)?;
        repo.forget(&[forget])?;
        repo.prune()?;
        let repo = repo.restore_counting(&keep, &t, &counted)?;
        repo.snapshots()
    })
    .await?;
    ensure!(left.len() == 1 && left[0].id == second.id, "{left:?}");
    ensure!(
        fs::read(outside.join("victim.txt"))? == b"untouched"
            && fs::read_dir(outside.join("dir"))?.next().is_none(),
        "the restore wrote through a symlink out of the volume"
    );
    // The two names are one file again.
    let inode = |p: &Path| fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    ensure!(
        inode(&target.join("shared.txt"))? == inode(&target.join("small/nested/also-shared.txt"))?,
        "the hard link was restored as two files"
    );
    // Every regular file's bytes, the sparse file's hole included, counted once.
    let (done, total) = restore_progress.get();
    let files_bytes = regular_file_bytes(&source)?;
    ensure!(
        done == total && total == files_bytes,
        "the restore counted {done} of {total} bytes, the volume's files hold {files_bytes}"
    );
    same_tree(&source, &target)?;
    // The hole is not written: the restored sparse file takes the disk its data needs.
    let restored =
        std::os::unix::fs::MetadataExt::blocks(&fs::metadata(target.join("sparse.img"))?);
    ensure!(
        restored * 512 < 4 << 20,
        "the sparse file takes {restored} blocks"
    );
    restic(&repo_dir, &["check", "--read-data"])?;

    // The wrong password says what to do.
    let l = loc.clone();
    let wrong = tokio::task::spawn_blocking(move || {
        ResticRepository::open_or_init(&l, "not-the-password", tokio::runtime::Handle::current())
            .map(|_| ())
    });
    let err = match wrong.await? {
        Ok(()) => anyhow::bail!("a wrong password opened the repository"),
        Err(e) => e,
    };
    ensure!(
        matches!(err, RepositoryError::WrongPassword { .. }),
        "{err}"
    );
    ensure!(err.to_string().contains("velero-repo-credentials"), "{err}");
    Ok(())
}

/// Both of restic's repository formats: 1 stores blobs uncompressed, 2 (the default) zstd-compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_read_what_restic_writes() -> anyhow::Result<()> {
    let (work, source) = fixture_volume()?;
    for version in ["1", "2"] {
        let bucket = work.path().join(format!("bucket-v{version}"));
        let repo_dir = bucket.join("restic/other");
        fs::create_dir_all(&repo_dir)?;
        restic(&repo_dir, &["init", "--repository-version", version])?;
        restic(
            &repo_dir,
            &[
                "backup",
                "--host",
                "velero",
                "--tag",
                "backup=from-restic",
                source.to_str().unwrap_or_default(),
            ],
        )?;
        let listed: serde_json::Value =
            serde_json::from_str(&restic(&repo_dir, &["snapshots", "--json"])?)?;
        let id = listed[0]["id"]
            .as_str()
            .context("restic's snapshot id")?
            .to_string();

        let loc = location(&bucket, "other")?;
        let target = work.path().join(format!("ours-out-v{version}"));
        let (t, wanted) = (target.clone(), id.clone());
        let snapshots = blocking(move |rt| {
            let repo = ResticRepository::open_or_init(&loc, PASSWORD, rt)?;
            let found = repo.snapshots()?;
            repo.restore(&wanted, &t)?;
            Ok(found)
        })
        .await?;
        ensure!(
            snapshots.len() == 1 && snapshots[0].id == id,
            "format {version}: {snapshots:?}"
        );
        ensure!(
            snapshots[0]
                .tags
                .contains(&"backup=from-restic".to_string()),
            "format {version}: {snapshots:?}"
        );
        same_tree(&source, &target).with_context(|| format!("format {version}"))?;
    }
    Ok(())
}

/// A pack damaged on the storage: the restore stops with an error that names the pack and what to
/// run, and the repository is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_pack_fails_the_restore_by_name() -> anyhow::Result<()> {
    let (work, source) = fixture_volume()?;
    let bucket = work.path().join("bucket");
    fs::create_dir_all(&bucket)?;
    let loc = location(&bucket, "app")?;
    let (l, s) = (loc.clone(), source.clone());
    let snap = blocking(move |rt| {
        let repo = ResticRepository::open_or_init(&l, PASSWORD, rt)?;
        Ok(repo.backup(&s, "velero", &tags(), None)?.1)
    })
    .await?;

    // The largest pack holds the big file's data; one byte in its middle changes.
    let mut packs = Vec::new();
    for dir in fs::read_dir(bucket.join("restic/app/data"))? {
        for file in fs::read_dir(dir?.path())? {
            let file = file?;
            packs.push((file.metadata()?.len(), file.path()));
        }
    }
    let (size, pack) = packs.into_iter().max().context("no pack written")?;
    let mut bytes = fs::read(&pack)?;
    let middle = (size / 2) as usize;
    bytes[middle] ^= 0x55;
    fs::write(&pack, &bytes)?;
    let pack_name = pack
        .file_name()
        .and_then(|n| n.to_str())
        .context("pack name")?
        .to_string();

    let target = work.path().join("out");
    let (l, t, id) = (loc.clone(), target.clone(), snap.id.clone());
    let restored = tokio::task::spawn_blocking(move || {
        ResticRepository::open(&l, PASSWORD, tokio::runtime::Handle::current())?
            .restore(&id, &t)
            .map(|_| ())
    })
    .await?;
    let err = match restored {
        Ok(()) => anyhow::bail!("a damaged pack restored without an error"),
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains(&pack_name) && err.contains("restic check"),
        "the error names neither the pack nor what to run: {err}"
    );
    ensure!(
        fs::read(&pack)? == bytes,
        "the restore changed the damaged pack"
    );
    Ok(())
}

/// The harness's S3 server with a bucket `volumes`, opened as a BSL's `aws` provider opens it
/// with prefix `cluster-a`.
pub(crate) async fn s3_location()
-> anyhow::Result<(velero_test_harness::S3Server, velero_storage::BackupStore)> {
    let s3 = velero_test_harness::S3Server::start().await?;
    s3.create_bucket("volumes")?;
    let config = [
        ("region", "minio"),
        ("s3ForcePathStyle", "true"),
        ("s3Url", s3.endpoint().as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let store = velero_storage::BackupStore::open(&velero_storage::LocationConfig {
        provider: "aws".into(),
        bucket: "volumes".into(),
        prefix: "cluster-a".into(),
        config,
        credentials: Some(s3.credentials_file().into_bytes()),
        ca_cert: None,
    })?;
    Ok((s3, store))
}

/// On an S3 location (the harness's S3 server on loopback, opened as a BSL's `aws` provider is):
/// our backup restores through ranged GETs of pack runs, restic pointed at the same bucket and
/// prefix lists the snapshot, and restic finds every byte we uploaded sound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_s3_location_restic_reads_what_we_write_and_we_restore_it() -> anyhow::Result<()> {
    let (work, source) = fixture_volume()?;
    let (s3, store) = s3_location().await?;
    let loc = RepositoryLocation {
        store: store.store().clone(),
        root: object_store::path::Path::from("cluster-a/restic/app"),
        cache_dir: None,
    };

    let (l, s) = (loc.clone(), source.clone());
    let snap = blocking(move |rt| {
        let repo = ResticRepository::open_or_init(&l, PASSWORD, rt)?;
        Ok(repo.backup(&s, "velero", &tags(), None)?.1)
    })
    .await?;
    let target = work.path().join("out");
    let (l, t, id) = (loc.clone(), target.clone(), snap.id.clone());
    blocking(move |rt| {
        ResticRepository::open(&l, PASSWORD, rt)?.restore(&id, &t)?;
        Ok(())
    })
    .await?;
    same_tree(&source, &target)?;

    let repo = format!("s3:{}/volumes/cluster-a/restic/app", s3.endpoint());
    let keys = [
        ("AWS_ACCESS_KEY_ID", s3.access_key()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key()),
    ];
    let restic_s3 = |args: &[&str]| restic_with(&repo, &keys, args);
    // restic's calls block; the S3 server runs on this test's runtime.
    let listed = tokio::task::block_in_place(|| restic_s3(&["snapshots", "--json"]))?;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    ensure!(listed[0]["id"] == snap.id.as_str(), "{listed}");
    // The harness's S3 server (s3s-fs) reads restic's recursive listing (`delimiter=` empty) as
    // "group by every character" and lists no packs, so restic checks the data through the
    // server's directory, which holds exactly the objects we uploaded.
    restic(
        &s3.root().join("volumes/cluster-a/restic/app"),
        &["check", "--read-data"],
    )?;
    Ok(())
}
