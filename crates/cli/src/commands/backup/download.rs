//! `velero backup download`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Args};
use kube::api::Api;
use velero_api::v1::{Backup, DownloadTargetKind};

use crate::client::GlobalArgs;
use crate::download::{self, TlsOptions};
use crate::flags::parse_duration;

#[derive(Args, Debug)]
pub struct DownloadArgs {
    name: String,
    /// Path to output file. Defaults to <NAME>-data.tar.gz in the current directory
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Forces the download and will overwrite file if it exists already
    #[arg(long, action = ArgAction::SetTrue)]
    force: bool,
    /// Maximum time to wait to process download request
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: velero_api::Duration,
    #[command(flatten)]
    tls: TlsOptions,
}

pub(super) async fn download_contents(
    global: &GlobalArgs,
    args: DownloadArgs,
) -> anyhow::Result<()> {
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-data.tar.gz", args.name)));
    if path.exists() && !args.force {
        bail!(
            "file {} already exists, remove it or use --force",
            path.display()
        );
    }
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    api.get_opt(&args.name)
        .await?
        .with_context(|| format!("backup {:?} does not exist", args.name))?;
    let timeout = args.timeout.to_std().unwrap_or(Duration::from_secs(60));
    let kind = DownloadTargetKind::BackupContents;
    let mut stream =
        download::open_download(&client, &namespace, kind, &args.name, timeout, &args.tls).await?;
    // Streamed to the file: a tarball can be larger than memory.
    let written = async {
        let mut file = tokio::fs::File::create(&path).await?;
        tokio::io::copy(&mut stream, &mut file).await?;
        file.sync_all().await
    }
    .await;
    if let Err(e) = written {
        // A partial tarball must not be left looking like a download.
        let _ = std::fs::remove_file(&path);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    println!(
        "Backup {} has been successfully downloaded to {}",
        args.name,
        path.display()
    );
    Ok(())
}
