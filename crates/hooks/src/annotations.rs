//! Hooks declared on a pod through annotations (internal/hook/item_hook_handler.go and
//! wait_exec_hook_handler.go in Velero). Velero reads a command that starts with `[` as a JSON
//! array and falls back to running the whole string as one argument when it does not parse, and
//! it replaces a timeout it cannot parse with the default. Both turn a typo into a hook that runs
//! something else than what was written; here either is an error naming the annotation, and the
//! hook is not run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::exec::{ExecHook, OnError, RestoreExecHook};

/// When a backup hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

const BACKUP_HOOK: &str = "hook.backup.velero.io";
const RESTORE_INIT_IMAGE: &str = "init.hook.restore.velero.io/container-image";
const RESTORE_INIT_NAME: &str = "init.hook.restore.velero.io/container-name";
const RESTORE_INIT_COMMAND: &str = "init.hook.restore.velero.io/command";
const RESTORE_EXEC: &str = "post.hook.restore.velero.io";

/// A hook declared with values that cannot be used: not run, failed, and its `on-error` still
/// decides whether the pod's other hooks (and, before a backup, the pod itself) go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHook {
    pub message: String,
    pub on_error: OnError,
}

/// `command`: a JSON array of strings when it starts with `[`, else one argument.
pub fn parse_command(key: &str, value: &str) -> Result<Vec<String>, String> {
    if !value.starts_with('[') {
        return Ok(vec![value.to_string()]);
    }
    serde_json::from_str::<Vec<String>>(value).map_err(|e| {
        format!(
            "annotation {key} starts with '[' but is not a JSON array of strings ({e}): write it as [\"/bin/sh\", \"-c\", \"...\"]"
        )
    })
}

/// A Go duration (`30s`, `1m30s`) from an annotation.
fn parse_timeout(key: &str, value: &str) -> Result<Duration, String> {
    velero_api::Duration::parse(value)
        .ok()
        .and_then(|d| d.to_std())
        .ok_or_else(|| {
            format!("annotation {key} is {value:?}, not a duration: write it as 30s, 2m or 1h")
        })
}

fn get<'a>(annotations: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    annotations
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The backup hook a pod declares for `phase`: `<phase>.hook.backup.velero.io/{command,container,
/// on-error,timeout}`, or for the pre phase the legacy keys without a phase. `None` when there is
/// no command annotation; `Some(Err)` when its values cannot be used.
pub fn backup_hook(
    annotations: &BTreeMap<String, String>,
    phase: Phase,
) -> Option<Result<ExecHook, InvalidHook>> {
    let phased = format!("{}.{BACKUP_HOOK}", phase.as_str());
    let prefix = if get(annotations, &format!("{phased}/command")).is_some() {
        phased
    } else if phase == Phase::Pre {
        BACKUP_HOOK.to_string()
    } else {
        return None;
    };
    let key = |suffix: &str| format!("{prefix}/{suffix}");
    let command_key = key("command");
    let command = get(annotations, &command_key)?;
    let on_error = OnError::from_annotation(get(annotations, &key("on-error")));
    let hook = (|| {
        let timeout_key = key("timeout");
        Ok(ExecHook {
            container: get(annotations, &key("container")).map(str::to_string),
            command: parse_command(&command_key, command)?,
            on_error,
            timeout: get(annotations, &timeout_key)
                .map(|v| parse_timeout(&timeout_key, v))
                .transpose()?,
        })
    })();
    Some(hook.map_err(|message| InvalidHook { message, on_error }))
}

/// The init container a pod declares for its restore: image (required), name (default
/// `velero-restore-init-<8 hex>`), command (the image's entrypoint when absent).
pub fn restore_init_container(
    annotations: &BTreeMap<String, String>,
) -> Option<Result<Value, String>> {
    let image = get(annotations, RESTORE_INIT_IMAGE)?;
    let name = get(annotations, RESTORE_INIT_NAME)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("velero-restore-init-{}", &id[..8])
        });
    let mut container = json!({ "name": name, "image": image });
    if let Some(command) = get(annotations, RESTORE_INIT_COMMAND) {
        match parse_command(RESTORE_INIT_COMMAND, command) {
            Ok(command) => container["command"] = json!(command),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(container))
}

/// The exec hook a pod declares for after its restore:
/// `post.hook.restore.velero.io/{command,container,on-error,exec-timeout,wait-timeout,wait-for-ready}`.
pub fn restore_exec_hook(
    annotations: &BTreeMap<String, String>,
) -> Option<Result<RestoreExecHook, InvalidHook>> {
    let key = |suffix: &str| format!("{RESTORE_EXEC}/{suffix}");
    let command_key = key("command");
    let command = get(annotations, &command_key)?;
    let on_error = OnError::from_annotation(get(annotations, &key("on-error")));
    let hook = (|| {
        let timeout = |suffix: &str| {
            let k = key(suffix);
            get(annotations, &k)
                .map(|v| parse_timeout(&k, v))
                .transpose()
        };
        let ready_key = key("wait-for-ready");
        let wait_for_ready = match get(annotations, &ready_key) {
            None => false,
            // Go's strconv.ParseBool.
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
            Some(other) => {
                return Err(format!(
                    "annotation {ready_key} is {other:?}, not true or false"
                ));
            }
        };
        Ok(RestoreExecHook {
            exec: ExecHook {
                container: get(annotations, &key("container")).map(str::to_string),
                command: parse_command(&command_key, command)?,
                on_error,
                timeout: timeout("exec-timeout")?,
            },
            wait_timeout: timeout("wait-timeout")?,
            wait_for_ready,
        })
    })();
    Some(hook.map_err(|message| InvalidHook { message, on_error }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn backup_hooks_by_phase_with_the_legacy_keys_as_pre() {
        let a = map(&[
            (
                "pre.hook.backup.velero.io/command",
                r#"["/bin/sh", "-c", "echo hi"]"#,
            ),
            ("pre.hook.backup.velero.io/container", "db"),
            ("pre.hook.backup.velero.io/on-error", "Continue"),
            ("pre.hook.backup.velero.io/timeout", "2s"),
            ("post.hook.backup.velero.io/command", "/unfreeze"),
        ]);
        let pre = backup_hook(&a, Phase::Pre)
            .expect("declared")
            .expect("valid");
        assert_eq!(pre.command, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(pre.container.as_deref(), Some("db"));
        assert_eq!(pre.on_error, OnError::Continue);
        assert_eq!(pre.timeout, Some(Duration::from_secs(2)));
        let post = backup_hook(&a, Phase::Post)
            .expect("declared")
            .expect("valid");
        assert_eq!(post.command, ["/unfreeze"]);
        assert_eq!(post.on_error, OnError::Unset);
        assert_eq!(post.container, None);

        let legacy = map(&[
            ("hook.backup.velero.io/command", "/freeze"),
            ("hook.backup.velero.io/on-error", "Bogus"),
        ]);
        let pre = backup_hook(&legacy, Phase::Pre)
            .expect("legacy")
            .expect("valid");
        assert_eq!(pre.command, ["/freeze"]);
        assert_eq!(pre.on_error, OnError::Unset);
        assert!(backup_hook(&legacy, Phase::Post).is_none());
        assert!(backup_hook(&map(&[]), Phase::Pre).is_none());
    }

    #[test]
    fn bad_commands_and_timeouts_name_their_annotation() {
        let a = map(&[("pre.hook.backup.velero.io/command", r#"["/bin/sh", "-c"#)]);
        let err = backup_hook(&a, Phase::Pre)
            .expect("declared")
            .expect_err("bad JSON");
        assert!(
            err.message.contains("pre.hook.backup.velero.io/command"),
            "{err:?}"
        );
        let a = map(&[
            ("post.hook.backup.velero.io/command", "x"),
            ("post.hook.backup.velero.io/timeout", "soon"),
        ]);
        let a = {
            let mut a = a;
            a.insert("post.hook.backup.velero.io/on-error".into(), "Fail".into());
            a
        };
        let err = backup_hook(&a, Phase::Post)
            .expect("declared")
            .expect_err("bad timeout");
        assert!(
            err.message.contains("post.hook.backup.velero.io/timeout")
                && err.message.contains("soon"),
            "{err:?}"
        );
        assert_eq!(err.on_error, OnError::Fail);
    }

    #[test]
    fn restore_annotations() {
        let a = map(&[
            ("init.hook.restore.velero.io/container-image", "busybox"),
            (
                "init.hook.restore.velero.io/command",
                r#"["touch", "/data/seeded"]"#,
            ),
            ("post.hook.restore.velero.io/command", "reindex"),
            ("post.hook.restore.velero.io/wait-timeout", "1m"),
            ("post.hook.restore.velero.io/wait-for-ready", "true"),
        ]);
        let init = restore_init_container(&a)
            .expect("declared")
            .expect("valid");
        assert_eq!(init["image"], "busybox");
        assert_eq!(init["command"], json!(["touch", "/data/seeded"]));
        let name = init["name"].as_str().unwrap_or_default();
        assert!(
            name.starts_with("velero-restore-init-") && name.len() == 28,
            "{name}"
        );
        let exec = restore_exec_hook(&a).expect("declared").expect("valid");
        assert_eq!(exec.exec.command, ["reindex"]);
        assert_eq!(exec.wait_timeout, Some(Duration::from_secs(60)));
        assert!(exec.wait_for_ready);
        let bad = map(&[
            ("post.hook.restore.velero.io/command", "x"),
            ("post.hook.restore.velero.io/wait-for-ready", "yes"),
        ]);
        assert!(restore_exec_hook(&bad).expect("declared").is_err());
    }
}
