//! `velero completion bash|zsh|fish`.

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Generate shell completion code.\n\nAuto completion supports bash, zsh and fish. Load it in your current shell with\n  source <(velero completion bash)"
)]
pub struct CompletionArgs {
    /// The shell to generate completion code for
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(args: CompletionArgs, command: &mut clap::Command) -> anyhow::Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, command, "velero", &mut std::io::stdout());
    Ok(())
}
