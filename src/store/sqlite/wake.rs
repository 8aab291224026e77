//! What wakes the hub's poller: a commit through any store of this process (the store calls
//! [`Signal::wake`] itself: no file event needed), a write to the database or its WAL seen
//! by inotify (commits by other processes: the CLI while the operator watches), a watch
//! stream that made room in its buffer or went away, and otherwise the poller's tick.
//!
//! inotify is a hint, never the only way: the poller also looks every tick (see
//! `poller.rs`), so a commit is still seen, only later, when inotify is unavailable (the
//! per-user instance or watch limit reached, a filesystem that does not report changes)
//! or misses one (events dropped by an overflowing queue). Spurious wakes cost one
//! `PRAGMA data_version`, which reads the shared memory, not the file.

use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use notify::event::EventKind;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// The wake-up flags the poller sleeps on; wakes coalesce until the poller looks.
#[derive(Default)]
pub(super) struct Signal {
    flags: Mutex<Flags>,
    cv: Condvar,
}

#[derive(Default)]
struct Flags {
    woken: bool,
    /// A file event came: a commit may be on its way (see [`Signal::file_changed`]).
    file_changed: bool,
}

impl Signal {
    pub(super) fn wake(&self) {
        self.set(|flags| flags.woken = true);
    }

    /// The database or its WAL was written. The writer's commit may not be visible yet: its
    /// frames are written (the event) before the WAL is synced and the commit published in
    /// the shared memory (no event), so the poller keeps looking for a moment after this.
    fn file_changed(&self) {
        self.set(|flags| {
            flags.woken = true;
            flags.file_changed = true;
        });
    }

    fn set(&self, f: impl FnOnce(&mut Flags)) {
        // A poisoned flag is still a flag: the panicking thread held no invariant over it.
        f(&mut self.flags.lock().unwrap_or_else(PoisonError::into_inner));
        self.cv.notify_one();
    }

    /// Sleeps until woken or `timeout` passes, and clears the flags. Returns whether a file
    /// changed since the last look.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut flags, _) = self
            .cv
            .wait_timeout_while(flags, timeout, |flags| !flags.woken)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *flags).file_changed
    }

    /// [`Self::wait`] without the sleep.
    pub(super) fn take(&self) -> bool {
        std::mem::take(&mut *self.flags.lock().unwrap_or_else(PoisonError::into_inner)).file_changed
    }
}

/// Wakes `signal` whenever the database file `db` or its WAL is written or replaced.
/// Returns `None` (having said why in the log) when inotify cannot be used: the tick is then
/// the only way to see another process's commits.
///
/// The watch is on the directory, not the files: SQLite deletes the WAL when the last
/// connection closes and creates it again on the next open, and a watch on the file would
/// die with the old inode.
pub(super) fn watch_files(
    db: &Path,
    signal: Arc<Signal>,
    tick: Duration,
) -> Option<RecommendedWatcher> {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return None;
    };
    let mut wal: OsString = name.to_owned();
    wal.push("-wal");
    let name = name.to_owned();
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            // An error from the watch (its queue overflowed, say): look, in case.
            signal.file_changed();
            return;
        };
        // Opens and reads (every connection's, ours included) are not commits; counting
        // them would wake the poller into a loop of its own reads.
        if matches!(event.kind, EventKind::Access(_)) && !event.need_rescan() {
            return;
        }
        let ours = event
            .paths
            .iter()
            .filter_map(|p| p.file_name())
            .any(|f| f == name || f == wal);
        if ours || event.need_rescan() {
            signal.file_changed();
        }
    };
    let watched = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
    match watched {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot watch the SQLite store's directory with inotify; other processes' \
                 commits reach watches within {tick:?} instead of at once"
            );
            None
        }
    }
}
