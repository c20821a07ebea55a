//! Velero's selection flags for delete commands (`NAMES | --all | -l SELECTOR`, `--confirm`).

use anyhow::bail;
use clap::{ArgAction, Args};

#[derive(Args, Debug)]
pub struct DeleteOptions {
    /// Names of the objects to delete
    pub names: Vec<String>,
    /// Delete all objects of this kind
    #[arg(long, action = ArgAction::SetTrue)]
    pub all: bool,
    /// Delete the objects matching this label selector
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Confirm deletion without a prompt
    #[arg(long, action = ArgAction::SetTrue)]
    pub confirm: bool,
}

impl DeleteOptions {
    /// Exactly one way of choosing must be used, and the user must agree unless `--confirm`;
    /// `Ok(false)` when they decline.
    pub fn validate_and_confirm(&self, kind: &str) -> anyhow::Result<bool> {
        let chosen = [!self.names.is_empty(), self.all, self.selector.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen != 1 {
            bail!("either specify {kind} names, --all or --selector (-l), and only one of them");
        }
        if !self.confirm && !crate::confirm("Are you sure you want to continue (Y/N)? ")? {
            println!("Cancelling {kind} deletion");
            return Ok(false);
        }
        Ok(true)
    }
}

/// The objects a `get`, `describe` or `delete` command names, or else those matching its label
/// selector (all of them without one), as Velero's commands choose.
pub async fn named_or_selected<K>(
    api: &kube::Api<K>,
    names: &[String],
    selector: Option<&str>,
    kind: &str,
) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use anyhow::Context as _;
    if !names.is_empty() {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let object = api
                .get_opt(name)
                .await
                .with_context(|| format!("reading {kind} {name:?}"))?
                .with_context(|| format!("{kind} {name:?} not found"))?;
            out.push(object);
        }
        return Ok(out);
    }
    let mut params = kube::api::ListParams::default();
    if let Some(s) = selector {
        params = params.labels(s);
    }
    Ok(api
        .list(&params)
        .await
        .with_context(|| format!("listing {kind}s"))?
        .items)
}
