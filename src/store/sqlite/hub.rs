//! One watch poller per database file per process, fanning the change log out to every
//! watch (omtd issue #11: with a poller per watch, the bench's one process with an agent
//! per node ran a thousand threads, a thousand connections and a thousand polls every
//! 10 ms, and never converged at 1,000 nodes).
//!
//! - Every [`SqliteStore`](super::SqliteStore) opened on the same file in this process
//!   shares one [`Hub`] (found by canonical path and inode, so a file replaced under the
//!   same name gets a new one), and every watch registers with it.
//! - The hub runs a poller thread (`poller.rs`) only while it has watches: it reads each
//!   new revision range of the log once, for all keys, and hands each watch the events in
//!   its range (`slot.rs`). A slow watch is left behind and catches up on its own, without
//!   holding up the others.
//! - What wakes the poller is in `wake.rs`: this process's commits directly, other
//!   processes' by inotify, and a tick as the fallback.
//! - A watch stream keeps its hub alive, so a watch outlives the store it came from, as it
//!   did with a thread of its own; it ends with the error when the log cannot be read.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use super::db::KeyRange;
use super::slot::{LiveGuard, Slot};
use super::stream::HubStream;
use super::wake::Signal;
use super::watch::CHANNEL_CAPACITY;
use super::{poller, schema, Result, Revision, StoreError};

/// How often the poller looks without being woken: to expire due leases when nobody calls
/// the store (as each watch's poller did every 100 ms before), and to check for commits
/// that no wake announced (inotify unavailable or missing one). A look costs two indexed
/// queries, so ten a second per database is nothing; the old poll was a hundred a second
/// per watch.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// What identifies one database file: two paths to it share a hub, a new file at an old
/// path does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileId {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// The hubs of this process, by file. Weak: a hub goes when its last store and watch do.
static HUBS: LazyLock<Mutex<HashMap<FileId, Weak<Hub>>>> = LazyLock::new(Default::default);

pub(super) struct Hub {
    /// Canonical.
    path: PathBuf,
    tick: Duration,
    signal: Arc<Signal>,
    state: Mutex<State>,
    live_watches: Arc<AtomicUsize>,
    live_pollers: Arc<AtomicUsize>,
}

struct State {
    /// Registered since the poller last looked; it takes them over.
    joining: Vec<Slot>,
    /// Whether a poller thread runs (or is about to).
    polling: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both mutexes guard plain collections that no panic can leave half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// The hub of the database file at `path` (which must exist), shared by every store of
    /// this process on that file.
    pub(super) fn for_file(path: &Path) -> Result<Arc<Self>> {
        let id = file_id(path)?;
        let mut hubs = lock(&HUBS);
        if let Some(hub) = hubs.get(&id).and_then(Weak::upgrade) {
            return Ok(hub);
        }
        hubs.retain(|_, hub| hub.strong_count() > 0);
        let hub = Arc::new(Self::new(id.path.clone(), TICK));
        hubs.insert(id, Arc::downgrade(&hub));
        Ok(hub)
    }

    /// A hub of its own, shared with no other store, looking every `tick`: for tests that
    /// need a second store on the same file to behave as another process's would.
    #[cfg(test)]
    pub(super) fn unshared(path: &Path, tick: Duration) -> Result<Arc<Self>> {
        Ok(Arc::new(Self::new(file_id(path)?.path, tick)))
    }

    fn new(path: PathBuf, tick: Duration) -> Self {
        Self {
            path,
            tick,
            signal: Arc::default(),
            state: Mutex::new(State {
                joining: Vec::new(),
                polling: false,
            }),
            live_watches: Arc::default(),
            live_pollers: Arc::default(),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn tick(&self) -> Duration {
        self.tick
    }

    pub(super) fn signal(&self) -> &Arc<Signal> {
        &self.signal
    }

    pub(super) fn live_pollers(&self) -> &Arc<AtomicUsize> {
        &self.live_pollers
    }

    /// Something may have been committed (or a reader made room): the poller looks now.
    pub(super) fn wake(&self) {
        self.signal.wake();
    }

    /// Registered watches that have not ended (for tests and the counters).
    #[cfg(test)]
    pub(super) fn watch_count(&self) -> usize {
        self.live_watches.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Running poller threads: 0 or 1 (for tests).
    #[cfg(test)]
    pub(super) fn poller_count(&self) -> usize {
        self.live_pollers.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Registers a watch of `prefix` from revision `next` and starts the poller if none
    /// runs. Blocking: starting the poller opens a connection.
    pub(super) fn register(self: &Arc<Self>, prefix: &str, next: Revision) -> Result<HubStream> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let lagging = Arc::new(AtomicBool::new(false));
        let slot = Slot::new(
            KeyRange::prefix(prefix),
            prefix.to_owned(),
            next,
            tx,
            Arc::clone(&lagging),
            LiveGuard::new(&self.live_watches),
        );
        {
            let mut state = lock(&self.state);
            if !state.polling {
                // Here rather than in the thread, so that a file that cannot be opened is
                // this call's error.
                let conn = schema::connect(&self.path)?;
                poller::spawn(Arc::clone(self), conn)?;
                state.polling = true;
            }
            state.joining.push(slot);
        }
        self.wake();
        Ok(HubStream::new(rx, lagging, Arc::clone(self)))
    }

    /// Hands the poller the watches registered since it last looked.
    pub(super) fn take_joining(&self) -> Vec<Slot> {
        std::mem::take(&mut lock(&self.state).joining)
    }

    /// The poller has no watch left: it stops unless one is joining. Returns whether it
    /// should end.
    pub(super) fn retire(&self) -> bool {
        let mut state = lock(&self.state);
        if state.joining.is_empty() {
            state.polling = false;
        }
        !state.polling
    }

    /// The poller died (a bug): later watches start another, and those it had not taken
    /// over end (their streams close) instead of waiting for nobody.
    pub(super) fn poller_died(&self) {
        let mut state = lock(&self.state);
        state.polling = false;
        state.joining.clear();
    }
}

fn file_id(path: &Path) -> Result<FileId> {
    let failed = |e: std::io::Error| {
        StoreError::Config(format!(
            "cannot resolve SQLite store {}: {e}",
            path.display()
        ))
    };
    let canonical = std::fs::canonicalize(path).map_err(failed)?;
    let meta = std::fs::metadata(&canonical).map_err(failed)?;
    Ok(FileId {
        path: canonical,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}
