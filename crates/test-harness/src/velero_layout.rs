//! Backups written the way Velero writes them, independently of velero-rs's own writer: the
//! `tar` crate lays each entry out as Velero's Go writer does (`metadata/version` first, every item
//! at its version-less path and again under `<version>-preferredversion`, mode 0755). Restore and
//! CLI tests read these to prove they take backups this project did not write.

use serde_json::{Value, json};

/// A gzip-compressed tarball of `entries` after `metadata/version` (format 1.1.0).
pub fn tarball(entries: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut append = |path: &str, data: &[u8]| -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append_data(&mut header, path, data)?;
        Ok(())
    };
    append("metadata/version", b"1.1.0\n")?;
    for (path, data) in entries {
        append(path, data)?;
    }
    Ok(builder.into_inner()?.finish()?)
}

/// The two entries Velero writes for an item of `group_resource` (`deployments.apps`) at its
/// preferred `version`.
pub fn item_entries(group_resource: &str, version: &str, item: &Value) -> Vec<(String, Vec<u8>)> {
    let name = item["metadata"]["name"].as_str().unwrap_or_default();
    let scope = match item["metadata"]["namespace"].as_str() {
        Some(ns) => format!("namespaces/{ns}/{name}.json"),
        None => format!("cluster/{name}.json"),
    };
    let data = serde_json::to_vec(item).unwrap_or_default();
    vec![
        (format!("resources/{group_resource}/{scope}"), data.clone()),
        (
            format!("resources/{group_resource}/{version}-preferredversion/{scope}"),
            data,
        ),
    ]
}

/// The items of [`handmade_backup`], each with the group-resource it is stored under: the
/// Namespace `handmade` (labelled `made=by-hand`), its ConfigMap `greeting` and its Deployment
/// `api` at apps/v1, with the server-owned fields a real backup carries.
pub fn handmade_items() -> Vec<(&'static str, Value)> {
    vec![
        (
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "handmade", "labels": {"made": "by-hand"}, "uid": "old-uid"}}),
        ),
        (
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "greeting", "namespace": "handmade", "resourceVersion": "42", "uid": "u1"}, "data": {"hello": "world"}}),
        ),
        (
            "deployments.apps",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "handmade"},
                "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "busybox"}]}}},
                "status": {"replicas": 3}}),
        ),
    ]
}

/// A small backup laid out by hand as Velero lays it out: [`handmade_items`] at version v1.
pub fn handmade_backup() -> anyhow::Result<Vec<u8>> {
    let entries: Vec<(String, Vec<u8>)> = handmade_items()
        .iter()
        .flat_map(|(group_resource, item)| item_entries(group_resource, "v1", item))
        .collect();
    tarball(&entries)
}

/// Puts a backup into a `local` location whose files are under `location_dir` (the directory the
/// location's bucket names: `backups/<name>/<name>.tar.gz` and a Completed `velero-backup.json`),
/// and creates its Backup object in namespace `velero`, as a sync from that location would.
pub async fn plant(
    client: &kube::Client,
    location_dir: &std::path::Path,
    name: &str,
    location: &str,
    tarball: &[u8],
) -> anyhow::Result<()> {
    let dir = location_dir.join("backups").join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.tar.gz")), tarball)?;
    let backup = json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero"},
        "spec": {"storageLocation": location, "includedNamespaces": ["*"]},
        "status": {"phase": "Completed", "version": 1, "formatVersion": "1.1.0",
                   "startTimestamp": "2026-01-01T00:00:00Z", "completionTimestamp": "2026-01-01T00:00:01Z"},
    });
    std::fs::write(
        dir.join("velero-backup.json"),
        serde_json::to_vec_pretty(&backup)?,
    )?;
    crate::create_object(client, backup).await
}
