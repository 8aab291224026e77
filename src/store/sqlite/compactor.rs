//! Automatic compaction of the revision log, like etcd's `--auto-compaction`: without it the
//! log keeps every value ever written, rotated secrets included, forever.
//!
//! The window: a revision is compacted away once it is older than [`Retention::age`] (1 h)
//! or more than [`Retention::revisions`] (10,000) revisions behind the current one,
//! whichever comes first. Of the two readings of "1 h or 10,000 revisions" this is the one
//! that bounds how long an old value survives: a rotated secret is gone about an hour after
//! the rotation even on a quiet cluster (which may take days to write 10,000 revisions), and
//! a busy cluster's log stays bounded. Watchers lose nothing they need: a live watch lags by
//! milliseconds, and one that fell behind a compaction gets `Compacted` and relists.
//!
//! Who runs it: the store itself, in the processes that write. It checks after every write
//! transaction (at most every tenth of the revision window) and at every lease renewal (at
//! most every `age / 60`), which the long-running operator and agents make every few
//! seconds, so a quiet cluster is compacted too. Several processes compacting one file is
//! harmless: the later one finds the work done. Ages come from this process's own samples
//! of (time, revision), as etcd's periodic compactor does: a process that has run for less
//! than the age compacts only by revisions, so a short-lived `apply` rarely does anything.
//! Stores opened only to read never compact.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::context::{Context, BUSY_TIMEOUT};
use super::{db, Result, Revision, StoreError};

/// How much history the store keeps (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Revisions older than this are compacted.
    pub age: Duration,
    /// Revisions more than this many behind the current one are compacted.
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
/// free pages), to rebuild the file. Rarely: old values are already zeroed by
/// `secure_delete`, and a `VACUUM` holds the store's connection while it copies the file.
const VACUUM_EVERY: u32 = 100;

/// How long an automatic compaction waits for readers to leave the WAL before truncating
/// it: it holds the store's connection meanwhile, so it must not stall writes for the full
/// busy timeout. A busy WAL is truncated at a later compaction.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(10);

/// The per-store state of automatic compaction.
#[derive(Debug)]
pub(super) struct AutoCompactor {
    /// `None`: a store opened to read, which never compacts.
    retention: Option<Retention>,
    /// (when, the revision current then), oldest first, at most one per `age / 60`.
    samples: VecDeque<(Instant, Revision)>,
    /// The next revision, and the next time, at which to look for something to compact.
    next_check: Revision,
    next_time_check: Option<Instant>,
    /// The last revision compacted to (by this process).
    last_target: Revision,
    compactions: u32,
}

impl AutoCompactor {
    pub(super) fn new(retention: Option<Retention>) -> Self {
        Self {
            retention,
            samples: VecDeque::new(),
            next_check: 0,
            next_time_check: None,
            last_target: 0,
            compactions: 0,
        }
    }

    /// Whether a check is due by time alone (with no write to give the revision).
    fn time_check_due(&self, now: Instant) -> bool {
        self.retention.is_some() && self.next_time_check.is_none_or(|at| now >= at)
    }

    /// Notes that the store is at `revision` at `now`; returns the revision to compact to
    /// when a check is due and finds something new to compact.
    pub(super) fn target(&mut self, now: Instant, revision: Revision) -> Option<Revision> {
        let retention = self.retention?;
        let every = retention.age / 60;
        if self
            .samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= every)
        {
            self.samples.push_back((now, revision));
        }
        if revision < self.next_check && !self.time_check_due(now) {
            return None;
        }
        self.next_check = revision + (retention.revisions / 10).max(1);
        self.next_time_check = Some(now + every);
        // The newest sample at least `age` old: every revision up to it is older than `age`.
        let old_enough = |at: &Instant| now.duration_since(*at) >= retention.age;
        while self.samples.len() > 1 && self.samples.get(1).is_some_and(|(at, _)| old_enough(at)) {
            self.samples.pop_front();
        }
        let by_age = self
            .samples
            .front()
            .filter(|(at, _)| old_enough(at))
            .map_or(0, |(_, rev)| *rev);
        let target = by_age.max(revision - retention.revisions);
        if target <= self.last_target {
            return None;
        }
        self.last_target = target;
        Some(target)
    }

    /// Whether this compaction should also `VACUUM`.
    fn vacuum_due(&mut self) -> bool {
        self.compactions += 1;
        self.compactions % VACUUM_EVERY == 0
    }
}

/// Compacts if a check is due: after a write transaction that left the store at `written`,
/// or (with `None`, after a lease renewal) when enough time has passed since the last check.
/// Failures are logged, not returned: the call that triggered this has done its work.
pub(super) fn maybe_compact(
    conn: &mut Connection,
    compactor: &mut AutoCompactor,
    written: Option<Revision>,
) {
    let now = Instant::now();
    let revision = match written {
        Some(revision) => revision,
        None if compactor.time_check_due(now) => match db::revisions(conn) {
            Ok((current, _)) => current,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store revision to compact");
                return;
            }
        },
        None => return,
    };
    if let Some(target) = compactor.target(now, revision) {
        auto_compact(conn, compactor, target);
    }
}

/// Compacts to `target` if nobody compacted further already, then scrubs.
fn auto_compact(conn: &mut Connection, compactor: &mut AutoCompactor, target: Revision) {
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
    match scrub(conn, vacuum, CHECKPOINT_WAIT) {
        Ok(()) => tracing::debug!(target, vacuum, "compacted the SQLite store"),
        Err(e) => tracing::warn!(target, error = %e, "cleaning up after a compaction failed"),
    }
}

/// Makes deleted values unrecoverable from the files: `VACUUM` when asked (or when a quarter
/// of the file is free pages), then a `TRUNCATE` checkpoint, waiting at most `wait` for
/// readers, so the WAL, which still holds the old pages' images, is emptied. The deleted
/// rows themselves were zeroed in place by `secure_delete` (set on every connection).
pub(super) fn scrub(conn: &mut Connection, vacuum: bool, wait: Duration) -> Result<()> {
    let free: i64 = conn
        .pragma_query_value(None, "freelist_count", |row| row.get(0))
        .ctx("reading the free page count")?;
    let pages: i64 = conn
        .pragma_query_value(None, "page_count", |row| row.get(0))
        .ctx("reading the page count")?;
    if vacuum || free * 4 >= pages {
        conn.execute_batch("VACUUM").ctx("vacuuming the store")?;
    }
    conn.busy_timeout(wait).ctx("setting the lock wait")?;
    // (busy, WAL frames, frames checkpointed): busy means a reader kept the WAL in use.
    let checkpoint: rusqlite::Result<i64> =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0));
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting the lock wait")?;
    if checkpoint.ctx("checkpointing the WAL")? != 0 {
        tracing::debug!("WAL still in use by a reader; it is truncated at a later compaction");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compactor(age_secs: u64, revisions: i64) -> AutoCompactor {
        AutoCompactor::new(Some(Retention {
            age: Duration::from_secs(age_secs),
            revisions,
        }))
    }

    #[test]
    fn compacts_what_is_outside_either_window() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut c = compactor(60, 100);
        // Young and few: nothing.
        assert_eq!(c.target(t0, 1), None);
        assert_eq!(c.target(at(30), 50), None);
        // Many revisions: all but the last 100, however young.
        assert_eq!(c.target(at(31), 500), Some(400));
        // 61 s on: revision 1 is old, but the revision window already went further.
        assert_eq!(c.target(at(61), 510), Some(410));
        // 91 s on, few new revisions: what was current at 31 s (500) is now old.
        assert_eq!(c.target(at(92), 520), Some(500));
        // Later, with no write (a time check): everything up to 520 is old.
        assert_eq!(c.target(at(200), 520), Some(520));
        // Nothing new to compact: no second compaction to the same revision.
        assert_eq!(c.target(at(300), 520), None);
    }

    #[test]
    fn checks_every_tenth_of_the_revision_window_or_every_sixtieth_of_the_age() {
        let t0 = Instant::now();
        let mut c = compactor(600, 100);
        assert_eq!(c.target(t0, 200), Some(100));
        assert_eq!(c.target(t0, 205), None);
        assert_eq!(c.target(t0, 210), Some(110));
        // A time check (every 10 s here) with no write: nothing old enough yet.
        assert!(!c.time_check_due(t0 + Duration::from_secs(5)));
        assert!(c.time_check_due(t0 + Duration::from_secs(10)));
        // After the age, the revision sampled at t0 goes (samples are 10 s apart here, so
        // the later revisions of t0 wait for the next sample to age).
        assert_eq!(c.target(t0 + Duration::from_secs(601), 211), Some(200));
    }

    #[test]
    fn a_store_opened_to_read_never_compacts() {
        let mut c = AutoCompactor::new(None);
        assert!(!c.time_check_due(Instant::now()));
        assert_eq!(c.target(Instant::now(), 1_000_000), None);
    }
}
