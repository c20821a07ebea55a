//! The sample Velero manifests (one or more per kind) that tests read, create and compare.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

/// Directory of the samples: `crates/api/tests/manifests`, written as Velero's docs write them.
pub fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/tests/manifests")
}

/// Every sample as `(file name, JSON)`, sorted by file name.
pub fn sample_manifests() -> anyhow::Result<Vec<(String, Value)>> {
    let dir = sample_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Nulls mean "unset" in Velero's Go types: drop them before comparing two objects.
pub fn prune_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), prune_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(prune_nulls).collect()),
        other => other.clone(),
    }
}
