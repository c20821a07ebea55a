//! Velero's selection flags (`NAMES | --all | -l SELECTOR`) for the commands that act on several
//! objects at once (delete, pause, unpause), and `--confirm` for the destructive ones.

use anyhow::{Context as _, bail};
use clap::{ArgAction, Args};

/// Velero's `SelectOptions`. The help of `--all` and `--selector` names the command and the kind
/// in Velero ("Delete all schedules"); commands set it with `mut_arg`.
#[derive(Args, Debug)]
pub struct SelectOptions {
    /// Names of the objects
    pub names: Vec<String>,
    /// All objects of this kind
    #[arg(long, action = ArgAction::SetTrue)]
    pub all: bool,
    /// All objects of this kind matching this label selector
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

impl SelectOptions {
    /// Exactly one way of choosing must be used.
    pub fn validate(&self, kind: &str) -> anyhow::Result<()> {
        let chosen = [!self.names.is_empty(), self.all, self.selector.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen != 1 {
            bail!(
                "you must specify exactly one of: specific {kind} name(s), the --all flag, or the --selector flag"
            );
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct DeleteOptions {
    #[command(flatten)]
    pub select: SelectOptions,
    /// Confirm deletion
    #[arg(long, action = ArgAction::SetTrue)]
    pub confirm: bool,
}

impl DeleteOptions {
    /// The choice must be valid and the user must agree unless `--confirm`; `Ok(false)` when they
    /// decline, after which Velero exits quietly.
    pub fn validate_and_confirm(&self, kind: &str) -> anyhow::Result<bool> {
        self.select.validate(kind)?;
        Ok(self.confirm || crate::confirm("Are you sure you want to continue (Y/N)? ")?)
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
    if !names.is_empty() {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(get_named(api, name, kind).await?);
        }
        return Ok(out);
    }
    list_selected(api, selector, kind).await
}

/// What Velero's delete and pause commands act on: unlike `get`, a name that cannot be read does
/// not stop the others; its error is returned beside them, for `finish` to report at the end.
pub async fn chosen<K>(
    api: &kube::Api<K>,
    select: &SelectOptions,
    kind: &str,
) -> anyhow::Result<(Vec<K>, Vec<String>)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if select.names.is_empty() {
        let all = list_selected(api, select.selector.as_deref(), kind).await?;
        return Ok((all, Vec::new()));
    }
    let mut found = Vec::with_capacity(select.names.len());
    let mut errors = Vec::new();
    for name in &select.names {
        match get_named(api, name, kind).await {
            Ok(object) => found.push(object),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    Ok((found, errors))
}

/// Fails with every error collected along the way, as Velero's aggregate error does.
pub fn finish(errors: Vec<String>) -> anyhow::Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    bail!("{}", errors.join("; "))
}

async fn get_named<K>(api: &kube::Api<K>, name: &str, kind: &str) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .with_context(|| format!("reading {kind} {name:?}"))?
        .with_context(|| format!("{kind} {name:?} not found"))
}

async fn list_selected<K>(
    api: &kube::Api<K>,
    selector: Option<&str>,
    kind: &str,
) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(names: &[&str], all: bool, selector: Option<&str>) -> SelectOptions {
        SelectOptions {
            names: names.iter().map(|n| n.to_string()).collect(),
            all,
            selector: selector.map(str::to_string),
        }
    }

    #[test]
    fn exactly_one_way_of_choosing() {
        let refused = "you must specify exactly one of: specific schedule name(s), the --all flag, or the --selector flag";
        for bad in [
            options(&[], false, None),
            options(&["a"], true, None),
            options(&[], true, Some("a=b")),
            options(&["a"], false, Some("a=b")),
        ] {
            assert_eq!(
                bad.validate("schedule").expect_err("refused").to_string(),
                refused
            );
        }
        for good in [
            options(&["a", "b"], false, None),
            options(&[], true, None),
            options(&[], false, Some("a=b")),
        ] {
            assert!(good.validate("schedule").is_ok(), "{good:?}");
        }
        assert!(finish(Vec::new()).is_ok());
        assert_eq!(
            finish(vec!["a".into(), "b".into()])
                .expect_err("fails")
                .to_string(),
            "a; b"
        );
    }
}

/// `get` flags every kind shares: names (all when none), a label selector, the output format.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Names of the objects to show (all of them when none is given)
    pub names: Vec<String>,
    /// Only show items matching this label selector
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output display format: table, json or yaml
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: crate::output::Format,
}

/// [`named_or_selected`] in the namespace the global flags choose.
pub async fn in_namespace<K>(
    global: &crate::client::GlobalArgs,
    names: &[String],
    selector: Option<&str>,
    kind: &str,
) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let client = global.client().await?;
    let api: kube::Api<K> = kube::Api::namespaced(client, &global.namespace());
    named_or_selected(&api, names, selector, kind).await
}
