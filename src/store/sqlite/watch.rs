//! Watches by polling the change log.
//!
//! Writers may be other processes, so there is nothing to subscribe to: each watch gets a
//! thread with its own connection that checks `PRAGMA data_version` (which changes when
//! any other connection commits) every few milliseconds and reads the log only then. A
//! thread rather than a tokio task because every SQLite call blocks, and a busy file can
//! block for the busy timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::mpsc;

use super::context::Context;
use super::db::{self, key_from_blob, meta_get, KeyRange};
use super::lease;
use super::schema::{META_COMPACTED, META_REVISION};
use super::{EventKind, KeyValue, Result, Revision, StoreError, WatchEvent};

/// How often the poller looks for changes: changes reach the watcher within about this.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// How often the poller expires due leases, so that expiry happens (and is watched) even
/// when no process reads or writes.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Revisions read from the log at once: bounds the poller's memory on a long replay.
pub(super) const REVISIONS_PER_FETCH: i64 = 128;

/// Events buffered for a slow watcher. When full the poller waits, and a compaction that
/// overtakes it ends the watch with `Compacted`, as etcd does for a slow watcher.
pub(super) const CHANNEL_CAPACITY: usize = 256;

/// Counts live pollers; decremented when the poller thread ends, however it ends.
pub(super) struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    pub(super) fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) struct Poller {
    pub(super) conn: Connection,
    pub(super) range: KeyRange,
    pub(super) prefix: String,
    /// The first revision not yet delivered.
    pub(super) next: Revision,
    pub(super) tx: mpsc::Sender<Result<WatchEvent>>,
    pub(super) _live: LiveGuard,
}

impl Poller {
    /// Runs until the watcher drops its stream or the watch fails.
    pub(super) fn run(mut self) {
        let mut seen_version: Option<i64> = None;
        let mut last_sweep: Option<Instant> = None;
        // Whether the log may hold changes not yet delivered; starts true to replay history.
        let mut behind = true;
        loop {
            if self.tx.is_closed() {
                return;
            }
            // Our own sweep's commits do not change our data_version: remember to look.
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(Instant::now());
                match db::now_ms().and_then(|now| lease::sweep_if_due(&mut self.conn, now)) {
                    Ok(swept) => behind |= swept,
                    // Not this watch's failure: the next sweep, here or elsewhere, retries.
                    Err(e) => {
                        tracing::warn!(prefix = %self.prefix, error = %e, "lease sweep from a watch failed")
                    }
                }
            }
            // Read the version before the log: a commit in between is either seen by the
            // read below or changes the version again for the next round.
            match data_version(&self.conn) {
                Ok(v) => {
                    behind |= seen_version != Some(v);
                    seen_version = Some(v);
                }
                Err(e) => {
                    if !self.retryable(e) {
                        return;
                    }
                    behind = true;
                }
            }
            if behind {
                match self.deliver() {
                    Some(caught_up) => behind = !caught_up,
                    None => return,
                }
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Sends every logged change from `next` on. Returns whether it caught up (false: a busy
    /// file interrupted it, try again), or None when the watch is over.
    fn deliver(&mut self) -> Option<bool> {
        loop {
            match fetch_events(&mut self.conn, &self.range, self.next, REVISIONS_PER_FETCH) {
                Ok(Fetched::Events {
                    events,
                    next,
                    caught_up,
                }) => {
                    for event in events {
                        // Blocks while the watcher's buffer is full; fails once it is gone.
                        if self.tx.blocking_send(Ok(event)).is_err() {
                            return None;
                        }
                    }
                    self.next = next;
                    if caught_up {
                        return Some(true);
                    }
                }
                Ok(Fetched::Compacted(compacted)) => {
                    tracing::debug!(prefix = %self.prefix, requested = self.next, compacted, "watch fell behind a compaction");
                    // Ignoring a send error: the watcher is gone either way.
                    let _ = self.tx.blocking_send(Err(StoreError::Compacted {
                        requested: self.next,
                        compacted,
                    }));
                    return None;
                }
                Err(e) => return self.retryable(e).then_some(false),
            }
        }
    }

    /// A busy file is worth waiting out (the next round retries); anything else ends the
    /// watch with the error. Returns whether the watch goes on.
    fn retryable(&self, e: StoreError) -> bool {
        if let StoreError::Unavailable(_) = e {
            tracing::debug!(prefix = %self.prefix, error = %e, "watch poll: store busy, retrying");
            return true;
        }
        let _ = self.tx.blocking_send(Err(e));
        false
    }
}

/// What the watch poller found.
enum Fetched {
    /// Events with revisions from the requested one up to `next - 1`, in order.
    Events {
        events: Vec<WatchEvent>,
        next: Revision,
        caught_up: bool,
    },
    /// The requested revision was compacted away: the watcher must relist.
    Compacted(Revision),
}

/// Reads the log entries in `range` with revisions `from ..= from + max_revisions - 1`
/// (never part of a revision), in revision order.
fn fetch_events(
    conn: &mut Connection,
    range: &KeyRange,
    from: Revision,
    max_revisions: i64,
) -> Result<Fetched> {
    let what = "reading the change log";
    let tx = conn.transaction().ctx(what)?;
    let current = meta_get(&tx, META_REVISION)?;
    let compacted = meta_get(&tx, META_COMPACTED)?;
    if from < compacted {
        return Ok(Fetched::Compacted(compacted));
    }
    if from > current {
        return Ok(Fetched::Events {
            events: Vec::new(),
            next: from,
            caught_up: true,
        });
    }
    let upto = current.min(from.saturating_add(max_revisions - 1));
    let mut stmt = tx
        .prepare_cached(
            "SELECT revision, key, deleted, value, create_revision, version, lease FROM log
             WHERE revision >= ?1 AND revision <= ?2 AND key >= ?3 AND key < ?4
             ORDER BY revision, sub",
        )
        .ctx(what)?;
    let rows = stmt
        .query_map(params![from, upto, range.start, range.end], |row| {
            let revision: Revision = row.get(0)?;
            let key = key_from_blob(row.get(1)?)?;
            Ok(if row.get::<_, bool>(2)? {
                WatchEvent {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key,
                        value: Vec::new(),
                        create_revision: 0,
                        mod_revision: revision,
                        version: 0,
                        lease: None,
                    },
                }
            } else {
                WatchEvent {
                    kind: EventKind::Put,
                    kv: KeyValue {
                        key,
                        value: row.get(3)?,
                        create_revision: row.get(4)?,
                        mod_revision: revision,
                        version: row.get(5)?,
                        lease: row.get(6)?,
                    },
                }
            })
        })
        .ctx(what)?;
    let events = rows.collect::<rusqlite::Result<Vec<_>>>().ctx(what)?;
    Ok(Fetched::Events {
        events,
        next: upto + 1,
        caught_up: upto == current,
    })
}

/// SQLite's counter of commits made by other connections to the file: the poller's cheap
/// "did anything change?" check.
fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
        .ctx("checking for changes")
}
