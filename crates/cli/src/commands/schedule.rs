//! `velero schedule create|get|describe|delete|pause|unpause`.

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use velero_api::v1::{Schedule, SchedulePhase, ScheduleSpec};

use super::backup::{BackupFlags, check_locations, merge_into};
use crate::client::GlobalArgs;
use crate::describe::Describer;
use crate::describe::backup::{
    describe_backup_spec, describe_policies_and_uploader, describe_validation_errors,
};
use crate::output::{self, Format};
use crate::select::GetArgs;
use crate::select::{self, DeleteOptions, SelectOptions};
use crate::table;

const CREATE_LONG: &str = "The --schedule flag is required, in cron notation, using UTC time:

| Character Position | Character Period | Acceptable Values |
| -------------------|:----------------:| -----------------:|
| 1                  | Minute           | 0-59,*            |
| 2                  | Hour             | 0-23,*            |
| 3                  | Day of Month     | 1-31,*            |
| 4                  | Month            | 1-12,*            |
| 5                  | Day of Week      | 0-6,*             |

The schedule can also be expressed using \"@every <duration>\" syntax. The duration
can be specified using a combination of seconds (s), minutes (m), and hours (h), for
example: \"@every 2h30m\".";

const CREATE_EXAMPLES: &str = "Examples:
  # Create a backup every 6 hours.
  velero schedule create NAME --schedule=\"0 */6 * * *\"

  # Create a backup every 6 hours with the @every notation.
  velero schedule create NAME --schedule=\"@every 6h\"

  # Create a daily backup of the web namespace.
  velero schedule create NAME --schedule=\"@every 24h\" --include-namespaces web

  # Create a weekly backup, each living for 90 days (2160 hours).
  velero schedule create NAME --schedule=\"@every 168h\" --ttl 2160h0m0s";

const DELETE_EXAMPLES: &str = "Examples:
  # Delete a schedule named \"schedule-1\".
  velero schedule delete schedule-1

  # Delete a schedule named \"schedule-1\" without prompting for confirmation.
  velero schedule delete schedule-1 --confirm

  # Delete schedules named \"schedule-1\" and \"schedule-2\".
  velero schedule delete schedule-1 schedule-2

  # Delete all schedules labeled with \"foo=bar\".
  velero schedule delete --selector foo=bar

  # Delete all schedules.
  velero schedule delete --all";

const PAUSE_EXAMPLES: &str = "Examples:
  # Pause a schedule named \"schedule-1\".
  velero schedule pause schedule-1

  # Pause schedules named \"schedule-1\" and \"schedule-2\".
  velero schedule pause schedule-1 schedule-2

  # Pause all schedules labeled with \"foo=bar\".
  velero schedule pause --selector foo=bar

  # Pause all schedules.
  velero schedule pause --all";

const UNPAUSE_EXAMPLES: &str = "Examples:
  # Unpause a schedule named \"schedule-1\".
  velero schedule unpause schedule-1

  # Unpause schedules named \"schedule-1\" and \"schedule-2\".
  velero schedule unpause schedule-1 schedule-2

  # Unpause all schedules labeled with \"foo=bar\".
  velero schedule unpause --selector foo=bar

  # Unpause all schedules.
  velero schedule unpause --all";

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Create a schedule
    #[command(long_about = CREATE_LONG, after_help = CREATE_EXAMPLES)]
    Create(Box<CreateArgs>),
    /// Get schedules
    Get(GetArgs),
    /// Describe schedules
    Describe(DescribeArgs),
    /// Delete schedules
    #[command(after_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),
    /// Pause schedules
    #[command(
        after_help = PAUSE_EXAMPLES,
        mut_arg("all", |a| a.help("Pause all schedules")),
        mut_arg("selector", |a| a.help("Pause all schedules matching this label selector"))
    )]
    Pause(PauseArgs),
    /// Unpause schedules
    #[command(
        after_help = UNPAUSE_EXAMPLES,
        mut_arg("all", |a| a.help("Unpause all schedules")),
        mut_arg("selector", |a| a.help("Unpause all schedules matching this label selector"))
    )]
    Unpause(PauseArgs),
}

pub async fn run(global: &GlobalArgs, command: ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Create(args) => create(global, *args).await,
        ScheduleCommand::Get(args) => get(global, args).await,
        ScheduleCommand::Describe(args) => describe(global, args).await,
        ScheduleCommand::Delete(args) => delete(global, args).await,
        ScheduleCommand::Pause(args) => pause(global, args, true).await,
        ScheduleCommand::Unpause(args) => pause(global, args, false).await,
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the schedule
    name: String,
    /// A cron expression specifying a recurring schedule for this backup to run
    #[arg(long)]
    schedule: Option<String>,
    #[command(flatten)]
    backup: BackupFlags,
    /// Specifies whether to use OwnerReferences on backups created by this Schedule. Notice: if set to true, when schedule is deleted, backups will be deleted too
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    use_owner_references_in_backup: bool,
    /// Specifies whether the newly created schedule is paused or not
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value_t = false)]
    paused: bool,
    #[command(flatten)]
    skip: SkipOptions,
    /// Output display format. For create commands, display the object but do not send it to the server. Valid formats are 'table', 'json', and 'yaml'
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

/// Velero's `--skip-immediately`: unlike the other optional booleans it takes a value
/// (`--skip-immediately true`), and left out it stays unset so the server's default applies.
#[derive(Args, Debug)]
pub struct SkipOptions {
    /// Skip the next scheduled backup immediately
    #[arg(long, value_name = "BOOL")]
    skip_immediately: Option<bool>,
}

impl CreateArgs {
    /// The Schedule the flags describe, refused with Velero's messages. Whether the cron
    /// expression parses is the server's to say (the schedule's phase becomes FailedValidation),
    /// as in Velero.
    fn schedule(&self, namespace: &str) -> anyhow::Result<Schedule> {
        let cron = self.schedule.as_deref().unwrap_or_default();
        if cron.is_empty() {
            bail!("--schedule is required");
        }
        // Fields added to the spec later keep their defaults.
        let mut spec = ScheduleSpec::default();
        spec.template = self.backup.spec()?;
        spec.schedule = cron.to_string();
        // Velero always sends this one, false included.
        spec.use_owner_references_in_backup = Some(self.use_owner_references_in_backup);
        // Velero's `paused` is a plain bool that its JSON leaves out when false.
        spec.paused = self.paused.then_some(true);
        spec.skip_immediately = self.skip.skip_immediately;
        let mut schedule = Schedule::new(&self.name, spec);
        schedule.metadata.namespace = Some(namespace.to_string());
        // The schedule controller copies these onto every backup it creates; the template's own
        // metadata is left for users who want other labels there.
        merge_into(&mut schedule.metadata.labels, &self.backup.labels);
        merge_into(&mut schedule.metadata.annotations, &self.backup.annotations);
        Ok(schedule)
    }
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    let namespace = global.namespace();
    let schedule = args.schedule(&namespace)?;
    match args.output {
        Some(Format::Table) => {
            return table::print(&COLUMNS, &[row(&schedule)], &mut std::io::stdout())
                .context("writing the table");
        }
        Some(format) => {
            return output::print(
                &serde_json::to_value(&schedule)?,
                format,
                &mut std::io::stdout(),
            );
        }
        None => {}
    }
    let client = global.client().await?;
    check_locations(&client, &namespace, &schedule.spec.template).await?;
    let api: Api<Schedule> = Api::namespaced(client, &namespace);
    crate::client::create_new(&api, &schedule, "schedule").await?;
    println!("Schedule {:?} created successfully.", args.name);
    Ok(())
}

const COLUMNS: [&str; 8] = [
    "Name",
    "Status",
    "Created",
    "Schedule",
    "Backup TTL",
    "Last Backup",
    "Selector",
    "Paused",
];

/// The phase as Velero prints it, `New` until the server has looked at the schedule.
fn phase_name(schedule: &Schedule) -> &'static str {
    schedule.phase().unwrap_or(SchedulePhase::New).as_str()
}

fn row(schedule: &Schedule) -> Vec<String> {
    let last_backup = schedule
        .status
        .as_ref()
        .and_then(|s| s.last_backup.as_ref())
        .map(|t| t.0);
    vec![
        schedule.name_any(),
        phase_name(schedule).to_string(),
        table::time(schedule.metadata.creation_timestamp.as_ref()),
        schedule.spec.schedule.clone(),
        schedule.spec.template.ttl.unwrap_or_default().to_string(),
        table::from_now(last_backup),
        table::selector(schedule.spec.template.label_selector.as_ref()),
        schedule.spec.paused.unwrap_or(false).to_string(),
    ]
}

async fn get(global: &GlobalArgs, args: GetArgs) -> anyhow::Result<()> {
    let schedules =
        select::in_namespace::<Schedule>(global, &args.names, args.selector.as_deref(), "schedule")
            .await?;
    if args.output != Format::Table {
        return output::print_list(
            "ScheduleList",
            &schedules,
            args.output,
            &mut std::io::stdout(),
        );
    }
    let rows: Vec<Vec<String>> = schedules.iter().map(row).collect();
    table::print(&COLUMNS, &rows, &mut std::io::stdout()).context("writing the table")
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Schedule names
    names: Vec<String>,
    /// Only show items matching this label selector
    #[arg(short = 'l', long)]
    selector: Option<String>,
}

async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let schedules =
        select::in_namespace::<Schedule>(global, &args.names, args.selector.as_deref(), "schedule")
            .await?;
    for (i, schedule) in schedules.iter().enumerate() {
        let text = describe_schedule(schedule);
        if i == 0 {
            print!("{text}");
        } else {
            print!("\n\n{text}");
        }
    }
    Ok(())
}

/// Velero's `DescribeSchedule` layout: the template is the backup describer's spec part,
/// indented under `Backup Template:`.
fn describe_schedule(schedule: &Schedule) -> String {
    let status = schedule.status.clone().unwrap_or_default();
    let spec = &schedule.spec;
    let mut d = Describer::default();
    d.metadata(&schedule.metadata);

    d.line("");
    d.line(format_args!("Phase:\t{}", phase_name(schedule)));
    describe_policies_and_uploader(&mut d, &spec.template);
    describe_validation_errors(&mut d, status.validation_errors.as_deref());

    d.line("");
    d.line(format_args!("Paused:\t{}", spec.paused.unwrap_or(false)));

    d.line("");
    d.line(format_args!("Schedule:\t{}", spec.schedule));
    d.line("");
    d.line("Backup Template:");
    d.set_prefix("\t");
    describe_backup_spec(&mut d, &spec.template);
    d.set_prefix("");

    d.line("");
    let last_backup = match &status.last_backup {
        Some(t) => table::time(Some(t)),
        None => "<never>".to_string(),
    };
    d.line(format_args!("Last Backup:\t{last_backup}"));
    d.finish()
}

#[derive(Args, Debug)]
#[command(
    mut_arg("all", |a| a.help("Delete all schedules")),
    mut_arg("selector", |a| a.help("Delete all schedules matching this label selector"))
)]
pub struct DeleteArgs {
    #[command(flatten)]
    options: DeleteOptions,
}

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    if !args.options.validate_and_confirm("schedule")? {
        return Ok(());
    }
    let client = global.client().await?;
    let api: Api<Schedule> = Api::namespaced(client, &global.namespace());
    let (schedules, mut errors) = select::chosen(&api, &args.options.select, "schedule").await?;
    if schedules.is_empty() {
        println!("No schedules found");
        return select::finish(errors);
    }
    for schedule in schedules {
        let name = schedule.name_any();
        // Velero leaves the schedule's backups alone (unless they are owned by it, when the
        // garbage collector removes them).
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => println!("Schedule deleted: {name}"),
            Err(e) => errors.push(format!("deleting schedule {name:?}: {e}")),
        }
    }
    select::finish(errors)
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    #[command(flatten)]
    select: SelectOptions,
    #[command(flatten)]
    skip: SkipOptions,
}

/// Velero's pause and unpause of one schedule: `false` when it is already in the wanted state and
/// is left alone; otherwise the state is set and `skip_immediately` replaces the spec's (unset
/// included, which hands the choice back to the server's default).
fn set_paused(schedule: &mut Schedule, paused: bool, skip_immediately: Option<bool>) -> bool {
    if schedule.spec.paused.unwrap_or(false) == paused {
        return false;
    }
    schedule.spec.paused = paused.then_some(true);
    schedule.spec.skip_immediately = skip_immediately;
    true
}

async fn pause(global: &GlobalArgs, args: PauseArgs, paused: bool) -> anyhow::Result<()> {
    args.select.validate("schedule")?;
    let client = global.client().await?;
    let api: Api<Schedule> = Api::namespaced(client, &global.namespace());
    let (schedules, errors) = select::chosen(&api, &args.select, "schedule").await?;
    if schedules.is_empty() {
        println!("No schedules found");
        return select::finish(errors);
    }
    let done = if paused { "paused" } else { "unpaused" };
    for mut schedule in schedules {
        let name = schedule.name_any();
        if !set_paused(&mut schedule, paused, args.skip.skip_immediately) {
            println!("Schedule {name} is already {done}, skip");
            continue;
        }
        // A replace, as Velero's update: a schedule changed meanwhile is refused, not overwritten.
        api.replace(&name, &PostParams::default(), &schedule)
            .await
            .with_context(|| format!("failed to update schedule {name}"))?;
        println!("Schedule {name} {done} successfully");
    }
    select::finish(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;
    use velero_api::v1::{BackupSpec, ScheduleStatus, UploaderConfigForBackup};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: ScheduleCommand,
    }

    fn parse(args: &[&str]) -> Result<ScheduleCommand, clap::Error> {
        let argv = ["velero"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| cli.command)
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        let argv: Vec<&str> = ["create"].iter().chain(args).copied().collect();
        match parse(&argv).expect("flags parse") {
            ScheduleCommand::Create(args) => *args,
            other => panic!("parsed {other:?}"),
        }
    }

    fn object(args: &[&str]) -> serde_json::Value {
        let schedule = create_args(args).schedule("velero").expect("valid flags");
        serde_json::to_value(schedule).expect("serializes")
    }

    fn refused(args: &[&str]) -> String {
        let err = create_args(args).schedule("velero").expect_err("refused");
        format!("{err:#}")
    }

    fn at(t: &str) -> Time {
        Time(t.parse().expect("timestamp"))
    }

    #[test]
    fn every_schedule_flag_lands_where_velero_puts_it() {
        let schedule = object(&[
            "nightly",
            "--schedule",
            "0 1 * * *",
            "--use-owner-references-in-backup",
            "--paused",
            "--skip-immediately",
            "false",
            "--labels",
            "team=a,env=prod",
            "--annotations",
            "note=x",
            "--include-namespaces",
            "shop,db",
            "--exclude-resources",
            "secrets",
            "--selector",
            "app=web",
            "--ttl",
            "72h",
            "--storage-location",
            "primary",
            "--snapshot-volumes=false",
            "--resource-policies-configmap",
            "policies",
            "--parallel-files-upload",
            "4",
        ]);
        assert_eq!(
            schedule,
            json!({
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "metadata": {
                    "name": "nightly",
                    "namespace": "velero",
                    "labels": {"env": "prod", "team": "a"},
                    "annotations": {"note": "x"},
                },
                "spec": {
                    "schedule": "0 1 * * *",
                    "useOwnerReferencesInBackup": true,
                    "paused": true,
                    "skipImmediately": false,
                    "template": {
                        "includedNamespaces": ["shop", "db"],
                        "excludedResources": ["secrets"],
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "ttl": "72h0m0s",
                        "storageLocation": "primary",
                        "snapshotVolumes": false,
                        "resourcePolicy": {"kind": "configmap", "name": "policies"},
                        "uploaderConfig": {"parallelFilesUpload": 4},
                    },
                },
            })
        );
    }

    #[test]
    fn defaults_are_velero_defaults() {
        let schedule = object(&["daily", "--schedule", "@daily"]);
        assert_eq!(
            schedule["spec"],
            json!({
                "schedule": "@daily",
                "useOwnerReferencesInBackup": false,
                "template": {"includedNamespaces": ["*"]},
            })
        );
        assert!(schedule["metadata"].get("labels").is_none());
        assert!(schedule["metadata"].get("annotations").is_none());
        // Labels go on the Schedule, never into the template's metadata.
        let labelled = object(&["daily", "--schedule", "@daily", "--labels", "a=b"]);
        assert!(labelled["spec"]["template"].get("metadata").is_none());
    }

    #[test]
    fn boolean_flags_take_values_as_velero_s_do() {
        let args = create_args(&[
            "s",
            "--schedule",
            "@every 1h",
            "--paused=false",
            "--use-owner-references-in-backup=false",
            "--skip-immediately=true",
        ]);
        assert!(!args.paused && !args.use_owner_references_in_backup);
        assert_eq!(args.skip.skip_immediately, Some(true));
        let schedule = object(&["s", "--schedule", "@every 1h", "--paused=false"]);
        assert!(schedule["spec"].get("paused").is_none());
        assert!(schedule["spec"].get("skipImmediately").is_none());
        // Velero's --skip-immediately needs its value.
        assert!(parse(&["create", "s", "--schedule", "@daily", "--skip-immediately"]).is_err());
        let args = create_args(&["s", "--schedule", "@daily", "-o", "yaml"]);
        assert_eq!(args.output, Some(Format::Yaml));
        // The schedule-only flags are not backup flags, and backup create's own are not here.
        assert!(
            parse(&[
                "create",
                "s",
                "--schedule",
                "@daily",
                "--from-schedule",
                "x"
            ])
            .is_err()
        );
        assert!(parse(&["create", "s", "--schedule", "@daily", "--wait"]).is_err());
        assert!(
            parse(&["create", "--schedule", "@daily"]).is_err(),
            "NAME is required"
        );
    }

    #[test]
    fn bad_input_is_refused_with_velero_s_messages() {
        assert_eq!(refused(&["s"]), "--schedule is required");
        assert_eq!(refused(&["s", "--schedule", ""]), "--schedule is required");
        assert_eq!(
            refused(&[
                "s",
                "--schedule",
                "@daily",
                "-l",
                "a=b",
                "--or-selector",
                "c=d"
            ]),
            "either a 'selector' or an 'or-selector' can be specified, but not both"
        );
        assert!(
            refused(&[
                "s",
                "--schedule",
                "@daily",
                "--include-resources",
                "pods",
                "--include-cluster-scoped-resources",
                "sc"
            ])
            .contains("They cannot be used together")
        );
        // Cron syntax is the server's to judge.
        assert_eq!(
            object(&["s", "--schedule", "not a cron"])["spec"]["schedule"],
            "not a cron"
        );
    }

    fn fixture() -> Schedule {
        let template = BackupSpec {
            included_namespaces: Some(vec!["shop".into()]),
            label_selector: velero_filters::selector::parse_label_selector("app=web").ok(),
            ttl: velero_api::Duration::parse("72h").ok(),
            storage_location: Some("primary".into()),
            resource_policy: Some(k8s_openapi::api::core::v1::TypedLocalObjectReference {
                api_group: None,
                kind: "configmap".into(),
                name: "policies".into(),
            }),
            uploader_config: Some(UploaderConfigForBackup {
                parallel_files_upload: Some(4),
            }),
            ..Default::default()
        };
        let spec = ScheduleSpec {
            template,
            schedule: "0 1 * * *".into(),
            paused: Some(true),
            ..Default::default()
        };
        let mut s = Schedule::new("nightly", spec);
        s.metadata.namespace = Some("velero".into());
        s.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        s.metadata.creation_timestamp = Some(at("2026-05-01T10:00:00Z"));
        s.status = Some(ScheduleStatus {
            phase: Some(SchedulePhase::Enabled),
            last_backup: Some(at("2026-05-02T01:00:00Z")),
            ..Default::default()
        });
        s
    }

    #[test]
    fn get_prints_velero_s_columns() {
        let mut recent = fixture();
        let two_hours_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
        if let Some(status) = recent.status.as_mut() {
            status.last_backup = Some(Time(two_hours_ago));
        }
        let new = Schedule::new(
            "hourly",
            ScheduleSpec {
                schedule: "@every 1h".into(),
                ..Default::default()
            },
        );
        let mut out = Vec::new();
        table::print(&COLUMNS, &[row(&recent), row(&new)], &mut out).expect("prints");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "NAME      STATUS    CREATED                         SCHEDULE    BACKUP TTL   LAST BACKUP   SELECTOR   PAUSED\n\
             nightly   Enabled   2026-05-01 10:00:00 +0000 UTC   0 1 * * *   72h0m0s      2h ago        app=web    true\n\
             hourly    New       <nil>                           @every 1h   0s           n/a           <none>     false\n"
        );
    }

    #[test]
    fn describe_matches_velero_s_layout() {
        assert_eq!(
            describe_schedule(&fixture()),
            "\
Name:         nightly
Namespace:    velero
Labels:       team=a
Annotations:  <none>

Phase:  Enabled

Resource policies:
  Type:  configmap
  Name:  policies

Uploader config:
  Parallel files upload:  4

Paused:  true

Schedule:  0 1 * * *

Backup Template:
  Namespaces:
    Included:  shop
    Excluded:  <none>
  
  Resources:
    Included cluster-scoped:    <none>
    Excluded cluster-scoped:    <none>
    Included namespace-scoped:  *
    Excluded namespace-scoped:  <none>
  
  Label selector:  app=web
  
  Or label selector:  <none>
  
  Storage Location:  primary
  
  Velero-Native Snapshot PVs:  auto
  Snapshot Move Data:          auto
  Data Mover:                  velero
  
  TTL:  72h0m0s
  
  CSISnapshotTimeout:    0s
  ItemOperationTimeout:  0s
  
  Hooks:  <none>

Last Backup:  2026-05-02 01:00:00 +0000 UTC
"
        );
    }

    #[test]
    fn describe_a_schedule_that_failed_validation() {
        let spec = ScheduleSpec {
            schedule: "bad".into(),
            template: BackupSpec {
                include_cluster_resources: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut s = Schedule::new("broken", spec);
        s.status = Some(ScheduleStatus {
            phase: Some(SchedulePhase::FailedValidation),
            validation_errors: Some(vec![
                "invalid schedule: expected exactly 5 fields, found 1: [bad]".into(),
                "second".into(),
            ]),
            ..Default::default()
        });
        let text = describe_schedule(&s);
        for want in [
            "\nPhase:  FailedValidation\n\
             \n\
             Validation errors:  invalid schedule: expected exactly 5 fields, found 1: [bad]\n\
             \x20                   second\n\
             \n\
             Paused:  false\n",
            "  Resources:\n    Included:        *\n    Excluded:        <none>\n    Cluster-scoped:  excluded\n",
        ] {
            assert!(text.contains(want), "describe lacks {want:?}:\n{text}");
        }
        assert!(text.ends_with("\nLast Backup:  <never>\n"), "{text}");
    }

    #[test]
    fn pause_and_unpause_change_only_what_is_not_yet_so() {
        let mut running = Schedule::new("s", ScheduleSpec::default());
        running.spec.skip_immediately = Some(true);
        assert!(
            !set_paused(&mut running, false, Some(false)),
            "already unpaused"
        );
        assert_eq!(running.spec.skip_immediately, Some(true), "left alone");

        assert!(set_paused(&mut running, true, None));
        assert_eq!(running.spec.paused, Some(true));
        assert_eq!(running.spec.skip_immediately, None, "unset is copied too");
        assert!(
            !set_paused(&mut running, true, Some(true)),
            "already paused"
        );

        assert!(set_paused(&mut running, false, Some(true)));
        assert_eq!(
            running.spec.paused, None,
            "false is left out, as Go omits it"
        );
        assert_eq!(running.spec.skip_immediately, Some(true));
    }

    #[test]
    fn selection_flags() {
        match parse(&["pause", "--all", "--skip-immediately", "true"]).expect("parses") {
            ScheduleCommand::Pause(args) => {
                assert!(args.select.all);
                assert_eq!(args.skip.skip_immediately, Some(true));
            }
            other => panic!("parsed {other:?}"),
        }
        match parse(&["unpause", "a", "b"]).expect("parses") {
            ScheduleCommand::Unpause(args) => {
                assert_eq!(args.select.names, ["a", "b"]);
                assert_eq!(args.skip.skip_immediately, None);
            }
            other => panic!("parsed {other:?}"),
        }
        match parse(&["delete", "-l", "a=b", "--confirm"]).expect("parses") {
            ScheduleCommand::Delete(args) => {
                assert!(args.options.confirm);
                assert_eq!(args.options.select.selector.as_deref(), Some("a=b"));
            }
            other => panic!("parsed {other:?}"),
        }
        assert!(
            parse(&["pause", "--confirm"]).is_err(),
            "pause does not ask"
        );
    }
}
