//! `omtd completions bash|zsh|fish`: a completion script for the shell, on stdout.
//!
//! Install, e.g.: `omtd completions bash > /etc/bash_completion.d/omtd`,
//! `omtd completions zsh > "${fpath[1]}/_omtd"`,
//! `omtd completions fish > ~/.config/fish/completions/omtd.fish`.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Writes the script. Needs no store: the dispatcher calls it before opening one.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    // Into a buffer first: `generate` panics on a write error, and a closed pipe
    // (`omtd completions bash | head`) is no reason to panic.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::anyhow!("cannot write the completion script: {e}")),
    }
}
