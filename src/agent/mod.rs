//! The host agent: `omtd agent --node NAME`.
//!
//! It follows `plans/NAME/` in the store, merges the controllers' slices ([`merge`]),
//! brings the host in line through its drivers ([`apply`], [`drivers`]), writes
//! `reports/NAME` only when something changed ([`report`]), and keeps `leases/agents/NAME`
//! alive as its heartbeat ([`heartbeat`]).
//!
//! A pass runs when the plan changes or at the periodic resync (full passes, LVM included),
//! and when a managed file drifts (inotify, [`drift`]), a sim host signals a fault, a
//! service check is due, systemd signals that a managed unit changed ([`unit_watch`], where
//! systemd runs; the periodic check stays as the safety net), or a backed-off repair may be
//! tried again (light passes). Passes run one at a time on a blocking thread; events
//! arriving meanwhile are looked at after. A long step inside a pass (pvmove) reports its
//! progress while it runs ([`progress`]).
//!
//! While the store is unreachable the agent keeps the host as it is: it still repairs drift
//! toward the last plan it had, but takes no destructive step (no PV removal, no unmount).

pub mod apply;
pub mod drift;
pub mod drivers;
pub mod heartbeat;
pub mod memory;
pub mod merge;
pub mod plans;
pub mod progress;
pub mod repair_limit;
pub mod report;
pub mod unit_watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd_crds::plan::Report;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::MissedTickBehavior;

use crate::resources::Keys;
use crate::store::{Store, StoreError};
use apply::Scope;
use drivers::Host;
use memory::Memory;
use merge::{MergedPlan, Merger};
use repair_limit::RepairPolicy;
use report::ReportWriter;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub keys: Keys,
    /// Full pass period, the safety net behind the events.
    pub resync: Duration,
    /// How often services (and containers and mounts) are looked at: SysV and docker send
    /// no events the agent could wait for.
    pub service_check: Duration,
    /// TTL of the heartbeat lease.
    pub lease_ttl: Duration,
    pub repair: RepairPolicy,
    /// Watch managed files with inotify.
    pub watch_files: bool,
    /// Listen to systemd's unit signals on this bus (`None`: poll services only).
    pub systemd_bus: Option<unit_watch::Bus>,
    /// At most one progress write (pvmove percent) per this period.
    pub progress_interval: Duration,
}

impl AgentConfig {
    pub fn new(node: &str, keys: Keys) -> Self {
        AgentConfig {
            node: node.to_owned(),
            keys,
            resync: Duration::from_secs(30),
            service_check: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            repair: RepairPolicy::default(),
            watch_files: true,
            systemd_bus: None,
            progress_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("an apply pass crashed: {0}")]
    Pass(String),
}

/// One agent over one host.
pub struct Agent {
    store: Arc<dyn Store>,
    host: Host,
    config: AgentConfig,
    signal: Option<Arc<Notify>>,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub passes: std::sync::atomic::AtomicU64,
    pub report_writes: std::sync::atomic::AtomicU64,
}

impl Agent {
    pub fn new(store: Arc<dyn Store>, host: Host, config: AgentConfig) -> Self {
        Agent {
            store,
            host,
            config,
            signal: None,
        }
    }

    /// Also wake on this signal (a sim host's faults).
    pub fn with_signal(mut self, signal: Arc<Notify>) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Run until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        self.run_with_stats(Arc::default(), shutdown).await
    }

    pub async fn run_with_stats(
        self,
        stats: Arc<Stats>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        // `instrument`, not `span.enter()`: an entered guard held across awaits would tag
        // other tasks' log lines with this node (several agents share a process in the demo).
        let span = tracing::info_span!("agent", node = %self.config.node);
        tracing::Instrument::instrument(self.run_in_span(stats, shutdown), span).await
    }

    async fn run_in_span(
        self,
        stats: Arc<Stats>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        let Agent {
            store,
            host,
            config,
            signal,
        } = self;
        let node = config.node.clone();
        let report_key = config.keys.report(&node);

        // What the agent said last time: counters, restart tokens, the highest fencing
        // token, and the bytes (so an unchanged report is not written again).
        let last_kv = loop {
            match store.get(&report_key).await {
                Ok(kv) => break kv,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the last report; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let last: Option<Report> = last_kv
            .as_ref()
            .and_then(|kv| serde_json::from_slice(&kv.value).ok());
        let mut mem = Memory::new(config.repair);
        if let Some(r) = &last {
            mem.seed(r);
        }
        let mut merger = Merger::new(
            last.as_ref()
                .and_then(|r| r.applied.values().max().copied())
                .unwrap_or(0),
        )
        .for_node(&node, cluster_name(&config.keys));
        let mut writer = ReportWriter::new(report_key, last_kv.map(|kv| kv.value));
        // The last report built: the base that progress updates are laid over.
        let mut last_report: Report = last.clone().unwrap_or_else(|| Report {
            node: node.clone(),
            ..Default::default()
        });
        let mut limiter = progress::ProgressLimiter::new(config.progress_interval);

        let (stop_tx, stop_rx) = watch::channel(false);
        let healthy = Arc::new(AtomicBool::new(true));
        let beat_value = serde_json::to_vec(&serde_json::json!({
            "node": node,
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .unwrap_or_default();
        let heartbeat = tokio::spawn(heartbeat::run(
            Arc::clone(&store),
            config.keys.agent_lease(&node),
            beat_value,
            config.lease_ttl,
            Arc::clone(&healthy),
            stop_rx,
        ));
        let (plan_tx, mut plan_rx) = watch::channel(plans::Slices::default());
        let connected = Arc::new(AtomicBool::new(true));
        let follower = tokio::spawn(plans::follow(
            Arc::clone(&store),
            config.keys.plans_of(&node),
            plan_tx,
            Arc::clone(&connected),
        ));

        let mut drift = if config.watch_files {
            match drift::Drift::new() {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "no inotify: drift is found by the resync only");
                    None
                }
            }
        } else {
            None
        };

        let unit_signal = Arc::new(Notify::new());
        let units = match &config.systemd_bus {
            Some(bus) => match unit_watch::UnitWatch::start(bus, Arc::clone(&unit_signal)).await {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "no systemd signals: services are polled only");
                    None
                }
            },
            None => None,
        };

        let mut resync =
            tokio::time::interval_at(tokio::time::Instant::now() + config.resync, config.resync);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut check = tokio::time::interval_at(
            tokio::time::Instant::now() + config.service_check,
            config.service_check,
        );
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let mut worker = Some((host, mem));
        let mut plan: Option<Arc<MergedPlan>> = None;
        let mut next_wake: Option<Instant> = None;
        let mut report_dirty: Option<Report> = None;
        tokio::pin!(shutdown);

        let result = loop {
            let mut scope: Option<Scope> = None;
            let mut drifted: Option<(PathBuf, Instant)> = None;
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                changed = plan_rx.changed() => {
                    if changed.is_err() {
                        break Err(AgentError::Pass("the plan follower stopped".into()));
                    }
                    let slices = plan_rx.borrow_and_update().clone();
                    if slices.loaded {
                        let merged = merger.merge(&slices.slices);
                        if let Some(u) = &units {
                            u.set_units(merged.services.iter().map(|s| s.name.clone()));
                        }
                        plan = Some(Arc::new(merged));
                        scope = Some(Scope::Full);
                    }
                }
                ev = next_drift(&mut drift) => {
                    if let drift::Event::Changed(p) = &ev {
                        drifted = Some((p.clone(), Instant::now()));
                    }
                    // Let the writer finish: `cat > file` truncates, then writes. Repairing
                    // in between would rename a new file over the one being written, and
                    // for fstab or exports the writer's other lines would be lost.
                    settle(&mut drift).await;
                    scope = Some(Scope::Light);
                }
                _ = wait_signal(&signal) => scope = Some(Scope::Light),
                _ = unit_signal.notified(), if units.is_some() => scope = Some(Scope::Light),
                _ = resync.tick() => scope = Some(Scope::Full),
                _ = check.tick() => scope = Some(Scope::Light),
                _ = sleep_until(next_wake) => {
                    next_wake = None;
                    scope = Some(Scope::Light);
                }
            }
            if let Some(r) = report_dirty.take() {
                // An earlier report write failed: try again now.
                if let Err(e) = writer.write(&store, &r).await {
                    tracing::warn!(error = %e, "cannot write the report");
                    report_dirty = Some(r);
                }
            }
            let (Some(scope), Some(current)) = (scope, plan.clone()) else {
                continue;
            };
            let may_destroy = healthy.load(Ordering::Relaxed) && connected.load(Ordering::Relaxed);
            let Some((mut host, mut mem)) = worker.take() else {
                break Err(AgentError::Pass("the host was lost".into()));
            };
            let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<(String, u8)>();
            let mut job = tokio::task::spawn_blocking(move || {
                let mut send = move |id: &str, percent: u8| {
                    let _ = progress_tx.send((id.to_owned(), percent));
                };
                let out = apply::run_with_progress(
                    &mut host,
                    &mut mem,
                    &current,
                    scope,
                    may_destroy,
                    &mut send,
                );
                let mut expected = Vec::new();
                for (path, fp) in &out.expected_files {
                    if let Some(hp) = host.files.host_path(path) {
                        expected.push((hp, *fp));
                    }
                }
                expected.extend(out.snapshots.iter().cloned());
                (host, mem, out, expected)
            });
            // While the pass runs, its long steps' progress goes to the report.
            let joined = loop {
                tokio::select! {
                    j = &mut job => break j,
                    Some((id, percent)) = progress_rx.recv() => limiter.note(&id, percent),
                    _ = sleep_until(limiter.next_due()) => {}
                }
                let now = Instant::now();
                if limiter.due(now) {
                    let r = progress::apply(&last_report, limiter.latest());
                    match writer.write(&store, &r).await {
                        Ok(wrote) => {
                            if wrote {
                                stats.report_writes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // The pass's own report follows; a lost progress line is harmless.
                        Err(e) => tracing::warn!(error = %e, "cannot write progress"),
                    }
                    limiter.written(now);
                }
            };
            limiter.reset();
            let (host, mem, out, expected) = match joined {
                Ok(v) => v,
                Err(e) => break Err(AgentError::Pass(e.to_string())),
            };
            stats.passes.fetch_add(1, Ordering::Relaxed);
            if let Some((path, at)) = drifted {
                if out.changes > 0 {
                    tracing::info!(
                        path = %path.display(),
                        latency_ms = at.elapsed().as_secs_f64() * 1000.0,
                        "drift repaired"
                    );
                }
            }
            if let Some(d) = drift.as_mut() {
                d.update(expected, Vec::new());
            }
            next_wake = out.next_wake;
            let applied = plan.as_ref().map(|p| p.applied.clone()).unwrap_or_default();
            let digests = plan.as_ref().map(|p| p.digests.clone()).unwrap_or_default();
            let r = report::build(
                &node,
                &applied,
                &digests,
                out.resources,
                mem.corrective,
                mem.intentional,
            );
            worker = Some((host, mem));
            last_report = r.clone();
            match writer.write(&store, &r).await {
                Ok(true) => {
                    stats.report_writes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the report; will retry");
                    report_dirty = Some(r);
                }
            }
        };
        let _ = stop_tx.send(true);
        follower.abort();
        let _ = heartbeat.await;
        result
    }
}

/// The cluster named by the keys (`/omtd/<cluster>/`), or the whole prefix when the keys
/// are laid out otherwise.
fn cluster_name(keys: &Keys) -> &str {
    let p = keys.prefix();
    p.strip_prefix("/omtd/")
        .and_then(|c| c.strip_suffix('/'))
        .unwrap_or(p)
}

async fn next_drift(drift: &mut Option<drift::Drift>) -> drift::Event {
    match drift {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}

/// How long a drifted file must stay quiet before the agent repairs it, and the longest it
/// waits for that.
const SETTLE_QUIET: Duration = Duration::from_millis(50);
const SETTLE_MAX: Duration = Duration::from_millis(500);

/// Wait until drift events stop for `SETTLE_QUIET` (at most `SETTLE_MAX`).
async fn settle(drift: &mut Option<drift::Drift>) {
    let Some(d) = drift.as_mut() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    while tokio::time::Instant::now() < deadline {
        if tokio::time::timeout(SETTLE_QUIET, d.next()).await.is_err() {
            return;
        }
    }
}

async fn wait_signal(signal: &Option<Arc<Notify>>) {
    match signal {
        Some(s) => s.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
