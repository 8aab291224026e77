//! The controller runtime: what turns pure controllers into a self-healing daemon.
//!
//! ```text
//!  store ──list+watch──► reflector ──► cache (Snapshot) ──changed keys──► dispatch
//!                                                                            │
//!   fenced txn ◄── writer (only what differs) ◄── reconcile ◄── workers ◄── queue (dedup,
//!                                                                     backoff, requeue)
//! ```
//! Election decides which process runs the dispatch and workers; every write carries the
//! leader's fencing token. Metrics and the admin endpoints watch it all.

pub mod accepted;
pub mod admin;
mod apply_hold;
pub mod backoff;
pub mod config;
pub mod controller;
pub mod error;
pub mod event_record;
pub mod events;
pub mod leader;
pub mod manager;
pub mod metered;
pub mod metrics;
pub mod queue;
pub mod reflector;
pub mod shutdown;
pub mod snapshot;
pub mod writer;

pub use controller::{
    Controller, EventNote, EventType, Outcome, Reconciled, StatusParts, Wake, WorkKey,
};
pub use error::{ReconcileError, WriteError};
pub use manager::{Manager, Notifier, Running, RuntimeConfig};
pub use metrics::Metrics;
pub use snapshot::{Changed, Snapshot};
