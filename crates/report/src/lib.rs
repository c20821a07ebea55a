//! The per-backup and per-restore log and the warnings/errors it counts, uploaded with the backup
//! or restore as Velero does.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

/// Locks `mutex` for state shared by an operation's tasks (its log, what it has seen). A poisoned
/// lock means a task panicked while holding it: the state may be half-updated, so going on would
/// produce a wrong backup or restore. That is a bug, and this fails loudly with the panic rather
/// than skip the item or the log line.
pub fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(_) => panic!(
            "a task panicked while holding an operation's shared state; stopping instead of going on with it"
        ),
    }
}

/// An operation (backup or restore) that stopped part-way, with the log it had written so far:
/// Velero still uploads a failed operation's log, so `velero backup|restore logs` tells why.
pub struct Failed<E> {
    pub error: E,
    pub log: OperationLog,
}

impl<E: std::fmt::Display> std::fmt::Debug for Failed<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for Failed<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for Failed<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Velero's `Result`: messages for Velero itself, for cluster-scoped items, and per namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub velero: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl Results {
    pub fn is_empty(&self) -> bool {
        self.velero.is_empty() && self.cluster.is_empty() && self.namespaces.is_empty()
    }

    pub fn len(&self) -> usize {
        self.velero.len()
            + self.cluster.len()
            + self.namespaces.values().map(Vec::len).sum::<usize>()
    }

    fn add(&mut self, namespace: Option<&str>, message: String) {
        match namespace {
            Some(ns) if !ns.is_empty() => self
                .namespaces
                .entry(ns.to_string())
                .or_default()
                .push(message),
            _ => self.velero.push(message),
        }
    }
}

/// `{"warnings": Result, "errors": Result}`, the content of `<backup>-results.gz` and
/// `restore-<restore>-results.gz`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationResults {
    pub warnings: Results,
    pub errors: Results,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// Where a log line is about: the item and its namespace, when there is one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    pub namespace: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Writes logrus-style text lines into a gzip stream held in memory (a few bytes per item once
/// compressed), and records every warning and error in [`OperationResults`] the way Velero's log hook
/// does, so `velero backup describe` and `logs` show the same things.
pub struct OperationLog {
    /// `backup` or `restore`: the key logrus lines carry the operation's name under.
    kind: &'static str,
    name: String,
    gzip: GzEncoder<Vec<u8>>,
    results: OperationResults,
}

impl OperationLog {
    pub fn backup(namespace: &str, name: &str) -> Self {
        Self::new("backup", namespace, name)
    }

    pub fn restore(namespace: &str, name: &str) -> Self {
        Self::new("restore", namespace, name)
    }

    fn new(kind: &'static str, namespace: &str, name: &str) -> Self {
        OperationLog {
            kind,
            name: format!("{namespace}/{name}"),
            gzip: GzEncoder::new(Vec::new(), Compression::fast()),
            results: OperationResults::default(),
        }
    }

    pub fn info(&mut self, message: &str, ctx: Context<'_>) {
        self.line(Level::Info, message, None, ctx);
    }

    pub fn warn(&mut self, message: &str, ctx: Context<'_>) {
        self.line(Level::Warning, message, None, ctx);
        self.hook_result(Level::Warning, message, None, ctx);
    }

    pub fn error(&mut self, message: &str, error: &str, ctx: Context<'_>) {
        self.line(Level::Error, message, Some(error), ctx);
        self.hook_result(Level::Error, message, Some(error), ctx);
    }

    /// A line with logrus fields of its own (a hook's name, container and command, say) after the
    /// item's; warnings and errors become results entries as [`Self::warn`] and [`Self::error`]
    /// make them, without the extra fields, as Velero's log hook leaves them out.
    pub fn with_fields(
        &mut self,
        level: Level,
        message: &str,
        error: Option<&str>,
        ctx: Context<'_>,
        fields: &[(&str, &str)],
    ) {
        self.line_with(level, message, error, ctx, fields);
        if level != Level::Info {
            self.hook_result(level, message, error, ctx);
        }
    }

    fn line(&mut self, level: Level, message: &str, error: Option<&str>, ctx: Context<'_>) {
        self.line_with(level, message, error, ctx, &[]);
    }

    fn line_with(
        &mut self,
        level: Level,
        message: &str,
        error: Option<&str>,
        ctx: Context<'_>,
        fields: &[(&str, &str)],
    ) {
        let time = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
        let level_name = match level {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        };
        let mut line = format!(
            "time=\"{time}\" level={level_name} msg={} {}={}",
            quote(message),
            self.kind,
            self.name
        );
        let item_fields = [
            ("namespace", ctx.namespace),
            ("resource", ctx.resource),
            ("name", ctx.name),
            ("error", error),
        ];
        let extra = fields.iter().map(|(k, v)| (*k, Some(*v)));
        for (key, value) in item_fields.into_iter().chain(extra) {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                line.push_str(&format!(" {key}={}", quote(v)));
            }
        }
        line.push('\n');
        // Writing into a Vec cannot fail.
        let _ = self.gzip.write_all(line.as_bytes());
    }

    /// Velero's backup log hook: every warning and error line also becomes a results entry.
    fn hook_result(&mut self, level: Level, message: &str, error: Option<&str>, ctx: Context<'_>) {
        // Velero's results entry: " resource: /<r> name: /<n> message: /<m> error: /<e>".
        let mut entry = String::new();
        for (key, value) in [
            ("resource", ctx.resource),
            ("name", ctx.name),
            ("message", Some(message)),
            ("error", error),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                entry.push_str(&format!(" {key}: /{v}"));
            }
        }
        let namespace = ctx.namespace.or(if ctx.resource.is_some() {
            Some("")
        } else {
            None
        });
        let target = match level {
            Level::Warning => &mut self.results.warnings,
            _ => &mut self.results.errors,
        };
        match namespace {
            Some("") if ctx.resource.is_some() => target.cluster.push(entry),
            other => target.add(other, entry),
        }
    }

    /// A restore-style result: `message` is recorded as is (Velero's restore adds plain errors to
    /// its results, unlike the backup's log hook). `scope` is `None` for Velero itself, `Some("")`
    /// for cluster-scoped items, else the namespace.
    pub fn record(&mut self, level: Level, scope: Option<&str>, message: &str) {
        let namespace = scope.filter(|ns| !ns.is_empty());
        self.line(
            level,
            message,
            None,
            Context {
                namespace,
                ..Context::default()
            },
        );
        let target = match level {
            Level::Info => return,
            Level::Warning => &mut self.results.warnings,
            Level::Error => &mut self.results.errors,
        };
        match scope {
            Some("") => target.cluster.push(message.to_string()),
            other => target.add(other, message.to_string()),
        }
    }

    pub fn results(&self) -> &OperationResults {
        &self.results
    }

    pub fn warnings(&self) -> usize {
        self.results.warnings.len()
    }

    pub fn errors(&self) -> usize {
        self.results.errors.len()
    }

    /// The gzip-compressed log and the results.
    pub fn finish(self) -> (Vec<u8>, OperationResults) {
        let log = self.gzip.finish().unwrap_or_default();
        (log, self.results)
    }
}

/// logrus quotes a value when it has spaces, quotes or other non-plain characters.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+:".contains(c));
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn warnings_and_errors_land_in_results_by_namespace() {
        let mut log = OperationLog::backup("velero", "b1");
        log.info(
            "Backing up item",
            Context {
                namespace: Some("app"),
                resource: Some("pods"),
                name: Some("web"),
            },
        );
        log.warn(
            "namespace not found",
            Context {
                namespace: Some("ghost"),
                ..Default::default()
            },
        );
        log.error(
            "error getting item",
            "not found",
            Context {
                namespace: Some("app"),
                resource: Some("persistentvolumeclaims"),
                name: Some("data"),
            },
        );
        log.error(
            "error listing",
            "forbidden",
            Context {
                resource: Some("persistentvolumes"),
                ..Default::default()
            },
        );
        log.warn(
            "discovery failed for group metrics.k8s.io/v1beta1",
            Context::default(),
        );
        assert_eq!((log.warnings(), log.errors()), (2, 2));
        let (gz, results) = log.finish();
        assert_eq!(
            results.errors.namespaces["app"],
            [
                " resource: /persistentvolumeclaims name: /data message: /error getting item error: /not found"
            ]
        );
        assert_eq!(
            results.errors.cluster,
            [" resource: /persistentvolumes message: /error listing error: /forbidden"]
        );
        assert_eq!(
            results.warnings.namespaces["ghost"],
            [" message: /namespace not found"]
        );
        assert_eq!(results.warnings.velero.len(), 1);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("level=info msg=\"Backing up item\" backup=velero/b1 namespace=app resource=pods name=web"), "{text}");
        let json = serde_json::to_value(&results).unwrap();
        assert_eq!(
            json["errors"]["cluster"][0],
            " resource: /persistentvolumes message: /error listing error: /forbidden"
        );
    }
}
