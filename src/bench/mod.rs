//! `omtd bench`: how omtd scales. The operator runs as its own `omtd operator` process (see
//! [`operator_process`]), so its CPU and memory are measured apart from the sim agents',
//! which run one per node in the bench's process against the same store, on sim hosts of
//! a [`SimWorld`] whose Mesos master and Prometheus the operator probes over loopback.
//!
//! The bench applies N nodes and times the cold start (apply → every node Ready: the
//! cluster converged as `omtd status` says), lets the operator settle, then times a series
//! of changes from `apply` returning to the bytes being on the hosts that must have them
//! (the sim hosts' files, read in place), and counts what each change and an idle period
//! cost. Two scenarios:
//!
//! - `relabel` ([`relabel`]): each change relabels one worker; the node controller must
//!   re-render the monitor's Prometheus file_sd targets and the monitor's agent write them.
//! - `add-node` ([`add_node`]): each change adds a worker (its Node and Credential, its
//!   host provisioned and its agent running beforehand), done when the master's
//!   credentials, the executor's exports, the monitor's scrape targets and the new host's
//!   own files all have it.

pub mod add_node;
pub mod cluster;
mod error;
pub mod latency;
pub mod operator_process;
pub mod procfs;
pub mod relabel;
mod rig;
pub mod scrape;
pub mod targets;

use std::time::{Duration, Instant};

pub use error::BenchError;
use latency::Latencies;
pub use operator_process::OperatorCommand;
use procfs::Memory;
use rig::{Rig, Sample};
use scrape::ControllerCost;

use crate::resources::Repo;

/// What the timed changes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Relabel one worker: the monitor's scrape targets change.
    Relabel,
    /// Add a worker (Node and Credential): master credentials, exports, scrape targets and
    /// the new host's files.
    AddNode,
}

#[derive(Clone)]
pub struct BenchOptions {
    pub nodes: usize,
    pub changes: usize,
    pub idle: Duration,
    pub timeout: Duration,
    pub scenario: Scenario,
    /// The connections the sim agents share, round robin (empty: the bench's own). Real
    /// agents have one each; thousands of agents' watches and leases on one HTTP/2
    /// connection trip h2's guard against stream resets ("too_many_internal_resets"),
    /// which closes the connection for every agent at once.
    pub agent_stores: Vec<std::sync::Arc<dyn crate::store::Store>>,
    /// The sim agents' heartbeat lease TTL; `None`: the agent's own default.
    pub agent_lease_ttl: Option<Duration>,
}

/// CPU time (user + system) per timed change.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuPerChange {
    /// The operator process over the changes' window, divided by the changes.
    pub operator: Duration,
    /// The same, less what the operator spends idle over as long (its probe loop, lease
    /// renewals): what the changes themselves cost it.
    pub operator_net: Duration,
    /// Every process: the operator and the bench's (sim agents, sim world, the bench).
    pub all: Duration,
}

/// What the bench measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub nodes: usize,
    pub scenario: Scenario,
    /// `apply` of every record → the cluster converged (every node Ready).
    pub cold_start: Duration,
    /// The operator's peak RSS when the cold start ended.
    pub operator_peak_cold: u64,
    pub latencies: Latencies,
    pub reconciles_per_change: f64,
    /// Per controller, per timed change: reconciles and the time they took.
    pub per_controller: Vec<ControllerCost>,
    pub operator_writes_per_change: f64,
    pub cpu_per_change: CpuPerChange,
    pub store_revisions_per_change: f64,
    pub idle: Duration,
    pub idle_operator_writes: u64,
    pub idle_store_revisions: i64,
    /// The operator's CPU per second of the idle period.
    pub operator_idle_cpu_per_sec: Duration,
    /// At the end: the operator process, and the bench's (agents and sim world).
    pub operator_memory: Memory,
    pub bench_memory: Memory,
    /// What did not finish within the timeout, if anything.
    pub timed_out: Option<String>,
}

impl Figures {
    fn new(nodes: usize, scenario: Scenario) -> Figures {
        Figures {
            nodes,
            scenario,
            cold_start: Duration::ZERO,
            operator_peak_cold: 0,
            latencies: Latencies::default(),
            reconciles_per_change: 0.0,
            per_controller: Vec::new(),
            operator_writes_per_change: 0.0,
            cpu_per_change: CpuPerChange::default(),
            store_revisions_per_change: 0.0,
            idle: Duration::ZERO,
            idle_operator_writes: 0,
            idle_store_revisions: 0,
            operator_idle_cpu_per_sec: Duration::ZERO,
            operator_memory: Memory::default(),
            bench_memory: Memory::default(),
            timed_out: None,
        }
    }
}

/// Runs the bench on `repo` (an empty cluster), its operator started by `operator`.
pub async fn run(
    repo: Repo,
    opts: BenchOptions,
    operator: OperatorCommand,
) -> Result<Figures, BenchError> {
    let mut rig = Rig::start(repo, &opts, &operator).await?;
    let mut figures = Figures::new(opts.nodes, opts.scenario);
    let result = measure(&mut rig, &opts, &mut figures).await;
    figures.operator_memory = rig.operator_memory();
    figures.bench_memory = procfs::memory(procfs::Pid::This);
    rig.stop().await;
    result.map(|()| figures)
}

async fn measure(
    rig: &mut Rig,
    opts: &BenchOptions,
    figures: &mut Figures,
) -> Result<(), BenchError> {
    let start = Instant::now();
    match rig.cold_start(opts.timeout).await? {
        Some(took) => figures.cold_start = took,
        None => {
            let progress = rig
                .pending_at_timeout
                .as_ref()
                .map_or(String::new(), |p| format!(" ({p})"));
            figures.timed_out = Some(format!("the cold start of {} nodes{progress}", opts.nodes));
            return Ok(());
        }
    }
    figures.operator_peak_cold = rig.operator_memory().peak;
    eprintln!(
        "converged {} nodes in {:.1} s; timing {} changes ({:?})",
        opts.nodes,
        figures.cold_start.as_secs_f64(),
        opts.changes,
        opts.scenario
    );
    // Let the cold start's tail (statuses, reports) settle: the changes are timed on a
    // quiet operator, not one still writing the last nodes' statuses.
    rig.settle(opts.timeout.saturating_sub(start.elapsed()))
        .await;

    let before = rig.sample().await;
    let timed = match opts.scenario {
        Scenario::Relabel => relabel::run(rig, opts, &mut figures.latencies).await?,
        Scenario::AddNode => add_node::run(rig, opts, &mut figures.latencies).await?,
    };
    if let Err(what) = timed {
        figures.timed_out = Some(what);
        return Ok(());
    }
    let after = rig.sample().await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle0 = rig.sample().await;
    tokio::time::sleep(opts.idle).await;
    let idle1 = rig.sample().await;
    rig.check_operator()?;

    per_change(figures, &before, &after, opts.changes);
    figures.idle = opts.idle;
    figures.idle_operator_writes = (idle1.scrape.writes - idle0.scrape.writes).max(0.0) as u64;
    figures.idle_store_revisions = idle1.revision - idle0.revision;
    let idle_wall = idle1.at.duration_since(idle0.at).as_secs_f64().max(1e-3);
    let idle_cpu = idle1.operator_cpu.saturating_sub(idle0.operator_cpu);
    figures.operator_idle_cpu_per_sec = idle_cpu.div_f64(idle_wall);
    let window = after.at.duration_since(before.at).as_secs_f64();
    let idle_share = figures.operator_idle_cpu_per_sec.mul_f64(window);
    let window_cpu = after.operator_cpu.saturating_sub(before.operator_cpu);
    figures.cpu_per_change.operator_net =
        window_cpu.saturating_sub(idle_share) / opts.changes.max(1) as u32;
    Ok(())
}

/// The counters' deltas over the timed changes, per change.
fn per_change(figures: &mut Figures, before: &Sample, after: &Sample, changes: usize) {
    let n = changes.max(1) as f64;
    let per = |d: Duration| d / changes.max(1) as u32;
    figures.reconciles_per_change =
        (after.scrape.total_reconciles() - before.scrape.total_reconciles()) / n;
    figures.operator_writes_per_change = (after.scrape.writes - before.scrape.writes) / n;
    figures.per_controller = after
        .scrape
        .since(&before.scrape)
        .into_iter()
        .map(|c| ControllerCost {
            reconciles: c.reconciles / n,
            seconds: c.seconds / n,
            ..c
        })
        .collect();
    figures.store_revisions_per_change = (after.revision - before.revision) as f64 / n;
    figures.cpu_per_change.operator = per(after.operator_cpu.saturating_sub(before.operator_cpu));
    figures.cpu_per_change.all = per(after.all_cpu().saturating_sub(before.all_cpu()));
}
