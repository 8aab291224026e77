//! The hub's poller: the one thread per database file that reads the change log for every
//! watch of this process, with a connection of its own. A thread rather than a tokio task
//! because every SQLite call blocks, and a busy file can block for the busy timeout.
//!
//! Each round (when woken, or every tick): take over newly registered watches and drop
//! ended ones, expire due leases every [`SWEEP_EVERY`], move left-over events into
//! channels that have room, read whatever was committed since the last round once for all
//! keys and offer it to the live watches, then give each watch that is behind one catch-up
//! read of its own range. It never waits on a reader.
//!
//! After a file event the poller looks again 1, 2, then every 4 ms until the commit shows
//! (or [`SETTLE_FOR`] passes): the event comes when the writer writes its WAL frames, the
//! commit becomes visible only after the writer's fsync (see `wake.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::context::{Context, BUSY_TIMEOUT};
use super::hub::Hub;
use super::slot::{LiveGuard, Slot};
use super::watch::{self, Fetched, Span};
use super::{db, lease, wake, Result, Revision, StoreError};

/// How often the poller expires due leases, so that expiry happens (and is watched) even
/// when no process reads or writes.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// How long the poller's sweep waits for the write lock. Whoever holds it is writing, and
/// every write transaction expires due leases first, so there is no need to wait longer,
/// and waiting would hold up every watch.
const SWEEP_LOCK_WAIT: Duration = Duration::from_millis(20);

/// How long after a file event the poller keeps looking for the commit it announced: more
/// than a WAL fsync takes on a local disk. A commit that takes longer is seen at the tick.
const SETTLE_FOR: Duration = Duration::from_millis(50);

/// The longest pause between two looks while settling: bounds what a file event's commit
/// waits for the poller once it is visible.
const SETTLE_STEP_MAX: Duration = Duration::from_millis(4);

/// Looking again shortly after a file event (see the module comment).
struct Settle {
    until: Instant,
    step: Duration,
}

/// Starts the poller of `hub` on `conn`. The hub's cursor starts at the current revision:
/// watches from older ones catch up.
pub(super) fn spawn(hub: Arc<Hub>, mut conn: Connection) -> Result<()> {
    let (current, _) = db::revisions(&mut conn)?;
    let poller = Poller {
        _live: LiveGuard::new(hub.live_pollers()),
        hub,
        conn,
        slots: Vec::new(),
        cursor: current + 1,
        seen_version: None,
        behind: true,
        last_sweep: None,
        settle: None,
    };
    std::thread::Builder::new()
        .name("omtd-sqlite-hub".into())
        .spawn(move || poller.run())
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot start the SQLite watch thread: {e}")))
}

struct Poller {
    hub: Arc<Hub>,
    conn: Connection,
    slots: Vec<Slot>,
    /// The first revision the fan-out has not read yet.
    cursor: Revision,
    seen_version: Option<i64>,
    /// Whether the log may hold revisions from `cursor` on.
    behind: bool,
    last_sweep: Option<Instant>,
    settle: Option<Settle>,
    _live: LiveGuard,
}

impl Drop for Poller {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(path = %self.hub.path().display(), "the SQLite watch poller panicked; its watches end");
            self.hub.poller_died();
        }
    }
}

impl Poller {
    fn run(mut self) {
        let span = tracing::debug_span!("sqlite_watch_poller", path = %self.hub.path().display());
        let _entered = span.enter();
        tracing::debug!("watch poller starts");
        let _files = wake::watch_files(
            self.hub.path(),
            Arc::clone(self.hub.signal()),
            self.hub.tick(),
        );
        let mut idle = false;
        let mut again = true;
        loop {
            let file_changed = if again {
                self.hub.signal().take()
            } else {
                let wait = self.next_wait();
                self.hub.signal().wait(wait)
            };
            self.slots.extend(self.hub.take_joining());
            self.slots.retain(|slot| !slot.finished());
            if self.slots.is_empty() {
                // One idle tick before stopping: a reader that watches again at once (after
                // a relist) finds the poller still running.
                if idle && self.hub.retire() {
                    tracing::debug!("no watch left; watch poller stops");
                    return;
                }
                idle = true;
                again = false;
                self.settle = None;
                continue;
            }
            idle = false;
            self.sweep_if_due();
            for slot in &mut self.slots {
                slot.flush();
            }
            let changed = self.follow();
            // A new file event: its commit may still be on its way. A change seen with no
            // new event: the commit the last event announced has shown (writers take turns,
            // so a later writer's event would have come after it).
            if file_changed {
                self.settle = Some(Settle {
                    until: Instant::now() + SETTLE_FOR,
                    step: Duration::from_millis(1),
                });
            } else if changed {
                self.settle = None;
            }
            again = self.catch_up();
            for slot in &self.slots {
                again |= slot.mark_lagging(self.cursor);
            }
        }
    }

    /// How long to sleep unless woken: the tick, or the next look while settling.
    fn next_wait(&mut self) -> Duration {
        match &mut self.settle {
            Some(settle) if Instant::now() < settle.until => {
                let wait = settle.step;
                settle.step = (settle.step * 2).min(SETTLE_STEP_MAX);
                wait
            }
            _ => {
                self.settle = None;
                self.hub.tick()
            }
        }
    }

    fn sweep_if_due(&mut self) {
        if self.last_sweep.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(Instant::now());
        let swept = self
            .conn
            .busy_timeout(SWEEP_LOCK_WAIT)
            .ctx("setting the lock wait")
            .and_then(|()| lease::sweep_if_due(&mut self.conn, db::now_ms()?));
        if let Err(e) = self.conn.busy_timeout(BUSY_TIMEOUT) {
            tracing::warn!(error = %e, "cannot restore the watch connection's lock wait");
        }
        match swept {
            // Our own commit does not change our data_version: remember to look.
            Ok(swept) => self.behind |= swept,
            // Another connection is writing, and its transaction expires due leases.
            Err(StoreError::Unavailable(_)) => {}
            // Not the watches' failure: the next sweep, here or elsewhere, retries.
            Err(e) => tracing::warn!(error = %e, "lease sweep from the watch poller failed"),
        }
    }

    /// Reads what was committed since the last look, once for all keys, and offers it to
    /// every watch. Returns whether another connection committed since the last look.
    fn follow(&mut self) -> bool {
        // The version before the log: a commit in between is either seen by the read below
        // or changes the version again for the next round.
        let changed = match watch::data_version(&self.conn) {
            Ok(version) => {
                let changed = self.seen_version != Some(version);
                self.seen_version = Some(version);
                changed
            }
            Err(e) if is_busy(&e) => {
                self.behind = true;
                false
            }
            Err(e) => {
                self.fail_all(&e);
                return false;
            }
        };
        self.behind |= changed;
        while self.behind {
            let span = Span {
                range: None,
                from: self.cursor,
                until: Revision::MAX,
            };
            match watch::fetch_events(&mut self.conn, &span) {
                Ok(Fetched::Events {
                    events,
                    next,
                    caught_up,
                }) => {
                    for slot in &mut self.slots {
                        slot.offer(self.cursor, next, &events);
                    }
                    self.cursor = next;
                    self.behind = !caught_up;
                }
                Ok(Fetched::Compacted(compacted)) => {
                    // Compacted past what the fan-out had read (a compaction to the newest
                    // revision, say): whoever still needs revisions below it must relist.
                    tracing::debug!(
                        cursor = self.cursor,
                        compacted,
                        "the log was compacted past the watch poller"
                    );
                    for slot in &mut self.slots {
                        if slot.next < compacted {
                            slot.end(StoreError::Compacted {
                                requested: slot.next,
                                compacted,
                            });
                        }
                    }
                    self.cursor = compacted;
                }
                // The next round retries.
                Err(e) if is_busy(&e) => {
                    tracing::debug!(error = %e, "watch poll: store busy, retrying");
                    break;
                }
                Err(e) => {
                    self.fail_all(&e);
                    break;
                }
            }
        }
        changed
    }

    /// Gives each watch that is behind the fan-out, and has room, one read of its own range
    /// up to where the fan-out is. Returns whether some watch could go on at once.
    fn catch_up(&mut self) -> bool {
        let cursor = self.cursor;
        let mut again = false;
        for slot in &mut self.slots {
            if !slot.wants_catch_up(cursor) {
                continue;
            }
            let from = slot.next;
            let span = Span {
                range: Some(&slot.range),
                from,
                until: cursor - 1,
            };
            match watch::fetch_events(&mut self.conn, &span) {
                // Nothing read below the fan-out's position: the file's revision went back.
                Ok(Fetched::Events { next, .. }) if next == from => {
                    tracing::warn!(prefix = %slot.prefix, from, "the store's revision went back under a watch");
                    slot.end(StoreError::Backend(format!(
                        "the store's revision went back below {from}, which the watch of {:?} \
                         had reached: the file was replaced by an older copy; relist",
                        slot.prefix
                    )));
                }
                Ok(Fetched::Events { events, next, .. }) => {
                    slot.caught_up_to(events, next);
                    again |= slot.wants_catch_up(cursor);
                }
                Ok(Fetched::Compacted(compacted)) => {
                    tracing::debug!(prefix = %slot.prefix, requested = from, compacted, "watch fell behind a compaction");
                    slot.end(StoreError::Compacted {
                        requested: from,
                        compacted,
                    });
                }
                Err(e) if is_busy(&e) => {
                    tracing::debug!(prefix = %slot.prefix, error = %e, "watch catch-up: store busy, retrying");
                }
                Err(e) => {
                    tracing::warn!(prefix = %slot.prefix, error = %e, "watch catch-up failed; the watch ends");
                    slot.end(e);
                }
            }
        }
        again
    }

    /// The log cannot be read: every watch ends with the error (its reader relists and
    /// watches again, which starts a poller with a new connection).
    fn fail_all(&mut self, e: &StoreError) {
        tracing::warn!(error = %e, watches = self.slots.len(), "reading the change log failed; every watch ends");
        for slot in &mut self.slots {
            slot.end(copy_error(e));
        }
        self.behind = true;
    }
}

/// A busy file is worth waiting out: the next round retries.
fn is_busy(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

/// The same error for each watch (`StoreError` is not `Clone`).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Config(m) => StoreError::Config(m.clone()),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}
