//! The linux drivers' side of running a command through the host runner
//! ([`crate::host::command`]): argument vectors in, [`DriverError`]s out, with the messages
//! the drivers have always given.

use crate::agent::drivers::{DriverError, Result};
use crate::host::command::{Cmd, CommandError, CommandRunner, Output};

/// Build an argv from string slices.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// `argv` as one line for messages.
pub fn display(argv: &[String]) -> String {
    argv.join(" ")
}

/// Runs `argv` (program and arguments, no shell) and returns its output whatever the code.
pub fn run(runner: &dyn CommandRunner, argv: &[String]) -> Result<Output> {
    let Some((program, args)) = argv.split_first() else {
        return Err(DriverError::Other("empty command line".to_owned()));
    };
    let cmd = Cmd::new(program.as_str()).args(args.iter().map(String::as_str));
    runner.run(&cmd).map_err(|e| driver_error(argv, e))
}

/// Run and fail unless the exit code is 0.
pub fn run_ok(runner: &dyn CommandRunner, argv: &[String]) -> Result<Output> {
    let out = run(runner, argv)?;
    if out.success() {
        Ok(out)
    } else {
        Err(failed(argv, &out))
    }
}

/// The error for a command that ran and failed.
pub fn failed(argv: &[String], out: &Output) -> DriverError {
    let status = match out.code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".to_owned(),
    };
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    DriverError::Command {
        command: display(argv),
        status,
        output: truncate(text, 400),
    }
}

/// A command that could not be run (or did not finish) as the drivers report it.
fn driver_error(argv: &[String], e: CommandError) -> DriverError {
    let command = display(argv);
    match e {
        CommandError::TimedOut { timeout, .. } => DriverError::Timeout {
            command,
            secs: timeout.as_secs(),
        },
        // The runner names a missing program apart; the drivers have always reported it as
        // the spawn failure it is (ENOENT), so their messages stay the same.
        CommandError::NotFound { .. } => DriverError::Spawn {
            command,
            source: std::io::Error::from_raw_os_error(nix::errno::Errno::ENOENT as i32),
        },
        CommandError::Spawn { source, .. } => DriverError::Spawn { command, source },
        other => DriverError::Other(other.to_string()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
