//! The backup store on a local directory.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use velero_storage::{BackupStore, DOWNLOAD_URL_TTL, LocationConfig, StorageError};

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
            .put_object_if_absent(&l.backup_log("b10"), Bytes::from_static(b"1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_object_if_absent(&l.backup_log("b10"), Bytes::from_static(b"2"))
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
