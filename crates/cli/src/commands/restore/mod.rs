//! `velero restore create|get|describe|logs|delete`.

mod create;
mod delete;
mod describe;
mod get;
mod logs;

use clap::Subcommand;

use self::create::CreateArgs;
use self::delete::DeleteArgs;
use self::describe::DescribeArgs;
use self::logs::LogsArgs;
use crate::client::GlobalArgs;
use crate::select::GetArgs;

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Create a restore
    Create(Box<CreateArgs>),
    /// Get restores
    Get(GetArgs),
    /// Get restore logs
    Logs(LogsArgs),
    /// Describe restores
    Describe(DescribeArgs),
    /// Delete restores
    Delete(DeleteArgs),
}

pub async fn run(global: &GlobalArgs, command: RestoreCommand) -> anyhow::Result<()> {
    match command {
        RestoreCommand::Create(args) => create::create(global, *args).await,
        RestoreCommand::Get(args) => get::get(global, args).await,
        RestoreCommand::Logs(args) => logs::logs(global, args).await,
        RestoreCommand::Describe(args) => describe::describe(global, args).await,
        RestoreCommand::Delete(args) => delete::delete(global, args).await,
    }
}

/// Fixtures the subcommands' tests share.
#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;
    use velero_api::v1::{
        Restore, RestorePhase, RestoreProgress, RestoreSpec, RestoreStatus,
        UploaderConfigForRestore,
    };

    pub(super) fn at(t: &str) -> Time {
        Time(t.parse().expect("timestamp"))
    }

    pub(crate) fn fixture() -> Restore {
        let mut r = Restore::new(
            "shop-restore",
            RestoreSpec {
                backup_name: Some("shop-1".into()),
                included_namespaces: Some(vec!["*".into()]),
                namespace_mapping: Some(BTreeMap::from([("shop".into(), "shop-copy".into())])),
                label_selector: velero_filters::selector::parse_label_selector("app=web").ok(),
                existing_resource_policy: Some("update".into()),
                item_operation_timeout: velero_api::Duration::parse("4h").ok(),
                uploader_config: Some(UploaderConfigForRestore {
                    write_sparse_files: Some(true),
                    parallel_files_download: Some(4),
                }),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("velero".into());
        r.metadata.creation_timestamp = Some(at("2026-05-01T10:00:00Z"));
        r.status = Some(RestoreStatus {
            phase: Some(RestorePhase::PartiallyFailed),
            warnings: Some(1),
            errors: Some(2),
            start_timestamp: Some(at("2026-05-01T10:00:01Z")),
            completion_timestamp: Some(at("2026-05-01T10:00:09Z")),
            progress: Some(RestoreProgress {
                total_items: Some(12),
                items_restored: Some(10),
            }),
            ..Default::default()
        });
        r
    }
}
