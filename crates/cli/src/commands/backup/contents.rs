//! `velero backup contents` (a velero-rs addition): the items a backup holds, read from its
//! tarball as it streams in.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use velero_filters::IncludesExcludes;
use velero_filters::selector::{Selector, parse_label_selector};

use super::items::{self, Head, Identity, ResourceName, TarballFlags};
use crate::client::GlobalArgs;
use crate::download;
use crate::output::{self, Format};
use crate::table;

#[derive(Args, Debug)]
#[command(
    long_about = "List the items a backup holds: type (resource.group, as stored), namespace, name and API version.\n\nThe backup's tarball is read as it downloads, through a DownloadRequest as `velero backup download` does; nothing is unpacked to disk. Filters combine: an item is listed when it matches all of them.\n\nThis command is a velero-rs addition; Velero has none like it."
)]
pub struct ContentsArgs {
    /// Name of the backup
    name: String,
    /// Only list items in these namespaces (comma-separated, globs such as 'shop-*' allowed); cluster-scoped items are then left out. The global -n/--namespace is Velero's own namespace
    #[arg(long, value_delimiter = ',')]
    include_namespaces: Vec<String>,
    /// Only list items of these resources (comma-separated), as kubectl takes them: deployments, deploy, deployments.apps, configmaps, cm
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Only list items whose labels match this label selector
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Output display format: table, json or yaml
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    tarball: TarballFlags,
}

/// One listed item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    group_resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    api_version: String,
    kind: String,
}

/// What the flags keep.
struct Filter {
    namespaces: Option<IncludesExcludes>,
    resources: Vec<ResourceName>,
    selector: Option<Selector>,
}

impl Filter {
    fn keeps(&self, id: &Identity, head: &Head) -> bool {
        if let Some(namespaces) = &self.namespaces {
            match &id.namespace {
                Some(ns) if namespaces.should_include(ns) => {}
                _ => return false,
            }
        }
        if !self.resources.is_empty()
            && !self.resources.iter().any(|r| r.matches(&id.group_resource))
        {
            return false;
        }
        self.selector
            .as_ref()
            .is_none_or(|s| s.matches(&head.labels()))
    }
}

pub(super) async fn contents(global: &GlobalArgs, args: ContentsArgs) -> anyhow::Result<()> {
    let selector = args
        .selector
        .as_deref()
        .map(|s| {
            parse_label_selector(s)
                .and_then(|ls| Selector::new(&ls))
                .with_context(|| format!("invalid --selector {s:?}"))
        })
        .transpose()?;
    let namespaces = (!args.include_namespaces.is_empty())
        .then(|| IncludesExcludes::new(args.include_namespaces.clone(), Vec::<String>::new()));
    let client = global.client().await?;
    let namespace = global.namespace();
    items::finished_backup(
        &client,
        &namespace,
        &args.name,
        Some("--include-namespaces"),
    )
    .await?;
    let resources = if args.include_resources.is_empty() {
        Vec::new()
    } else {
        let discovery = items::discovery(&client).await;
        args.include_resources
            .iter()
            .map(|r| ResourceName::new(r, discovery.as_ref()))
            .collect()
    };
    let filter = Filter {
        namespaces,
        resources,
        selector,
    };
    let stream = items::open_tarball(&client, &namespace, &args.name, &args.tarball).await?;
    let mut rows = download::read_blocking(stream, move |reader| {
        let mut rows = Vec::new();
        let mut bad = None;
        velero_archive::for_each_entry(reader, |path, data| {
            let Some(id) = Identity::from_entry(&path) else {
                return true;
            };
            let head = match Head::parse(&id, &data) {
                Ok(head) => head,
                Err(e) => {
                    bad = Some(e);
                    return false;
                }
            };
            if filter.keeps(&id, &head) {
                rows.push(Row {
                    api_version: head.api_version.unwrap_or_default(),
                    kind: head.kind.unwrap_or_default(),
                    group_resource: id.group_resource,
                    namespace: id.namespace,
                    name: id.name,
                });
            }
            true
        })
        .context("reading the backup's tarball")?;
        match bad {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    })
    .await??;
    rows.sort();

    let mut out = std::io::stdout();
    if args.output != Format::Table {
        let document = serde_json::json!({ "backup": args.name, "items": rows });
        return output::print(&document, args.output, &mut out);
    }
    if rows.is_empty() {
        eprintln!("No items found in backup {}.", args.name);
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.group_resource,
                r.namespace.unwrap_or_else(|| "<none>".into()),
                r.name,
                r.api_version,
            ]
        })
        .collect();
    table::print(
        &["Resource", "Namespace", "Name", "API Version"],
        &cells,
        &mut out,
    )?;
    Ok(())
}
