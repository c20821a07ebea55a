//! GCS and Azure through the public API, without a network: no emulator of either runs here.
//! Their config mapping is unit-tested in `src/open/` (one file per provider).

use std::collections::BTreeMap;

use velero_storage::{
    BackupFile, BackupStore, DOWNLOAD_URL_TTL, LocationConfig, StorageError, open_store,
};

fn location(provider: &str, config: &[(&str, &str)], credentials: &[u8]) -> LocationConfig {
    LocationConfig {
        provider: provider.into(),
        bucket: "velero".into(),
        prefix: "cluster-a".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        credentials: Some(credentials.to_vec()),
        ca_cert: None,
    }
}

#[tokio::test]
async fn azure_with_an_account_key_signs_download_urls_offline() {
    let cfg = location(
        "velero.io/azure",
        &[
            ("storageAccount", "veleroacct"),
            (
                "storageAccountKeyEnvVar",
                "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
            ),
        ],
        // base64 of "velero-test-key"
        b"AZURE_STORAGE_ACCOUNT_ACCESS_KEY=dmVsZXJvLXRlc3Qta2V5\n",
    );
    let store = BackupStore::open(&cfg).unwrap();
    let key = store.layout().backup_file("b1", BackupFile::Log);
    let url = store
        .download_url(&key, DOWNLOAD_URL_TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.starts_with(
            "https://veleroacct.blob.core.windows.net/velero/cluster-a/backups/b1/b1-logs.gz?"
        ),
        "{url}"
    );
    assert!(url.contains("sig="), "{url}");
    assert!(url.contains("sp=r"), "read-only: {url}");
}

#[test]
fn gcp_builds_from_a_service_account_key() {
    // `disable_oauth` keeps object_store from parsing the (fake) key or fetching tokens.
    let key = br#"{"type": "service_account", "client_email": "velero@p.iam.gserviceaccount.com",
        "private_key": "fake", "private_key_id": "1", "disable_oauth": true}"#;
    assert!(open_store(&location("gcp", &[], key)).is_ok());
    let err = open_store(&location("gcp", &[("kmsKeyName", "k")], key))
        .err()
        .unwrap();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
}
