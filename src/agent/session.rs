//! One run of the agent, as a struct (mini-redis style): [`Session::start`] reads the last
//! report and starts the helper tasks, [`Session::next_trigger`] waits for what wakes a
//! pass, [`Session::pass`] runs it on a blocking thread while its progress is reported,
//! [`Session::report`] writes the result, [`Session::stop`] ends the helpers.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd_crds::plan::Report;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use super::apply::{self, PassOutcome, Scope};
use super::drivers::Host;
use super::memory::Memory;
use super::merge::{MergedPlan, Merger};
use super::progress::{self, ProgressLimiter};
use super::report::{self, ReportWriter};
use super::{drift, heartbeat, plans, unit_watch, Agent, AgentConfig, AgentError, Stats};
use crate::store::{KeyValue, Store};

/// Everything a running agent holds between passes.
pub(super) struct Session {
    store: Arc<dyn Store>,
    config: AgentConfig,
    stats: Arc<Stats>,
    signal: Option<Arc<Notify>>,
    merger: Merger,
    writer: ReportWriter,
    /// The last report built: the base that progress updates are laid over.
    last_report: Report,
    limiter: ProgressLimiter,
    tasks: Helpers,
    plan_rx: watch::Receiver<plans::Slices>,
    drift: Option<drift::Drift>,
    unit_signal: Arc<Notify>,
    units: Option<unit_watch::UnitWatch>,
    resync: Interval,
    check: Interval,
    /// The host and the agent's memory, lent to the blocking thread during a pass.
    worker: Option<(Host, Memory)>,
    plan: Option<Arc<MergedPlan>>,
    next_wake: Option<Instant>,
    /// A report whose write failed, tried again at the next wake.
    report_dirty: Option<Report>,
}

/// The heartbeat and the plan follower, and what they tell the loop.
struct Helpers {
    stop_tx: watch::Sender<bool>,
    heartbeat: JoinHandle<()>,
    follower: JoinHandle<()>,
    /// The heartbeat lease is held.
    healthy: Arc<AtomicBool>,
    /// The plan follower reaches the store.
    connected: Arc<AtomicBool>,
}

/// What woke the loop: the scope of the pass to run (none: nothing to do) and, for a
/// drifted file, which and when (for the repair latency log).
struct Wake {
    scope: Option<Scope>,
    drifted: Option<(PathBuf, Instant)>,
}

/// A finished pass with the host and memory it hands back.
struct Finished {
    host: Host,
    mem: Memory,
    out: PassOutcome,
    expected: Vec<(PathBuf, Option<[u8; 32]>)>,
}

impl Session {
    pub(super) async fn start(agent: Agent, stats: Arc<Stats>) -> Session {
        let Agent {
            store,
            host,
            config,
            signal,
        } = agent;
        let report_key = config.keys.report(&config.node);
        // What the agent said last time: counters, restart tokens, the highest fencing
        // token, and the bytes (so an unchanged report is not written again).
        let last_kv = read_last_report(store.as_ref(), &report_key).await;
        let last: Option<Report> = last_kv
            .as_ref()
            .and_then(|kv| serde_json::from_slice(&kv.value).ok());
        let mut mem = Memory::new(config.repair);
        if let Some(r) = &last {
            mem.seed(r);
        }
        let merger = Merger::new(
            last.as_ref()
                .and_then(|r| r.applied.values().max().copied())
                .unwrap_or(0),
        )
        .in_epoch(last.as_ref().map_or("", |r| r.epoch.as_str()))
        .for_node(&config.node, super::cluster_name(&config.keys));
        let writer = ReportWriter::new(report_key, last_kv.map(|kv| kv.value));
        let last_report = last.unwrap_or_else(|| Report {
            node: config.node.clone(),
            ..Default::default()
        });
        let (plan_tx, plan_rx) = watch::channel(plans::Slices::default());
        let tasks = Helpers::start(&store, &config, plan_tx);
        let drift = start_drift(config.watch_files);
        let unit_signal = Arc::new(Notify::new());
        let units = start_units(&config, &unit_signal).await;
        Session {
            limiter: ProgressLimiter::new(config.progress_interval),
            resync: ticker(config.resync),
            check: ticker(config.service_check),
            store,
            stats,
            signal,
            merger,
            writer,
            last_report,
            tasks,
            plan_rx,
            drift,
            unit_signal,
            units,
            worker: Some((host, mem)),
            plan: None,
            next_wake: None,
            report_dirty: None,
            config,
        }
    }

    /// Passes until `shutdown` completes or the loop cannot go on.
    pub(super) async fn run<S: Future<Output = ()>>(
        &mut self,
        mut shutdown: Pin<&mut S>,
    ) -> Result<(), AgentError> {
        loop {
            let Some(wake) = self.next_trigger(shutdown.as_mut()).await? else {
                return Ok(());
            };
            self.retry_report().await;
            let (Some(scope), Some(current)) = (wake.scope, self.plan.clone()) else {
                continue;
            };
            let finished = self.pass(scope, current).await?;
            self.report(finished, wake.drifted).await;
        }
    }

    /// Waits for the next thing that wakes the agent; `None` at shutdown.
    async fn next_trigger<S: Future<Output = ()>>(
        &mut self,
        shutdown: Pin<&mut S>,
    ) -> Result<Option<Wake>, AgentError> {
        let mut wake = Wake {
            scope: None,
            drifted: None,
        };
        tokio::select! {
            _ = shutdown => return Ok(None),
            changed = self.plan_rx.changed() => {
                if changed.is_err() {
                    return Err(AgentError::FollowerStopped);
                }
                wake.scope = self.take_plan();
            }
            ev = next_drift(&mut self.drift) => {
                if let drift::DriftSignal::Changed(p) = &ev {
                    wake.drifted = Some((p.clone(), Instant::now()));
                }
                // Let the writer finish: `cat > file` truncates, then writes. Repairing
                // in between would rename a new file over the one being written, and
                // for fstab or exports the writer's other lines would be lost.
                settle(&mut self.drift).await;
                wake.scope = Some(Scope::Light);
            }
            _ = wait_signal(&self.signal) => wake.scope = Some(Scope::Light),
            _ = self.unit_signal.notified(), if self.units.is_some() => {
                wake.scope = Some(Scope::Light);
            }
            _ = self.resync.tick() => wake.scope = Some(Scope::Full),
            _ = self.check.tick() => wake.scope = Some(Scope::Light),
            _ = sleep_until(self.next_wake) => {
                self.next_wake = None;
                wake.scope = Some(Scope::Light);
            }
        }
        Ok(Some(wake))
    }

    /// Merges the slices the follower just delivered; a full pass is due once they loaded.
    fn take_plan(&mut self) -> Option<Scope> {
        let slices = self.plan_rx.borrow_and_update().clone();
        if !slices.loaded {
            return None;
        }
        let merged = self.merger.merge(&slices.slices);
        if let Some(u) = &self.units {
            u.set_units(merged.services.iter().map(|s| s.name.clone()));
        }
        self.plan = Some(Arc::new(merged));
        Some(Scope::Full)
    }

    /// An earlier report write failed: try again now.
    async fn retry_report(&mut self) {
        if let Some(r) = self.report_dirty.take() {
            if let Err(e) = self.writer.write(&self.store, &r).await {
                tracing::warn!(error = %e, "cannot write the report");
                self.report_dirty = Some(r);
            }
        }
    }

    /// Runs one pass on a blocking thread; while it runs, its long steps' progress goes to
    /// the report.
    async fn pass(
        &mut self,
        scope: Scope,
        current: Arc<MergedPlan>,
    ) -> Result<Finished, AgentError> {
        let may_destroy = self.tasks.healthy.load(Ordering::Relaxed)
            && self.tasks.connected.load(Ordering::Relaxed);
        let Some((mut host, mut mem)) = self.worker.take() else {
            return Err(AgentError::HostLost);
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
            Finished {
                host,
                mem,
                out,
                expected,
            }
        });
        let joined = loop {
            tokio::select! {
                j = &mut job => break j,
                Some((id, percent)) = progress_rx.recv() => self.limiter.note(&id, percent),
                _ = sleep_until(self.limiter.next_due()) => {}
            }
            self.write_progress_if_due().await;
        };
        self.limiter.reset();
        let finished = joined?;
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        Ok(finished)
    }

    async fn write_progress_if_due(&mut self) {
        let now = Instant::now();
        if !self.limiter.due(now) {
            return;
        }
        let r = progress::apply(&self.last_report, self.limiter.latest());
        match self.writer.write(&self.store, &r).await {
            Ok(true) => {
                self.stats.report_writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            // The pass's own report follows; a lost progress line is harmless.
            Err(e) => tracing::warn!(error = %e, "cannot write progress"),
        }
        self.limiter.written(now);
    }

    /// Takes back the host, re-arms the drift watch and writes the pass's report.
    async fn report(&mut self, finished: Finished, drifted: Option<(PathBuf, Instant)>) {
        let Finished {
            host,
            mem,
            out,
            expected,
        } = finished;
        if let Some((path, at)) = drifted {
            if out.changes > 0 {
                tracing::info!(
                    path = %path.display(),
                    latency_ms = at.elapsed().as_secs_f64() * 1000.0,
                    "drift repaired"
                );
            }
        }
        if let Some(d) = self.drift.as_mut() {
            d.update(expected, Vec::new());
        }
        self.next_wake = out.next_wake;
        let applied = self
            .plan
            .as_ref()
            .map(|p| p.applied.clone())
            .unwrap_or_default();
        let digests = self
            .plan
            .as_ref()
            .map(|p| p.digests.clone())
            .unwrap_or_default();
        let mut r = report::build(
            &self.config.node,
            &applied,
            &digests,
            out.resources,
            mem.corrective,
            mem.intentional,
        );
        r.unmanaged = out.unmanaged;
        r.epoch = self
            .plan
            .as_ref()
            .map(|p| p.epoch.clone())
            .unwrap_or_else(|| self.last_report.epoch.clone());
        self.worker = Some((host, mem));
        self.last_report = r.clone();
        match self.writer.write(&self.store, &r).await {
            Ok(true) => {
                self.stats.report_writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the report; will retry");
                self.report_dirty = Some(r);
            }
        }
    }

    /// Stops the heartbeat (waiting for it to let its lease go) and the plan follower.
    pub(super) async fn stop(self) {
        let _ = self.tasks.stop_tx.send(true);
        self.tasks.follower.abort();
        let _ = self.tasks.heartbeat.await;
    }
}

impl Helpers {
    fn start(
        store: &Arc<dyn Store>,
        config: &AgentConfig,
        plan_tx: watch::Sender<plans::Slices>,
    ) -> Helpers {
        let (stop_tx, stop_rx) = watch::channel(false);
        let healthy = Arc::new(AtomicBool::new(true));
        let beat_value = serde_json::to_vec(&serde_json::json!({
            "node": config.node,
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .unwrap_or_default();
        let heartbeat = tokio::spawn(heartbeat::run(
            Arc::clone(store),
            config.keys.agent_lease(&config.node),
            beat_value,
            config.lease_ttl,
            Arc::clone(&healthy),
            stop_rx,
        ));
        let connected = Arc::new(AtomicBool::new(true));
        let follower = tokio::spawn(plans::follow(
            Arc::clone(store),
            config.keys.plans_of(&config.node),
            plan_tx,
            Arc::clone(&connected),
        ));
        Helpers {
            stop_tx,
            heartbeat,
            follower,
            healthy,
            connected,
        }
    }
}

/// The last report, retried every second until the store answers.
async fn read_last_report(store: &dyn Store, key: &str) -> Option<KeyValue> {
    loop {
        match store.get(key).await {
            Ok(kv) => return kv,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the last report; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn start_drift(watch_files: bool) -> Option<drift::Drift> {
    if !watch_files {
        return None;
    }
    match drift::Drift::new() {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "no inotify: drift is found by the resync only");
            None
        }
    }
}

async fn start_units(
    config: &AgentConfig,
    unit_signal: &Arc<Notify>,
) -> Option<unit_watch::UnitWatch> {
    let bus = config.systemd_bus.as_ref()?;
    match unit_watch::UnitWatch::start(bus, Arc::clone(unit_signal)).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "no systemd signals: services are polled only");
            None
        }
    }
}

/// An interval whose first tick is one period away, delayed (not bunched) after a long pass.
fn ticker(period: Duration) -> Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

async fn next_drift(drift: &mut Option<drift::Drift>) -> drift::DriftSignal {
    match drift {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}

/// How long a drifted file must stay quiet before the agent repairs it, and the longest it
/// waits for that.
const SETTLE_QUIET: Duration = Duration::from_millis(50);
const SETTLE_MAX: Duration = Duration::from_millis(500);

/// Wait until the drifted file's writer is done: its last event closed the file after
/// writing (or renamed a new one over it), or drift events stopped for `SETTLE_QUIET`; at
/// most `SETTLE_MAX`. A close ends the wait at once, so an edit is repaired within
/// milliseconds, while a writer still holding the file open keeps it waiting.
async fn settle(drift: &mut Option<drift::Drift>) {
    let Some(d) = drift.as_mut() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    while tokio::time::Instant::now() < deadline {
        if d.writer_done() {
            return;
        }
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
