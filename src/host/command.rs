//! Running host programs: one trait, a real implementation and a recording fake.
//!
//! Every command the host drivers run goes through [`CommandRunner`], so unit tests can
//! assert the exact command lines built (the LVM steps that need device-mapper cannot run
//! on every test machine) and feed real captured outputs back to the parsers.
//!
//! Commands are argument vectors, never shell strings: nothing a plan carries (a device
//! name, a volume group) is ever interpreted by a shell. Standard input is always closed,
//! so a tool that prompts ("Wipe it? [y/n]") reads end-of-file and declines instead of
//! hanging or being talked into anything.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

mod recording;
pub use recording::RecordingRunner;

/// A program with its arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Added to the inherited environment (e.g. `LC_ALL=C` so messages we match are English).
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line as one string, arguments joined by single spaces and single-quoted
    /// only when a shell would need it: for logs, error messages and test assertions.
    pub fn line(&self) -> String {
        let mut out = self.program.clone();
        for a in &self.args {
            out.push(' ');
            let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
            if a.is_empty() || !a.chars().all(plain) {
                out.push('\'');
                out.push_str(&a.replace('\'', r"'\''"));
                out.push('\'');
            } else {
                out.push_str(a);
            }
        }
        out
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// An output with this exit code and no text (for fakes and tests).
    pub fn exit(code: i32) -> Self {
        Output {
            code: Some(code),
            ..Default::default()
        }
    }

    pub fn ok(stdout: impl Into<String>) -> Self {
        Output {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    pub fn with_stderr(mut self, stderr: impl Into<String>) -> Self {
        self.stderr = stderr.into();
        self
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Turns a non-zero exit into [`CommandError::Failed`], keeping stderr for the message.
    pub fn check(self, cmd: &Cmd) -> Result<Output, CommandError> {
        if self.success() {
            Ok(self)
        } else {
            Err(CommandError::failed(cmd, &self))
        }
    }
}

/// Why a command could not be run, or ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{program} is not installed (not found in PATH)")]
    NotFound { program: String },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    TimedOut { command: String, timeout: Duration },
    #[error("`{command}` failed ({}): {}", exit_text(*.code), stderr.trim())]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    /// Only from [`RecordingRunner`]: the test did not script an answer for this command.
    #[error("no scripted output for `{command}`")]
    Unscripted { command: String },
}

impl CommandError {
    pub fn failed(cmd: &Cmd, out: &Output) -> Self {
        // Some tools (pvmove, mke2fs) put their reason on stdout: keep whichever has text.
        let text = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        CommandError::Failed {
            command: cmd.line(),
            code: out.code,
            stderr: text.clone(),
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Receives each stdout line of a streaming run.
pub type LineSink<'a> = dyn for<'l> FnMut(&'l str) + Send + 'a;

/// Runs host programs. Implementations must close stdin and capture both output streams.
///
/// Blocking on purpose: the agent applies plans on a blocking thread
/// (`tokio::task::spawn_blocking`) through synchronous driver traits; async callers wrap
/// a call the same way.
pub trait CommandRunner: Send + Sync {
    /// Runs to completion and returns the exit code and both outputs, whatever the code.
    fn run(&self, cmd: &Cmd) -> Result<Output, CommandError>;

    /// Like [`run`](Self::run), and also hands each stdout line to `on_line` as soon as it
    /// is printed (pvmove's progress). The returned stdout holds every line too.
    fn run_streaming(&self, cmd: &Cmd, on_line: &mut LineSink<'_>) -> Result<Output, CommandError>;
}

/// How a [`SystemRunner`] collects a command's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Capture {
    /// Pipes read by helper threads, line by line (needed for streaming). If the command
    /// exits but a daemon it started keeps the pipe open, the rest is given up after a
    /// short grace.
    #[default]
    Pipes,
    /// Temporary files, read back once the command exited (at most [`MAX_FILE_OUTPUT`]
    /// bytes a stream). For commands that start daemons (`service start`, an init script):
    /// the daemon inherits the files, not a pipe, so nothing waits on it and nothing of
    /// the command's own output is lost to a grace period.
    TempFiles,
}

/// The real runner: `std::process`, stdin closed, both outputs captured as
/// [`capture`](Self::capture) says. `timeout` bounds [`run`](CommandRunner::run) (a probe
/// of a dead disk must not hang the agent; the child is killed); streaming runs are not
/// bounded, as a pvmove may rightly take hours.
#[derive(Debug, Clone, Default)]
pub struct SystemRunner {
    pub timeout: Option<Duration>,
    pub capture: Capture,
}

/// The agent drivers' bound on one command: long enough for a slow `service start` or an
/// NFS mount, short enough that a hung command does not stall the agent for good.
pub const DRIVER_TIMEOUT: Duration = Duration::from_secs(120);

/// Most output kept from one stream of a [`Capture::TempFiles`] run.
pub const MAX_FILE_OUTPUT: u64 = 256 * 1024;

impl SystemRunner {
    pub fn new() -> Self {
        SystemRunner::default()
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        SystemRunner {
            timeout: Some(timeout),
            ..SystemRunner::default()
        }
    }

    /// The runner of the agent's file, service, mount, exports and container drivers:
    /// temp-file capture and [`DRIVER_TIMEOUT`].
    pub fn for_drivers() -> Self {
        SystemRunner {
            timeout: Some(DRIVER_TIMEOUT),
            capture: Capture::TempFiles,
        }
    }

    fn spawn(cmd: &Cmd, stdout: Stdio, stderr: Stdio) -> Result<Child, CommandError> {
        // Every command, at debug (the agent's periodic reports would flood info); the
        // drivers log the commands that change the host at info.
        tracing::debug!(program = %cmd.program, args = ?cmd.args, "running command");
        Command::new(&cmd.program)
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    CommandError::NotFound {
                        program: cmd.program.clone(),
                    }
                } else {
                    CommandError::Spawn {
                        program: cmd.program.clone(),
                        source,
                    }
                }
            })
    }

    fn execute(
        &self,
        cmd: &Cmd,
        on_line: &mut LineSink<'_>,
        timeout: Option<Duration>,
    ) -> Result<Output, CommandError> {
        let started = Instant::now();
        let mut child = Self::spawn(cmd, Stdio::piped(), Stdio::piped())?;
        let io_err = |source| CommandError::Spawn {
            program: cmd.program.clone(),
            source,
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(io_err(std::io::Error::other("child pipes missing")));
        };
        // Both streams are read on their own threads: a chatty tool cannot block on a full
        // stderr pipe while we read stdout, and the deadline is kept while it is silent.
        let (lines, stdout_done) = read_lines(stdout);
        let (err_buf, stderr_done) = read_all(stderr);
        let deadline = timeout.map(|t| started + t);
        let mut all = String::new();
        let mut exited: Option<(ExitStatus, Instant)> = None;
        loop {
            match lines.recv_timeout(POLL) {
                Ok(line) => {
                    on_line(&line);
                    all.push_str(&line);
                    all.push('\n');
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // Killing the child closes its pipes, which ends the reader threads.
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut {
                    command: cmd.line(),
                    timeout: timeout.unwrap_or_default(),
                });
            }
            match exited {
                None => {
                    exited = child
                        .try_wait()
                        .map_err(io_err)?
                        .map(|s| (s, Instant::now()))
                }
                // The tool has exited but its stdout is still open: a daemon it started
                // (dmeventd, say) inherited the pipe. Stop waiting for an end that may
                // never come.
                Some((_, at)) if at.elapsed() > GRACE => break,
                Some(_) => {}
            }
        }
        let status = match exited {
            Some((s, _)) => s,
            None => child.wait().map_err(io_err)?,
        };
        if let Some(e) = stdout_done.recv_timeout(GRACE).ok().flatten() {
            return Err(io_err(e));
        }
        if let Some(e) = stderr_done.recv_timeout(GRACE).ok().flatten() {
            return Err(io_err(e));
        }
        let stderr = lock(&err_buf).clone();
        let out = Output {
            code: status.code(),
            stdout: all,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        Ok(finished(cmd, started, out))
    }

    /// A [`Capture::TempFiles`] run: wait for the exit (backing off from 2 ms to 50 ms
    /// between checks), killing the child at the deadline, then read both files back.
    fn execute_to_files(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        let started = Instant::now();
        let io_err = |source| CommandError::Spawn {
            program: cmd.program.clone(),
            source,
        };
        let mut out_file = tempfile::tempfile().map_err(io_err)?;
        let mut err_file = tempfile::tempfile().map_err(io_err)?;
        let mut child = Self::spawn(
            cmd,
            out_file.try_clone().map_err(io_err)?.into(),
            err_file.try_clone().map_err(io_err)?.into(),
        )?;
        let deadline = self.timeout.map(|t| started + t);
        let mut nap = Duration::from_millis(2);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io_err)? {
                break status;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut {
                    command: cmd.line(),
                    timeout: self.timeout.unwrap_or_default(),
                });
            }
            thread::sleep(nap);
            nap = (nap * 2).min(POLL);
        };
        let out = Output {
            code: status.code(),
            stdout: read_back(&mut out_file),
            stderr: read_back(&mut err_file),
        };
        Ok(finished(cmd, started, out))
    }
}

fn finished(cmd: &Cmd, started: Instant, out: Output) -> Output {
    tracing::debug!(
        program = %cmd.program,
        code = ?out.code,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "command finished"
    );
    out
}

/// The start of a capture file (lossy UTF-8); an unreadable file reads as empty, as the
/// exit code is what the callers decide on.
fn read_back(f: &mut std::fs::File) -> String {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.take(MAX_FILE_OUTPUT).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// How often a silent command is checked for exit and deadline.
const POLL: Duration = Duration::from_millis(50);
/// How long output is still awaited after the command exited.
const GRACE: Duration = Duration::from_millis(500);

/// Reads lines (lossy UTF-8: a label may hold anything) on a thread. The line channel
/// closes at end of stream; the second channel then says whether reading failed.
fn read_lines(
    stream: impl Read + Send + 'static,
) -> (Receiver<String>, Receiver<Option<std::io::Error>>) {
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        let result = loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break None,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.strip_suffix('\n').unwrap_or(&line);
                    if tx.send(line.to_owned()).is_err() {
                        break None;
                    }
                }
                Err(e) => break Some(e),
            }
        };
        drop(tx);
        let _ = done_tx.send(result);
    });
    (rx, done_rx)
}

/// Reads a whole stream on a thread into a shared buffer (readable even if the stream
/// never ends), then reports on the channel whether reading failed.
fn read_all(
    mut stream: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, Receiver<Option<std::io::Error>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let shared = buf.clone();
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        let result = loop {
            match stream.read(&mut chunk) {
                Ok(0) => break None,
                Ok(n) => lock(&shared).extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let _ = done_tx.send(result);
    });
    (buf, done_rx)
}

impl CommandRunner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        match self.capture {
            Capture::Pipes => self.execute(cmd, &mut |_| {}, self.timeout),
            Capture::TempFiles => self.execute_to_files(cmd),
        }
    }

    /// Always through pipes, whatever [`capture`](Self::capture) says: lines can only be
    /// handed on as they are printed through a pipe.
    fn run_streaming(&self, cmd: &Cmd, on_line: &mut LineSink<'_>) -> Result<Output, CommandError> {
        self.execute(cmd, on_line, None)
    }
}

// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
