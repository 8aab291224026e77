//! Operator chaos (issue #21 item 8, the part the file-level harness leaves out): a real
//! `omtd operator` process `kill -9`ed in the middle of a procedure, on the end-to-end world
//! ([`crate::e2e::World`]: real etcd and ZooKeeper, sim agents as processes, the sim
//! world's Mesos, Chronos and Prometheus behind the operator's real probes).
//!
//! Each round picks a procedure ([`procedures::Procedure`]: a drain, the ordered recovery,
//! a credential rotation, a relabel), starts it, kills the operator 0–`kill_within` later
//! (so some kills land mid-step), starts a new operator 0–`restart_within` after that, and
//! waits for the procedure to finish and the cluster to converge within `bound`. A reader
//! ([`watch`]) counts unsafe steps all along. `tests/chaos_operator.rs` drives it.

pub mod procedures;
pub mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::e2e::mesos::FAST_RECOVERY;
use crate::e2e::{Setup, World, EXAMPLE, NODES};

use super::Rng;
use procedures::{Round, ALL};
use watch::Watch;

pub struct Config {
    pub rounds: usize,
    /// The run stops starting rounds at this time.
    pub until: Option<Instant>,
    pub seed: u64,
    /// The kill lands 0–this long after the procedure started.
    pub kill_within: Duration,
    /// The new operator starts 0–this long after the kill.
    pub restart_within: Duration,
    /// How long a procedure may take to finish after the restart, and the cluster to
    /// converge after it: past it the round did not converge.
    pub bound: Duration,
    /// Round i runs the (i + a seeded offset)-th procedure, so a few rounds run each one
    /// (the short CI run); otherwise each round picks at random.
    pub cycle: bool,
}

#[derive(Default)]
pub struct Figures {
    pub rounds: usize,
    pub kills: usize,
    pub reads: u64,
    pub unsafe_steps: u64,
    pub converged: usize,
    /// From the restart to converged, minus the time a round held on purpose.
    pub reconverge: Vec<Duration>,
    pub procedures: BTreeMap<String, usize>,
    /// One line a round: what it ran and how it ended.
    pub log: Vec<String>,
    pub examples: Vec<String>,
    pub elapsed: Duration,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.log {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "rounds            {}", self.rounds)?;
        for (k, n) in &self.procedures {
            writeln!(f, "  {k:<16}{n}")?;
        }
        writeln!(f, "operator kills    {}", self.kills)?;
        writeln!(f, "host reads        {}", self.reads)?;
        super::Outcome {
            unsafe_steps: self.unsafe_steps,
            converged: self.converged,
            rounds: self.rounds,
            reconverge: &self.reconverge,
            elapsed: self.elapsed,
            examples: &self.examples,
        }
        .fmt(f)
    }
}

/// The operator's flags: the recovery's timings in seconds, and a 3 s leader lease so a
/// new process takes over soon after the dead one's lease expires. The attempts are many:
/// they count across incidents until the cluster has been healthy for 15 minutes, and a
/// run starts a recovery every few rounds (with 3, the fourth incident gives up at once,
/// by design, and waits for a person).
fn operator_args() -> Vec<&'static str> {
    let mut args = FAST_RECOVERY.to_vec();
    if let Some(i) = args.iter().position(|a| *a == "--recovery-attempts") {
        args[i + 1] = "1000";
    }
    args.extend(["--lease-ttl", "3s", "--renew-every", "1s"]);
    args
}

/// The last lines of a log file in the world's folder.
fn tail(w: &World, file: &str, lines: usize) -> String {
    let log = std::fs::read_to_string(w.dir.path().join(file)).unwrap_or_default();
    let mut v: Vec<&str> = log.lines().rev().take(lines).collect();
    v.reverse();
    v.join("\n")
}

/// Runs the rounds on a fresh world; returns the figures.
pub async fn run(cfg: &Config) -> Figures {
    let started = Instant::now();
    let mut w = World::start(
        &NODES,
        Setup {
            operator_args: operator_args(),
            ..Default::default()
        },
    )
    .await;
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    w.wait_converged(Duration::from_secs(90)).await;
    w.status_wait().await;
    let watch = Watch::start(&w);
    let mut rng = Rng(cfg.seed.max(1));
    let mut figures = Figures::default();
    let mut failed_in_a_row = 0;
    let offset = rng.below(ALL.len() as u64) as usize;
    for number in 0..cfg.rounds {
        if cfg.until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let p = if cfg.cycle {
            ALL[(number + offset) % ALL.len()]
        } else {
            ALL[rng.below(ALL.len() as u64) as usize]
        };
        let round_start = Instant::now();
        let mut round = Round {
            w: &mut w,
            rng: &mut rng,
            cfg,
            watch: &watch,
            number,
            restarted: None,
            held: Duration::ZERO,
            kills: 0,
            term_killed: 0,
            trace: Vec::new(),
        };
        let outcome = round.run(p).await;
        let (restarted, held, kills) = (round.restarted, round.held, round.kills);
        let trace = round.trace.join(", ");
        figures.rounds += 1;
        figures.kills += kills;
        *figures.procedures.entry(format!("{p:?}")).or_default() += 1;
        let took = restarted
            .map(|r| r.elapsed().saturating_sub(held))
            .unwrap_or_default();
        let before = figures.log.len();
        match outcome {
            Ok(()) => {
                failed_in_a_row = 0;
                figures.converged += 1;
                figures.reconverge.push(took);
                figures.log.push(format!(
                    "#{number} {trace}: converged {took:.2?} after the restart (round {:.1?})",
                    round_start.elapsed()
                ));
                eprintln!("[chaos-operator] {}", figures.log[before]);
            }
            Err(why) => {
                failed_in_a_row += 1;
                figures
                    .log
                    .push(format!("#{number} {trace}: NOT converged"));
                figures.examples.push(format!(
                    "round {number} ({trace}): {why}\n--- operator before the kill:\n{}\n--- \
                     operator after:\n{}",
                    tail(&w, "operator.prev.log", 30),
                    tail(&w, "operator.log", 60)
                ));
                eprintln!("[chaos-operator] {}: {why}", figures.log[before]);
                // A cluster left broken would fail every round after it: stop there.
                if failed_in_a_row >= 2 {
                    break;
                }
            }
        }
    }
    watch.stop();
    let (unsafe_steps, reads, findings) = watch.figures();
    figures.unsafe_steps = unsafe_steps;
    figures.reads = reads;
    figures.examples.extend(findings);
    figures.elapsed = started.elapsed();
    w.stop().await;
    figures
}
