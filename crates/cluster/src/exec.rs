//! Running a command in a pod's container through the API server's `exec` subresource (the
//! websocket channel protocol), as Velero's `pkg/podexec/pod_command_executor.go` does for hooks.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Most bytes of each of stdout and stderr that are kept; the rest is read and dropped, so a chatty
/// command neither blocks nor fills memory.
pub const MAX_CAPTURED_OUTPUT: usize = 1 << 20;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The command's exit code (0 on success).
    pub exit_code: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("starting {command:?} in pod {namespace}/{pod}{container}: {source}", container = container_suffix(.container))]
    Start {
        namespace: String,
        pod: String,
        container: Option<String>,
        command: Vec<String>,
        #[source]
        source: kube::Error,
    },
    #[error("{command:?} in pod {namespace}/{pod} did not finish within {timeout:?}")]
    Timeout {
        namespace: String,
        pod: String,
        command: Vec<String>,
        timeout: Duration,
    },
    #[error("{command:?} in pod {namespace}/{pod}: {message}")]
    Failed {
        namespace: String,
        pod: String,
        command: Vec<String>,
        message: String,
    },
}

fn container_suffix(container: &Option<String>) -> String {
    container
        .as_deref()
        .map(|c| format!(" (container {c})"))
        .unwrap_or_default()
}

/// Runs `command` in `container` (the pod's first container when `None`) and waits at most
/// `timeout` for it to end. A non-zero exit is an [`ExecOutput`] with that code, not an error;
/// errors are a command that could not start (no such pod or container, not running), ran out of
/// time, or ended in a way the API server reports without an exit code.
pub async fn exec_in_pod(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = AttachParams {
        container: container.map(str::to_string),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
        ..AttachParams::default()
    };
    let run = async {
        let mut process = pods
            .exec(pod, command.to_vec(), &params)
            .await
            .map_err(|source| ExecError::Start {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.map(str::to_string),
                command: command.to_vec(),
                source,
            })?;
        let status = process.take_status();
        let (stdout, stderr) =
            tokio::join!(read_capped(process.stdout()), read_capped(process.stderr()));
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let exit_code = exit_code(status.as_ref()).map_err(|message| ExecError::Failed {
            namespace: namespace.into(),
            pod: pod.into(),
            command: command.to_vec(),
            message,
        })?;
        // The streams are done; the connection's end is not worth failing over.
        let _ = process.join().await;
        Ok(ExecOutput {
            stdout,
            stderr,
            exit_code,
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(ExecError::Timeout {
            namespace: namespace.into(),
            pod: pod.into(),
            command: command.to_vec(),
            timeout,
        }),
    }
}

/// [`exec_in_pod`] in a place of `window`, held while the command runs, so a backup with many
/// hooked pods keeps a bounded number of exec streams open. An exec the API server turns away
/// (HTTP 429 from API Priority and Fairness, 503 while overloaded) narrows the window and is
/// tried again after a pause (doubling from 100 ms up to 5 s), as long as `timeout` allows:
/// `timeout` covers the waiting too.
pub async fn exec_in_pod_within(
    window: &std::sync::Arc<crate::window::Window>,
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        let outcome = {
            let _place = window.acquire().await.map_err(|e| ExecError::Failed {
                namespace: namespace.into(),
                pod: pod.into(),
                command: command.to_vec(),
                message: e.to_string(),
            })?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            exec_in_pod(client, namespace, pod, container, command, left).await
        };
        match outcome {
            Err(ExecError::Start { source, .. })
                if is_turned_away(&source) && tokio::time::Instant::now() + pause < deadline =>
            {
                window.on_throttled();
                tracing::debug!(namespace, pod, "exec turned away ({source}); trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(ExecError::Start { source, .. }) if is_turned_away(&source) => {
                return Err(ExecError::Timeout {
                    namespace: namespace.into(),
                    pod: pod.into(),
                    command: command.to_vec(),
                    timeout,
                });
            }
            outcome => {
                if outcome.is_ok() {
                    window.on_success();
                }
                return outcome;
            }
        }
    }
}

/// The API server refused to open the stream for now: it will take it later.
fn is_turned_away(error: &kube::Error) -> bool {
    use kube::client::UpgradeConnectionError::ProtocolSwitch;
    match error {
        kube::Error::UpgradeConnection(ProtocolSwitch(status)) => {
            matches!(status.as_u16(), 429 | 503)
        }
        kube::Error::Api(status) => matches!(status.code, 429 | 503),
        _ => false,
    }
}

async fn read_capped(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_CAPTURED_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The exit code in the API server's final Status on the error channel: `Success` is 0,
/// `NonZeroExitCode` carries the code as a cause `ExitCode`. Anything else is the server's message.
pub fn exit_code(status: Option<&Status>) -> Result<i32, String> {
    let Some(status) = status else {
        return Err("the connection ended without the command's exit status".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref()?.parse().ok())
    {
        return Ok(code);
    }
    Err(
        match (status.message.as_deref(), status.reason.as_deref()) {
            (Some(message), _) if !message.is_empty() => message.to_string(),
            (_, reason) => format!(
                "the command failed ({})",
                reason.unwrap_or("no reason given")
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn exit_codes_come_from_the_final_status() {
        assert_eq!(
            exit_code(Some(&status(
                serde_json::json!({"metadata": {}, "status": "Success"})
            ))),
            Ok(0)
        );
        let nonzero = status(serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: exit code 5",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "5"}]}
        }));
        assert_eq!(exit_code(Some(&nonzero)), Ok(5));
        let other = status(serde_json::json!({
            "metadata": {}, "status": "Failure", "message": "container not found (\"nope\")"
        }));
        assert_eq!(
            exit_code(Some(&other)),
            Err("container not found (\"nope\")".into())
        );
        assert!(exit_code(None).is_err());
    }
}
