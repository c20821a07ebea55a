//! `velero restore get`.

use kube::ResourceExt;
use velero_api::v1::Restore;

use crate::client::GlobalArgs;
use crate::describe::restore::status_text;
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::{select, table};

pub(super) const COLUMNS: [&str; 9] = [
    "Name",
    "Backup",
    "Status",
    "Started",
    "Completed",
    "Errors",
    "Warnings",
    "Created",
    "Selector",
];

pub(super) fn row(restore: &Restore) -> Vec<String> {
    let status = restore.status.clone().unwrap_or_default();
    vec![
        restore.name_any(),
        restore.spec.backup_name.clone().unwrap_or_default(),
        status_text(restore),
        table::time(status.start_timestamp.as_ref()),
        table::time(status.completion_timestamp.as_ref()),
        status.errors.unwrap_or(0).to_string(),
        status.warnings.unwrap_or(0).to_string(),
        table::time(restore.metadata.creation_timestamp.as_ref()),
        table::selector(restore.spec.label_selector.as_ref()),
    ]
}

pub(super) async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let restores =
        select::in_namespace::<Restore>(global, &args.names, args.selector.as_deref(), "restore")
            .await?;
    if args.output != Format::Table {
        return output::print_list(
            "RestoreList",
            &restores,
            args.output,
            &mut std::io::stdout(),
        );
    }
    let rows: Vec<Vec<String>> = restores.iter().map(row).collect();
    table::print(&COLUMNS, &rows, &mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::restore::tests::{at, fixture};
    use velero_api::v1::RestoreSpec;

    #[test]
    fn get_prints_velero_s_columns() {
        let mut deleting = Restore::new(
            "old",
            RestoreSpec {
                backup_name: Some("b".into()),
                ..Default::default()
            },
        );
        deleting.metadata.deletion_timestamp = Some(at("2026-05-02T00:00:00Z"));
        let mut out = Vec::new();
        table::print(&COLUMNS, &[row(&fixture()), row(&deleting)], &mut out).expect("prints");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "NAME           BACKUP   STATUS            STARTED                         COMPLETED                       ERRORS   WARNINGS   CREATED                         SELECTOR\n\
             shop-restore   shop-1   PartiallyFailed   2026-05-01 10:00:01 +0000 UTC   2026-05-01 10:00:09 +0000 UTC   2        1          2026-05-01 10:00:00 +0000 UTC   app=web\n\
             old            b        New (Deleting)    <nil>                           <nil>                           0        0          <nil>                           <none>\n"
        );
    }
}
