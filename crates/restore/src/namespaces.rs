//! Target namespaces (Velero's `EnsureNamespaceExistsAndIsReady` in pkg/util/kube/utils.go): each
//! one checked, waited for while it terminates, and created from the backed-up Namespace object,
//! once per restore however many items go into it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::OnceCell;
use velero_cluster::write::ApiWriter;
use velero_report::locked;

use crate::item::reset_metadata;

/// Whether a target namespace is there to restore into, decided once per restore.
type Ready = Arc<OnceCell<Result<(), String>>>;

pub(crate) struct TargetNamespaces {
    ready: Mutex<HashMap<String, Ready>>,
    /// The backup's Namespace objects by their backed-up name.
    from_backup: BTreeMap<String, Value>,
    terminating_timeout: Duration,
}

impl TargetNamespaces {
    pub(crate) fn new(from_backup: BTreeMap<String, Value>, terminating_timeout: Duration) -> Self {
        TargetNamespaces {
            ready: Mutex::new(HashMap::new()),
            from_backup,
            terminating_timeout,
        }
    }

    /// Makes sure `target` (the mapped name of backed-up namespace `original`) exists and is not
    /// terminating. `created` is called once, by the call that created it.
    pub(crate) async fn ensure(
        &self,
        writer: &ApiWriter,
        original: &str,
        target: &str,
        created: &(dyn Fn() + Sync),
    ) -> Result<(), String> {
        let cell = locked(&self.ready)
            .entry(target.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| self.create(writer, original, target, created))
            .await
            .clone()
    }

    async fn create(
        &self,
        writer: &ApiWriter,
        original: &str,
        target: &str,
        created: &(dyn Fn() + Sync),
    ) -> Result<(), String> {
        let path = format!("/api/v1/namespaces/{target}");
        let deadline = tokio::time::Instant::now() + self.terminating_timeout;
        loop {
            match writer.get_opt(&path).await {
                Ok(Some(ns)) => {
                    let terminating = ns.pointer("/status/phase").and_then(Value::as_str)
                        == Some("Terminating")
                        || ns.pointer("/metadata/deletionTimestamp").is_some();
                    if !terminating {
                        return Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(format!(
                            "namespace {target} is still terminating after {:?}; restore it again once it is gone",
                            self.terminating_timeout
                        ));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(None) => break,
                Err(e) => return Err(format!("error getting namespace {target}: {e}")),
            }
        }
        // From the backup when it has the Namespace object (labels, annotations, spec kept).
        let mut ns =
            self.from_backup.get(original).cloned().unwrap_or_else(
                || json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}),
            );
        reset_metadata(&mut ns);
        if let Some(obj) = ns.as_object_mut() {
            obj.remove("status");
        }
        ns["metadata"]["name"] = Value::String(target.to_string());
        match writer.create("/api/v1/namespaces", &ns).await {
            Ok(_) => {
                created();
                Ok(())
            }
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(format!("error creating namespace {target}: {e}")),
        }
    }
}
