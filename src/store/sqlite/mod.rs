//! Embedded SQLite backend: etcd v3 semantics in one file that several processes may share.
//!
//! - `kv` holds the current state, `log` every change with its revision (for lists at a past
//!   revision and for watches), `meta` the current and compacted revisions and the schema
//!   version, `leases` the leases with their wall-clock expiry.
//! - Writes run in `BEGIN IMMEDIATE` transactions, so writers in different processes
//!   serialize and a CAS sees every write committed before it.
//! - Watches are served by one poller thread per file per process (`hub.rs`), which reads
//!   each new revision of the log once and fans it out to every watch. This process's
//!   commits wake it directly, other processes' through inotify on the file's directory,
//!   and it looks every 100 ms in case neither did.
//! - Leases expire by wall-clock time stored in the file; whoever touches the store next
//!   (any call, or the watch poller within 100 ms) deletes the expired lease's keys, as
//!   logged deletes that watchers see.
//! - The file and its `-wal`/`-shm` are private to their owner (mode 0600, `perms.rs`).
//! - The log is compacted automatically, keeping a window of history (`compactor.rs`);
//!   compacted values are zeroed (`secure_delete`) and the WAL truncated, so an old secret
//!   does not linger in the files. Callers may also compact, as they would with etcd.

#[cfg(test)]
mod at_rest_tests;
mod compactor;
mod context;
mod db;
mod hub;
mod lease;
mod perms;
mod poller;
mod schema;
mod slot;
mod stream;
#[cfg(test)]
mod tests;
mod txn;
mod wake;
mod watch;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use self::compactor::AutoCompactor;
pub use self::compactor::Retention;
use self::hub::Hub;
use super::{
    Compare, CompareOp, CompareTarget, EventKind, KeyValue, Lease, LeaseId, ListResult, Op, Result,
    Revision, Store, StoreError, Txn, TxnResult, WatchEvent, WatchStream,
};

/// etcd's largest lease TTL (`MaxLeaseTTL`, in seconds).
const MAX_LEASE_TTL_SECS: u64 = 9_000_000_000;

pub struct SqliteStore {
    /// rusqlite is synchronous and a connection is not shareable: calls take turns on it
    /// from blocking threads. The watch poller has a connection of its own.
    conn: Arc<Mutex<Connection>>,
    /// Serves this process's watches of the file; woken by this store's commits.
    hub: Arc<Hub>,
    /// Taken only while holding `conn`, after a write.
    compactor: Arc<Mutex<AutoCompactor>>,
}

impl SqliteStore {
    /// Opens (creating if missing, mode 0600) the store file. The directory must exist.
    pub fn open(path: &Path) -> Result<Self> {
        perms::create_private(path)?;
        Self::open_file(path, Some(Retention::default()))
    }

    /// Opens the store file, failing with a message naming the path and the fix when it does
    /// not exist: for commands that only read, which must not leave an empty store behind.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(StoreError::Config(format!(
                "SQLite store {} does not exist: run `omtd apply` first or pass --store",
                path.display()
            )));
        }
        Self::open_file(path, None)
    }

    /// [`Self::open`] with a history window other than the default.
    pub fn open_with_retention(path: &Path, retention: Retention) -> Result<Self> {
        perms::create_private(path)?;
        Self::open_file(path, Some(retention))
    }

    /// `retention`: `None` for a store opened to read, which never compacts.
    fn open_file(path: &Path, retention: Option<Retention>) -> Result<Self> {
        perms::tighten(path)?;
        let mut conn = schema::connect(path)?;
        schema::init(&mut conn, path)?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            hub: Hub::for_file(path)?,
            compactor: Arc::new(Mutex::new(AutoCompactor::new(retention))),
        })
    }

    /// A store with a watch hub of its own, looking every `tick`: in tests, a second store
    /// on the file that behaves as another process's would (its commits reach the first
    /// store's watches only through the file).
    #[cfg(test)]
    fn open_unshared(path: &Path, tick: Duration) -> Result<Self> {
        let store = Self::open(path)?;
        Ok(Self {
            hub: Hub::unshared(path, tick)?,
            ..store
        })
    }

    /// Runs `f` on the store's connection on a blocking thread.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction open (rusqlite's
            // `Transaction` rolls back on drop), so a poisoned connection is still sound.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("SQLite worker thread failed: {e}")))?
    }

    /// [`Self::call`] for a call that may commit: the watch poller is woken as soon as it
    /// has, rather than by the file event or its tick. Woken whatever the result: a call
    /// that fails may still have expired leases first (`revoke_lease` of an unknown one).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let hub = Arc::clone(&self.hub);
        self.call(move |conn| {
            let result = f(conn);
            hub.wake();
            result
        })
        .await
    }

    /// Like [`Self::call`], expiring due leases first so that reads never see keys of an
    /// expired lease, even when nobody has written since it expired.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let hub = Arc::clone(&self.hub);
        self.call(move |conn| {
            if lease::sweep_if_due(conn, db::now_ms()?)? {
                hub.wake();
            }
            f(conn)
        })
        .await
    }

    /// Watches of this store's file not yet ended, from every store of the process.
    #[cfg(test)]
    fn live_watches(&self) -> usize {
        self.hub.watch_count()
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn max_txn_ops(&self) -> usize {
        // One SQLite transaction takes any number of statements.
        usize::MAX
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.read(|conn| Ok(db::revisions(conn)?.0)).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |conn| db::get(conn, &key)).await
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        self.read(move |conn| db::list(conn, &prefix, revision))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        // The write transaction expires due leases itself, under the same lock.
        let compactor = Arc::clone(&self.compactor);
        self.write(move |conn| {
            let result = txn::txn(conn, &txn, db::now_ms()?)?;
            let mut compactor = compactor.lock().unwrap_or_else(PoisonError::into_inner);
            compactor::maybe_compact(conn, &mut compactor, Some(result.revision));
            Ok(result)
        })
        .await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let next = self
            .call(move |conn| {
                let (current, compacted) = db::revisions(conn)?;
                let next = if from_revision <= 0 {
                    current + 1
                } else {
                    from_revision
                };
                // etcd accepts a watch from the compaction revision itself, only older fails.
                if next < compacted {
                    return Err(StoreError::Compacted {
                        requested: next,
                        compacted,
                    });
                }
                Ok(next)
            })
            .await?;
        let hub = Arc::clone(&self.hub);
        let prefix = prefix.to_owned();
        let stream = tokio::task::spawn_blocking(move || hub.register(&prefix, next))
            .await
            .map_err(|e| StoreError::Backend(format!("SQLite worker thread failed: {e}")))??;
        Ok(Box::pin(stream))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        // etcd counts TTLs in whole seconds: round up, and never grant less than one.
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let secs = secs.max(1);
        if secs > MAX_LEASE_TTL_SECS {
            return Err(StoreError::Backend(format!(
                "lease TTL of {secs} s is too large (etcd's limit is {MAX_LEASE_TTL_SECS} s)"
            )));
        }
        let ttl_secs = i64::try_from(secs)
            .map_err(|_| StoreError::Backend("lease TTL out of range".into()))?;
        let id = self
            .write(move |conn| lease::grant_lease(conn, ttl_secs, db::now_ms()?))
            .await?;
        Ok(Lease {
            id,
            ttl: Duration::from_secs(secs),
        })
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        // Renewals come every few seconds from every long-running process, writes or not:
        // the occasion to compact a quiet store by age.
        let compactor = Arc::clone(&self.compactor);
        let secs = self
            .write(move |conn| {
                let secs = lease::keep_alive(conn, id, db::now_ms()?)?;
                let mut compactor = compactor.lock().unwrap_or_else(PoisonError::into_inner);
                compactor::maybe_compact(conn, &mut compactor, None);
                Ok(secs)
            })
            .await?;
        Ok(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.write(move |conn| lease::revoke_lease(conn, id, db::now_ms()?))
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // An explicit compaction is someone asking for old values to be gone now.
        self.call(move |conn| {
            db::compact(conn, revision)?;
            compactor::scrub(conn, true, context::BUSY_TIMEOUT)
        })
        .await
    }
}
