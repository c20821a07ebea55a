//! `velero backup get-item` (a velero-rs addition): one backed-up object, as it was stored.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::items::{self, Identity, ResourceName, TarballFlags};
use crate::client::GlobalArgs;
use crate::download;
use crate::output::{self, Format};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ItemFormat {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Print one object of a backup as it was stored in the backup's tarball.\n\nThe tarball is read as it downloads, through a DownloadRequest, and the read stops at the item when --item-namespace is given.\n\nThis command is a velero-rs addition; Velero has none like it."
)]
pub struct GetItemArgs {
    /// Name of the backup
    name: String,
    /// The item, as <resource>/<name>: deployments/web, deploy/web, deployments.apps/web, cm/settings
    item: String,
    /// Namespace of the item. Without it the item is looked for among cluster-scoped items and in every namespace (an error when several namespaces hold one). The global -n/--namespace is Velero's own namespace
    #[arg(long)]
    item_namespace: Option<String>,
    /// Output display format: yaml or json (json prints the item's bytes exactly as stored)
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: ItemFormat,
    #[command(flatten)]
    tarball: TarballFlags,
}

pub(super) async fn get_item(global: &GlobalArgs, args: GetItemArgs) -> anyhow::Result<()> {
    let (resource, name) = match args.item.split_once('/') {
        Some((r, n)) if !r.is_empty() && !n.is_empty() && !n.contains('/') => {
            (r.to_string(), n.to_string())
        }
        _ => bail!(
            "{:?} is not an item: give it as <resource>/<name>, such as deployments/web",
            args.item
        ),
    };
    let client = global.client().await?;
    let namespace = global.namespace();
    items::finished_backup(&client, &namespace, &args.name, Some("--item-namespace")).await?;
    let discovery = items::discovery(&client).await;
    let resource = ResourceName::new(&resource, discovery.as_ref());
    let stream = items::open_tarball(&client, &namespace, &args.name, &args.tarball).await?;

    let wanted_namespace = args.item_namespace.clone();
    let matcher = resource.clone();
    let wanted_name = name.clone();
    let (found, elsewhere) = download::read_blocking(stream, move |reader| {
        let mut found: Option<(Identity, Vec<u8>)> = None;
        let mut elsewhere = Vec::new();
        velero_archive::for_each_entry(reader, |path, data| {
            let Some(id) = Identity::from_entry(&path) else {
                return true;
            };
            if id.name != wanted_name || !matcher.matches(&id.group_resource) {
                return true;
            }
            if wanted_namespace
                .as_ref()
                .is_some_and(|ns| id.namespace.as_ref() != Some(ns))
            {
                return true;
            }
            if found.is_some() {
                elsewhere.push(id);
                return true;
            }
            found = Some((id, data));
            // A namespace names one item; without one, the rest is read to find others like it.
            wanted_namespace.is_none()
        })
        .context("reading the backup's tarball")?;
        anyhow::Ok((found, elsewhere))
    })
    .await??;

    let Some((id, data)) = found else {
        let place = match &args.item_namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None => String::new(),
        };
        bail!(
            "item {}/{name}{place} is not in backup {:?}; see `velero backup contents {}`",
            resource.shown(),
            args.name,
            args.name
        );
    };
    if !elsewhere.is_empty() {
        let mut places: Vec<String> = std::iter::once(&id)
            .chain(&elsewhere)
            .map(|i| {
                i.namespace
                    .clone()
                    .unwrap_or_else(|| "cluster-scoped".into())
            })
            .collect();
        places.sort();
        bail!(
            "backup {:?} holds more than one {}/{name} ({}); choose one with --item-namespace",
            args.name,
            resource.shown(),
            places.join(", ")
        );
    }
    let value = items::parse_item(&id, &data)?;
    let mut out = std::io::stdout();
    match args.output {
        ItemFormat::Json => {
            out.write_all(&data)?;
            if !data.ends_with(b"\n") {
                writeln!(out)?;
            }
            Ok(())
        }
        ItemFormat::Yaml => output::print(&value, Format::Yaml, &mut out),
    }
}
