//! What a restore takes and gives: its parameters, its progress, each item's fate and the outcome
//! the controller uploads and records.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use velero_api::v1::RestoreSpec;
use velero_hooks::restore::RestoreHooks;
use velero_hooks::{HookStats, HookTracker};
use velero_report::{Level, OperationLog, OperationResults, locked};

use crate::modifiers::ResourceModifiers;
use crate::plan::{PlanNote, RestorePlan};
use crate::pod_volumes::{PodVolumeData, PodVolumeRestorer};
use crate::priorities::Priorities;
use crate::spool::SpoolError;

/// Everything a run needs besides the cluster and the tarball.
pub struct RestoreParams {
    pub velero_namespace: String,
    pub restore_name: String,
    pub backup_name: String,
    pub spec: RestoreSpec,
    pub priorities: Priorities,
    /// Most requests in flight at once (the window narrows when the server pushes back).
    pub max_in_flight: usize,
    /// How long to wait for a restored CRD to be ready (Velero's `--resource-timeout`).
    pub resource_timeout: Duration,
    /// How long to wait for a terminating namespace to go (`--terminating-resource-timeout`).
    pub terminating_timeout: Duration,
    pub modifiers: Option<ResourceModifiers>,
    /// The change-storage-class ConfigMap's mapping, if one exists.
    pub storage_classes: Option<crate::actions::StorageClassMapping>,
    /// The change-image-name ConfigMap's rules, if one exists.
    pub image_rules: Option<crate::actions::ImageRules>,
    /// Where scratch files go; the system temp dir by default.
    pub scratch_dir: Option<std::path::PathBuf>,
    /// The Restore's `spec.hooks`, resolved; pods' annotation hooks run with or without them.
    pub hooks: RestoreHooks,
    /// How long exec hooks wait for their containers when none of a pod's hooks says
    /// (Velero waits without limit; we wait as long as an item operation may take).
    pub hook_wait_limit: Duration,
    /// The backup's pod volume snapshots and the restore helper.
    pub pod_volumes: PodVolumeData,
    /// Creates restored pods' PodVolumeRestores; `None` restores no volume data.
    pub pod_volume_restorer: Option<Arc<dyn PodVolumeRestorer>>,
    /// Plan only: every write goes with `dryRun=All`, nothing that follows a write (status,
    /// field ownership, volume data, hooks) runs, and the outcome carries the plan.
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub total_items: u64,
    pub items_restored: u64,
}

/// What happened to one item, as Velero's resource list names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Skipped,
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        }
    }
}

/// The items are restored; restored pods' volume restores and exec hooks may still be running
/// (Velero's restore is `Finalizing` then). [`RestoreOutcome::finish`] waits for them and closes
/// the log.
pub struct RestoreOutcome {
    pub items_restored: u64,
    pub total_items: u64,
    /// `"<apiVersion>/<Kind>"` → sorted `ns/name(action)` (`restore-<R>-resource-list.json.gz`).
    pub resource_list: BTreeMap<String, Vec<String>>,
    /// A dry run's plan.
    pub plan: Option<RestorePlan>,
    pub(crate) log: Arc<Mutex<OperationLog>>,
    pub(crate) pending: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) hook_tracker: Arc<HookTracker>,
    pub(crate) fresh_log: OperationLog,
}

/// A restore with its pods' volumes and hooks done: the log and results to upload, and `status.hookStatus`.
pub struct FinishedRestore {
    pub log_gz: Vec<u8>,
    pub results: OperationResults,
    pub hooks: HookStats,
}

impl RestoreOutcome {
    /// Whether volume restores or exec hooks of restored pods are still running.
    pub fn work_pending(&self) -> bool {
        self.pending.iter().any(|h| !h.is_finished())
    }

    /// Errors recorded so far (volume restores and hooks may add more).
    pub fn errors_so_far(&self) -> usize {
        locked(&self.log).errors()
    }

    /// Waits for the pods' volume restores and exec hooks, then closes the log.
    pub async fn finish(self) -> FinishedRestore {
        for task in self.pending {
            if let Err(e) = task.await {
                locked(&self.log).record(
                    Level::Error,
                    None,
                    &format!("a volume restore's or exec hook's task ended abnormally: {e}"),
                );
            }
        }
        let log = std::mem::replace(&mut *locked(&self.log), self.fresh_log);
        let (log_gz, results) = log.finish();
        FinishedRestore {
            log_gz,
            results,
            hooks: self.hook_tracker.stats(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading the backup tarball: {0}")]
    Spool(#[from] SpoolError),
    /// A task of the run panicked or was cancelled.
    #[error("the restore's background work failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A bug: a task still held the run's state when the run ended.
    #[error("restore tasks outlived the run")]
    Outlived,
    /// A bug: a task panicked while it held the record of restored items.
    #[error("a restore task panicked while recording the restored items")]
    Poisoned,
}

/// A restore that stopped part-way, with the log it had written so far.
pub type RestoreFailure = velero_report::Failed<RestoreError>;

/// The messages an item's restore leaves for the log and the results.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) infos: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) errors: Vec<String>,
}

/// How the restore of one claimed item ended: the action taken, with the name the API server
/// gave the object, or none; and what a dry run's plan says of it where the action alone does not
/// tell. Every way out of an item's restore builds one.
#[derive(Default)]
pub(crate) struct Ended {
    pub(crate) action: Option<(Action, Option<String>)>,
    pub(crate) plan: Option<PlanNote>,
}

impl Ended {
    /// Nothing was created or changed (skipped, failed, or left to the cluster).
    pub(crate) fn not_restored() -> Ended {
        Ended::default()
    }

    pub(crate) fn restored(action: Action, created_name: Option<String>) -> Ended {
        Ended {
            action: Some((action, created_name)),
            plan: None,
        }
    }

    /// With what the plan says of the item.
    pub(crate) fn noted(mut self, note: PlanNote) -> Ended {
        self.plan = Some(note);
        self
    }
}
