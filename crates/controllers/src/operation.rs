//! What the backup and restore controllers share: one error type, one status patch, one progress
//! reporter. Hooks and pod volume backups plug into these operations, not beside them.

use std::fmt::Debug;
use std::time::Duration;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("{kind} task failed: {message}")]
    Task { kind: &'static str, message: String },
    #[error("updating {kind} {name}: {source}")]
    Patch {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

fn kind<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Backup" => "backup",
        "Restore" => "restore",
        _ => "object",
    }
}

/// A JSON merge patch of one operation object (spec or status: Velero's CRDs have no status
/// subresource).
pub(crate) async fn patch<K>(api: &Api<K>, name: &str, body: Value) -> Result<K, OperationError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|source| OperationError::Patch {
            kind: kind::<K>(),
            name: name.to_string(),
            source,
        })
}

/// A finished spawned task, or the operation's error when it panicked or was cancelled.
pub(crate) fn joined<K: Resource<DynamicType = ()>, T>(
    result: Result<T, tokio::task::JoinError>,
) -> Result<T, OperationError> {
    result.map_err(|e| OperationError::Task {
        kind: kind::<K>(),
        message: e.to_string(),
    })
}

/// Writes an operation's progress into its object at most once a second, from its own task, so the
/// engine never waits on the API server for it.
pub(crate) struct ProgressReporter<P> {
    tx: tokio::sync::watch::Sender<P>,
    task: tokio::task::JoinHandle<()>,
}

impl<P: Copy + Default + Send + Sync + 'static> ProgressReporter<P> {
    /// `status` turns a progress into the status fields to merge (`{"progress": {...}}`).
    pub(crate) fn start<K>(
        api: Api<K>,
        name: String,
        status: impl Fn(P) -> Value + Send + 'static,
    ) -> Self
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (tx, mut rx) = tokio::sync::watch::channel(P::default());
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let progress = *rx.borrow_and_update();
                let body = serde_json::json!({ "status": status(progress) });
                if let Err(e) = patch(&api, &name, body).await {
                    // The next report or the final status says it again.
                    tracing::debug!("reporting progress: {e}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        ProgressReporter { tx, task }
    }

    pub(crate) fn report(&self, progress: P) {
        // Only fails once the reporter has stopped.
        let _ = self.tx.send(progress);
    }

    /// Stops reporting: the final status carries the final progress, so there is no point waiting
    /// out the reporter's pause.
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// A count in one of Velero's int32 status fields; one beyond its range saturates instead of
/// wrapping.
pub(crate) fn status_count<N: TryInto<i32>>(n: N) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// A count Velero leaves out when it is zero (`warnings`, `errors`: Go's `omitempty`).
pub(crate) fn nonzero_count<N: TryInto<i32>>(n: N) -> Option<i32> {
    Some(status_count(n)).filter(|n| *n > 0)
}

/// `status.hookStatus` as Velero sets it: only once a hook was attempted, and with its zero
/// counts left out (Go's `omitempty`), so `hooksFailed` appears only when one failed.
pub(crate) fn hook_status(stats: velero_hooks::HookStats) -> Option<velero_api::v1::HookStatus> {
    (stats.attempted > 0).then(|| velero_api::v1::HookStatus {
        hooks_attempted: nonzero_count(stats.attempted),
        hooks_failed: nonzero_count(stats.failed),
    })
}

/// An operation that failed validation (Velero's `FailedValidation`): `fields` (the prepared
/// spec, metadata, the kind's own status fields) merged with the phase and the errors, in one
/// patch.
pub(crate) async fn validation_failed<K>(
    api: &Api<K>,
    name: &str,
    errors: &[String],
    mut fields: Value,
) -> Result<(), OperationError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    tracing::info!(kind = kind::<K>(), %name, ?errors, "failed validation");
    let status = serde_json::json!({ "phase": "FailedValidation", "validationErrors": errors });
    match fields.get_mut("status").and_then(Value::as_object_mut) {
        Some(existing) => existing.extend(status.as_object().cloned().unwrap_or_default()),
        None => fields["status"] = status,
    }
    patch(api, name, fields).await.map(|_| ())
}

/// What a failed run leaves in the location: its log with the failure as the last error line
/// (`level=error msg="backup failed" error="…"`, as Velero logs it) and its results, so `velero
/// backup logs` and `velero restore logs` tell why; and its counts, for the status.
pub(crate) struct FailureFiles {
    pub(crate) log: bytes::Bytes,
    pub(crate) results: bytes::Bytes,
    pub(crate) tally: Tally,
}

impl FailureFiles {
    pub(crate) fn new(mut log: velero_report::OperationLog, what: &str, reason: &str) -> Self {
        tracing::warn!("{what} failed: {reason}");
        log.error(
            &format!("{what} failed"),
            reason,
            velero_report::Context::default(),
        );
        let (log_gz, results) = log.finish();
        FailureFiles {
            log: bytes::Bytes::from(log_gz),
            results: crate::gzip_json(&results),
            tally: Tally::of(&results),
        }
    }
}

/// How a run that finished ended, from its results: its error and warning counts as Velero's
/// status carries them, and whether it ends PartiallyFailed (any error) or Completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) errors: Option<i32>,
    pub(crate) warnings: Option<i32>,
    pub(crate) partially_failed: bool,
}

impl Tally {
    pub(crate) fn of(results: &velero_report::OperationResults) -> Self {
        Tally {
            errors: nonzero_count(results.errors.len()),
            warnings: nonzero_count(results.warnings.len()),
            partially_failed: !results.errors.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_zero_is_left_out() {
        assert_eq!(status_count(5_u64), 5);
        assert_eq!(status_count(u64::MAX), i32::MAX);
        assert_eq!(nonzero_count(0_usize), None);
        assert_eq!(nonzero_count(3_usize), Some(3));
    }

    #[test]
    fn a_run_with_errors_is_partially_failed() {
        let mut log = velero_report::OperationLog::backup("velero", "b");
        log.warn("w", velero_report::Context::default());
        let (_, results) = log.finish();
        assert_eq!(
            Tally::of(&results),
            Tally {
                errors: None,
                warnings: Some(1),
                partially_failed: false
            }
        );
        let mut log = velero_report::OperationLog::backup("velero", "b");
        log.error("e", "why", velero_report::Context::default());
        let (_, results) = log.finish();
        assert!(Tally::of(&results).partially_failed);
        assert_eq!(Tally::of(&results).errors, Some(1));
    }
}
