//! The recording fake of [`CommandRunner`] for unit tests.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use super::{lock, Cmd, CommandError, CommandRunner, LineSink, Output};

/// A fake runner for unit tests: answers from a script keyed by the command line
/// ([`Cmd::line`]) and records every command it was asked to run, in order.
///
/// Several answers for one command line are given out in order; the last one repeats, so
/// "observe before" and "observe after" can differ. A runner built with
/// [`answering`](Self::answering) asks its closure for every unscripted command.
#[derive(Default)]
pub struct RecordingRunner {
    script: Mutex<HashMap<String, VecDeque<Output>>>,
    calls: Mutex<Vec<Cmd>>,
    fallback: Mutex<Option<Answer>>,
}

type Answer = Box<dyn FnMut(&Cmd) -> Output + Send>;

impl fmt::Debug for RecordingRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingRunner")
            .field("script", &self.script)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl RecordingRunner {
    pub fn new() -> Self {
        RecordingRunner::default()
    }

    /// A runner that answers every command with `answer` (unless scripted with [`on`](Self::on)).
    pub fn answering(answer: impl FnMut(&Cmd) -> Output + Send + 'static) -> Self {
        RecordingRunner {
            fallback: Mutex::new(Some(Box::new(answer))),
            ..RecordingRunner::default()
        }
    }

    /// Scripts one more answer for `line` (e.g. `"blkid -p /dev/vdd"`).
    pub fn on(&self, line: &str, out: Output) -> &Self {
        lock(&self.script)
            .entry(line.to_owned())
            .or_default()
            .push_back(out);
        self
    }

    /// Every command run so far.
    pub fn calls(&self) -> Vec<Cmd> {
        lock(&self.calls).clone()
    }

    /// Every command line run so far ([`Cmd::line`]).
    pub fn lines(&self) -> Vec<String> {
        lock(&self.calls).iter().map(Cmd::line).collect()
    }

    fn answer(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        lock(&self.calls).push(cmd.clone());
        let line = cmd.line();
        let mut script = lock(&self.script);
        let Some(queue) = script.get_mut(&line) else {
            return match lock(&self.fallback).as_mut() {
                Some(answer) => Ok(answer(cmd)),
                None => Err(CommandError::Unscripted { command: line }),
            };
        };
        let out = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        out.ok_or(CommandError::Unscripted { command: line })
    }
}

impl CommandRunner for RecordingRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        self.answer(cmd)
    }

    fn run_streaming(&self, cmd: &Cmd, on_line: &mut LineSink<'_>) -> Result<Output, CommandError> {
        let out = self.answer(cmd)?;
        for line in out.stdout.lines() {
            on_line(line);
        }
        Ok(out)
    }
}
