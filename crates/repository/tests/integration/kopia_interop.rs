//! Kopia-format volume repositories in an S3 location, checked from outside by kopia 0.22.3
//! itself (found via `$KOPIA`, `PATH`, the tools directory): what velero-rs writes at
//! `<prefix>/kopia/<namespace>/` kopia connects to over S3, lists with Velero's source and tags,
//! verifies and restores; and the faults an operator meets give errors that say what to check.

use anyhow::{Context, ensure};
use velero_repository::{
    ByteProgress, OpenMode, RepositoryError, RepositoryFormat, RepositoryLocation,
    VolumeRepository, VolumeSource,
};

use crate::restic_interop::{PASSWORD, blocking, fixture_volume, s3_location, same_tree};

fn volume() -> VolumeSource {
    VolumeSource {
        pod_namespace: "app".into(),
        pod_name: "web-0".into(),
        volume: "data".into(),
        ..VolumeSource::default()
    }
}

fn open(
    loc: &RepositoryLocation,
    password: &str,
    mode: OpenMode,
    rt: tokio::runtime::Handle,
) -> Result<VolumeRepository, RepositoryError> {
    VolumeRepository::open(RepositoryFormat::Kopia, loc, password, rt, mode, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_s3_location_kopia_reads_what_we_write_and_faults_are_named() -> anyhow::Result<()> {
    let Some(kopia) = velero_test_harness::tools::kopia_or_skip(
        "on_an_s3_location_kopia_reads_what_we_write_and_faults_are_named",
    ) else {
        return Ok(());
    };
    let (work, source) = fixture_volume()?;
    let (s3, store) = s3_location().await?;
    // Where velero_podvolume::repository_location puts a kopia repository, as Velero does.
    let loc = RepositoryLocation {
        store: store.store().clone(),
        root: object_store::path::Path::from("cluster-a/kopia/app"),
        cache_dir: None,
    };

    let (l, s) = (loc.clone(), source.clone());
    let snap = blocking(move |rt| {
        let repo = open(&l, PASSWORD, OpenMode::OrCreate, rt)?;
        Ok(repo.backup(&s, &volume(), &ByteProgress::default())?.1)
    })
    .await?;
    let target = work.path().join("out");
    let (l, t, id) = (loc.clone(), target.clone(), snap.id.clone());
    blocking(move |rt| {
        open(&l, PASSWORD, OpenMode::Existing, rt)?.restore(&id, &t, &ByteProgress::default())?;
        Ok(())
    })
    .await?;
    same_tree(&source, &target)?;
    let udmrepo = std::fs::read_to_string(
        s3.root()
            .join("volumes/cluster-a/kopia/app/udmrepo.Repository"),
    )?;
    ensure!(udmrepo.contains("uniqueID"), "Velero's blob: {udmrepo}");

    // kopia over S3, as Velero's node agent connects to the same prefix.
    let home = tempfile::tempdir()?;
    let endpoint = s3.endpoint();
    let host = endpoint.trim_start_matches("http://").to_string();
    let cli = velero_test_harness::tools::KopiaCli::new(&kopia, home.path(), PASSWORD);
    let kopia_run = |args: &[&str]| cli.run(args);
    let restored_by_kopia = work.path().join("by-kopia");
    // kopia's calls block; the S3 server runs on this test's runtime.
    let listed = tokio::task::block_in_place(|| -> anyhow::Result<String> {
        kopia_run(&[
            "repository",
            "connect",
            "s3",
            "--bucket=volumes",
            "--prefix=cluster-a/kopia/app/",
            &format!("--endpoint={host}"),
            "--disable-tls",
            "--region=minio",
            &format!("--access-key={}", s3.access_key()),
            &format!("--secret-access-key={}", s3.secret_key()),
            &format!("--cache-directory={}", home.path().join("cache").display()),
            "--override-username=default",
            "--override-hostname=default",
        ])?;
        let listed = kopia_run(&["snapshot", "list", "--all", "--json"])?;
        kopia_run(&["snapshot", "verify", "--verify-files-percent=100", &snap.id])?;
        kopia_run(&["content", "verify", "--full"])?;
        kopia_run(&[
            "snapshot",
            "restore",
            &snap.id,
            &restored_by_kopia.to_string_lossy(),
        ])?;
        Ok(listed)
    })?;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    ensure!(listed[0]["id"] == snap.id.as_str(), "{listed}");
    ensure!(
        listed[0]["source"]["path"] == "snapshot-pod-volume/kopia/app/web-0/data",
        "{listed}"
    );
    same_tree(&source, &restored_by_kopia)?;

    // A wrong password names the Secret to restore.
    let l = loc.clone();
    let wrong =
        blocking(move |rt| open(&l, "not-the-password", OpenMode::Existing, rt).map(|_| ()))
            .await
            .unwrap_err();
    ensure!(
        wrong.to_string().contains("velero-repo-credentials"),
        "{wrong:#}"
    );
    // A damaged pack names the pack; nothing is written.
    let packs = s3.root().join("volumes/cluster-a/kopia/app");
    let pack = std::fs::read_dir(&packs)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('p'))
        })
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .context("a data pack")?;
    let mut bytes = std::fs::read(&pack)?;
    bytes[64] ^= 0xff;
    std::fs::write(&pack, &bytes)?;
    let before = std::fs::read_dir(&packs)?.count();
    let (l, t, id) = (loc.clone(), work.path().join("damaged"), snap.id.clone());
    let damaged = blocking(move |rt| {
        open(&l, PASSWORD, OpenMode::Existing, rt)?.restore(&id, &t, &ByteProgress::default())?;
        Ok(())
    })
    .await
    .unwrap_err();
    let pack_name = pack
        .file_name()
        .context("a name")?
        .to_string_lossy()
        .into_owned();
    ensure!(damaged.to_string().contains(&pack_name), "{damaged:#}");
    ensure!(
        std::fs::read_dir(&packs)?.count() == before,
        "nothing written"
    );

    // An unreachable location names the repository and changes nothing.
    drop(s3);
    let l = loc.clone();
    let unreachable = blocking(move |rt| open(&l, PASSWORD, OpenMode::OrCreate, rt).map(|_| ()))
        .await
        .unwrap_err();
    ensure!(
        unreachable.to_string().contains("cluster-a/kopia/app"),
        "{unreachable:#}"
    );
    Ok(())
}
