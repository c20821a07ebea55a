//! Restore hooks (internal/hook/item_hook_handler.go's `InitContainerRestoreHookHandler` and
//! wait_exec_hook_handler.go in Velero): init containers added to a restored pod, and commands run
//! in it once its containers are up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use velero_report::OperationLog;

use crate::annotations::{self, InvalidHook};
pub use crate::exec::RestoreExecHook;
use crate::exec::{self, ExecHook, HookFields, OnError};
use crate::log::{HookLog, LogStyle};
use crate::selector::{HookSelector, HookSpecSelector, SelectorError};
use crate::tracker::{HookKey, HookTracker};
use velero_api::item::string_map;

/// Velero's file-system restore puts this init container first; hook init containers go after it
/// so that they see the restored data.
pub const RESTORE_WAIT_CONTAINER: &str = "restore-wait";

#[derive(Debug)]
struct ResourceHook {
    name: String,
    selector: HookSelector,
    init: Vec<Value>,
    exec: Vec<RestoreExecHook>,
}

/// A restore's `spec.hooks.resources[]`, resolved.
#[derive(Debug, Default)]
pub struct RestoreHooks {
    resources: Vec<ResourceHook>,
}

/// One exec hook planned for a restored pod.
#[derive(Clone, Debug)]
pub struct PlannedExec {
    pub source: &'static str,
    pub name: String,
    pub index: usize,
    pub hook: Result<RestoreExecHook, InvalidHook>,
}

impl RestoreHooks {
    pub fn new(
        spec: Option<&velero_api::v1::RestoreHooks>,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SelectorError> {
        let mut resources = Vec::new();
        for r in spec
            .and_then(|h| h.resources.as_deref())
            .unwrap_or_default()
        {
            let selector = HookSelector::new(&r.selector_spec(), resolve)?;
            let mut init = Vec::new();
            let mut exec = Vec::new();
            for hook in r.post_hooks.iter().flatten() {
                if let Some(i) = &hook.init {
                    init.extend(i.init_containers.iter().map(|raw| raw.0.clone()));
                }
                if let Some(e) = &hook.exec {
                    exec.push(RestoreExecHook {
                        exec: ExecHook {
                            container: e.container.clone().filter(|c| !c.is_empty()),
                            command: e.command.clone(),
                            on_error: OnError::from_api(e.on_error),
                            timeout: e.exec_timeout.and_then(|t| t.to_std()),
                        },
                        wait_timeout: e.wait_timeout.and_then(|t| t.to_std()),
                        wait_for_ready: e.wait_for_ready == Some(true),
                    });
                }
            }
            resources.push(ResourceHook {
                name: r.name.clone(),
                selector,
                init,
                exec,
            });
        }
        Ok(RestoreHooks { resources })
    }

    /// Velero's init-restore-hook action on a pod about to be created in `target_namespace`: the
    /// annotation's init container, or those of every matching spec entry, inserted before the
    /// pod's own (after `restore-wait` when it is first). Returns how many were added.
    pub fn add_init_containers(
        &self,
        pod: &mut Value,
        target_namespace: &str,
    ) -> Result<usize, String> {
        let annotations = string_map(pod.pointer("/metadata/annotations"));
        let added: Vec<Value> = match annotations::restore_init_container(&annotations) {
            Some(container) => vec![container?],
            None => {
                let labels = velero_api::item::labels(pod);
                let mut added = Vec::new();
                for r in &self.resources {
                    if !r.selector.applies_to("pods", target_namespace, &labels) {
                        continue;
                    }
                    for container in &r.init {
                        validate_init_container(&r.name, container)?;
                        added.push(container.clone());
                    }
                }
                added
            }
        };
        if added.is_empty() {
            return Ok(0);
        }
        let count = added.len();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Err("the pod has no spec".into());
        };
        let mut existing = match spec.remove("initContainers") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        let mut init = Vec::with_capacity(existing.len() + count);
        if existing
            .first()
            .is_some_and(|c| c["name"] == RESTORE_WAIT_CONTAINER)
        {
            init.push(existing.remove(0));
        }
        init.extend(added);
        init.extend(existing);
        spec.insert("initContainers".into(), Value::Array(init));
        Ok(count)
    }

    /// The exec hooks of a restored pod, grouped by container in the pod's order: its annotation
    /// hook if it has one, else those of every matching spec entry.
    pub fn exec_hooks(&self, pod: &Value) -> Vec<(String, Vec<PlannedExec>)> {
        let annotations = string_map(pod.pointer("/metadata/annotations"));
        let planned: Vec<PlannedExec> = match annotations::restore_exec_hook(&annotations) {
            Some(hook) => vec![PlannedExec {
                source: "annotation",
                name: "<from-annotation>".into(),
                index: 0,
                hook,
            }],
            None => {
                let namespace = pod
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let labels = velero_api::item::labels(pod);
                self.resources
                    .iter()
                    .filter(|r| r.selector.applies_to("pods", namespace, &labels))
                    .flat_map(|r| {
                        r.exec.iter().enumerate().map(|(index, hook)| PlannedExec {
                            source: "spec",
                            name: r.name.clone(),
                            index,
                            hook: Ok(hook.clone()),
                        })
                    })
                    .collect()
            }
        };
        let first = pod
            .pointer("/spec/containers/0/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut by_container: Vec<(String, Vec<PlannedExec>)> = Vec::new();
        for p in planned {
            let container = match &p.hook {
                Ok(h) => h.exec.container.clone().unwrap_or_else(|| first.clone()),
                Err(_) => first.clone(),
            };
            match by_container.iter_mut().find(|(c, _)| *c == container) {
                Some((_, list)) => list.push(p),
                None => by_container.push((container, vec![p])),
            }
        }
        by_container
    }
}

/// Velero's `ValidateContainer`: an init container needs a name, an image and a command.
fn validate_init_container(hook: &str, container: &Value) -> Result<(), String> {
    let present = |field: &str| match &container[field] {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    if present("name") && present("image") && present("command") {
        Ok(())
    } else {
        Err(format!(
            "invalid InitContainer in restore hook {hook:?}, it doesn't have Command, Name or Image field"
        ))
    }
}

/// Where exec hooks of one restore report.
#[derive(Clone)]
pub struct ExecContext {
    pub client: kube::Client,
    /// Every exec hook of the restore runs in a place of this window
    /// ([`MAX_CONCURRENT_EXECS`](crate::MAX_CONCURRENT_EXECS) wide).
    pub window: std::sync::Arc<velero_cluster::window::Window>,
    pub log: Arc<Mutex<OperationLog>>,
    pub tracker: Arc<HookTracker>,
    /// How long to wait for containers when no hook sets a wait timeout.
    pub default_wait: Duration,
}

fn is_up(pod: &Pod, container: &str, ready: bool) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    statuses.into_iter().flatten().any(|cs| {
        cs.name == container
            && if ready {
                cs.ready
            } else {
                cs.state.as_ref().is_some_and(|s| s.running.is_some())
            }
    })
}

/// Velero's `WaitExecHookHandler.HandleHooks`: watches the pod and runs each container's hooks, in
/// order, once that container is Running (Ready if one of its hooks waits for readiness). A hook
/// whose wait timeout passes first, a pod that ends or goes away, or the overall limit (the
/// longest wait timeout, or `default_wait` when a hook has none) fails the hooks not yet run.
pub async fn run_exec_hooks(
    ctx: ExecContext,
    namespace: String,
    pod_name: String,
    by_container: Vec<(String, Vec<PlannedExec>)>,
) {
    let log = HookLog {
        log: &ctx.log,
        style: LogStyle::Restore,
        namespace: &namespace,
        pod: &pod_name,
    };
    let key = |container: &str, p: &PlannedExec| HookKey {
        namespace: namespace.clone(),
        pod: pod_name.clone(),
        phase: "post",
        source: p.source,
        hook_name: p.name.clone(),
        container: container.to_string(),
        index: p.index,
    };
    for (container, hooks) in &by_container {
        for p in hooks {
            ctx.tracker.add(key(container, p));
        }
    }
    let waits: Vec<Option<Duration>> = by_container
        .iter()
        .flat_map(|(_, hooks)| hooks.iter())
        .map(|p| {
            p.hook
                .as_ref()
                .ok()
                .and_then(|h| h.wait_timeout)
                .filter(|w| !w.is_zero())
        })
        .collect();
    let limit = if waits.iter().all(Option::is_some) {
        waits
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(ctx.default_wait)
    } else {
        ctx.default_wait
    };
    let started = tokio::time::Instant::now();
    let mut pending = by_container;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={pod_name}"));
    let mut events = std::pin::pin!(watcher(pods, config).default_backoff());
    let mut ended: Option<String> = None;
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    while !pending.is_empty() && ended.is_none() {
        let event = tokio::select! {
            event = events.next() => event,
            () = &mut deadline => {
                ended = Some(format!("not executed: the pod's containers were not up within {}", velero_api::Duration::from(limit)));
                break;
            }
        };
        let pod = match event {
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => pod,
            Some(Ok(watcher::Event::Delete(_))) => {
                ended = Some(format!(
                    "pod {namespace}/{pod_name} deleted before all hooks were executed"
                ));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(pod = %pod_name, "watching a restored pod for its hooks: {e}");
                continue;
            }
            None => break,
        };
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            ended = Some(format!(
                "pod entered phase {phase} before some post-restore exec hooks ran"
            ));
            break;
        }
        let pod_json = match serde_json::to_value(&pod) {
            Ok(v) => v,
            Err(e) => {
                ended = Some(format!("error reading the pod: {e}"));
                break;
            }
        };
        let mut still_pending = Vec::new();
        for (container, hooks) in std::mem::take(&mut pending) {
            let ready = hooks
                .iter()
                .any(|p| p.hook.as_ref().is_ok_and(|h| h.wait_for_ready));
            if ended.is_some() || !is_up(&pod, &container, ready) {
                still_pending.push((container, hooks));
                continue;
            }
            let mut hooks = hooks.into_iter();
            for p in hooks.by_ref() {
                let k = key(&container, &p);
                let what = HookFields {
                    name: &p.name,
                    source: p.source,
                    phase: "post-restore",
                };
                let (result, on_error) = match &p.hook {
                    Err(invalid) => (Err(invalid.message.clone()), invalid.on_error),
                    Ok(h)
                        if h.wait_timeout
                            .is_some_and(|w| !w.is_zero() && started.elapsed() > w) =>
                    {
                        (
                            Err(format!(
                                "hook {} in container {container} expired before executing",
                                p.name
                            )),
                            h.exec.on_error,
                        )
                    }
                    Ok(h) => {
                        let mut exec = h.exec.clone();
                        exec.container = Some(container.clone());
                        (
                            exec::run(&ctx.client, &ctx.window, &pod_json, &exec, &what, &log)
                                .await,
                            h.exec.on_error,
                        )
                    }
                };
                match result {
                    Ok(()) => ctx.tracker.record(k, false),
                    Err(e) => {
                        log.error(
                            &format!("hook {} in container {container} failed", p.name),
                            &e,
                            &[],
                        );
                        ctx.tracker.record(k, true);
                        if on_error == OnError::Fail {
                            ended = Some(
                                "not executed: an earlier hook with onError Fail failed"
                                    .to_string(),
                            );
                            break;
                        }
                    }
                }
            }
            let rest: Vec<PlannedExec> = hooks.collect();
            if !rest.is_empty() {
                still_pending.push((container, rest));
            }
        }
        pending = still_pending;
    }
    let reason = ended.unwrap_or_else(|| "not executed: the pod could not be watched".to_string());
    for (container, hooks) in pending {
        for p in hooks {
            log.error(
                &format!("hook {} in container {container}", p.name),
                &reason,
                &[],
            );
            ctx.tracker.record(key(&container, &p), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(entry: &str) -> Option<String> {
        (entry == "pods").then(|| "pods".to_string())
    }

    fn hooks(spec: Value) -> RestoreHooks {
        let spec: velero_api::v1::RestoreHooks = serde_json::from_value(spec).expect("hooks spec");
        RestoreHooks::new(Some(&spec), &resolve).expect("valid hooks")
    }

    fn pod(annotations: Value, init: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "target", "labels": {"app": "db"}, "annotations": annotations},
               "spec": {"initContainers": init, "containers": [{"name": "main"}, {"name": "side"}]}})
    }

    #[test]
    fn init_containers_go_after_restore_wait_and_before_the_pods_own() {
        let h = hooks(json!({"resources": [
            {"name": "seed", "includedNamespaces": ["target"], "postHooks": [
                {"init": {"initContainers": [{"name": "seed", "image": "busybox", "command": ["seed"]}]}}]},
            {"name": "elsewhere", "includedNamespaces": ["source"], "postHooks": [
                {"init": {"initContainers": [{"name": "other", "image": "busybox", "command": ["x"]}]}}]},
        ]}));
        let mut p = pod(
            json!({}),
            json!([{"name": "restore-wait"}, {"name": "own"}]),
        );
        assert_eq!(h.add_init_containers(&mut p, "target"), Ok(1));
        let names: Vec<&str> = p["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["restore-wait", "seed", "own"]);

        // The annotation wins over the spec.
        let mut p = pod(
            json!({"init.hook.restore.velero.io/container-image": "busybox", "init.hook.restore.velero.io/container-name": "ann"}),
            json!([]),
        );
        assert_eq!(h.add_init_containers(&mut p, "target"), Ok(1));
        assert_eq!(p["spec"]["initContainers"][0]["name"], "ann");

        let bad = hooks(json!({"resources": [{"name": "bad", "postHooks": [
            {"init": {"initContainers": [{"name": "no-image", "command": ["x"]}]}}]}]}));
        let mut p = pod(json!({}), json!([]));
        let err = bad
            .add_init_containers(&mut p, "target")
            .expect_err("no image");
        assert!(err.contains("\"bad\""), "{err}");
    }

    #[test]
    fn exec_hooks_are_grouped_by_container_in_order() {
        let h = hooks(json!({"resources": [
            {"name": "a", "labelSelector": {"matchLabels": {"app": "db"}}, "postHooks": [
                {"exec": {"command": ["one"]}},
                {"exec": {"container": "side", "command": ["two"], "waitForReady": true}},
                {"exec": {"command": ["three"], "onError": "Fail"}}]},
            {"name": "b", "labelSelector": {"matchLabels": {"app": "web"}}, "postHooks": [
                {"exec": {"command": ["never"]}}]},
        ]}));
        let p = pod(json!({}), json!([]));
        let grouped = h.exec_hooks(&p);
        let summary: Vec<(String, Vec<String>)> = grouped
            .iter()
            .map(|(c, hooks)| {
                let commands = hooks
                    .iter()
                    .map(|p| {
                        p.hook
                            .as_ref()
                            .map(|h| h.exec.command.join(" "))
                            .unwrap_or_default()
                    })
                    .collect();
                (c.clone(), commands)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "main".to_string(),
                    vec!["one".to_string(), "three".to_string()]
                ),
                ("side".to_string(), vec!["two".to_string()]),
            ]
        );
        let annotated = pod(
            json!({"post.hook.restore.velero.io/command": "[\"x\""}),
            json!([]),
        );
        let grouped = h.exec_hooks(&annotated);
        assert_eq!(grouped.len(), 1);
        assert!(grouped[0].1[0].hook.is_err());
    }
}
