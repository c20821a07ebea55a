//! `velero backup create`.

use anyhow::{Context, bail};
use clap::{ArgAction, Args};
use kube::ResourceExt;
use kube::api::Api;
use velero_api::v1::{Backup, BackupPhase, Schedule};

use super::{BackupFlags, check_locations, merge_into};
use crate::client::GlobalArgs;
use crate::output::{self, Format};
use crate::progress;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the backup (optional with --from-schedule)
    name: Option<String>,
    #[command(flatten)]
    backup: BackupFlags,
    /// Create a backup from the template of an existing schedule. Cannot be used with any other filters. Backup name is optional if used
    #[arg(long)]
    from_schedule: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long, action = ArgAction::SetTrue)]
    wait: bool,
    /// Output display format. For create commands, display the object but do not send it to the server. Valid formats are 'table', 'json', and 'yaml'
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

pub(super) async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let from_schedule = args.from_schedule.as_deref().map(str::trim);
    if from_schedule == Some("") {
        bail!("flag must have a non-empty value: --from-schedule");
    }
    let mut backup = match from_schedule {
        Some(schedule_name) => {
            let client = global.client().await?;
            let schedules: Api<Schedule> = Api::namespaced(client, &namespace);
            let schedule = schedules
                .get_opt(schedule_name)
                .await
                .with_context(|| format!("reading schedule {schedule_name:?}"))?
                .with_context(|| {
                    format!(
                        "schedule {schedule_name:?} not found in namespace {namespace}; see `velero schedule get`"
                    )
                })?;
            // Velero names it with the UTC time, as its schedule controller does.
            let name = args
                .name
                .clone()
                .unwrap_or_else(|| schedule.timestamped_name(jiff::Timestamp::now()));
            schedule.backup_named(&name)
        }
        None => {
            let Some(name) = args.name.clone() else {
                bail!("a backup name is required, unless you are creating based on a schedule");
            };
            Backup::new(&name, args.backup.spec()?)
        }
    };
    backup.metadata.namespace = Some(namespace.clone());
    // The flags win over what a schedule gives, as in Velero.
    merge_into(&mut backup.metadata.labels, &args.backup.labels);
    merge_into(&mut backup.metadata.annotations, &args.backup.annotations);
    if let Some(format) = args.output {
        let value = serde_json::to_value(&backup)?;
        return output::print(&value, format, &mut std::io::stdout());
    }

    let client = global.client().await?;
    check_locations(&client, &namespace, &backup.spec).await?;
    if from_schedule.is_some() {
        println!("Creating backup from schedule, all other filters are ignored.");
    }
    let name = backup.name_any();
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    crate::client::create_new(&api, &backup, "backup").await?;
    println!("Backup request {name:?} submitted successfully.");
    if args.wait {
        println!(
            "Waiting for backup to complete. You may safely press ctrl-c to stop waiting - your backup will continue in the background."
        );
        let phase = wait_for_backup(&api, &name).await?;
        println!(
            "\nBackup completed with status: {}. You may check for more information using the commands `velero backup describe {name}` and `velero backup logs {name}`.",
            phase.as_str()
        );
        return Ok(());
    }
    println!(
        "Run `velero backup describe {name}` or `velero backup logs {name}` for more details."
    );
    Ok(())
}

/// Polls the backup until it is done, showing items done/total as they change.
/// `, pod volumes: <done>/<total> bytes` while the backup has PodVolumeBackups.
async fn volume_bytes(api: &Api<Backup>, name: &str) -> Option<String> {
    let pvbs: Api<velero_api::v1::PodVolumeBackup> =
        Api::namespaced(api.clone().into_client(), api.namespace()?);
    let selector = format!(
        "{}={}",
        velero_api::labels::BACKUP_NAME,
        velero_api::labels::valid_label_value(name)
    );
    let list = pvbs
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .ok()?
        .items;
    if list.is_empty() {
        return None;
    }
    let (done, total) = list
        .iter()
        .filter_map(|p| p.status.as_ref()?.progress.clone())
        .fold((0i64, 0i64), |(d, t), p| {
            (
                d + p.bytes_done.unwrap_or(0),
                t + p.total_bytes.unwrap_or(0),
            )
        });
    Some(format!(", pod volumes: {done}/{total} bytes"))
}

async fn wait_for_backup(api: &Api<Backup>, name: &str) -> anyhow::Result<BackupPhase> {
    progress::until_done(|| async {
        let backup = api.get(name).await.context("reading the backup")?;
        let status = backup.status.unwrap_or_default();
        let phase = status.phase.unwrap_or(BackupPhase::New);
        let progress = status.progress.unwrap_or_default();
        let mut line = format!(
            "{}: {}/{} items backed up",
            phase.as_str(),
            progress.items_backed_up.unwrap_or(0),
            progress.total_items.unwrap_or(0)
        );
        if let Some(volumes) = volume_bytes(api, name).await {
            line.push_str(&volumes);
        }
        Ok((line, phase.is_terminal().then_some(phase)))
    })
    .await
}
