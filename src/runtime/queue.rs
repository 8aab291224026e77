//! A deduplicating work queue of keys, in the manner of client-go's workqueue.
//!
//! - A key that is already queued is not queued twice: a burst of changes to one object
//!   costs one reconcile, which then reads the latest state.
//! - A key handed to a worker is "running" and is never handed to a second worker at once.
//!   Adding it while it runs marks it dirty; it is queued again when the worker is done, so a
//!   change made during a reconcile is never lost and costs exactly one more run.
//! - Delayed adds (requeue-after, backoff) keep only the earliest pending deadline per key.

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
    /// The earliest pending delayed add of each key.
    delayed: HashMap<String, Instant>,
    closed: bool,
}

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

    /// The worker finished `key`; if it changed meanwhile, it is queued once more.
    pub fn done(&self, key: &str) {
        let mut inner = self.lock();
        inner.running.remove(key);
        if inner.dirty.remove(key) && !inner.closed && inner.queued.insert(key.to_owned()) {
            inner.order.push_back(key.to_owned());
            drop(inner);
            self.notify.notify_one();
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
}
