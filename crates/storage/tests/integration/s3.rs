//! The backup store against a real S3 server (s3s on loopback, SigV4 checked).

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use velero_storage::{
    BackupFile, BackupStore, DOWNLOAD_URL_TTL, LayoutError, LocationConfig, RestoreFile,
    StorageError, open_store,
};
use velero_test_harness::S3Server;

const BUCKET: &str = "velero";

fn aws_config(endpoint: &str, bucket: &str, credentials: String) -> LocationConfig {
    let config: BTreeMap<String, String> = [
        ("region", "minio"),
        ("s3ForcePathStyle", "true"),
        ("s3Url", endpoint),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    LocationConfig {
        provider: "aws".into(),
        bucket: bucket.into(),
        prefix: "cluster-a".into(),
        config,
        credentials: Some(credentials.into_bytes()),
        ca_cert: None,
    }
}

async fn server() -> (S3Server, BackupStore) {
    let server = S3Server::start().await.unwrap();
    server.create_bucket(BUCKET).unwrap();
    let store = BackupStore::open(&aws_config(
        &server.endpoint(),
        BUCKET,
        server.credentials_file(),
    ))
    .unwrap();
    (server, store)
}

async fn read_all(store: &BackupStore, key: &str) -> Vec<u8> {
    let mut reader = store.get_object(key).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

async fn put_backup(store: &BackupStore, name: &str) {
    let l = store.layout().clone();
    store
        .put_object(
            &l.backup_metadata(name),
            Bytes::from(format!("{{\"name\":\"{name}\"}}")),
        )
        .await
        .unwrap();
    store
        .put_object(&l.backup_contents(name), Bytes::from_static(b"tarball"))
        .await
        .unwrap();
    store
        .put_object(
            &l.backup_file(name, BackupFile::Log),
            Bytes::from_static(b"log"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn round_trip_with_the_default_profile() {
    let (server, store) = server().await;
    let l = store.layout().clone();
    assert_eq!(store.list_backups().await.unwrap(), Vec::<String>::new());
    assert!(!store.backup_exists("b1").await.unwrap());

    put_backup(&store, "b1").await;
    assert_eq!(store.list_backups().await.unwrap(), vec!["b1"]);
    assert!(store.backup_exists("b1").await.unwrap());
    assert_eq!(
        store.get_backup_metadata("b1").await.unwrap(),
        b"{\"name\":\"b1\"}"
    );
    assert_eq!(read_all(&store, &l.backup_contents("b1")).await, b"tarball");
    assert!(
        store
            .object_exists(&l.backup_file("b1", BackupFile::Log))
            .await
            .unwrap()
    );

    // Overwrite, then the conditional write that must not overwrite.
    store
        .put_object(&l.backup_contents("b1"), Bytes::from_static(b"tarball v2"))
        .await
        .unwrap();
    assert_eq!(
        read_all(&store, &l.backup_contents("b1")).await,
        b"tarball v2"
    );
    let key = l.backup_file("b1", BackupFile::Results);
    assert!(
        store
            .put_object_if_absent(&key, Bytes::from_static(b"first"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_object_if_absent(&key, Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(read_all(&store, &key).await, b"first");

    let missing = l.backup_contents("nope");
    assert!(!store.object_exists(&missing).await.unwrap());
    let err = store.get_object(&missing).await.err().unwrap();
    assert_eq!(err, StorageError::NotFound { key: missing });
    assert!(!err.location_unavailable());

    // The prefix is honoured: the keys live under cluster-a/ in the bucket.
    let raw = open_store(&aws_config(
        &server.endpoint(),
        BUCKET,
        server.credentials_file(),
    ))
    .unwrap();
    let listed = raw
        .list_with_delimiter(None)
        .await
        .unwrap()
        .common_prefixes
        .into_iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>();
    assert_eq!(listed, vec!["cluster-a"]);
}

#[tokio::test]
async fn a_named_profile_is_used() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket(BUCKET).unwrap();
    let credentials = format!(
        "[default]\naws_access_key_id=wrong\naws_secret_access_key=wrong\n\n\
         [profile backup]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        server.access_key(),
        server.secret_key()
    );
    let mut cfg = aws_config(&server.endpoint(), BUCKET, credentials);
    let wrong = BackupStore::open(&cfg).unwrap();
    assert!(matches!(
        wrong.is_valid().await,
        Err(StorageError::AccessDenied { .. })
    ));
    cfg.config.insert("profile".into(), "backup".into());
    let store = BackupStore::open(&cfg).unwrap();
    store.is_valid().await.unwrap();
    put_backup(&store, "b1").await;
    assert_eq!(store.list_backups().await.unwrap(), vec!["b1"]);
}

#[tokio::test]
async fn streamed_multipart_upload() {
    let (_server, store) = server().await;
    let key = store.layout().backup_contents("big");
    // 25 MiB in 64 KiB writes: more than two 10 MiB parts, never held in memory at once by us.
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let chunks = 25 * 16;
    let mut writer = store.writer(&key).unwrap();
    for _ in 0..chunks {
        writer.write_all(&chunk).await.unwrap();
    }
    assert!(
        !store.object_exists(&key).await.unwrap(),
        "visible before shutdown"
    );
    writer.shutdown().await.unwrap();

    let mut reader = store.get_object(&key).await.unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                ((total + i) % (64 * 1024) % 251) as u8,
                "byte {}",
                total + i
            );
        }
        total += n;
    }
    assert_eq!(total, chunks * chunk.len());

    // An aborted upload leaves nothing behind.
    let aborted = store.layout().backup_contents("aborted");
    let mut writer = store.writer(&aborted).unwrap();
    for _ in 0..(12 * 16) {
        writer.write_all(&chunk).await.unwrap();
    }
    writer.abort().await.unwrap();
    assert!(!store.object_exists(&aborted).await.unwrap());
}

#[tokio::test]
async fn validation_allows_only_velero_directories() {
    let (_server, store) = server().await;
    store.is_valid().await.unwrap();
    let root = store.layout().root().to_string();
    for key in [
        "backups/b1/velero-backup.json",
        "restores/r1/restore-r1-logs.gz",
        "kopia/ns/kopia.repository",
        "metadata/revision",
        "README",
    ] {
        store
            .put_object(&format!("{root}{key}"), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    store.is_valid().await.unwrap();

    store
        .put_object(&format!("{root}photos/cat.jpg"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let err = store.is_valid().await.unwrap_err();
    assert_eq!(
        err,
        StorageError::Layout(LayoutError::ForeignDirectories(vec!["photos".into()]))
    );
    assert!(err.to_string().contains("photos"), "{err}");
}

#[tokio::test]
async fn deleting_a_backup_deletes_exactly_its_keys() {
    let (_server, store) = server().await;
    let l = store.layout().clone();
    for name in ["b1", "b10", "b1-x"] {
        put_backup(&store, name).await;
    }
    for kind in [RestoreFile::Log, RestoreFile::Results] {
        store
            .put_object(&l.restore_file("r1", kind), Bytes::from_static(b"r"))
            .await
            .unwrap();
    }
    store
        .put_object(
            &l.restore_file("r1", RestoreFile::VolumeInfo),
            Bytes::from_static(b"r"),
        )
        .await
        .unwrap();
    store
        .put_object(
            &l.restore_file("r10", RestoreFile::Log),
            Bytes::from_static(b"r"),
        )
        .await
        .unwrap();

    store.delete_backup("b1").await.unwrap();
    for key in [
        l.backup_metadata("b1"),
        l.backup_contents("b1"),
        l.backup_file("b1", BackupFile::Log),
    ] {
        assert!(!store.object_exists(&key).await.unwrap(), "{key} survived");
    }
    for name in ["b10", "b1-x"] {
        assert!(
            store.backup_exists(name).await.unwrap(),
            "{name} was deleted"
        );
        assert!(store.object_exists(&l.backup_contents(name)).await.unwrap());
    }
    let mut backups = store.list_backups().await.unwrap();
    backups.sort();
    assert_eq!(backups, vec!["b1-x", "b10"]);

    assert_eq!(
        store.list_restore_files("r1").await.unwrap(),
        vec![
            "cluster-a/restores/r1/r1-volumeinfo.json.gz".to_string(),
            "cluster-a/restores/r1/restore-r1-logs.gz".to_string(),
            "cluster-a/restores/r1/restore-r1-results.gz".to_string(),
        ]
    );
    store.delete_restore("r1").await.unwrap();
    assert_eq!(
        store.list_restore_files("r1").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.list_restore_files("r10").await.unwrap().len(), 1);
    // Deleting what is not there is fine, and names cannot reach outside their directory.
    store.delete_backup("b1").await.unwrap();
    for bad in ["", "a/b", ".."] {
        assert!(matches!(
            store.delete_backup(bad).await,
            Err(StorageError::InvalidKey { .. })
        ));
    }
}

#[tokio::test]
async fn a_wrong_secret_key_is_access_denied() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket(BUCKET).unwrap();
    let credentials = format!(
        "[default]\naws_access_key_id={}\naws_secret_access_key=not-the-secret\n",
        server.access_key()
    );
    let store = BackupStore::open(&aws_config(&server.endpoint(), BUCKET, credentials)).unwrap();
    let err = store.is_valid().await.unwrap_err();
    assert!(matches!(err, StorageError::AccessDenied { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("access denied by the object store"),
        "{msg}"
    );
    assert!(
        msg.contains("check the credentials in the BSL's secret"),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-secret") && !msg.contains(server.access_key()),
        "{msg}"
    );
    assert!(err.location_unavailable());
    let err = store
        .put_object("cluster-a/backups/b1/x", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AccessDenied { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_endpoint_says_so() {
    // A port nobody listens on: bind, note it, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = BackupStore::open(&aws_config(
        &endpoint,
        BUCKET,
        "[default]\naws_access_key_id=a\naws_secret_access_key=b\n".into(),
    ))
    .unwrap();
    let started = std::time::Instant::now();
    let err = store.is_valid().await.unwrap_err();
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot reach the object store at {endpoint}: ")),
        "{msg}"
    );
    assert!(msg.ends_with("check s3Url and the network"), "{msg}");
    assert!(
        started.elapsed().as_secs() < 30,
        "gave up only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let server = S3Server::start().await.unwrap();
    let store = BackupStore::open(&aws_config(
        &server.endpoint(),
        "no-such-bucket",
        server.credentials_file(),
    ))
    .unwrap();
    let expected = StorageError::NoSuchBucket {
        bucket: "no-such-bucket".into(),
    };
    assert_eq!(store.is_valid().await.unwrap_err(), expected);
    assert_eq!(expected.to_string(), "bucket no-such-bucket does not exist");
    assert_eq!(
        store
            .put_object("cluster-a/backups/b/x", Bytes::from_static(b"x"))
            .await
            .unwrap_err(),
        expected
    );
}

#[tokio::test]
async fn an_unknown_provider_lists_the_supported_ones() {
    let cfg = LocationConfig {
        provider: "velero.io/alibabacloud".into(),
        bucket: BUCKET.into(),
        ..Default::default()
    };
    let err = open_store(&cfg).err().unwrap();
    assert!(matches!(err, StorageError::UnknownProvider(_)));
    assert!(
        err.to_string()
            .contains("supported providers are aws, azure, gcp, local"),
        "{err}"
    );
}

async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn signed_download_urls_fetch_the_object() {
    let (server, store) = server().await;
    let key = store.layout().backup_file("b1", BackupFile::Log);
    store
        .put_object(&key, Bytes::from_static(b"the backup log"))
        .await
        .unwrap();
    let url = store
        .download_url(&key, DOWNLOAD_URL_TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/{BUCKET}/cluster-a/backups/b1/",
            server.endpoint()
        )),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=600"), "{url}");
    assert_eq!(fetch(&url).await, (200, b"the backup log".to_vec()));

    // publicUrl: URLs for another host name of the same server.
    let public = server.endpoint().replace("127.0.0.1", "localhost");
    let mut cfg = aws_config(&server.endpoint(), BUCKET, server.credentials_file());
    cfg.config.insert("publicUrl".into(), public.clone());
    let store = BackupStore::open(&cfg).unwrap();
    let url = store
        .download_url(&key, DOWNLOAD_URL_TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(url.starts_with(&public), "{url}");
    assert_eq!(fetch(&url).await, (200, b"the backup log".to_vec()));
}

#[tokio::test]
async fn writer_errors_are_classified() {
    let server = S3Server::start().await.unwrap();
    let store = BackupStore::open(&aws_config(
        &server.endpoint(),
        "no-such-bucket",
        server.credentials_file(),
    ))
    .unwrap();
    let key = "cluster-a/backups/b/b.tar.gz";
    let mut writer = store.writer(key).unwrap();
    writer.write_all(b"small").await.unwrap();
    let err = writer.shutdown().await.unwrap_err();
    assert_eq!(
        store.io_error(&err, key),
        StorageError::NoSuchBucket {
            bucket: "no-such-bucket".into()
        }
    );
}
