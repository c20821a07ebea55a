//! `velero`: Velero's command line, rebuilt in Rust.

mod client;
mod commands;
mod describe;
mod download;
mod flags;
mod output;
mod progress;
mod prompt;
mod restore_helper;
mod select;
mod table;

pub(crate) use prompt::confirm;

/// Ends the program with this exit code and no message: an answer that is not an error, such as
/// `backup diff` finding drift (1).
#[derive(Debug)]
pub(crate) struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

use clap::{CommandFactory, Parser, Subcommand};

use crate::client::GlobalArgs;

#[derive(Parser, Debug)]
#[command(
    name = "velero",
    about = "Back up and restore Kubernetes cluster resources.",
    long_about = "Velero is a tool for managing disaster recovery, specifically for Kubernetes\ncluster resources. It provides a simple, configurable, and operationally robust\nway to back up your application state and associated data.\n\nThis is velero-rs, a compatible reimplementation in Rust.",
    disable_version_flag = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the velero version and associated image
    Version(commands::version::VersionArgs),
    /// Generate completion script
    Completion(commands::completion::CompletionArgs),
    /// Install Velero
    Install(Box<commands::install::InstallArgs>),
    /// Uninstall Velero
    Uninstall(commands::uninstall::UninstallArgs),
    /// Work with backups
    #[command(subcommand)]
    Backup(commands::backup::BackupCommand),
    /// Work with restores
    #[command(subcommand, alias = "restores")]
    Restore(commands::restore::RestoreCommand),
    /// Work with schedules
    #[command(subcommand, alias = "schedules")]
    Schedule(commands::schedule::ScheduleCommand),
    /// Work with backup storage locations
    #[command(subcommand, name = "backup-location")]
    BackupLocation(commands::location::LocationCommand),
    /// Work with snapshot locations
    #[command(subcommand, name = "snapshot-location")]
    SnapshotLocation(commands::snapshot_location::SnapshotLocationCommand),
    /// Work with repositories
    #[command(subcommand)]
    Repo(commands::repo::RepoCommand),
    /// Run the velero server
    Server(commands::server::ServerArgs),
    /// Work with node-agent
    #[command(subcommand, name = "node-agent")]
    NodeAgent(commands::node_agent::NodeAgentCommand),
}

fn init_logging(command: &Command) {
    // The server logs at --log-level (text or JSON); the CLI only warns, unless VELERO_LOG says.
    let (default, json) = match command {
        Command::Server(args) => (
            commands::server::log_filter(args.log_level()),
            args.json_logs(),
        ),
        Command::NodeAgent(command) => (
            commands::server::log_filter(command.log_level()),
            command.json_logs(),
        ),
        _ => ("warn".to_string(), false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VELERO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet_tls_bypass(&default)));
    // Colour only for a person at a terminal: `kubectl logs` and log collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// kube-client warns "Server cert bypassed" on every connection made through a kubeconfig with
/// `insecure-skip-tls-verify`, which kubectl and Velero accept without a word. It stays out of
/// the default filters; `VELERO_LOG=kube_client=debug` shows it.
fn quiet_tls_bypass(filter: &str) -> String {
    format!("{filter},kube_client::client::tls=error")
}

fn main() -> std::process::ExitCode {
    // The image links /velero-restore-helper to this program, as the restore-wait init container
    // Velero's file-system restore inserts calls it.
    let args: Vec<String> = std::env::args().collect();
    if args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        == Some(std::ffi::OsStr::new("velero-restore-helper"))
    {
        return restore_helper::run(&args[1..]);
    }
    let cli = Cli::parse();
    init_logging(&cli.command);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("An error occurred: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let error_code = match &cli.command {
        Command::Backup(command) => command.error_exit_code(),
        _ => 1,
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Version(args) => commands::version::run(&cli.global, args).await,
            Command::Completion(args) => commands::completion::run(args, &mut Cli::command()),
            Command::Install(args) => commands::install::run(&cli.global, *args).await,
            Command::Uninstall(args) => commands::uninstall::run(&cli.global, args).await,
            Command::Backup(command) => commands::backup::run(&cli.global, command).await,
            Command::Restore(command) => commands::restore::run(&cli.global, command).await,
            Command::Schedule(command) => commands::schedule::run(&cli.global, command).await,
            Command::BackupLocation(command) => commands::location::run(&cli.global, command).await,
            Command::SnapshotLocation(command) => {
                commands::snapshot_location::run(&cli.global, command).await
            }
            Command::Repo(command) => commands::repo::run(&cli.global, command).await,
            Command::Server(args) => commands::server::run(&cli.global, args).await,
            Command::NodeAgent(command) => commands::node_agent::run(&cli.global, command).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(ExitWith(code)) = e.downcast_ref::<ExitWith>() {
                return std::process::ExitCode::from(*code);
            }
            // Velero's CLI reports every failure this way; keep the chain so the cause is visible.
            eprintln!("An error occurred: {e:#}");
            std::process::ExitCode::from(error_code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
