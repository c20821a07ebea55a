//! The backup store on a local directory.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use velero_storage::{
    BackupFile, BackupFiles, BackupStore, DOWNLOAD_URL_TTL, LocationConfig, RestoreFile,
    RestoreFiles, StorageError,
};

fn local(dir: &std::path::Path, prefix: &str) -> LocationConfig {
    LocationConfig {
        provider: "velero.io/local".into(),
        bucket: dir.to_str().unwrap().into(),
        prefix: prefix.into(),
        config: BTreeMap::new(),
        credentials: None,
        ca_cert: None,
    }
}

#[tokio::test]
async fn round_trip_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not/yet/there");
    let store = BackupStore::open(&local(&root, "/p/")).unwrap();
    store.is_valid().await.unwrap();
    let l = store.layout().clone();
    for name in ["b1", "b10"] {
        store
            .put_object(&l.backup_metadata(name), Bytes::from(name.to_string()))
            .await
            .unwrap();
        store
            .put_object(&l.backup_contents(name), Bytes::from_static(b"tar"))
            .await
            .unwrap();
    }
    assert!(root.join("p/backups/b1/velero-backup.json").is_file());
    let mut backups = store.list_backups().await.unwrap();
    backups.sort();
    assert_eq!(backups, vec!["b1", "b10"]);
    assert_eq!(store.get_backup_metadata("b10").await.unwrap(), b"b10");

    store.delete_backup("b1").await.unwrap();
    // The emptied directory goes too, or it would still be listed as a backup.
    assert_eq!(store.list_backups().await.unwrap(), vec!["b10"]);
    assert!(!root.join("p/backups/b1").exists());
    assert!(store.backup_exists("b10").await.unwrap());
    assert!(!store.backup_exists("b1").await.unwrap());

    assert!(
        store
            .put_object_if_absent(
                &l.backup_file("b10", BackupFile::Log),
                Bytes::from_static(b"1")
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_object_if_absent(
                &l.backup_file("b10", BackupFile::Log),
                Bytes::from_static(b"2")
            )
            .await
            .unwrap()
    );

    // Local files are served another way: no URL.
    assert_eq!(
        store
            .download_url(&l.backup_contents("b10"), DOWNLOAD_URL_TTL)
            .await
            .unwrap(),
        None
    );

    std::fs::create_dir_all(root.join("p/photos")).unwrap();
    std::fs::write(root.join("p/photos/cat.jpg"), b"x").unwrap();
    let err = store.is_valid().await.unwrap_err();
    assert!(err.to_string().contains("photos"), "{err}");
}

#[tokio::test]
async fn streamed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(&local(dir.path(), "")).unwrap();
    let key = store.layout().backup_contents("big");
    let chunk = vec![7u8; 1024 * 1024];
    let mut writer = store.writer(&key).unwrap();
    for _ in 0..12 {
        writer.write_all(&chunk).await.unwrap();
    }
    writer.shutdown().await.unwrap();
    let mut data = Vec::new();
    store
        .get_object(&key)
        .await
        .unwrap()
        .read_to_end(&mut data)
        .await
        .unwrap();
    assert_eq!(data.len(), 12 * 1024 * 1024);
    assert!(data.iter().all(|b| *b == 7));
    // Only the finished object is listed: no staging files.
    assert_eq!(store.list_backups().await.unwrap(), vec!["big"]);
    let err = store
        .get_object(&store.layout().backup_contents("missing"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn an_upload_whose_completion_fails_can_still_be_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(&local(dir.path(), "")).unwrap();
    let key = store.layout().backup_contents("blocked");
    // A directory where the object should go: completing the upload cannot succeed.
    std::fs::create_dir_all(dir.path().join(&key)).unwrap();
    let mut writer = store.writer(&key).unwrap();
    for _ in 0..12 {
        writer.write_all(&[1u8; 1024 * 1024]).await.unwrap();
    }
    assert!(writer.shutdown().await.is_err());
    writer.abort().await.unwrap();
    assert!(
        dir.path().join(&key).is_dir(),
        "nothing replaced the directory"
    );
}

fn gz(text: &'static str) -> Option<Bytes> {
    Some(Bytes::from_static(text.as_bytes()))
}

#[tokio::test]
async fn put_backup_writes_its_metadata_last_and_takes_everything_back_when_an_upload_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(&local(dir.path(), "")).unwrap();
    let l = store.layout().clone();
    let files = || BackupFiles {
        log: gz("log"),
        results: gz("results"),
        volume_info: gz("[]"),
        ..BackupFiles::default()
    };
    store
        .put_backup("ok", files(), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    for (file, data) in [
        (BackupFile::Log, "log"),
        (BackupFile::Results, "results"),
        (BackupFile::VolumeInfo, "[]"),
    ] {
        let path = dir.path().join(l.backup_file("ok", file));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), data, "{path:?}");
    }
    assert!(
        !dir.path()
            .join(l.backup_file("ok", BackupFile::ResourceList))
            .exists(),
        "a file left out is not written"
    );
    assert!(store.backup_exists("ok").await.unwrap());

    // The tarball is there; the results cannot be written (a directory holds their key).
    store
        .put_object(&l.backup_contents("bad"), Bytes::from_static(b"tar"))
        .await
        .unwrap();
    std::fs::create_dir_all(dir.path().join(l.backup_file("bad", BackupFile::Results))).unwrap();
    let err = store
        .put_backup("bad", files(), Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad-results.gz"), "{err}");
    assert!(
        !dir.path().join(l.backup_metadata("bad")).exists(),
        "never written"
    );
    assert!(
        !dir.path().join(l.backup_contents("bad")).exists(),
        "taken back"
    );
    assert!(
        !dir.path()
            .join(l.backup_file("bad", BackupFile::Log))
            .exists(),
        "taken back"
    );
    assert!(!store.backup_exists("bad").await.unwrap());
}

#[tokio::test]
async fn put_restore_writes_velero_s_names_and_takes_them_back_when_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(&local(dir.path(), "p")).unwrap();
    let l = store.layout().clone();
    let files = || RestoreFiles {
        log: gz("log"),
        results: gz("results"),
        resource_list: gz("{}"),
        item_operations: gz("[]"),
        volume_info: gz("[]"),
        plan: gz("{\"items\": []}"),
    };
    store.put_restore("r1", files()).await.unwrap();
    let mut written = store.list_restore_files("r1").await.unwrap();
    written.sort();
    assert_eq!(
        written,
        [
            "p/restores/r1/r1-volumeinfo.json.gz",
            "p/restores/r1/restore-r1-itemoperations.json.gz",
            "p/restores/r1/restore-r1-logs.gz",
            "p/restores/r1/restore-r1-plan.json.gz",
            "p/restores/r1/restore-r1-resource-list.json.gz",
            "p/restores/r1/restore-r1-results.gz",
        ]
    );
    std::fs::create_dir_all(
        dir.path()
            .join(l.restore_file("r2", RestoreFile::ResourceList)),
    )
    .unwrap();
    assert!(store.put_restore("r2", files()).await.is_err());
    assert!(
        !dir.path()
            .join(l.restore_file("r2", RestoreFile::Log))
            .exists(),
        "taken back"
    );
}
