//! `velero snapshot-location create|get|set`: volume snapshot locations, as Velero's commands.

use anyhow::bail;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::ResourceExt;
use kube::api::Api;
use velero_api::v1::{VolumeSnapshotLocation, VolumeSnapshotLocationSpec};

use super::location::{LocationFlags, create_location, patch_location_spec};
use crate::client::GlobalArgs;
use crate::flags::parse_credential;
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::table;

const KIND: &str = "volume snapshot location";

/// The volume snapshotters this build knows; a `velero.io/` prefix is optional.
const PROVIDERS: [&str; 3] = ["aws", "gcp", "azure"];

#[derive(Subcommand, Debug)]
pub enum SnapshotLocationCommand {
    /// Create a volume snapshot location
    Create(CreateArgs),
    /// Get snapshot locations
    Get(GetArgs),
    /// Set specific features for a snapshot location
    Set(SetArgs),
}

pub async fn run(global: &GlobalArgs, command: SnapshotLocationCommand) -> anyhow::Result<()> {
    match command {
        SnapshotLocationCommand::Create(args) => create(global, args).await,
        SnapshotLocationCommand::Get(args) => get(global, args).await,
        SnapshotLocationCommand::Set(args) => set(global, args).await,
    }
}

/// Refuses a provider no volume snapshotter answers to, naming those that do.
fn validate_provider(provider: &str) -> anyhow::Result<()> {
    let bare = provider.strip_prefix("velero.io/").unwrap_or(provider);
    if !PROVIDERS.contains(&bare) {
        bail!(
            "unknown volume snapshot provider {provider:?}: use one of {} (optionally prefixed with velero.io/)",
            PROVIDERS.join(", ")
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(mut_arg("labels", |a| a.help("Labels to apply to the volume snapshot location.")))]
pub struct CreateArgs {
    name: String,
    /// Name of the volume snapshot provider (e.g. aws, azure, gcp).
    #[arg(long)]
    provider: String,
    #[command(flatten)]
    location: LocationFlags,
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

impl CreateArgs {
    /// Velero's `BuildVolumeSnapshotLocation`, after checking the provider.
    fn build(&self, namespace: &str) -> anyhow::Result<VolumeSnapshotLocation> {
        validate_provider(&self.provider)?;
        Ok(VolumeSnapshotLocation {
            metadata: self.location.metadata(&self.name, namespace),
            spec: VolumeSnapshotLocationSpec {
                provider: self.provider.clone(),
                config: self.location.config(),
                credential: self.location.credential.clone(),
            },
            status: None,
        })
    }
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let vsl = args.build(&namespace)?;
    if let Some(format) = args.output {
        return output::print(&serde_json::to_value(&vsl)?, format, &mut std::io::stdout());
    }
    let api: Api<VolumeSnapshotLocation> = Api::namespaced(global.client().await?, &namespace);
    // Velero's wording, "Snapshot volume location", kept as users and scripts know it.
    create_location(&api, &vsl, KIND, "Snapshot volume location").await
}

fn rows(locations: &[VolumeSnapshotLocation]) -> Vec<Vec<String>> {
    locations
        .iter()
        .map(|l| vec![l.name_any(), l.spec.provider.clone()])
        .collect()
}

async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let api: Api<VolumeSnapshotLocation> =
        Api::namespaced(global.client().await?, &global.namespace());
    let mut locations =
        crate::select::named_or_selected(&api, &args.names, args.selector.as_deref(), KIND).await?;
    locations.sort_by_key(|l| l.name_any());
    let mut stdout = std::io::stdout();
    if args.output != Format::Table {
        return output::print_list(
            "VolumeSnapshotLocationList",
            &locations,
            args.output,
            &mut stdout,
        );
    }
    table::print(&["Name", "Provider"], &rows(&locations), &mut stdout)?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct SetArgs {
    name: String,
    /// Sets the credential to be used by this location as a key-value pair, where the key is the Kubernetes Secret name, and the value is the data key name within the Secret. Optional, one value only.
    #[arg(long, value_parser = parse_credential)]
    credential: Option<SecretKeySelector>,
}

impl SetArgs {
    /// The merge patch of `spec` the flags ask for.
    fn spec(&self) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        let mut spec = serde_json::Map::new();
        if let Some(credential) = &self.credential {
            spec.insert("credential".into(), serde_json::to_value(credential)?);
        }
        Ok(spec)
    }
}

async fn set(global: &GlobalArgs, args: SetArgs) -> anyhow::Result<()> {
    let api: Api<VolumeSnapshotLocation> =
        Api::namespaced(global.client().await?, &global.namespace());
    patch_location_spec(&api, &args.name, args.spec()?, KIND, "--credential").await?;
    println!(
        "Volume snapshot location {:?} configured successfully.",
        args.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: SnapshotLocationCommand,
    }

    fn parse(args: &[&str]) -> Result<SnapshotLocationCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("snapshot-location").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        match parse(&[&["create"], args].concat()).expect("parses") {
            SnapshotLocationCommand::Create(a) => a,
            other => panic!("not create: {other:?}"),
        }
    }

    #[test]
    fn create_flags_make_the_location() {
        let args = create_args(&[
            "snaps",
            "--provider",
            "velero.io/aws",
            "--config",
            "region=us-east-1,profile=default",
            "--credential",
            "cloud-credentials=cloud",
            "--labels",
            "team=storage",
        ]);
        let vsl = args.build("velero").expect("builds");
        assert_eq!(vsl.metadata.name.as_deref(), Some("snaps"));
        assert_eq!(vsl.metadata.namespace.as_deref(), Some("velero"));
        assert_eq!(
            serde_json::to_value(&vsl).expect("serializes"),
            serde_json::json!({
                "apiVersion": "velero.io/v1",
                "kind": "VolumeSnapshotLocation",
                "metadata": {"name": "snaps", "namespace": "velero", "labels": {"team": "storage"}},
                "spec": {
                    "provider": "velero.io/aws",
                    "config": {"profile": "default", "region": "us-east-1"},
                    "credential": {"name": "cloud-credentials", "key": "cloud"},
                },
            })
        );
    }

    #[test]
    fn optional_flags_stay_out_of_the_object() {
        let vsl = create_args(&["snaps", "--provider", "gcp"])
            .build("ns")
            .expect("builds");
        let value = serde_json::to_value(&vsl).expect("serializes");
        assert_eq!(value["spec"], serde_json::json!({"provider": "gcp"}));
        assert!(value["metadata"].get("labels").is_none());
    }

    #[test]
    fn providers() {
        for good in ["aws", "gcp", "azure", "velero.io/azure", "velero.io/gcp"] {
            assert!(validate_provider(good).is_ok(), "{good}");
        }
        for bad in ["local", "velero.io/local", "example.com/aws", "AWS", ""] {
            let err = validate_provider(bad).expect_err(bad).to_string();
            assert!(err.contains("use one of aws, gcp, azure"), "{bad}: {err}");
        }
        let err = create_args(&["x", "--provider", "openstack"])
            .build("ns")
            .expect_err("refused");
        assert!(err.to_string().contains("\"openstack\""), "{err}");
    }

    #[test]
    fn provider_is_required_and_credential_takes_one_pair() {
        assert!(parse(&["create", "x"]).is_err());
        let err = parse(&[
            "create",
            "x",
            "--provider",
            "aws",
            "--credential",
            "a=b,c=d",
        ])
        .expect_err("refused")
        .to_string();
        assert!(err.contains("exactly one secret=key pair"), "{err}");
    }

    #[test]
    fn set_patches_only_the_credential() {
        let SnapshotLocationCommand::Set(args) =
            parse(&["set", "snaps", "--credential", "new-secret=key2"]).expect("parses")
        else {
            panic!("not set");
        };
        assert_eq!(
            serde_json::Value::Object(args.spec().expect("spec")),
            serde_json::json!({"credential": {"name": "new-secret", "key": "key2"}})
        );
        let SnapshotLocationCommand::Set(empty) = parse(&["set", "snaps"]).expect("parses") else {
            panic!("not set");
        };
        assert!(empty.spec().expect("spec").is_empty());
        // Velero's set takes no other flag.
        assert!(parse(&["set", "snaps", "--provider", "aws"]).is_err());
    }

    #[test]
    fn table_has_name_and_provider() {
        let vsl = create_args(&["snaps", "--provider", "aws"])
            .build("velero")
            .expect("builds");
        let mut out = Vec::new();
        table::print(&["Name", "Provider"], &rows(&[vsl]), &mut out).expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "NAME    PROVIDER\nsnaps   aws\n");
    }
}
