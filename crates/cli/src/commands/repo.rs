//! `velero repo get`: the volume-data repositories (BackupRepository), as Velero lists them.

use clap::Subcommand;
use kube::ResourceExt;
use kube::api::Api;
use velero_api::v1::BackupRepository;

use crate::client::GlobalArgs;
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::table;

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Get repositories
    Get(GetArgs),
}

pub async fn run(global: &GlobalArgs, command: RepoCommand) -> anyhow::Result<()> {
    let RepoCommand::Get(args) = command;
    let api: Api<BackupRepository> = Api::namespaced(global.client().await?, &global.namespace());
    let mut repos = crate::select::named_or_selected(
        &api,
        &args.names,
        args.selector.as_deref(),
        "backup repository",
    )
    .await?;
    repos.sort_by_key(|r| r.name_any());
    let mut stdout = std::io::stdout();
    if args.output != Format::Table {
        return output::print_list("BackupRepositoryList", &repos, args.output, &mut stdout);
    }
    table::print(
        &["Name", "Status", "Last Maintenance"],
        &rows(&repos),
        &mut stdout,
    )?;
    Ok(())
}

/// Velero's `printBackupRepo`: name, phase, and the last maintenance or `<never>`.
fn rows(repos: &[BackupRepository]) -> Vec<Vec<String>> {
    repos
        .iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            let phase = status
                .phase
                .map(|p| p.as_str())
                .unwrap_or_default()
                .to_string();
            let last = match &status.last_maintenance_time {
                Some(t) => table::time(Some(t)),
                None => "<never>".to_string(),
            };
            vec![r.name_any(), phase, last]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_phase_and_last_maintenance() {
        let mut ready = BackupRepository::new("app-default-restic", Default::default());
        ready.status = Some(velero_api::v1::BackupRepositoryStatus {
            phase: Some(velero_api::v1::BackupRepositoryPhase::Ready),
            last_maintenance_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-01T10:00:00Z".parse().expect("a time"),
            )),
            ..Default::default()
        });
        let fresh = BackupRepository::new("db-default-restic", Default::default());
        assert_eq!(
            rows(&[ready, fresh]),
            [
                vec![
                    "app-default-restic".to_string(),
                    "Ready".into(),
                    "2026-12-01 10:00:00 +0000 UTC".into()
                ],
                vec![
                    "db-default-restic".to_string(),
                    String::new(),
                    "<never>".into()
                ],
            ]
        );
    }
}
