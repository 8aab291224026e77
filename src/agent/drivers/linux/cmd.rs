//! Running host commands: with a timeout, output captured through temporary files rather
//! than pipes (an init script's daemon inherits the pipes and would keep them open forever),
//! and behind a trait so the exact command lines can be unit-tested with a fake.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::drivers::{DriverError, Result};

/// What a command did. The exit code is `None` when a signal ended it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(stdout: &str) -> Self {
        Output {
            code: Some(0),
            stdout: stdout.to_owned(),
            stderr: String::new(),
        }
    }
    pub fn fail(code: i32, stderr: &str) -> Self {
        Output {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.to_owned(),
        }
    }
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs a command line (program and arguments, no shell).
pub trait Runner: Send {
    fn run(&mut self, argv: &[String]) -> Result<Output>;
}

/// `argv` as one line for messages.
pub fn display(argv: &[String]) -> String {
    argv.join(" ")
}

/// Run and fail unless the exit code is 0.
pub fn run_ok(runner: &mut dyn Runner, argv: &[String]) -> Result<Output> {
    let out = runner.run(argv)?;
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

/// Build an argv from string slices.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// The real runner.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    pub timeout: Duration,
}

impl Default for SystemRunner {
    fn default() -> Self {
        // Long enough for a slow `service start` or an NFS mount, short enough that a hung
        // command does not stall the agent for good.
        SystemRunner {
            timeout: Duration::from_secs(120),
        }
    }
}

/// Most output we keep from one command.
const MAX_OUTPUT: u64 = 256 * 1024;

impl Runner for SystemRunner {
    fn run(&mut self, argv: &[String]) -> Result<Output> {
        let Some((program, args)) = argv.split_first() else {
            return Err(DriverError::Other("empty command line".to_owned()));
        };
        let spawn_err = |e| DriverError::Spawn {
            command: display(argv),
            source: e,
        };
        let mut out_file = tempfile::tempfile().map_err(spawn_err)?;
        let mut err_file = tempfile::tempfile().map_err(spawn_err)?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out_file.try_clone().map_err(spawn_err)?)
            .stderr(err_file.try_clone().map_err(spawn_err)?)
            .spawn()
            .map_err(spawn_err)?;
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_millis(2);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(DriverError::Timeout {
                        command: display(argv),
                        secs: self.timeout.as_secs(),
                    });
                }
                Ok(None) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(spawn_err(e)),
            }
        };
        Ok(Output {
            code: status.code(),
            stdout: read_back(&mut out_file),
            stderr: read_back(&mut err_file),
        })
    }
}

fn read_back(f: &mut std::fs::File) -> String {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.take(MAX_OUTPUT).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A runner for tests: records every command line and answers from a closure.
#[derive(Clone)]
pub struct FakeRunner {
    pub calls: Arc<Mutex<Vec<Vec<String>>>>,
    #[allow(clippy::type_complexity)]
    answer: Arc<Mutex<Box<dyn FnMut(&[String]) -> Output + Send>>>,
}

impl FakeRunner {
    pub fn new(answer: impl FnMut(&[String]) -> Output + Send + 'static) -> Self {
        FakeRunner {
            calls: Arc::default(),
            answer: Arc::new(Mutex::new(Box::new(answer))),
        }
    }

    /// Every command line run so far, joined with spaces.
    pub fn lines(&self) -> Vec<String> {
        self.calls
            .lock()
            .map(|c| c.iter().map(|a| a.join(" ")).collect())
            .unwrap_or_default()
    }
}

impl Runner for FakeRunner {
    fn run(&mut self, argv: &[String]) -> Result<Output> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(argv.to_vec());
        }
        let mut answer = self
            .answer
            .lock()
            .map_err(|_| DriverError::Other("fake runner poisoned".to_owned()))?;
        Ok(answer(argv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_captures() {
        let mut r = SystemRunner::default();
        let out = r
            .run(&argv(&["sh", "-c", "echo hi; echo oops >&2; exit 3"]))
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "oops\n");
    }

    #[test]
    fn a_background_child_holding_stdout_does_not_hang_the_runner() {
        let mut r = SystemRunner::default();
        let t = Instant::now();
        let out = r
            .run(&argv(&["sh", "-c", "sleep 5 & echo started"]))
            .unwrap();
        assert!(out.success());
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn times_out() {
        let mut r = SystemRunner {
            timeout: Duration::from_millis(200),
        };
        assert!(matches!(
            r.run(&argv(&["sleep", "5"])),
            Err(DriverError::Timeout { .. })
        ));
    }
}
