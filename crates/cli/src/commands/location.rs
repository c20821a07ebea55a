//! `velero backup-location create|get|set|delete`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use velero_api::v1::{
    AccessMode, Backup, BackupStorageLocation, BackupStorageLocationSpec, ObjectStorageLocation,
};

use crate::client::GlobalArgs;
use crate::flags::{parse_credential, parse_duration, parse_map};
use crate::output::{self, Format};
use crate::table;

#[derive(Subcommand, Debug)]
pub enum LocationCommand {
    /// Create a backup storage location
    Create(Box<CreateArgs>),
    /// Get backup storage locations
    Get(GetArgs),
    /// Set specific features for a backup storage location
    Set(SetArgs),
    /// Delete backup storage locations
    Delete(DeleteArgs),
}

pub async fn run(global: &GlobalArgs, command: LocationCommand) -> anyhow::Result<()> {
    match command {
        LocationCommand::Create(args) => create(global, *args).await,
        LocationCommand::Get(args) => get(global, args).await,
        LocationCommand::Set(args) => set(global, args).await,
        LocationCommand::Delete(args) => delete(global, args).await,
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    #[value(name = "ReadWrite")]
    ReadWrite,
    #[value(name = "ReadOnly")]
    ReadOnly,
}

/// `--config`, `--credential` and `--labels`, which both kinds of location (backup storage and
/// volume snapshot) take on create. The kind's command names the location in `--labels`' help
/// with `mut_arg`.
#[derive(Args, Debug, Default)]
pub struct LocationFlags {
    /// Configuration key-value pairs
    #[arg(long, value_parser = parse_map, default_value = "")]
    pub config: BTreeMap<String, String>,
    /// The credential to be used by this location as a key-value pair, where the key is the Kubernetes Secret name, and the value is the data key name within the Secret. Optional, one value only.
    #[arg(long, value_parser = parse_credential)]
    pub credential: Option<SecretKeySelector>,
    /// Labels to apply to the location
    #[arg(long, value_parser = parse_map, default_value = "")]
    pub labels: BTreeMap<String, String>,
}

impl LocationFlags {
    /// `spec.config`, left out when no pair was given.
    pub fn config(&self) -> Option<BTreeMap<String, String>> {
        (!self.config.is_empty()).then(|| self.config.clone())
    }

    /// The new location's metadata: its name, namespace and `--labels`.
    pub fn metadata(&self, name: &str, namespace: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
            ..ObjectMeta::default()
        }
    }
}

/// Creates a location (refusing a taken name) and says so as Velero does:
/// `<what> "<name>" configured successfully.`
pub async fn create_location<K>(
    api: &Api<K>,
    location: &K,
    kind: &str,
    what: &str,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    crate::client::create_new(api, location, kind).await?;
    println!("{what} {:?} configured successfully.", location.name_any());
    Ok(())
}

/// `set`: merges `spec` into the existing location `name`, refusing an empty change with `hint`
/// (the flags that would set something) and a missing location by name.
pub async fn patch_location_spec<K>(
    api: &Api<K>,
    name: &str,
    spec: serde_json::Map<String, serde_json::Value>,
    kind: &str,
    hint: &str,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if spec.is_empty() {
        bail!("nothing to set: pass {hint}");
    }
    api.get_opt(name)
        .await
        .with_context(|| format!("reading {kind} {name:?}"))?
        .with_context(|| format!("{kind} {name:?} not found"))?;
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": spec })),
    )
    .await
    .with_context(|| format!("updating {kind} {name:?}"))?;
    Ok(())
}

#[derive(Args, Debug)]
#[command(mut_arg("labels", |a| a.help("Labels to apply to the backup storage location")))]
pub struct CreateArgs {
    name: String,
    /// Name of the backup storage provider (aws, gcp, azure, local)
    #[arg(long)]
    provider: String,
    /// Name of the object storage bucket where backups should be stored (for local, a directory)
    #[arg(long)]
    bucket: String,
    /// Prefix under which all Velero data should be stored within the bucket. Optional.
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    location: LocationFlags,
    /// Sets this new location to be the new default backup storage location. Optional.
    #[arg(long, action = ArgAction::SetTrue)]
    default: bool,
    /// How often to ensure all Velero backups in object storage exist as Backup API objects in the cluster. Optional. Set this to `0s` to disable sync.
    #[arg(long, value_parser = parse_duration)]
    backup_sync_period: Option<velero_api::Duration>,
    /// How often to verify if the backup storage location is valid. Optional. Set this to `0s` to disable validation.
    #[arg(long, value_parser = parse_duration)]
    validation_frequency: Option<velero_api::Duration>,
    /// File containing a certificate bundle to use when verifying TLS connections to the object store. Optional.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Access mode for the backup storage location. Valid values are ReadWrite,ReadOnly
    #[arg(long, value_enum, default_value = "ReadWrite")]
    access_mode: Mode,
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let ca_cert = match &args.cacert {
        Some(path) => Some(k8s_openapi::ByteString(
            std::fs::read(path)
                .with_context(|| format!("cannot read --cacert {}", path.display()))?,
        )),
        None => None,
    };
    let bsl = BackupStorageLocation {
        metadata: args.location.metadata(&args.name, &namespace),
        spec: BackupStorageLocationSpec {
            provider: args.provider.clone(),
            config: args.location.config(),
            credential: args.location.credential.clone(),
            object_storage: ObjectStorageLocation {
                bucket: args.bucket.clone(),
                prefix: args.prefix.clone().filter(|p| !p.is_empty()),
                ca_cert,
                ca_cert_ref: None,
            },
            default: args.default.then_some(true),
            access_mode: Some(match args.access_mode {
                Mode::ReadWrite => AccessMode::ReadWrite,
                Mode::ReadOnly => AccessMode::ReadOnly,
            }),
            backup_sync_period: args.backup_sync_period,
            validation_frequency: args.validation_frequency,
        },
        status: None,
    };
    if let Some(format) = args.output {
        return output::print(&serde_json::to_value(&bsl)?, format, &mut std::io::stdout());
    }
    let client = global.client().await?;
    let api: Api<BackupStorageLocation> = Api::namespaced(client, &namespace);
    if args.default {
        // As Velero: creating a second default is refused; `set --default` moves the default.
        let existing: Vec<String> = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|l| l.spec.default == Some(true))
            .map(|l| l.name_any())
            .collect();
        if !existing.is_empty() {
            anyhow::bail!(
                "there is already a default backup storage location ({}): unset it first (`velero backup-location set {} --default=false`), make the new one default afterwards with `velero backup-location set {} --default`, or leave out --default",
                existing.join(", "),
                existing[0],
                args.name
            );
        }
    }
    create_location(
        &api,
        &bsl,
        "backup storage location",
        "Backup storage location",
    )
    .await
}

/// Only one location is the default: making one default unsets the others.
async fn unset_other_defaults(api: &Api<BackupStorageLocation>, keep: &str) -> anyhow::Result<()> {
    for other in api.list(&ListParams::default()).await?.items {
        if other.spec.default == Some(true) && other.name_any() != keep {
            api.patch(
                &other.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": { "default": false } })),
            )
            .await?;
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct GetArgs {
    names: Vec<String>,
    /// Displays the current default backup storage location
    #[arg(long, action = ArgAction::SetTrue)]
    default: bool,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let api: Api<BackupStorageLocation> = Api::namespaced(client, &global.namespace());
    let mut locations = crate::select::named_or_selected(
        &api,
        &args.names,
        args.selector.as_deref(),
        "backup storage location",
    )
    .await?;
    if args.default {
        locations.retain(|l| l.spec.default == Some(true));
    }
    locations.sort_by_key(|l| l.name_any());
    if args.output != Format::Table {
        let value = json!({ "apiVersion": "velero.io/v1", "kind": "BackupStorageLocationList", "items": locations, "metadata": {} });
        return output::print(&value, args.output, &mut std::io::stdout());
    }
    let rows: Vec<Vec<String>> = locations
        .iter()
        .map(|l| {
            let status = l.status.clone().unwrap_or_default();
            let bucket = match l
                .spec
                .object_storage
                .prefix
                .as_deref()
                .filter(|p| !p.is_empty())
            {
                Some(prefix) => format!("{}/{prefix}", l.spec.object_storage.bucket),
                None => l.spec.object_storage.bucket.clone(),
            };
            let phase = status.phase.map_or("Unknown", |p| p.as_str()).to_string();
            let validated = status
                .last_validation_time
                .as_ref()
                .map(|t| t.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
                .unwrap_or_else(|| "Unknown".into());
            let mode = match l.spec.access_mode.unwrap_or_default() {
                AccessMode::ReadOnly => "ReadOnly",
                AccessMode::ReadWrite => "ReadWrite",
            };
            vec![
                l.name_any(),
                l.spec.provider.clone(),
                bucket,
                phase,
                validated,
                mode.to_string(),
                l.spec.default.unwrap_or(false).to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "Name",
            "Provider",
            "Bucket/Prefix",
            "Phase",
            "Last Validated",
            "Access Mode",
            "Default",
        ],
        &rows,
        &mut std::io::stdout(),
    )?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct SetArgs {
    name: String,
    #[arg(long)]
    cacert: Option<PathBuf>,
    #[arg(long, value_parser = parse_credential)]
    credential: Option<SecretKeySelector>,
    /// Sets this location to be the new default backup storage location
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    default: Option<bool>,
}

async fn set(global: &GlobalArgs, args: SetArgs) -> anyhow::Result<()> {
    let client = global.client().await?;
    let api: Api<BackupStorageLocation> = Api::namespaced(client, &global.namespace());
    let mut spec = serde_json::Map::new();
    if let Some(path) = &args.cacert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --cacert {}", path.display()))?;
        spec.insert(
            "objectStorage".into(),
            json!({ "caCert": k8s_openapi::ByteString(pem) }),
        );
    }
    if let Some(credential) = &args.credential {
        spec.insert("credential".into(), serde_json::to_value(credential)?);
    }
    if let Some(default) = args.default {
        spec.insert("default".into(), json!(default));
    }
    patch_location_spec(
        &api,
        &args.name,
        spec,
        "backup storage location",
        "--cacert, --credential or --default",
    )
    .await?;
    // Only after the location is known to exist: unsetting the others for a mistyped name would
    // leave no default at all.
    if args.default == Some(true) {
        unset_other_defaults(&api, &args.name).await?;
    }
    println!(
        "Backup storage location {:?} configured successfully.",
        args.name
    );
    Ok(())
}

#[derive(Args, Debug)]
#[command(
    mut_arg("all", |a| a.help("Delete all backup-locations")),
    mut_arg("selector", |a| a.help("Delete all backup-locations matching this label selector"))
)]
pub struct DeleteArgs {
    #[command(flatten)]
    options: crate::select::DeleteOptions,
}

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    if !args.options.validate_and_confirm("backup-location")? {
        return Ok(());
    }
    let args = args.options.select;
    let client = global.client().await?;
    let namespace = global.namespace();
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), &namespace);
    let names: Vec<String> = if args.names.is_empty() {
        let mut params = ListParams::default();
        if let Some(s) = &args.selector {
            params = params.labels(s);
        }
        api.list(&params)
            .await?
            .items
            .iter()
            .map(|l| l.name_any())
            .collect()
    } else {
        args.names.clone()
    };
    let backups: Api<Backup> = Api::namespaced(client, &namespace);
    for name in names {
        api.delete(&name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting backup storage location {name}"))?;
        println!("Backup storage location {name:?} deleted successfully.");
        // Velero removes the Backup objects that point at a deleted location (not their data).
        let selector = format!(
            "{}={}",
            velero_api::labels::STORAGE_LOCATION,
            velero_api::labels::valid_label_value(&name)
        );
        for backup in backups
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
        {
            backups
                .delete(&backup.name_any(), &DeleteParams::default())
                .await?;
            println!("Backup {:?} deleted successfully.", backup.name_any());
        }
    }
    Ok(())
}
