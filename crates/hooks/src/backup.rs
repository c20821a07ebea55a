//! Backup hooks (Velero's `ItemHookHandler.HandleHooks` in internal/hook/item_hook_handler.go):
//! the commands run in a pod before its items are backed up and after.

use std::sync::Mutex;
use velero_api::item::{str_or_empty, string_map};

use serde_json::Value;
use velero_report::OperationLog;

use crate::annotations::{self, InvalidHook, Phase};
use crate::exec::{self, ExecHook, HookFields, OnError};
use crate::log::{HookLog, LogStyle};
use crate::selector::{HookSelector, HookSpecSelector, SelectorError};
use crate::tracker::{HookKey, HookStats, HookTracker};

const FROM_ANNOTATION: &str = "<from-annotation>";

struct ResourceHook {
    name: String,
    selector: HookSelector,
    pre: Vec<ExecHook>,
    post: Vec<ExecHook>,
}

/// A backup's hooks: its `spec.hooks.resources[]`, the pods' annotations, the exec client and the
/// counts for `status.hookStatus`.
pub struct BackupHooks {
    client: kube::Client,
    /// Every hook of the backup runs in a place of this window.
    window: std::sync::Arc<velero_cluster::window::Window>,
    resources: Vec<ResourceHook>,
    tracker: HookTracker,
}

/// One hook to run in a pod, from wherever it was declared.
struct Planned {
    source: &'static str,
    name: String,
    index: usize,
    hook: Result<ExecHook, InvalidHook>,
}

impl BackupHooks {
    /// `resolve` turns a resource entry (`pods`, `po`) into its group-resource name.
    pub fn new(
        client: kube::Client,
        spec: Option<&velero_api::v1::BackupHooks>,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SelectorError> {
        let mut resources = Vec::new();
        for r in spec
            .and_then(|h| h.resources.as_deref())
            .unwrap_or_default()
        {
            let selector = HookSelector::new(&r.selector_spec(), resolve)?;
            let hooks = |list: &Option<Vec<velero_api::v1::BackupResourceHook>>| {
                list.iter()
                    .flatten()
                    .map(|h| ExecHook::from_spec(&h.exec))
                    .collect()
            };
            resources.push(ResourceHook {
                name: r.name.clone(),
                selector,
                pre: hooks(&r.pre_hooks),
                post: hooks(&r.post_hooks),
            });
        }
        Ok(BackupHooks {
            client,
            window: velero_cluster::window::Window::new(crate::MAX_CONCURRENT_EXECS),
            resources,
            tracker: HookTracker::default(),
        })
    }

    pub fn stats(&self) -> HookStats {
        self.tracker.stats()
    }

    /// The hooks of `pod` for `phase`: its annotation hook if it has one, else every matching
    /// spec entry's list, in order.
    fn plan(&self, pod: &Value, phase: Phase) -> Vec<Planned> {
        let annotations = string_map(pod.pointer("/metadata/annotations"));
        if let Some(hook) = annotations::backup_hook(&annotations, phase) {
            return vec![Planned {
                source: "annotation",
                name: FROM_ANNOTATION.into(),
                index: 0,
                hook,
            }];
        }
        let namespace = str_or_empty(pod, "/metadata/namespace");
        let labels = velero_api::item::labels(pod);
        let mut planned = Vec::new();
        for r in &self.resources {
            if !r.selector.applies_to("pods", namespace, &labels) {
                continue;
            }
            let list = match phase {
                Phase::Pre => &r.pre,
                Phase::Post => &r.post,
            };
            planned.extend(list.iter().enumerate().map(|(index, hook)| Planned {
                source: "spec",
                name: r.name.clone(),
                index,
                hook: Ok(hook.clone()),
            }));
        }
        planned
    }

    /// Runs the hooks of `pod` for `phase` in order, writing into `log`. `Err` when a hook with
    /// `onError: Fail` failed: its later hooks are counted but not run, and before a backup the
    /// pod is left out of it.
    pub async fn run(
        &self,
        pod: &Value,
        phase: Phase,
        log: &Mutex<OperationLog>,
    ) -> Result<(), String> {
        let planned = self.plan(pod, phase);
        if planned.is_empty() {
            return Ok(());
        }
        let namespace = str_or_empty(pod, "/metadata/namespace");
        let name = str_or_empty(pod, "/metadata/name");
        let log = HookLog {
            log,
            style: LogStyle::Backup,
            namespace,
            pod: name,
        };
        let pod_phase = str_or_empty(pod, "/status/phase");
        if pod_phase != "Running" {
            log.warn(&format!(
                "Skipping {} hooks: the pod is not running (phase {pod_phase:?})",
                phase.as_str()
            ));
            return Ok(());
        }
        let mut stopped: Option<String> = None;
        for p in planned {
            let container = match &p.hook {
                Ok(h) => h.container.clone().unwrap_or_default(),
                Err(_) => String::new(),
            };
            let key = HookKey {
                namespace: namespace.to_string(),
                pod: name.to_string(),
                phase: phase.as_str(),
                source: p.source,
                hook_name: p.name.clone(),
                container,
                index: p.index,
            };
            self.tracker.add(key.clone());
            if stopped.is_some() {
                continue;
            }
            let what = HookFields {
                name: &p.name,
                source: p.source,
                phase: phase.as_str(),
            };
            let (result, on_error) = match &p.hook {
                Ok(hook) => (
                    exec::run(&self.client, &self.window, pod, hook, &what, &log).await,
                    hook.on_error,
                ),
                Err(invalid) => (Err(invalid.message.clone()), invalid.on_error),
            };
            let fields = [
                ("hookName", p.name.as_str()),
                ("hookPhase", phase.as_str()),
                ("hookSource", p.source),
                ("hookType", "exec"),
            ];
            match result {
                Ok(()) => self.tracker.record(key, false),
                Err(e) => {
                    log.error("Error executing hook", &e, &fields);
                    self.tracker.record(key, true);
                    if on_error == OnError::Fail {
                        stopped = Some(e);
                    }
                }
            }
        }
        match stopped {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
