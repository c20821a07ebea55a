//! The S3 server speaks real S3 to a real S3 client and enforces its credentials.

use futures::TryStreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};
use velero_test_harness::S3Server;

fn client(server: &S3Server, bucket: &str, secret_key: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id(server.access_key())
        .with_secret_access_key(secret_key)
        .with_region("us-east-1")
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_round_trip() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket("velero").unwrap();
    let store = client(&server, "velero", server.secret_key());

    let key = Path::from("backups/nightly/nightly.tar.gz");
    let body = b"not really a tarball".to_vec();
    store
        .put(&key, PutPayload::from(body.clone()))
        .await
        .unwrap();
    store
        .put(
            &Path::from("restores/r1/log.gz"),
            PutPayload::from_static(b"log"),
        )
        .await
        .unwrap();

    let fetched = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(fetched.as_ref(), body.as_slice());
    // The object really is a file under the server's root.
    let on_disk =
        std::fs::read(server.root().join("velero/backups/nightly/nightly.tar.gz")).unwrap();
    assert_eq!(on_disk, body);

    let listed: Vec<_> = store
        .list(Some(&Path::from("backups")))
        .try_collect()
        .await
        .unwrap();
    let keys: Vec<_> = listed
        .iter()
        .map(|meta| meta.location.to_string())
        .collect();
    assert_eq!(keys, ["backups/nightly/nightly.tar.gz"]);
    assert_eq!(listed[0].size, body.len() as u64);

    let listing = store.list_with_delimiter(None).await.unwrap();
    let prefixes: Vec<_> = listing
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(prefixes, ["backups", "restores"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_key_is_rejected() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket("velero").unwrap();
    let impostor = client(&server, "velero", "not-the-secret-key");

    let err = impostor
        .put(&Path::from("evil.txt"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("403") || err.to_string().contains("SignatureDoesNotMatch"),
        "{err}"
    );
    assert!(!server.root().join("velero/evil.txt").exists());
    assert!(impostor.list(None).try_collect::<Vec<_>>().await.is_err());

    // The right key still works against the same server.
    let store = client(&server, "velero", server.secret_key());
    store
        .put(&Path::from("ok.txt"), PutPayload::from_static(b"ok"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_an_error() {
    let server = S3Server::start().await.unwrap();
    let store = client(&server, "absent", server.secret_key());
    assert!(
        store
            .put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .is_err()
    );
}
