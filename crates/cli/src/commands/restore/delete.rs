//! `velero restore delete`.

use anyhow::bail;
use clap::Args;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use velero_api::v1::Restore;

use crate::client::GlobalArgs;
use crate::select;

#[derive(Args, Debug)]
#[command(
    mut_arg("all", |a| a.help("Delete all restores")),
    mut_arg("selector", |a| a.help("Delete all restores matching this label selector"))
)]
pub struct DeleteArgs {
    #[command(flatten)]
    options: crate::select::DeleteOptions,
}

pub(super) async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    if !args.options.validate_and_confirm("restore")? {
        return Ok(());
    }
    let select = &args.options.select;
    let restores = select::in_namespace::<Restore>(
        global,
        &select.names,
        select.selector.as_deref(),
        "restore",
    )
    .await?;
    if restores.is_empty() {
        println!("No restores found");
        return Ok(());
    }
    let client = global.client().await?;
    let api: Api<Restore> = Api::namespaced(client, &global.namespace());
    let mut failed = Vec::new();
    for restore in restores {
        let name = restore.name_any();
        // The server's finalizer removes the restore's files before the object goes away.
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => println!(
                "Request to delete restore {name:?} submitted successfully.\nThe restore will be fully deleted after all associated data (restore files in object storage) are removed."
            ),
            Err(e) => failed.push(format!("deleting restore {name:?}: {e}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}
