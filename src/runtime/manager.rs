//! The controller manager: reflector, election, and while this process leads, one term of
//! dispatch (changes → keys → queues) and workers (queue → reconcile → fenced write).
//!
//! A term starts when this process becomes the leader and the cache is synced: every key of
//! every controller is queued once (a full resync), then only changes wake keys. A term ends
//! at once when leadership is lost (in-flight reconciles are abandoned: they are pure, and
//! their writes would be refused anyway), or on shutdown: no new work, in-flight reconciles
//! get until the deadline, then the lease is revoked so a standby takes over immediately.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backoff::Backoffs;
pub use super::config::RuntimeConfig;
use super::controller::{Controller, Outcome};
use super::error::{ReconcileError, WriteError};
use super::events::EventRecorder;
use super::leader::{ElectionConfig, Elector, Leadership};
use super::metered::MeteredStore;
use super::metrics::{Metrics, ReconcileResult};
use super::queue::WorkQueue;
use super::reflector::{self, Cache, Health};
use super::snapshot::Changed;
use super::writer::Writer;
use crate::resources::epoch;
use crate::resources::Keys;
use crate::store::{Revision, Store};

/// How long a worker waits for its own write to reach the cache before taking the next key,
/// so the next reconcile of anything reads what this one wrote.
const READ_YOUR_WRITES: Duration = Duration::from_secs(2);

/// Runs controllers against one cluster's keys.
pub struct Manager {
    store: Arc<dyn Store>,
    keys: Keys,
    controllers: Vec<Arc<dyn Controller>>,
    metrics: Arc<Metrics>,
    config: RuntimeConfig,
    external: broadcast::Sender<String>,
}

/// Announces changes from outside the store (probe results) to the controllers: each
/// controller's `keys_for(Changed::External(name))` decides what to reconcile. Cheap to
/// clone; announcing while no term runs (not the leader) is a no-op.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: broadcast::Sender<String>,
}

impl Notifier {
    pub fn notify(&self, what: &str) {
        let _ = self.tx.send(what.to_owned());
    }
}

/// External changes kept for a term's dispatch that falls behind (then it resyncs).
const EXTERNAL_CAPACITY: usize = 64;

/// A started manager.
pub struct Running {
    cache: Arc<Cache>,
    leadership: watch::Receiver<Leadership>,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the cache follows the store (what `/readyz` answers).
    pub fn health(&self) -> Health {
        *self.cache.health().borrow()
    }

    /// Waits until the manager has stopped (after the shutdown token was cancelled).
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the controller manager task failed");
        }
    }
}

impl Manager {
    /// `store` is wrapped so that every call is measured in `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        controllers: Vec<Arc<dyn Controller>>,
        metrics: Arc<Metrics>,
        config: RuntimeConfig,
    ) -> Self {
        for c in &controllers {
            metrics.register_controller(c.name());
        }
        Manager {
            store: MeteredStore::wrap(store, Arc::clone(&metrics)),
            keys,
            controllers,
            metrics,
            config,
            external: broadcast::Sender::new(EXTERNAL_CAPACITY),
        }
    }

    /// A handle to wake controllers on changes outside the store.
    pub fn notifier(&self) -> Notifier {
        Notifier {
            tx: self.external.clone(),
        }
    }

    /// Starts the reflector and the election; runs until `shutdown` is cancelled, then
    /// finishes in-flight work, resigns and stops.
    pub fn start(self, shutdown: CancellationToken) -> Running {
        let reflector_stop = CancellationToken::new();
        let (cache, reflector_task) = reflector::spawn(
            Arc::clone(&self.store),
            self.keys.clone(),
            Arc::clone(&self.metrics),
            reflector_stop.clone(),
        );
        let elector = Elector::spawn(
            Arc::clone(&self.store),
            ElectionConfig {
                key: self.keys.leader(),
                identity: self.config.identity.clone(),
                ttl: self.config.lease_ttl,
                renew_every: self.config.renew_every,
            },
            Arc::clone(&self.metrics),
        );
        let leadership = elector.watch();
        let metrics = Arc::clone(&self.metrics);
        let events = Arc::new(EventRecorder::new(
            Arc::clone(&self.store),
            self.keys.clone(),
            self.config.event_ttl,
        ));
        let shared = Arc::new(Shared {
            store: Arc::clone(&self.store),
            keys: self.keys,
            controllers: self.controllers,
            metrics: Arc::clone(&self.metrics),
            config: self.config,
            cache: Arc::clone(&cache),
            events,
            deposed: elector.deposed_sender(),
            external: self.external,
        });
        let task = tokio::spawn(async move {
            shared.lead_while_elected(elector.watch(), &shutdown).await;
            elector.resign().await;
            reflector_stop.cancel();
            let _ = reflector_task.await;
        });
        Running {
            cache,
            leadership,
            metrics,
            task,
        }
    }
}

struct Shared {
    store: Arc<dyn Store>,
    keys: Keys,
    controllers: Vec<Arc<dyn Controller>>,
    metrics: Arc<Metrics>,
    config: RuntimeConfig,
    cache: Arc<Cache>,
    events: Arc<EventRecorder>,
    deposed: mpsc::UnboundedSender<Revision>,
    external: broadcast::Sender<String>,
}

/// One controller's queue and backoffs within a term.
struct Lane {
    controller: Arc<dyn Controller>,
    queue: Arc<WorkQueue>,
    backoffs: Backoffs,
}

impl Shared {
    async fn lead_while_elected(
        self: &Arc<Self>,
        mut role: watch::Receiver<Leadership>,
        shutdown: &CancellationToken,
    ) {
        let mut health = self.cache.health();
        loop {
            let token = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = role.wait_for(|l| l.token().is_some()) => match r {
                    Ok(l) => l.token().unwrap_or_default(),
                    Err(_) => return,
                },
            };
            // Reconciling from an empty cache would see no objects at all.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = health.wait_for(|h| h.synced) => {}
            }
            let term = CancellationToken::new();
            let watch_role = {
                let term = term.clone();
                let mut role = role.clone();
                async move {
                    let _ = role.wait_for(|l| l.token() != Some(token)).await;
                    term.cancel();
                }
            };
            tokio::select! {
                _ = self.run_term(token, &term, shutdown) => {}
                _ = watch_role => {
                    // The term's tasks see `term` cancelled and stop at once.
                }
            }
            term.cancel();
            for c in &self.controllers {
                self.metrics.set_queue_depth(c.name(), 0);
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Runs one leadership term until `term` is cancelled (lost) or `shutdown` (drain).
    async fn run_term(
        self: &Arc<Self>,
        token: Revision,
        term: &CancellationToken,
        shutdown: &CancellationToken,
    ) {
        tracing::info!(
            token,
            controllers = self.controllers.len(),
            "reconciling as the leader"
        );
        let writer = Arc::new(
            Writer::new(
                Arc::clone(&self.store),
                self.keys.clone(),
                token,
                Arc::clone(&self.metrics),
                Arc::clone(&self.events),
            )
            .with_planners(
                self.controllers
                    .iter()
                    .filter(|c| c.plans_nodes())
                    .map(|c| c.name()),
            ),
        );
        let lanes: Arc<HashMap<&'static str, Lane>> = Arc::new(
            self.controllers
                .iter()
                .map(|c| {
                    (
                        c.name(),
                        Lane {
                            controller: Arc::clone(c),
                            queue: WorkQueue::new(),
                            backoffs: Backoffs::new(self.config.backoff),
                        },
                    )
                })
                .collect(),
        );
        // The cluster epoch exists before the first plan is written under it.
        let known_epoch = match epoch::ensure(self.store.as_ref(), &self.keys, writer.fence()).await
        {
            Ok(e) => {
                tracing::info!(epoch = e.as_deref().unwrap_or(""), "cluster epoch");
                e
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or create the cluster epoch");
                None
            }
        };
        // Subscribe before the resync so that no change falls between the two.
        let changes = self.cache.subscribe();
        let external = self.external.subscribe();
        self.resync(&lanes);

        let mut tasks = JoinSet::new();
        {
            let me = Arc::clone(self);
            let lanes = Arc::clone(&lanes);
            let term = term.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                me.dispatch(changes, external, known_epoch, &lanes, &term, &shutdown)
                    .await
            });
        }
        let names: Vec<&'static str> = lanes.keys().copied().collect();
        for name in names {
            for _ in 0..self.config.workers.max(1) {
                let me = Arc::clone(self);
                let lanes = Arc::clone(&lanes);
                let writer = Arc::clone(&writer);
                let term = term.clone();
                tasks.spawn(async move { me.work(name, &lanes, &writer, &term).await });
            }
        }

        tokio::select! {
            _ = term.cancelled() => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return;
            }
            _ = shutdown.cancelled() => {}
        }
        // Draining: queues hand out nothing more; running reconciles finish or are abandoned.
        for lane in lanes.values() {
            lane.queue.close();
        }
        let drained = tokio::time::timeout(self.config.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(timeout = ?self.config.shutdown_timeout, "in-flight reconciles did not finish in time; abandoning them");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    fn resync(&self, lanes: &HashMap<&'static str, Lane>) {
        let snapshot = self.cache.snapshot();
        for lane in lanes.values() {
            for key in lane.controller.all_keys(&snapshot) {
                lane.queue.add(&key);
            }
            self.metrics
                .set_queue_depth(lane.controller.name(), lane.queue.depth());
        }
    }

    /// Turns changed store keys into work keys.
    async fn dispatch(
        &self,
        mut changes: broadcast::Receiver<Arc<Vec<String>>>,
        mut external: broadcast::Receiver<String>,
        mut known_epoch: Option<String>,
        lanes: &HashMap<&'static str, Lane>,
        term: &CancellationToken,
        shutdown: &CancellationToken,
    ) {
        loop {
            let batch = tokio::select! {
                _ = term.cancelled() => return,
                _ = shutdown.cancelled() => return,
                b = changes.recv() => b,
                e = external.recv() => {
                    match e {
                        Ok(what) => self.wake_external(&what, lanes),
                        Err(broadcast::error::RecvError::Lagged(_)) => self.resync(lanes),
                        // The manager holds the sender for as long as terms run.
                        Err(broadcast::error::RecvError::Closed) => {}
                    }
                    continue;
                }
            };
            match batch {
                Ok(keys) => {
                    let snapshot = self.cache.snapshot();
                    // A new cluster epoch (`omtd epoch renew` after a restore): every plan
                    // is written again under it. (Not the one this term started with or
                    // made itself: that would cost every key an extra reconcile.)
                    if keys.iter().any(|k| *k == self.keys.epoch()) {
                        let now = snapshot
                            .stored(&self.keys.epoch())
                            .0
                            .and_then(|b| std::str::from_utf8(b).ok())
                            .map(str::to_owned);
                        if now != known_epoch {
                            known_epoch = now;
                            self.resync(lanes);
                        }
                    }
                    let changed: Vec<Changed> = keys
                        .iter()
                        .filter_map(|key| Changed::parse(&self.keys, key))
                        .collect();
                    for lane in lanes.values() {
                        for work in lane.controller.keys_for_batch(&changed, &snapshot) {
                            lane.queue.add_debounced(&work, self.config.debounce);
                        }
                    }
                    for lane in lanes.values() {
                        self.metrics
                            .set_queue_depth(lane.controller.name(), lane.queue.depth());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the change feed; resyncing every key");
                    self.resync(lanes);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Queues the keys an outside change (a probe result) wakes.
    fn wake_external(&self, what: &str, lanes: &HashMap<&'static str, Lane>) {
        let snapshot = self.cache.snapshot();
        let changed = Changed::External(what.to_owned());
        for lane in lanes.values() {
            for work in lane.controller.keys_for(&changed, &snapshot) {
                lane.queue.add_debounced(&work, self.config.debounce);
            }
            self.metrics
                .set_queue_depth(lane.controller.name(), lane.queue.depth());
        }
    }

    /// One worker of one controller.
    async fn work(
        &self,
        name: &'static str,
        lanes: &HashMap<&'static str, Lane>,
        writer: &Writer,
        term: &CancellationToken,
    ) {
        let Some(lane) = lanes.get(name) else {
            return;
        };
        while let Some(key) = lane.queue.next().await {
            self.metrics.set_queue_depth(name, lane.queue.depth());
            let span = tracing::info_span!("reconcile", controller = name, key = %key, token = writer.token());
            self.reconcile_one(lane, lanes, &key, writer, term)
                .instrument(span)
                .await;
            lane.queue.done(&key);
            self.metrics.set_queue_depth(name, lane.queue.depth());
        }
    }

    async fn reconcile_one(
        &self,
        lane: &Lane,
        lanes: &HashMap<&'static str, Lane>,
        key: &str,
        writer: &Writer,
        term: &CancellationToken,
    ) {
        let start = Instant::now();
        match self.reconcile_and_write(lane, key, writer, term).await {
            Ok(Some((outcome, revision))) => {
                self.reconciled(lane, lanes, key, &outcome, revision, start)
                    .await
            }
            // The term ended between the reconcile and its write: nothing to count.
            Ok(None) => {}
            Err(e) => self.failed(lane, key, &e, start),
        }
    }

    /// Runs the reconcile and writes its outcome; `None` when the term ended in between.
    async fn reconcile_and_write(
        &self,
        lane: &Lane,
        key: &str,
        writer: &Writer,
        term: &CancellationToken,
    ) -> Result<Option<(Outcome, Option<Revision>)>, ReconcileError> {
        let name = lane.controller.name();
        let snapshot = self.cache.snapshot();
        let now = SystemTime::now();
        // A cluster-wide controller's pass is milliseconds of CPU at a thousand nodes: it
        // runs on the blocking pool so it never holds up the async workers that carry the
        // watch, the writes and (in one process) the agents.
        let pass = {
            let controller = Arc::clone(&lane.controller);
            let snapshot = Arc::clone(&snapshot);
            let key = key.to_owned();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| controller.reconcile(&key, &snapshot, now))
            })
            .await
        };
        let outcome = pass.map_err(ReconcileError::Panicked)??;
        if term.is_cancelled() {
            return Ok(None);
        }
        // Shared statuses merge into the newest cached state, not the one reconciled on:
        // another controller's write since then is kept, not a conflict.
        let latest = self.cache.snapshot();
        let revision = writer
            .write_merged(name, &snapshot, &latest, &outcome, now)
            .await?;
        Ok(Some((outcome, revision)))
    }

    /// A reconcile whose outcome is written: read our own write, then wake and requeue
    /// what it asks for.
    async fn reconciled(
        &self,
        lane: &Lane,
        lanes: &HashMap<&'static str, Lane>,
        key: &str,
        outcome: &Outcome,
        revision: Option<Revision>,
        start: Instant,
    ) {
        let name = lane.controller.name();
        lane.backoffs.reset(key);
        self.metrics
            .reconciled(name, ReconcileResult::Ok, start.elapsed());
        tracing::debug!(wrote = revision.is_some(), "reconciled");
        if let Some(revision) = revision {
            if !self
                .cache
                .wait_for_revision(revision, READ_YOUR_WRITES)
                .await
            {
                tracing::debug!(revision, "own write not seen by the cache yet");
            }
        }
        for wake in &outcome.wake {
            if let Some(target) = lanes.get(wake.controller.as_str()) {
                target.queue.add(&wake.key);
            }
        }
        if let Some(after) = outcome.requeue_after {
            lane.queue.add_after(key, after);
        }
    }

    /// Counts a failed reconcile under its category and decides when it runs again.
    fn failed(&self, lane: &Lane, key: &str, error: &ReconcileError, start: Instant) {
        let name = lane.controller.name();
        match error {
            ReconcileError::Write(WriteError::Fenced { token }) => {
                self.metrics
                    .reconciled(name, error.category(), start.elapsed());
                tracing::warn!(token, "write refused: this process no longer leads");
                let _ = self.deposed.send(*token);
            }
            ReconcileError::Write(WriteError::Conflict) => {
                // Not a failure: another writer (a controller sharing a status) got there
                // first. Run again on the new state soon, without growing the backoff.
                self.metrics
                    .reconciled(name, error.category(), start.elapsed());
                tracing::debug!("a key changed under this reconcile; running it again");
                lane.queue.add_after(key, self.config.debounce);
            }
            _ => self.retry(lane, key, error, start),
        }
    }

    fn retry(&self, lane: &Lane, key: &str, error: &ReconcileError, start: Instant) {
        let name = lane.controller.name();
        self.metrics
            .reconciled(name, error.category(), start.elapsed());
        self.metrics.retried(name);
        let (delay, failures) = lane.backoffs.next_delay(key);
        tracing::warn!(error = %error, failures, retry_in = ?delay, "reconcile failed; will retry");
        lane.queue.add_after(key, delay);
    }
}
