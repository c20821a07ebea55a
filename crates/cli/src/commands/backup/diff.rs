//! `velero backup diff` (a velero-rs addition): drift between a backup and the live cluster.
//!
//! The backed-up side is the backup's tarball, read as it downloads. The live side is what the
//! backup's own spec selects now, produced by the backup engine itself (same selection, same
//! additional items, no hooks, no volume data) into an in-memory pipe and read back the same way,
//! so there is no second lister whose idea of "the same items" could differ from a backup's.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;
use velero_backup::engine::{self, BackupParams};
use velero_backup::request::Prepared;
use velero_cluster::api::ApiReader;
use velero_restore::compare::{FieldChange, comparable, field_diff};
use velero_restore::selection::NON_RESTORABLE;

use super::items::{self, Identity, TarballFlags};
use crate::client::GlobalArgs;
use crate::download;
use crate::output::{self, Format};

/// The exit code of `backup diff` when it could not compare (as opposed to 1, "drift found").
pub const ERROR_EXIT_CODE: u8 = 2;

/// Bytes buffered between the engine writing the live side's tarball and the comparison reading
/// it: the two run at once, so this bounds memory, not what can be compared.
const PIPE_BYTES: usize = 256 * 1024;

/// Changed values longer than this are cut in the plain-text report (`-o json` has them whole).
const SHOWN_VALUE_CHARS: usize = 120;

const HIDDEN: &str = "<hidden>";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Plaintext,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Compare a backup's items with the cluster as it is now, and report the objects added, removed and changed since, with the fields that changed, grouped by namespace (cluster-scoped first).

The cluster side is what the backup's own spec selects now: the backup engine runs with the same namespaces, resource filters, label selectors, resource policies and additional items (but no hooks and no volume data) and its output is compared, not stored. Objects are compared as a restore compares an object that already exists: fields the API server owns (uid, resourceVersion, generation, creationTimestamp, managedFields, ownerReferences, status) are ignored.

Left out, because they follow something else rather than drift on their own:
  - types a restore never restores (events, nodes, Velero's backups and restores, ...);
  - objects with an ownerReference marked controller: true (a Deployment's ReplicaSets and their Pods, a Service's EndpointSlices), unless --include-owned;
  - Endpoints named like a Service that has a selector (the endpoints controller writes them), unless --include-owned.
The values of a Secret's data and stringData are never printed, only where they changed.

Exit code: 0 when nothing drifted, 1 when something did, 2 when no comparison could be made (a missing backup, an unreachable cluster or storage location).

This command is a velero-rs addition; Velero has none like it."
)]
pub struct DiffArgs {
    /// Name of the backup
    name: String,
    /// Also report objects that follow an owner: those with a controller ownerReference, and the Endpoints of Services with a selector
    #[arg(long)]
    include_owned: bool,
    /// Output display format: plaintext, json or yaml
    #[arg(short = 'o', long, value_enum, default_value = "plaintext")]
    output: ReportFormat,
    #[command(flatten)]
    tarball: TarballFlags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Added,
    Removed,
    Changed,
}

/// One object that differs between the backup and the cluster.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Change {
    change: Kind,
    group_resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    /// It follows an owner (shown only with --include-owned).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    owned: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldChange>,
}

impl Change {
    fn new(change: Kind, id: Identity, owned: bool, mut fields: Vec<FieldChange>) -> Self {
        if id.group_resource == "secrets" {
            hide_secret_values(&mut fields);
        }
        Change {
            change,
            group_resource: id.group_resource,
            namespace: id.namespace,
            name: id.name,
            owned,
            fields,
        }
    }

    fn sort_key(&self) -> (&Option<String>, &str, &str) {
        (&self.namespace, &self.group_resource, &self.name)
    }
}

/// A backed-up item, reduced to what the comparison needs.
struct Stored {
    comparable: Value,
    owned: bool,
}

/// The backup's side of the comparison.
struct BackedUp {
    // Every backed-up item's comparable JSON, keyed by identity: the live side arrives in the
    // engine's order, not the tarball's, so one side must be held. The backup's side is the one
    // held, as it is the smaller or equal one for an unchanged cluster and has no server-owned
    // fields left; memory grows with the backup's item count (no status, no managedFields).
    items: BTreeMap<Identity, Stored>,
    /// `(namespace, name)` of Services with a selector, on either side: their Endpoints follow them.
    services_with_selector: HashSet<(String, String)>,
}

pub(super) async fn diff(global: &GlobalArgs, args: DiffArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let namespace = global.namespace();
    let backup = items::finished_backup(&client, &namespace, &args.name, None).await?;
    let stream = items::open_tarball(&client, &namespace, &args.name, &args.tarball).await?;
    let backed_up = download::read_blocking(stream, read_backed_up)
        .await?
        .context("reading the backup's tarball")?;

    // The backup's own spec, prepared and resolved as the server does for a backup it runs.
    let prepared = Prepared::new(&client, &namespace, &backup).await;
    if !prepared.errors.is_empty() {
        bail!(
            "the backup's spec cannot select items now: {}",
            prepared.errors.join("; ")
        );
    }
    let request = prepared
        .resolve(&client)
        .await
        .context("resolving the backup's filters against the cluster")?;
    let params = BackupParams {
        backup_namespace: namespace.clone(),
        backup_name: backup.name_any(),
        concurrency: engine::LIST_CONCURRENCY,
        hooks: None,
        pod_volumes: None,
    };
    let (sink, source) = tokio::io::duplex(PIPE_BYTES);
    let comparing = download::read_blocking(Box::pin(source), move |reader| {
        compare_live(reader, backed_up)
    });
    let reader = ApiReader::new(client.clone());
    let listing = engine::run(
        &reader,
        &request.discovery,
        &request.selection,
        &params,
        sink,
        &|_| {},
    );
    let (listed, compared) = tokio::join!(listing, comparing);
    let (outcome, mut changes) = match (listed, compared.and_then(|c| c)) {
        (Ok((outcome, _)), Ok(changes)) => (outcome, changes),
        // A comparison that stopped reading breaks the pipe the engine writes to: its own error
        // is the cause. Otherwise the engine's failure explains a comparison cut short.
        (Err(failure), Err(e)) if matches!(failure.error, engine::BackupError::Write(_)) => {
            return Err(e.context("comparing the cluster with the backup"));
        }
        (Err(failure), _) => bail!("reading the cluster: {}", failure.error),
        (Ok(_), Err(e)) => return Err(e.context("comparing the cluster with the backup")),
    };
    for message in results_lines(&outcome) {
        eprintln!("Warning: reading the cluster: {message}");
    }

    if !args.include_owned {
        changes.retain(|c| !c.owned);
    }
    changes.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut out = std::io::stdout();
    match args.output {
        ReportFormat::Plaintext => {
            use std::io::Write as _;
            out.write_all(render(&args.name, &changes).as_bytes())?;
        }
        ReportFormat::Json | ReportFormat::Yaml => {
            let count = |kind| changes.iter().filter(|c| c.change == kind).count();
            let document = serde_json::json!({
                "backup": args.name,
                "drift": !changes.is_empty(),
                "summary": {
                    "added": count(Kind::Added),
                    "removed": count(Kind::Removed),
                    "changed": count(Kind::Changed),
                },
                "items": changes,
            });
            let format = if args.output == ReportFormat::Json {
                Format::Json
            } else {
                Format::Yaml
            };
            output::print(&document, format, &mut out)?;
        }
    }
    if changes.is_empty() {
        Ok(())
    } else {
        Err(crate::ExitWith(1).into())
    }
}

/// The items of a tarball a restore could restore, one at a time, as JSON.
fn each_item(reader: &mut dyn Read, mut visit: impl FnMut(Identity, Value)) -> anyhow::Result<()> {
    let mut bad = None;
    velero_archive::for_each_entry(reader, |path, data| {
        let Some(id) = Identity::from_entry(&path) else {
            return true;
        };
        if NON_RESTORABLE.contains(&id.group_resource.as_str()) {
            return true;
        }
        match items::parse_item(&id, &data) {
            Ok(item) => {
                visit(id, item);
                true
            }
            Err(e) => {
                bad = Some(e);
                false
            }
        }
    })?;
    bad.map_or(Ok(()), Err)
}

fn read_backed_up(reader: &mut dyn Read) -> anyhow::Result<BackedUp> {
    let mut side = BackedUp {
        items: BTreeMap::new(),
        services_with_selector: HashSet::new(),
    };
    each_item(reader, |id, item| {
        if let Some(service) = service_with_selector(&id, &item) {
            side.services_with_selector.insert(service);
        }
        let stored = Stored {
            owned: controlled(&item),
            comparable: comparable(&item),
        };
        side.items.insert(id, stored);
    })?;
    Ok(side)
}

/// Compares each live item with its backed-up copy as the engine's tarball streams in; what is
/// left of the backup's side at the end was removed.
fn compare_live(reader: &mut dyn Read, mut backed_up: BackedUp) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    each_item(reader, |id, item| {
        if let Some(service) = service_with_selector(&id, &item) {
            backed_up.services_with_selector.insert(service);
        }
        let owned = controlled(&item);
        let live = comparable(&item);
        match backed_up.items.remove(&id) {
            None => changes.push(Change::new(Kind::Added, id, owned, Vec::new())),
            Some(stored) => {
                let fields = field_diff(&stored.comparable, &live);
                if !fields.is_empty() {
                    let owned = owned || stored.owned;
                    changes.push(Change::new(Kind::Changed, id, owned, fields));
                }
            }
        }
    })?;
    for (id, stored) in backed_up.items {
        changes.push(Change::new(Kind::Removed, id, stored.owned, Vec::new()));
    }
    for change in &mut changes {
        let endpoints_of_service = change.group_resource == "endpoints"
            && change.namespace.as_ref().is_some_and(|ns| {
                backed_up
                    .services_with_selector
                    .contains(&(ns.clone(), change.name.clone()))
            });
        if endpoints_of_service {
            change.owned = true;
        }
    }
    Ok(changes)
}

/// Whether a controller owns the object: it is rewritten by that controller whenever its owner
/// changes, so its differences are the owner's, already reported.
fn controlled(item: &Value) -> bool {
    item.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller") == Some(&Value::Bool(true)))
        })
}

/// A Service whose selector makes the endpoints controller write an Endpoints of its name.
fn service_with_selector(id: &Identity, item: &Value) -> Option<(String, String)> {
    if id.group_resource != "services" {
        return None;
    }
    let selector = item.pointer("/spec/selector")?.as_object()?;
    if selector.is_empty() {
        return None;
    }
    Some((id.namespace.clone()?, id.name.clone()))
}

/// A Secret's values are credentials: the report says where they changed, never what they are.
fn hide_secret_values(fields: &mut [FieldChange]) {
    let secret = |path: &str| {
        ["data", "stringData"].iter().any(|top| {
            path == *top
                || path.starts_with(&format!("{top}."))
                || path.starts_with(&format!("{top}["))
        }) || path == "metadata.annotations[\"kubectl.kubernetes.io/last-applied-configuration\"]"
    };
    let hide = |value: Value| match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, _)| (k, Value::String(HIDDEN.into())))
                .collect(),
        ),
        _ => Value::String(HIDDEN.into()),
    };
    for field in fields.iter_mut().filter(|f| secret(&f.path)) {
        field.backup = field.backup.take().map(hide);
        field.cluster = field.cluster.take().map(hide);
    }
}

/// The engine's warnings and errors about the live side (a namespace that no longer exists, a
/// type that could not be listed), which explain some of the report.
fn results_lines(outcome: &engine::BackupOutcome) -> Vec<String> {
    let mut lines = Vec::new();
    for r in [&outcome.results.errors, &outcome.results.warnings] {
        lines.extend(r.velero.iter().cloned());
        lines.extend(r.cluster.iter().cloned());
        for (ns, messages) in &r.namespaces {
            lines.extend(messages.iter().map(|m| format!("namespace {ns}: {m}")));
        }
    }
    lines
}

fn shown(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "<none>".into();
    };
    let text = value.to_string();
    if text.chars().count() <= SHOWN_VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_VALUE_CHARS).collect();
    format!("{cut}...")
}

/// The plain-text report: a block per namespace, cluster-scoped objects first.
fn render(backup: &str, changes: &[Change]) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        let _ = writeln!(out, "No drift: the cluster matches backup {backup}.");
        return out;
    }
    let mut current: Option<&Option<String>> = None;
    for change in changes {
        if current != Some(&change.namespace) {
            if current.is_some() {
                out.push('\n');
            }
            match &change.namespace {
                None => out.push_str("Cluster-scoped:\n"),
                Some(ns) => {
                    let _ = writeln!(out, "Namespace {ns}:");
                }
            }
            current = Some(&change.namespace);
        }
        let sign = match change.change {
            Kind::Added => '+',
            Kind::Removed => '-',
            Kind::Changed => '~',
        };
        let owned = if change.owned { " (owned)" } else { "" };
        let _ = writeln!(
            out,
            "  {sign} {}/{}{owned}",
            change.group_resource, change.name
        );
        for field in &change.fields {
            let _ = writeln!(
                out,
                "      {}: {} -> {}",
                field.path,
                shown(field.backup.as_ref()),
                shown(field.cluster.as_ref())
            );
        }
    }
    let count = |kind| changes.iter().filter(|c| c.change == kind).count();
    let _ = writeln!(
        out,
        "\nBackup {backup} against the cluster now: {} added, {} removed, {} changed.",
        count(Kind::Added),
        count(Kind::Removed),
        count(Kind::Changed)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tarball(items: &[(&str, Value)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, item) in items {
            let data = serde_json::to_vec(item).expect("serializes");
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            builder
                .append_data(&mut header, path, &data[..])
                .expect("appends");
        }
        builder
            .into_inner()
            .and_then(|gz| gz.finish())
            .expect("finishes")
    }

    fn object(kind: &str, name: &str, extra: Value) -> Value {
        let mut item = json!({"apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "shop", "uid": "u", "resourceVersion": "1"}});
        json_merge(&mut item, extra);
        item
    }

    fn json_merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    #[test]
    fn drift_is_what_changed_on_its_own() {
        let owner = json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": true}]}});
        let selector = json!({"spec": {"selector": {"app": "web"}}});
        let backup = tarball(&[
            (
                "resources/configmaps/namespaces/shop/settings.json",
                object("ConfigMap", "settings", json!({"data": {"color": "blue"}})),
            ),
            (
                "resources/secrets/namespaces/shop/token.json",
                object("Secret", "token", json!({"data": {"t": "c2VjcmV0"}})),
            ),
            (
                "resources/secrets/namespaces/shop/key.json",
                object("Secret", "key", json!({"data": {"k": "b2xk"}})),
            ),
            (
                "resources/pods/namespaces/shop/web-1-a.json",
                object("Pod", "web-1-a", owner.clone()),
            ),
            (
                "resources/services/namespaces/shop/web.json",
                object("Service", "web", selector.clone()),
            ),
            (
                "resources/events/namespaces/shop/e1.json",
                object("Event", "e1", json!({})),
            ),
        ]);
        let live = tarball(&[
            (
                "resources/configmaps/namespaces/shop/settings.json",
                object(
                    "ConfigMap",
                    "settings",
                    json!({"data": {"color": "red"}, "metadata": {"resourceVersion": "7", "managedFields": []}}),
                ),
            ),
            (
                "resources/secrets/namespaces/shop/key.json",
                object("Secret", "key", json!({"data": {"k": "bmV3"}})),
            ),
            (
                "resources/pods/namespaces/shop/web-1-b.json",
                object("Pod", "web-1-b", owner),
            ),
            (
                "resources/endpoints/namespaces/shop/web.json",
                object("Endpoints", "web", json!({})),
            ),
            (
                "resources/services/namespaces/shop/web.json",
                object("Service", "web", selector),
            ),
            (
                "resources/services/namespaces/shop/extra.json",
                object("Service", "extra", json!({})),
            ),
            (
                "resources/events/namespaces/shop/e2.json",
                object("Event", "e2", json!({})),
            ),
        ]);
        let backed_up = read_backed_up(&mut &backup[..]).expect("reads");
        let mut changes = compare_live(&mut &live[..], backed_up).expect("compares");
        changes.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let shown: Vec<String> = changes
            .iter()
            .map(|c| {
                format!("{:?} {} {}", c.change, c.group_resource, c.name)
                    + if c.owned { " owned" } else { "" }
            })
            .collect();
        assert_eq!(
            shown,
            [
                "Changed configmaps settings",
                "Added endpoints web owned",
                "Removed pods web-1-a owned",
                "Added pods web-1-b owned",
                "Changed secrets key",
                "Removed secrets token",
                "Added services extra",
            ]
        );
        assert_eq!(
            serde_json::to_value(&changes[0].fields).expect("serializes"),
            json!([{"path": "data.color", "backup": "blue", "cluster": "red"}])
        );
        assert_eq!(
            serde_json::to_value(&changes[4].fields).expect("serializes"),
            json!([{"path": "data.k", "backup": HIDDEN, "cluster": HIDDEN}]),
            "a Secret's values are never shown"
        );
        changes.retain(|c| !c.owned);
        let text = render("shop-1", &changes);
        assert_eq!(
            text,
            "Namespace shop:\n  ~ configmaps/settings\n      data.color: \"blue\" -> \"red\"\n  ~ secrets/key\n      data.k: \"<hidden>\" -> \"<hidden>\"\n  - secrets/token\n  + services/extra\n\nBackup shop-1 against the cluster now: 1 added, 1 removed, 2 changed.\n"
        );
        assert_eq!(
            render("shop-1", &[]),
            "No drift: the cluster matches backup shop-1.\n"
        );
    }
}
