//! The state store: a revisioned key-value store with etcd v3's semantics.
//!
//! One trait ([`Store`]), several backends (etcd, embedded SQLite), and one conformance test
//! suite (`tests/store_conformance.rs`) that every backend must pass. Everything above this
//! module (CLI, runtime, agent) talks only to the trait.
//!
//! Semantics follow etcd v3 so that the SQLite backend is a drop-in for one machine:
//! - every successful write transaction bumps the store's revision by exactly one; all the
//!   puts and deletes in it carry that revision as their `mod_revision`;
//! - `create_revision` is the revision at which the key was (last) created, `version` counts
//!   the puts since then (1 after creation); a delete resets both;
//! - a compare on `ModRevision == 0` means "the key does not exist";
//! - watches deliver every change with a revision greater than or equal to the start
//!   revision, in revision order, deletes included; a start revision below the
//!   compacted revision fails with [`StoreError::Compacted`], the caller relists.

pub mod etcd;
pub mod sealed;
pub mod sqlite;
mod url;

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;

pub use self::url::{StoreUrl, TlsFiles};

/// A store revision (etcd's `int64` header revision). 0 means "never written".
pub type Revision = i64;

/// A lease identifier. Keys attached to a lease are deleted when it expires or is revoked.
pub type LeaseId = i64;

/// Errors from any backend. Messages never contain values, only keys: values may be secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A watch or a read asked for history the store no longer keeps.
    #[error("revision {requested} has been compacted (oldest kept: {compacted}); relist and watch again")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// A read at a revision the store has not reached yet.
    #[error("revision {requested} is in the future (current: {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The lease does not exist (expired, revoked, or never granted).
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// The store could not be reached or answered with a transport error.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request for this identity (etcd auth: a role without that
    /// permission). Retrying does not help; the identity or its roles must change.
    #[error("permission denied: {0}")]
    Denied(String),
    /// The store URL or backend configuration is wrong.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// Anything else the backend reported.
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One key as stored, with etcd's revision bookkeeping.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

// Hand-written so that values (which may be secrets) never reach logs through `{:?}`.
impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .field("lease", &self.lease)
            .finish()
    }
}

/// The result of a prefix list: the keys (sorted by key) and the revision they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
}

/// What a compare in a transaction looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's mod revision; 0 when the key does not exist.
    ModRevision(Revision),
    /// The key's create revision; 0 when the key does not exist.
    CreateRevision(Revision),
    /// The key's version; 0 when the key does not exist.
    Version(i64),
    /// The key's value. A compare on a missing key's value always fails, `NotEqual` included
    /// (as in etcd).
    Value(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// The key's mod revision equals `rev` (use 0 for "the key does not exist").
    pub fn mod_revision(key: impl Into<String>, op: CompareOp, rev: Revision) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::ModRevision(rev),
        }
    }
    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Self::mod_revision(key, CompareOp::Equal, 0)
    }
    /// The key exists.
    pub fn present(key: impl Into<String>) -> Self {
        Self::mod_revision(key, CompareOp::Greater, 0)
    }
    /// The key's create revision equals `rev` (a fencing check: "I still hold this key").
    pub fn create_revision(key: impl Into<String>, op: CompareOp, rev: Revision) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::CreateRevision(rev),
        }
    }
    pub fn version(key: impl Into<String>, op: CompareOp, version: i64) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::Version(version),
        }
    }
    pub fn value(key: impl Into<String>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            op,
            target: CompareTarget::Value(value.into()),
        }
    }
}

/// A write inside a transaction.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    /// Deletes one key; deleting a missing key is not an error.
    Delete { key: String },
    /// Deletes every key that starts with the prefix.
    DeletePrefix { prefix: String },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }
    pub fn put_with_lease(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        }
    }
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        Op::DeletePrefix {
            prefix: prefix.into(),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value, lease } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value_len", &value.len())
                .field("lease", lease)
                .finish(),
            Op::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
            Op::DeletePrefix { prefix } => f
                .debug_struct("DeletePrefix")
                .field("prefix", prefix)
                .finish(),
        }
    }
}

/// An atomic compare-and-swap transaction: if every compare holds, apply `success`,
/// otherwise apply `failure` (usually empty). Either way it is one atomic step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }
    pub fn then(mut self, op: Op) -> Self {
        self.success.push(op);
        self
    }
    pub fn or_else(mut self, op: Op) -> Self {
        self.failure.push(op);
        self
    }
}

/// The outcome of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held (and so `success` ran).
    pub succeeded: bool,
    /// The store revision after the transaction. A transaction whose chosen branch wrote
    /// nothing (or only deleted missing keys) does not bump the revision, as in etcd.
    pub revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For a put: the key as written. For a delete: key, `mod_revision` = the revision of the
    /// delete, empty value, create_revision and version 0.
    pub kv: KeyValue,
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A stream of watch events in revision order. It ends with an `Err` when the watch cannot
/// go on (`Compacted`: relist; `Unavailable`: the store went away), and never ends otherwise.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// A lease as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    /// Time to live as granted (etcd rounds up to whole seconds; so do we).
    pub ttl: Duration,
}

/// The state store. Cheap to clone behind an `Arc`; all methods may be called concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name of the backend for logs and metrics ("etcd", "sqlite").
    fn backend(&self) -> &'static str;

    /// The most compares, and the most operations, one transaction may carry (etcd refuses
    /// more than its `--max-txn-ops`). Writers that need more split their work (an apply
    /// stages it: `resources::staged`).
    fn max_txn_ops(&self) -> usize;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// One key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix`, sorted by key, at `revision` (None: current).
    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult>;

    /// An atomic compare-and-swap transaction.
    async fn txn(&self, txn: Txn) -> Result<TxnResult>;

    /// Watch every key starting with `prefix`, from `from_revision` (inclusive).
    /// `from_revision` 0 means "from now on" (current revision + 1).
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream>;

    /// Grant a lease that expires `ttl` after the last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<Lease>;

    /// Refresh a lease once, returning its TTL; `LeaseNotFound` once it has expired.
    async fn keep_alive(&self, id: LeaseId) -> Result<Duration>;

    /// Revoke a lease now, deleting its keys.
    async fn revoke_lease(&self, id: LeaseId) -> Result<()>;

    /// Forget history older than `revision`: watches and lists before it fail with `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    // ---- conveniences built on the primitives (backends need not override them) ----

    /// Unconditional put; returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        Ok(self
            .txn(Txn::new().then(Op::put(key, value)))
            .await?
            .revision)
    }

    /// Unconditional delete of one key; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool> {
        let res = self
            .txn(Txn::new().when(Compare::present(key)).then(Op::delete(key)))
            .await?;
        Ok(res.succeeded)
    }
}

/// Open a store from its URL (`sqlite://PATH`, `etcd://h1:2379,h2:2379`, `etcd+tls://…`).
pub async fn open(url: &StoreUrl) -> Result<std::sync::Arc<dyn Store>> {
    match url {
        StoreUrl::Sqlite(path) => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(path)?)),
        StoreUrl::Etcd { endpoints, tls } => Ok(std::sync::Arc::new(
            etcd::EtcdStore::connect_with(endpoints, tls.as_ref()).await?,
        )),
    }
}

/// Like [`open`], but an SQLite file that does not exist is an error naming it rather than
/// a new empty store: for commands that only read.
pub async fn open_existing(url: &StoreUrl) -> Result<std::sync::Arc<dyn Store>> {
    match url {
        StoreUrl::Sqlite(path) => Ok(std::sync::Arc::new(sqlite::SqliteStore::open_existing(
            path,
        )?)),
        StoreUrl::Etcd { .. } => open(url).await,
    }
}
