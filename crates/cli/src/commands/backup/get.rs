//! `velero backup get`.

use kube::ResourceExt;
use velero_api::v1::{Backup, BackupPhase};

use crate::client::GlobalArgs;
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::{select, table};

/// Velero's order: scheduled backups (`<schedule>-<14 digits>`) grouped by schedule, newest
/// first; everything else by name.
fn sort_backups(backups: &mut [Backup]) {
    fn key(name: &str) -> (String, std::cmp::Reverse<String>) {
        match name.rsplit_once('-') {
            Some((prefix, stamp))
                if stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (prefix.to_string(), std::cmp::Reverse(stamp.to_string()))
            }
            _ => (name.to_string(), std::cmp::Reverse(String::new())),
        }
    }
    backups.sort_by_key(|b| key(&b.name_any()));
}

pub(super) async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let mut backups =
        select::in_namespace::<Backup>(global, &args.names, args.selector.as_deref(), "backup")
            .await?;
    sort_backups(&mut backups);
    if args.output != Format::Table {
        return output::print_list("BackupList", &backups, args.output, &mut std::io::stdout());
    }
    let rows: Vec<Vec<String>> = backups
        .iter()
        .map(|b| {
            let status = b.status.clone().unwrap_or_default();
            let mut phase = status
                .phase
                .unwrap_or(BackupPhase::New)
                .as_str()
                .to_string();
            if b.metadata.deletion_timestamp.is_some() {
                phase = "Deleting".into();
            }
            let expiration = status.expiration.as_ref().map(|t| t.0).or_else(|| {
                let ttl = b.spec.ttl.filter(|t| !t.is_zero())?;
                let created = b.metadata.creation_timestamp.as_ref()?.0;
                created
                    .checked_add(jiff::SignedDuration::from_nanos(ttl.as_nanos()))
                    .ok()
            });
            vec![
                b.name_any(),
                phase,
                status.errors.unwrap_or(0).to_string(),
                status.warnings.unwrap_or(0).to_string(),
                table::time(status.start_timestamp.as_ref()),
                table::from_now(expiration),
                b.spec.storage_location.clone().unwrap_or_default(),
                status
                    .queue_position
                    .filter(|p| *p > 0)
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                table::selector(b.spec.label_selector.as_ref()),
            ]
        })
        .collect();
    table::print(
        &[
            "Name",
            "Status",
            "Errors",
            "Warnings",
            "Created",
            "Expires",
            "Storage Location",
            "Queue Position",
            "Selector",
        ],
        &rows,
        &mut std::io::stdout(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_backups_group_newest_first() {
        let mut backups: Vec<Backup> = [
            "daily-20260101000000",
            "adhoc",
            "daily-20260103000000",
            "daily-20260102000000",
            "zeta",
        ]
        .iter()
        .map(|n| Backup::new(n, Default::default()))
        .collect();
        sort_backups(&mut backups);
        let names: Vec<String> = backups.iter().map(|b| b.name_any()).collect();
        assert_eq!(
            names,
            [
                "adhoc",
                "daily-20260103000000",
                "daily-20260102000000",
                "daily-20260101000000",
                "zeta"
            ]
        );
    }
}
