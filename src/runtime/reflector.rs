//! The reflector: one list-then-watch of the whole cluster prefix feeding an in-memory cache.
//!
//! It lists at a revision, then watches from the revision after, applying each change to the
//! cache and announcing the changed keys. When the watch's start revision has been compacted
//! it lists again and announces the difference; when the store goes away it retries with
//! backoff and resumes the watch where it stopped, so no change is missed or seen twice.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use omtd_crds::Kind;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::apply_hold::ApplyHold;
use super::backoff::BackoffConfig;
use super::metrics::{Metrics, WatchRestartReason};
use super::snapshot::Snapshot;
use crate::resources::staged::{overlay, Held};
use crate::resources::Keys;
use crate::store::{EventKind, Revision, Store, StoreError, WatchEvent, WatchStream};

/// Batches of changed keys kept for slow subscribers; one that falls further behind is told
/// it lagged and must look at everything again.
const CHANGES_CAPACITY: usize = 1024;

/// Events taken off the watch at once before the cache is updated and subscribers woken.
const MAX_BATCH: usize = 1024;

/// Delays between attempts while the store is unreachable.
const RETRY: BackoffConfig = BackoffConfig {
    min: Duration::from_millis(200),
    max: Duration::from_secs(30),
};

/// Whether the cache can be trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// A first list has completed.
    pub synced: bool,
    /// The watch is running (the cache follows the store now).
    pub watching: bool,
}

/// The shared cache a reflector fills.
#[derive(Debug)]
pub struct Cache {
    keys: Keys,
    state: Mutex<Arc<Snapshot>>,
    revision: watch::Sender<Revision>,
    health: watch::Sender<Health>,
    changes: broadcast::Sender<Arc<Vec<String>>>,
}

impl Cache {
    fn new(keys: Keys) -> Self {
        Cache {
            keys,
            state: Mutex::new(Arc::new(Snapshot::default())),
            revision: watch::Sender::new(0),
            health: watch::Sender::new(Health::default()),
            changes: broadcast::Sender::new(CHANGES_CAPACITY),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The cache as it is now: one consistent state at one revision.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changed keys, batch by batch, from now on. `Lagged` means: look at everything.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<String>>> {
        self.changes.subscribe()
    }

    pub fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// Waits until the cache has caught up with `revision` (e.g. the runtime's own write),
    /// at most `timeout`. Returns whether it did.
    pub async fn wait_for_revision(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Replaces the state with a fresh list and announces what differs from before.
    fn replace(&self, kvs: Vec<crate::store::KeyValue>, revision: Revision) {
        let changed = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let next = Snapshot::from_list(&self.keys, kvs, revision, &state);
            let mut changed: BTreeSet<String> = BTreeSet::new();
            for (key, kv) in &next.raw {
                if state.raw.get(key).map(|old| old.mod_revision) != Some(kv.mod_revision) {
                    changed.insert(key.clone());
                }
            }
            for key in state.raw.keys() {
                if !next.raw.contains_key(key) {
                    changed.insert(key.clone());
                }
            }
            *state = Arc::new(next);
            changed.into_iter().collect::<Vec<_>>()
        };
        self.revision.send_replace(revision);
        self.announce(changed);
    }

    /// Applies watched changes in order and announces their keys; the cache then follows
    /// the store up to `last` (changes held back for a staged apply come later).
    fn apply(&self, events: Vec<WatchEvent>, last: Revision) {
        if events.is_empty() {
            self.revision.send_replace(last);
            return;
        }
        let mut changed = BTreeSet::new();
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let snap = Arc::make_mut(&mut state);
            for ev in events {
                let revision = ev.revision();
                let key = ev.kv.key.clone();
                let kv = match ev.kind {
                    EventKind::Put => Some(ev.kv),
                    EventKind::Delete => None,
                };
                snap.apply(&self.keys, &key, kv, revision);
                changed.insert(key);
            }
        }
        self.revision.send_replace(last);
        self.announce(changed.into_iter().collect());
    }

    fn announce(&self, changed: Vec<String>) {
        if !changed.is_empty() {
            // No subscriber (no leader term running) is fine: nobody needs to be woken.
            let _ = self.changes.send(Arc::new(changed));
        }
    }

    fn set_health(&self, synced: bool, watching: bool) {
        self.health.send_if_modified(|h| {
            let next = Health { synced, watching };
            let modified = *h != next;
            *h = next;
            modified
        });
    }
}

/// Starts a reflector over the cluster prefix; it runs until `shutdown` is cancelled.
pub fn spawn(
    store: Arc<dyn Store>,
    keys: Keys,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> (Arc<Cache>, tokio::task::JoinHandle<()>) {
    let cache = Arc::new(Cache::new(keys));
    let reflector = Reflector {
        store,
        cache: Arc::clone(&cache),
        metrics,
    };
    let task = tokio::spawn(async move { reflector.run(shutdown).await });
    (cache, task)
}

struct Reflector {
    store: Arc<dyn Store>,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
}

/// How a watch ended.
enum Ended {
    Shutdown,
    Relist,
    Retry(StoreError),
}

impl Reflector {
    /// Updates the node gauges from the cache: O(objects) per batch, cheap next to the
    /// batch's own decoding.
    fn count_nodes(&self) {
        let snap = self.cache.snapshot();
        let (mut total, mut without_agent) = (0, 0);
        for node in snap.of_kind(Kind::Node) {
            total += 1;
            if !snap.agents.contains_key(node.object.name()) {
                without_agent += 1;
            }
        }
        self.metrics.set_nodes(total, without_agent);
    }

    async fn run(self, shutdown: CancellationToken) {
        let prefix = self.cache.keys.prefix().to_owned();
        let mut retry = RETRY.sequence();
        let mut synced = false;
        let mut need_list = true;
        let mut revision: Revision = 0;
        let mut hold = ApplyHold::default();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if need_list {
                match self.list(&prefix).await {
                    Ok((list, held)) => {
                        revision = list.revision;
                        hold = ApplyHold::listed(held);
                        self.cache.replace(list.kvs, list.revision);
                        self.count_nodes();
                        need_list = false;
                        synced = true;
                        tracing::debug!(%prefix, revision, "listed");
                    }
                    Err(e) => {
                        self.cache.set_health(synced, false);
                        let delay = retry.next_delay();
                        tracing::warn!(%prefix, error = %e, retry_in = ?delay, "cannot list the store; retrying");
                        if sleep_or_shutdown(delay, &shutdown).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let stream = match self.store.watch(&prefix, revision + 1).await {
                Ok(stream) => stream,
                Err(StoreError::Compacted { .. }) => {
                    self.metrics.watch_restarted(WatchRestartReason::Compacted);
                    tracing::info!(%prefix, revision, "watch start revision compacted; relisting");
                    need_list = true;
                    continue;
                }
                Err(e) => {
                    self.cache.set_health(synced, false);
                    self.metrics.watch_restarted(WatchRestartReason::Error);
                    let delay = retry.next_delay();
                    tracing::warn!(%prefix, error = %e, retry_in = ?delay, "cannot watch the store; retrying");
                    if sleep_or_shutdown(delay, &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            self.cache.set_health(synced, true);
            retry = RETRY.sequence();
            match self
                .follow(stream, &mut revision, &mut hold, &shutdown)
                .await
            {
                Ended::Shutdown => return,
                Ended::Relist => {
                    self.metrics.watch_restarted(WatchRestartReason::Compacted);
                    tracing::info!(%prefix, revision, "watch fell behind compaction; relisting");
                    need_list = true;
                }
                Ended::Retry(e) => {
                    self.cache.set_health(synced, false);
                    self.metrics.watch_restarted(WatchRestartReason::Error);
                    let delay = retry.next_delay();
                    tracing::warn!(%prefix, error = %e, retry_in = ?delay, "watch ended; watching again");
                    if sleep_or_shutdown(delay, &shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// The cluster as the controllers must see it: with a staged apply under way, the keys
    /// it has written so far as they were before it (and the hold to keep them so).
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<(crate::store::ListResult, Option<Held>), StoreError> {
        let mut list = self.store.list(prefix, None).await?;
        let keys = &self.cache.keys;
        let held = Held::from_kvs(keys, &list.kvs);
        if let Some(held) = &held {
            // Compacted history fails the list: retried like any failed list, holding the
            // cache as it was meanwhile (an interrupted apply waits for its rollback).
            let base = self.store.list(prefix, Some(held.lock.base)).await?;
            list.kvs = overlay(keys, list.kvs, base.kvs, held);
            tracing::info!(by = %held.lock.lock.by, keys = held.keys.len(), "a staged apply holds the lock: its writes are held until it is released");
        }
        Ok((list, held))
    }

    /// Applies a watch's events until it ends; `revision` follows the last applied one.
    async fn follow(
        &self,
        mut stream: WatchStream,
        revision: &mut Revision,
        hold: &mut ApplyHold,
        shutdown: &CancellationToken,
    ) -> Ended {
        // The node gauges walk every node: counted at most once a second, not once per
        // batch (at a 10,000-agent cold start, each heartbeat is a batch of its own).
        let mut gauges = GaugeClock::default();
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                item = stream.next() => item,
                _ = gauges.due() => {
                    self.count_nodes();
                    gauges.counted();
                    continue;
                }
            };
            let mut batch = Vec::new();
            let mut end = None;
            match classify(first) {
                Ok(ev) => {
                    batch.push(ev);
                    // Take what else is ready without waiting: one cache update and one
                    // wake-up per burst rather than per event.
                    while batch.len() < MAX_BATCH {
                        let Some(item) = stream.next().now_or_never() else {
                            break;
                        };
                        match classify(item) {
                            Ok(ev) => batch.push(ev),
                            Err(e) => {
                                end = Some(e);
                                break;
                            }
                        }
                    }
                }
                Err(e) => end = Some(e),
            }
            if let Some(last) = batch.last() {
                *revision = last.revision();
            }
            let was_held = hold.active();
            let batch = hold.pass(&self.cache.keys, batch);
            if was_held != hold.active() {
                tracing::info!(
                    held = hold.active(),
                    revision = *revision,
                    "staged apply: changes {}",
                    if hold.active() {
                        "held until its release"
                    } else {
                        "released"
                    }
                );
            }
            self.cache.apply(batch, *revision);
            if gauges.may_count_now() {
                self.count_nodes();
                gauges.counted();
            }
            if let Some(end) = end {
                self.count_nodes();
                return end;
            }
        }
    }
}

/// When the node gauges were last counted, and whether a batch came since.
#[derive(Default)]
struct GaugeClock {
    last: Option<Instant>,
    pending: bool,
}

impl GaugeClock {
    const EVERY: Duration = Duration::from_secs(1);

    /// Whether a batch just applied may be counted at once; if not, it is counted when
    /// [`GaugeClock::due`] fires.
    fn may_count_now(&mut self) -> bool {
        let now = self.last.is_none_or(|t| t.elapsed() >= Self::EVERY);
        self.pending = !now;
        now
    }

    fn counted(&mut self) {
        self.last = Some(Instant::now());
        self.pending = false;
    }

    /// Resolves when a batch is waiting to be counted and a second has passed; never
    /// otherwise.
    async fn due(&self) {
        match (self.pending, self.last) {
            (true, Some(t)) => tokio::time::sleep_until((t + Self::EVERY).into()).await,
            _ => std::future::pending().await,
        }
    }
}

/// An event to apply, or how the watch ended.
fn classify(item: Option<Result<WatchEvent, StoreError>>) -> Result<WatchEvent, Ended> {
    match item {
        Some(Ok(ev)) => Ok(ev),
        Some(Err(StoreError::Compacted { .. })) => Err(Ended::Relist),
        Some(Err(e)) => Err(Ended::Retry(e)),
        None => Err(Ended::Retry(StoreError::Unavailable(
            "watch stream ended".into(),
        ))),
    }
}

/// Sleeps `delay`; returns true when shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
