//! A deduplicating work queue of keys, in the manner of client-go's workqueue.
//!
//! - A key that is already queued is not queued twice: a burst of changes to one object
//!   costs one reconcile, which then reads the latest state.
//! - A key handed to a worker is "running" and is never handed to a second worker at once.
//!   Adding it while it runs marks it dirty; it is queued again when the worker is done, so a
//!   change made during a reconcile is never lost and costs exactly one more run.
//! - Delayed adds (requeue-after, backoff) keep only the earliest pending deadline per key.
//! - A debounced add (a change seen on the watch) adapts to the key's rhythm: a key that has
//!   not run within the window runs at once (a lone change costs no wait), one that ran
//!   within it waits for the window's end after that run, so a burst (a cold start's reports,
//!   a fleet restarting, a pass's own writes echoing back) folds into one more run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<String>,
    queued: HashSet<String>,
    running: HashSet<String>,
    dirty: HashSet<String>,
    /// Running keys changed on the watch meanwhile (often by the run's own writes echoing
    /// back): run once more a window after this run ends, not at once.
    dirty_debounced: HashMap<String, Duration>,
    /// The earliest pending delayed add of each key.
    delayed: HashMap<String, Instant>,
    /// When each running key started.
    started: HashMap<String, Instant>,
    /// When each key's last run ended and how long it took (for debounced adds); pruned of
    /// ends older than the window once it grows, so keys of deleted objects do not pile up.
    finished: HashMap<String, Finished>,
    closed: bool,
}

/// A key's last run.
#[derive(Debug, Clone, Copy)]
struct Finished {
    at: Instant,
    took: Duration,
}

impl Finished {
    /// The quiet time a debounced change waits after this run: the window, or the run's
    /// own length when that is longer. A 10,000-node pass takes a second; rerun 15 ms
    /// after each, a controller fed a report every few milliseconds would do nothing but
    /// whole passes. Waiting as long as the pass took folds the reports that arrive
    /// meanwhile into the next one and keeps it busy at most half the time.
    fn quiet(&self, window: Duration) -> Duration {
        window.max(self.took)
    }
}

/// How many finish times are kept before the old ones are pruned.
const FINISHED_PRUNE_AT: usize = 4096;

/// The queue of one controller. Shared by its dispatcher and workers through an `Arc`.
#[derive(Debug)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    /// Cancels the timers of delayed adds when the queue closes.
    timers: CancellationToken,
}

impl Default for WorkQueue {
    fn default() -> Self {
        WorkQueue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            timers: CancellationToken::new(),
        }
    }
}

impl WorkQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot panic half-way through an update.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `key` now (unless it is queued already, or running: then once more after).
    pub fn add(&self, key: &str) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        if inner.running.contains(key) {
            inner.dirty.insert(key.to_owned());
            return;
        }
        if inner.queued.insert(key.to_owned()) {
            inner.order.push_back(key.to_owned());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Queue `key` after `delay`. An earlier pending deadline for the key wins.
    pub fn add_after(self: &Arc<Self>, key: &str, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let due = Instant::now() + delay;
        {
            let mut inner = self.lock();
            if inner.closed {
                return;
            }
            match inner.delayed.get(key) {
                Some(pending) if *pending <= due => return,
                _ => {
                    inner.delayed.insert(key.to_owned(), due);
                }
            }
        }
        let queue = Arc::clone(self);
        let key = key.to_owned();
        let cancelled = self.timers.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancelled.cancelled() => {}
                _ = tokio::time::sleep_until(due) => {
                    let fire = {
                        let mut inner = queue.lock();
                        // A later timer for the key was superseded by this earlier one (or
                        // the other way round): only the deadline on record fires.
                        if inner.delayed.get(&key) == Some(&due) {
                            inner.delayed.remove(&key);
                            true
                        } else {
                            false
                        }
                    };
                    if fire {
                        queue.add(&key);
                    }
                }
            }
        });
    }

    /// Queue `key` for a change seen on the watch: at once if it has not run within `window`,
    /// else when `window` has passed since its last run ended (folding whatever else comes
    /// meanwhile into that one run). A running key is marked to run once more, as by `add`.
    /// A run longer than `window` stretches it to the run's length (see `Finished::quiet`).
    pub fn add_debounced(self: &Arc<Self>, key: &str, window: Duration) {
        let wait = {
            let mut inner = self.lock();
            if inner.closed {
                return;
            }
            if inner.running.contains(key) {
                let window = inner
                    .dirty_debounced
                    .get(key)
                    .map_or(window, |w| (*w).min(window));
                inner.dirty_debounced.insert(key.to_owned(), window);
                return;
            }
            let now = Instant::now();
            if inner.finished.len() > FINISHED_PRUNE_AT {
                inner.finished.retain(|_, f| now < f.at + f.quiet(window));
            }
            match inner.finished.get(key) {
                Some(f) if now < f.at + f.quiet(window) => f.at + f.quiet(window) - now,
                _ => Duration::ZERO,
            }
        };
        self.add_after(key, wait);
    }

    /// The next key to work on, marked running; `None` once the queue is closed.
    pub async fn next(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before looking, so an add between the look and the wait is not missed.
            notified.as_mut().enable();
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                if let Some(key) = inner.order.pop_front() {
                    inner.queued.remove(&key);
                    inner.running.insert(key.clone());
                    inner.started.insert(key.clone(), Instant::now());
                    let more = !inner.order.is_empty();
                    drop(inner);
                    if more {
                        // Pass the baton: another idle worker may take the next key.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// The worker finished `key`; if it changed meanwhile, it is queued once more: at once
    /// for a plain add, a window from now for a change seen on the watch (which then folds
    /// in whatever else arrives, such as the agent's report on the slice just written).
    pub fn done(self: &Arc<Self>, key: &str) {
        let mut inner = self.lock();
        inner.running.remove(key);
        let at = Instant::now();
        let took = inner
            .started
            .remove(key)
            .map_or(Duration::ZERO, |start| at - start);
        inner.finished.insert(key.to_owned(), Finished { at, took });
        let debounced = inner
            .dirty_debounced
            .remove(key)
            .map(|window| window.max(took));
        if inner.dirty.remove(key) && !inner.closed && inner.queued.insert(key.to_owned()) {
            inner.order.push_back(key.to_owned());
            drop(inner);
            self.notify.notify_one();
        } else if let Some(window) = debounced {
            drop(inner);
            self.add_after(key, window);
        }
    }

    /// Stop handing out keys: `next` returns `None` from now on, timers are dropped.
    pub fn close(&self) {
        self.lock().closed = true;
        self.timers.cancel();
        self.notify.notify_waiters();
    }

    /// Keys waiting to be handed out (not those running or waiting for a timer).
    pub fn depth(&self) -> usize {
        self.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_reruns_a_key_changed_while_running() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.depth(), 2);
        assert_eq!(q.next().await.as_deref(), Some("a"));
        q.add("a"); // changed while running
        q.add("a");
        assert_eq!(q.depth(), 1, "a is not queued while it runs");
        assert_eq!(q.next().await.as_deref(), Some("b"));
        q.done("b");
        q.done("a");
        assert_eq!(q.next().await.as_deref(), Some("a"), "runs once more");
        q.done("a");
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn earliest_delay_wins_and_close_ends_next() {
        let q = WorkQueue::new();
        q.add_after("k", Duration::from_millis(400));
        q.add_after("k", Duration::from_millis(40));
        q.add_after("k", Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(q.depth(), 1);
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.done("k");
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(q.depth(), 0, "the later timers were superseded");
        q.close();
        assert_eq!(q.next().await, None);
    }

    /// A lone change is handed out at once; changes right after a run fold into one run
    /// at the window's end; after a quiet window a change is at once again. (Real time with
    /// a wide window: the checks before its end take microseconds.)
    #[tokio::test]
    async fn a_lone_change_runs_at_once_and_a_burst_folds_after_the_run() {
        let window = Duration::from_millis(300);
        let q = WorkQueue::new();
        q.add_debounced("k", window);
        assert_eq!(q.depth(), 1, "never ran: handed out at once");
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.done("k");
        for _ in 0..5 {
            q.add_debounced("k", window);
        }
        assert_eq!(q.depth(), 0, "within the window of the last run: waiting");
        tokio::time::sleep(window + Duration::from_millis(100)).await;
        assert_eq!(q.depth(), 1, "folded into one run at the window's end");
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.done("k");
        tokio::time::sleep(window + Duration::from_millis(50)).await;
        q.add_debounced("k", window);
        assert_eq!(
            q.depth(),
            1,
            "quiet for longer than the window: at once again"
        );
    }

    /// A change seen while the key runs (its own write echoing back) runs it once more a
    /// window after the run, not at once; a plain add while it runs still reruns at once.
    #[tokio::test]
    async fn a_change_during_a_run_waits_a_window_after_it() {
        let window = Duration::from_millis(300);
        let q = WorkQueue::new();
        q.add("k");
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.add_debounced("k", window);
        q.done("k");
        assert_eq!(q.depth(), 0, "not at once");
        tokio::time::sleep(window + Duration::from_millis(100)).await;
        assert_eq!(q.depth(), 1, "once more after the window");
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.add_debounced("k", window);
        q.add("k");
        q.done("k");
        assert_eq!(q.depth(), 1, "a plain add while running reruns at once");
    }

    /// A run longer than the window stretches it: the change that follows a 400 ms run
    /// waits 400 ms, not the 50 ms window, and one seen during it likewise.
    #[tokio::test]
    async fn a_long_run_stretches_the_window_to_its_length() {
        let window = Duration::from_millis(50);
        let took = Duration::from_millis(400);
        let q = WorkQueue::new();
        q.add("k");
        assert_eq!(q.next().await.as_deref(), Some("k"));
        tokio::time::sleep(took).await;
        q.done("k");
        q.add_debounced("k", window);
        tokio::time::sleep(window + Duration::from_millis(100)).await;
        assert_eq!(
            q.depth(),
            0,
            "the window has passed, the run's length has not"
        );
        tokio::time::sleep(took).await;
        assert_eq!(q.depth(), 1, "handed out once the run's length has passed");
        assert_eq!(q.next().await.as_deref(), Some("k"));
        tokio::time::sleep(took).await;
        q.add_debounced("k", window);
        q.done("k");
        tokio::time::sleep(window + Duration::from_millis(100)).await;
        assert_eq!(
            q.depth(),
            0,
            "a change during a long run waits its length too"
        );
        tokio::time::sleep(took).await;
        assert_eq!(q.depth(), 1);
    }
}
