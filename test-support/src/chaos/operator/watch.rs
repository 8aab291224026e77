//! The operator chaos's reader: every ~75 ms it reads the sim hosts (through their
//! mirrors) and the sim master's tasks, and counts an unsafe step for
//! - a task that ended TASK_LOST/KILLED (the run's drain timeout is the default hour, so
//!   any kill is before the deadline: a drain kills only at its deadline),
//! - an executor export line gone while the worker it serves is wanted,
//! - a database (or any) mount gone from a wanted worker.
//!
//! "Wanted" is what the round says: a worker stops being wanted when its drain's task has
//! ended (the drain may release it then) and is wanted again once it is back and converged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use omtd::agent::drivers::sim::SimHost;
use omtd::sim::SimWorld;
use tokio_util::sync::CancellationToken;

use crate::e2e::{address, World};

pub const EXECUTOR: &str = "executor.omtd";
pub const WORKERS: [&str; 3] = ["node1.omtd", "node2.omtd", "node3.omtd"];

#[derive(Default)]
struct Shared {
    /// Workers not wanted right now (being removed).
    unwanted: BTreeSet<String>,
    /// The first findings, for the figures (all are counted).
    findings: Vec<String>,
    unsafe_steps: u64,
    reads: u64,
    /// Tasks already counted as killed.
    lost: BTreeSet<String>,
    /// The losses seen at the last read: one that lasts counts once, not once a read.
    active: BTreeSet<String>,
}

pub struct Watch {
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the converged cluster holds, taken once at the start: the executor's export lines
/// (by the worker whose address they name, `None` for the others) and each worker's mounts.
struct Baseline {
    exports: Vec<(String, Option<String>)>,
    mounts: BTreeMap<String, BTreeSet<String>>,
}

impl Baseline {
    fn take(w: &World) -> Baseline {
        let exports = w
            .host(EXECUTOR)
            .state()
            .exports_owned
            .iter()
            .map(|line| {
                let worker = WORKERS
                    .iter()
                    .find(|n| line.contains(&format!(" {}(", address(n))))
                    .map(|n| (*n).to_owned());
                (line.clone(), worker)
            })
            .collect();
        let mounts = WORKERS
            .iter()
            .map(|n| ((*n).to_owned(), w.host(n).state().mounted.clone()))
            .collect();
        Baseline { exports, mounts }
    }
}

impl Watch {
    /// Starts reading; call on a converged cluster (its state is the baseline).
    pub fn start(w: &World) -> Watch {
        let baseline = Baseline::take(w);
        assert!(
            baseline.exports.iter().filter(|(_, n)| n.is_some()).count() == WORKERS.len(),
            "every worker exported at the start: {:?}",
            baseline.exports
        );
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = CancellationToken::new();
        let executor = w.host(EXECUTOR).clone();
        let workers: Vec<(String, SimHost)> = WORKERS
            .iter()
            .map(|n| ((*n).to_owned(), w.host(n).clone()))
            .collect();
        let sim = w.sim.clone();
        let (s, token) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            while !token.is_cancelled() {
                check(&s, &baseline, &executor, &workers, &sim);
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(75)) => {}
                }
            }
        });
        Watch { shared, stop }
    }

    pub fn unwant(&self, worker: &str) {
        lock(&self.shared).unwanted.insert(worker.to_owned());
    }

    pub fn want(&self, worker: &str) {
        lock(&self.shared).unwanted.remove(worker);
    }

    /// (unsafe steps, reads, the first findings).
    pub fn figures(&self) -> (u64, u64, Vec<String>) {
        let s = lock(&self.shared);
        (s.unsafe_steps, s.reads, s.findings.clone())
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn check(
    shared: &Mutex<Shared>,
    baseline: &Baseline,
    executor: &SimHost,
    workers: &[(String, SimHost)],
    sim: &SimWorld,
) {
    let tasks = sim.tasks();
    let exports = executor.state().exports_owned.clone();
    let mounts: Vec<(&String, BTreeSet<String>)> = workers
        .iter()
        .map(|(n, h)| (n, h.state().mounted.clone()))
        .collect();
    let mut s = lock(shared);
    s.reads += 1;
    let mut found = Vec::new();
    for t in &tasks {
        if !t.running() && t.state != "TASK_FINISHED" && !s.lost.contains(&t.id) {
            s.lost.insert(t.id.clone());
            found.push(format!("task {} on {} ended {}", t.id, t.node, t.state));
        }
    }
    // (key, message): a loss counts when it appears, not again while it lasts.
    let mut gone = Vec::new();
    for (line, worker) in &baseline.exports {
        let wanted = worker.as_ref().is_none_or(|n| !s.unwanted.contains(n));
        if wanted && !exports.contains(line) {
            let why = format!("export gone while wanted: {line} (exports {exports:?})");
            gone.push((format!("export {line}"), why));
        }
    }
    for (node, now) in &mounts {
        if s.unwanted.contains(*node) {
            continue;
        }
        let want = baseline.mounts.get(*node).cloned().unwrap_or_default();
        for m in want.difference(now) {
            let why = format!("{node} lost mount {m} while wanted");
            gone.push((format!("mount {node} {m}"), why));
        }
    }
    let now: BTreeSet<String> = gone.iter().map(|(k, _)| k.clone()).collect();
    for (key, why) in gone {
        if !s.active.contains(&key) {
            found.push(why);
        }
    }
    s.active = now;
    s.unsafe_steps += found.len() as u64;
    for f in found {
        if s.findings.len() < 20 {
            s.findings.push(f);
        }
    }
}
