//! Where hooks write: the backup's or the restore's own log, in that operation's style.

use std::sync::Mutex;

use velero_report::{Context, Level, OperationLog, locked};

/// Backups log failures as logrus error fields with the item's namespace, resource and name
/// (results entries built by Velero's log hook); restores record plain messages per namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    Backup,
    Restore,
}

/// The log a hook's lines go to, and the pod they are about.
#[derive(Clone, Copy)]
pub struct HookLog<'a> {
    pub log: &'a Mutex<OperationLog>,
    pub style: LogStyle,
    pub namespace: &'a str,
    pub pod: &'a str,
}

impl HookLog<'_> {
    fn ctx(&self) -> Context<'_> {
        Context {
            namespace: Some(self.namespace),
            resource: Some("pods"),
            name: Some(self.pod),
        }
    }

    pub fn info(&self, message: &str, fields: &[(&str, &str)]) {
        locked(self.log).with_fields(Level::Info, message, None, self.ctx(), fields);
    }

    pub fn warn(&self, message: &str) {
        self.problem(Level::Warning, message, None, &[]);
    }

    pub fn error(&self, message: &str, error: &str, fields: &[(&str, &str)]) {
        self.problem(Level::Error, message, Some(error), fields);
    }

    fn problem(&self, level: Level, message: &str, error: Option<&str>, fields: &[(&str, &str)]) {
        let mut log = locked(self.log);
        match self.style {
            LogStyle::Backup => log.with_fields(level, message, error, self.ctx(), fields),
            LogStyle::Restore => {
                let text = match error {
                    Some(e) => format!("{message} (pod {}/{}): {e}", self.namespace, self.pod),
                    None => format!("{message} (pod {}/{})", self.namespace, self.pod),
                };
                log.record(level, Some(self.namespace), &text);
            }
        }
    }
}
