//! `velero backup delete`.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use velero_api::labels;
use velero_api::v1::{Backup, DeleteBackupRequest, DeleteBackupRequestSpec};

use crate::client::GlobalArgs;
use crate::select;

#[derive(Args, Debug)]
#[command(
    mut_arg("all", |a| a.help("Delete all backups")),
    mut_arg("selector", |a| a.help("Delete all backups matching this label selector"))
)]
pub struct DeleteArgs {
    #[command(flatten)]
    options: crate::select::DeleteOptions,
}

pub(super) async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    if !args.options.validate_and_confirm("backup")? {
        return Ok(());
    }
    let select = &args.options.select;
    let backups =
        select::in_namespace::<Backup>(global, &select.names, select.selector.as_deref(), "backup")
            .await?;
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<DeleteBackupRequest> = Api::namespaced(client, &namespace);
    for backup in backups {
        let name = backup.name_any();
        let request = DeleteBackupRequest {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                labels: Some(BTreeMap::from([
                    (
                        labels::BACKUP_NAME.to_string(),
                        labels::valid_label_value(&name),
                    ),
                    (
                        labels::BACKUP_UID.to_string(),
                        backup.metadata.uid.clone().unwrap_or_default(),
                    ),
                ])),
                ..Default::default()
            },
            spec: DeleteBackupRequestSpec {
                backup_name: name.clone(),
            },
            status: None,
        };
        api.create(&PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting the deletion of backup {name}"))?;
        println!(
            "Request to delete backup {name:?} submitted successfully.\nThe backup will be fully deleted after all associated data (disk snapshots, backup files, restores) are removed."
        );
    }
    Ok(())
}
