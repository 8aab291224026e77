//! Automatic compaction of the revision log, like etcd's `--auto-compaction`: without it the
//! log keeps every value ever written, rotated secrets included, forever.
//!
//! The window: a revision is compacted away once it is both older than [`Retention::age`]
//! (1 h) and more than [`Retention::revisions`] (10,000) revisions behind the current one.
//! Of etcd's two modes this keeps whichever window is larger: a quiet cluster keeps 10,000
//! revisions of history, a busy one an hour, so a watcher that was cut off for less than
//! either can always resume without relisting. A rotated secret is gone at most an hour (or
//! 10,000 revisions) after the rotation, and at once on an explicit `compact`.
//!
//! The store runs it on its own writes (every tenth of the revision window), so every
//! process that writes (operator, agents, apply) takes part; several processes compacting
//! one file is harmless, the later one finds the work done. Ages come from this process's
//! own samples of (time, revision), as etcd's periodic compactor does: a process that has
//! run for less than the age compacts nothing by age, so a short-lived `apply` never does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::context::Context;
use super::{db, Result, Revision, StoreError};

/// How much history the store keeps (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Revisions younger than this are kept.
    pub age: Duration,
    /// This many revisions behind the current one are kept.
    pub revisions: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            age: Duration::from_secs(3600),
            revisions: 10_000,
        }
    }
}

/// Run `VACUUM` after this many automatic compactions (and when a quarter of the file is
/// free pages), to give the space back. Old values are already zeroed by `secure_delete`.
const VACUUM_EVERY: u32 = 10;

/// The per-store state of automatic compaction.
#[derive(Debug)]
pub(super) struct AutoCompactor {
    retention: Retention,
    /// (when, the revision current then), oldest first, at most one per `age / 60`.
    samples: VecDeque<(Instant, Revision)>,
    /// The next revision at which to look for something to compact.
    next_check: Revision,
    compactions: u32,
}

impl AutoCompactor {
    pub(super) fn new(retention: Retention) -> Self {
        Self {
            retention,
            samples: VecDeque::new(),
            next_check: 0,
            compactions: 0,
        }
    }

    /// Notes that the store is at `revision` at `now`; returns the revision to compact to
    /// when one is due.
    pub(super) fn after_write(&mut self, now: Instant, revision: Revision) -> Option<Revision> {
        let every = self.retention.age / 60;
        if self
            .samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= every)
        {
            self.samples.push_back((now, revision));
        }
        if revision < self.next_check {
            return None;
        }
        self.next_check = revision + (self.retention.revisions / 10).max(1);
        // The newest sample at least `age` old: every revision up to it is older than `age`.
        let old_enough = |at: &Instant| now.duration_since(*at) >= self.retention.age;
        while self.samples.len() > 1 && self.samples.get(1).is_some_and(|(at, _)| old_enough(at)) {
            self.samples.pop_front();
        }
        let by_age = self
            .samples
            .front()
            .filter(|(at, _)| old_enough(at))
            .map(|(_, rev)| *rev)?;
        let target = by_age.min(revision - self.retention.revisions);
        (target > 0).then_some(target)
    }

    /// Whether this compaction should also `VACUUM`.
    fn vacuum_due(&mut self) -> bool {
        self.compactions += 1;
        self.compactions % VACUUM_EVERY == 0
    }
}

/// Compacts to `target` if nobody compacted further already, then scrubs. Failures are
/// logged, not returned: the write that triggered this has committed.
pub(super) fn auto_compact(conn: &mut Connection, compactor: &mut AutoCompactor, target: Revision) {
    match db::compact(conn, target) {
        Ok(()) => {}
        // Another process compacted at least as far: nothing left to do here.
        Err(StoreError::Compacted { .. }) => return,
        Err(e) => {
            tracing::warn!(target, error = %e, "automatic compaction of the SQLite store failed");
            return;
        }
    }
    let vacuum = compactor.vacuum_due();
    match scrub(conn, vacuum) {
        Ok(()) => tracing::debug!(target, vacuum, "compacted the SQLite store"),
        Err(e) => tracing::warn!(target, error = %e, "cleaning up after a compaction failed"),
    }
}

/// Makes deleted values unrecoverable from the files: `VACUUM` when asked (or when a quarter
/// of the file is free pages), then a `TRUNCATE` checkpoint so the WAL, which still holds
/// the old pages' images, is emptied. The deleted rows themselves were zeroed in place by
/// `secure_delete` (set on every connection).
pub(super) fn scrub(conn: &mut Connection, vacuum: bool) -> Result<()> {
    let free: i64 = conn
        .pragma_query_value(None, "freelist_count", |row| row.get(0))
        .ctx("reading the free page count")?;
    let pages: i64 = conn
        .pragma_query_value(None, "page_count", |row| row.get(0))
        .ctx("reading the page count")?;
    if vacuum || free * 4 >= pages {
        conn.execute_batch("VACUUM").ctx("vacuuming the store")?;
    }
    // (busy, WAL frames, frames checkpointed): busy means a reader kept the WAL in use; the
    // next scrub truncates it.
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .ctx("checkpointing the WAL")?;
    if busy != 0 {
        tracing::debug!("WAL still in use by a reader; it is truncated at a later compaction");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_only_what_is_outside_both_windows() {
        let t0 = Instant::now();
        let mut c = AutoCompactor::new(Retention {
            age: Duration::from_secs(60),
            revisions: 100,
        });
        // Young history: nothing, however many revisions.
        assert_eq!(c.after_write(t0, 1), None);
        assert_eq!(c.after_write(t0 + Duration::from_secs(30), 500), None);
        // 61 s on: revision 1 is old enough, but 100 revisions behind 600 is 500: keep 1..
        assert_eq!(c.after_write(t0 + Duration::from_secs(61), 600), Some(1));
        // 91 s on: revision 500 (sampled at 30 s) is old; 1000 - 100 = 900 keeps more.
        assert_eq!(c.after_write(t0 + Duration::from_secs(91), 1000), Some(500));
        // Few revisions, much time: the revision window keeps them.
        let mut c = AutoCompactor::new(Retention {
            age: Duration::from_secs(60),
            revisions: 100,
        });
        c.after_write(t0, 50);
        assert_eq!(c.after_write(t0 + Duration::from_secs(3600), 120), Some(20));
    }

    #[test]
    fn checks_only_every_tenth_of_the_revision_window() {
        let t0 = Instant::now();
        let mut c = AutoCompactor::new(Retention {
            age: Duration::ZERO,
            revisions: 100,
        });
        assert_eq!(c.after_write(t0, 200), Some(100));
        assert_eq!(c.after_write(t0, 205), None);
        assert_eq!(c.after_write(t0, 210), Some(110));
    }
}
