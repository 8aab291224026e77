//! Applies too big for one transaction, still all or nothing for everyone who reads.
//!
//! etcd refuses a transaction with more than `--max-txn-ops` compares or operations (128
//! by default), and a real cluster's spec is far bigger. An apply that does not fit is
//! *staged*:
//! 1. **lock**: one transaction creates `apply/lock` (who, when, how many changes) if no
//!    other apply holds it, and `apply/holder` on a lease the applier keeps alive;
//! 2. **chunks**: each transaction checks the lock is still this apply's (its create
//!    revision) and every object's revision as read, writes its share of the objects, and
//!    records which keys it wrote under `apply/progress/<n>` (put first, so a watcher learns
//!    the keys before their new values);
//! 3. **release**: one transaction deletes the lock, the holder and the progress keys.
//!
//! Readers honour the lock: while it exists, every key a chunk wrote reads as it was at
//! the revision before the lock ([`View`] for the CLI, the operator's reflector for the
//! controllers), so nobody acts on half an apply, and the whole apply appears at once with
//! the release. An apply whose holder is gone (its process died, or lost the store for
//! longer than the lease) is rolled back from that revision by the next apply
//! ([`recover`]): an interrupted apply leaves nothing behind.

mod recover;
mod view;
mod write;

pub use recover::{recover, Recovered};
pub use view::{overlay, Held, View};
pub use write::{commit, StagedWrite};

use serde::{Deserialize, Serialize};

use crate::store::{KeyValue, Revision, StoreError};

/// How long the applier's holder key outlives its last keep-alive: a dead applier's lock is
/// seen as interrupted this long after it died.
pub const HOLDER_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// The lock's value: enough to tell an operator who is applying and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyLock {
    /// Host and process of the applier.
    pub by: String,
    /// RFC 3339, the applier's clock.
    pub started: String,
    /// Objects the apply changes.
    pub changes: usize,
}

/// One chunk's record: the keys it put and deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub put: Vec<String>,
    #[serde(default)]
    pub delete: Vec<String>,
}

impl Progress {
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.put.iter().chain(&self.delete)
    }
}

/// Errors of a staged apply. Messages name keys and appliers, never values.
#[derive(Debug, thiserror::Error)]
pub enum StagedError {
    /// Another apply holds the lock and is alive.
    #[error(
        "another apply ({by}, started {started}) is writing {changes} changes; \
         try again when it has finished"
    )]
    Busy {
        by: String,
        started: String,
        changes: usize,
    },
    /// An object changed after it was read, or the lock was taken from this apply: what
    /// this apply wrote has been rolled back (or will be by the next apply); replan.
    #[error("another writer changed these objects while this one was being applied")]
    Conflict,
    /// An interrupted apply cannot be rolled back: the store no longer keeps the revision
    /// it started from. Its changes stay held from every reader.
    #[error(
        "an interrupted apply ({by}, started {started}) cannot be rolled back: the store has \
         compacted revision {base} it started from. Its changes stay hidden from the operator \
         until the lock {lock} is deleted (etcdctl del {lock}), which makes them visible as \
         written; check them with `omtd get` after that"
    )]
    Unrecoverable {
        by: String,
        started: String,
        base: Revision,
        lock: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lock as stored, with the revision readers fall back to.
#[derive(Debug, Clone)]
pub struct StoredLock {
    pub lock: ApplyLock,
    pub create_revision: Revision,
    /// The revision before the lock: what readers see of the keys the apply wrote.
    pub base: Revision,
}

impl StoredLock {
    /// An unreadable lock still holds (it exists: some apply is under way or was cut off);
    /// it only loses its description.
    pub fn from_kv(kv: &KeyValue) -> StoredLock {
        let lock = serde_json::from_slice(&kv.value).unwrap_or_else(|_| ApplyLock {
            by: "an unknown applier (its lock record does not parse)".into(),
            started: "at an unknown time".into(),
            changes: 0,
        });
        StoredLock {
            lock,
            create_revision: kv.create_revision,
            base: kv.create_revision - 1,
        }
    }
}

/// The keys a progress record names; one that does not parse names none (the reader then
/// holds every object: see [`Held::all_objects`]).
pub fn parse_progress(value: &[u8]) -> Option<Progress> {
    serde_json::from_slice(value).ok()
}
