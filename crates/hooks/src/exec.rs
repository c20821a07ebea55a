//! One exec hook run in a pod, as Velero's `ExecutePodCommand` (pkg/podexec/pod_command_executor.go)
//! runs it: in the named container or the first one, with a timeout, output into the log.

use std::time::Duration;

use serde_json::Value;
use velero_cluster::exec::{ExecError, exec_in_pod_within};
use velero_cluster::window::Window;

use crate::log::HookLog;

/// Velero's default for a hook without a timeout (or with `0s`).
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// `onError`. Velero stops a pod's remaining hooks (and, before a backup, leaves the pod out) only
/// when the hook says `Fail`; a hook that says nothing goes on like `Continue`, although Velero
/// logs it as `Fail`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    #[default]
    Unset,
    Continue,
    Fail,
}

impl OnError {
    pub fn from_api(mode: Option<velero_api::v1::HookErrorMode>) -> Self {
        match mode {
            Some(velero_api::v1::HookErrorMode::Continue) => OnError::Continue,
            Some(velero_api::v1::HookErrorMode::Fail) => OnError::Fail,
            None => OnError::Unset,
        }
    }

    /// The annotation's value; anything but `Continue` or `Fail` is unset, as in Velero.
    pub fn from_annotation(value: Option<&str>) -> Self {
        match value {
            Some("Continue") => OnError::Continue,
            Some("Fail") => OnError::Fail,
            _ => OnError::Unset,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            OnError::Continue => "Continue",
            OnError::Fail | OnError::Unset => "Fail",
        }
    }
}

/// A command to run in a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecHook {
    /// `None`: the pod's first container.
    pub container: Option<String>,
    pub command: Vec<String>,
    pub on_error: OnError,
    /// `None` or zero: [`DEFAULT_EXEC_TIMEOUT`].
    pub timeout: Option<Duration>,
}

/// A command for after the restore, with how long to wait for its container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreExecHook {
    pub exec: ExecHook,
    /// `None` or zero: no limit of its own.
    pub wait_timeout: Option<Duration>,
    /// Wait for the container to be Ready rather than Running.
    pub wait_for_ready: bool,
}

impl ExecHook {
    pub fn from_spec(hook: &velero_api::v1::ExecHook) -> Self {
        ExecHook {
            container: hook.container.clone().filter(|c| !c.is_empty()),
            command: hook.command.clone(),
            on_error: OnError::from_api(hook.on_error),
            timeout: hook.timeout.and_then(|t| t.to_std()),
        }
    }

    /// Whether a failure of this hook stops the pod's remaining hooks.
    pub fn stops_on_failure(&self) -> bool {
        self.on_error == OnError::Fail
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_EXEC_TIMEOUT)
    }

    /// The container the hook runs in: the named one if the pod has it (as a container or a
    /// sidecar, that is an init container with `restartPolicy: Always`), else the first one.
    pub fn container_in(&self, pod: &Value) -> Result<String, String> {
        let names = |list: &str, sidecars_only: bool| -> Vec<String> {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| !sidecars_only || c["restartPolicy"] == "Always")
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        };
        let containers = names("containers", false);
        match &self.container {
            None => containers
                .first()
                .cloned()
                .ok_or_else(|| "need at least 1 container".to_string()),
            Some(name) => {
                if containers.contains(name) || names("initContainers", true).contains(name) {
                    Ok(name.clone())
                } else {
                    Err(format!(
                        "no such container: {name:?} (the pod has {})",
                        containers.join(", ")
                    ))
                }
            }
        }
    }
}

/// What a hook is, for its log lines.
pub(crate) struct HookFields<'a> {
    pub name: &'a str,
    pub source: &'static str,
    pub phase: &'a str,
}

/// Runs `hook` in `pod` (its JSON as listed or watched). `Err` is the failure as the log and
/// results show it.
pub(crate) async fn run(
    client: &kube::Client,
    window: &std::sync::Arc<Window>,
    pod: &Value,
    hook: &ExecHook,
    what: &HookFields<'_>,
    log: &HookLog<'_>,
) -> Result<(), String> {
    let container = hook.container_in(pod)?;
    if hook.command.is_empty() {
        return Err("command is required".into());
    }
    let timeout = hook.timeout();
    let command = format!("{:?}", hook.command);
    let timeout_text = velero_api::Duration::from(timeout).to_string();
    let fields = [
        ("hookCommand", command.as_str()),
        ("hookContainer", container.as_str()),
        ("hookName", what.name),
        ("hookOnError", hook.on_error.as_str()),
        ("hookPhase", what.phase),
        ("hookSource", what.source),
        ("hookTimeout", timeout_text.as_str()),
        ("hookType", "exec"),
    ];
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if let Some(phase @ ("Succeeded" | "Failed")) = phase {
        log.info(
            &format!(
                "Pod entered phase {phase} before some {} exec hooks ran",
                what.phase
            ),
            &fields,
        );
        return Ok(());
    }
    log.info("running exec hook", &fields);
    let output = exec_in_pod_within(
        window,
        client,
        log.namespace,
        log.pod,
        Some(&container),
        &hook.command,
        timeout,
    )
    .await;
    match output {
        Ok(out) => {
            log.info(&format!("stdout: {}", out.stdout), &fields);
            log.info(&format!("stderr: {}", out.stderr), &fields);
            if out.exit_code == 0 {
                Ok(())
            } else {
                Err(format!(
                    "command terminated with exit code {}",
                    out.exit_code
                ))
            }
        }
        Err(ExecError::Timeout { .. }) => Err(format!("timed out after {timeout_text}")),
        Err(e) => Err(e.to_string()),
    }
}
