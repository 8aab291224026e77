//! The reconcile contract: a controller is a value that turns (work key, snapshot, time)
//! into an [`Outcome`]. It does no I/O; the runtime writes what the outcome asks for, and
//! only what differs from the store.

use std::fmt;
use std::time::{Duration, SystemTime};

use omtd_crds::plan::PlanSlice;
use omtd_crds::{ObjectKey, Status};

use super::snapshot::{Changed, Snapshot};

/// What a controller reconciles: one object (`node/node1.omtd`), or a controller-wide key
/// (`cluster`) for controllers that look at everything at once.
pub type WorkKey = String;

/// Normal or Warning, as in Kubernetes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        })
    }
}

/// An event a reconcile wants recorded. Never put a secret in `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// `node/node1.omtd`.
    pub object: String,
    pub type_: EventType,
    /// CamelCase, e.g. `Rejected`.
    pub reason: String,
    pub message: String,
}

/// Wake another controller's key (or one of this controller's) after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub controller: String,
    pub key: WorkKey,
}

/// What a reconcile asks for. Empty means "all is as it should be".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Per node: the slice this controller wants under `plans/<node>/<controller>`, or
    /// `None` to remove its slice. The runtime fills in `controller` and `fencing_token`.
    pub plans: Vec<(String, Option<PlanSlice>)>,
    /// Statuses to store under `status/<kind>/<name>` (only for objects that exist).
    pub statuses: Vec<(ObjectKey, Status)>,
    pub events: Vec<EventNote>,
    /// Look at this key again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// Related keys to run next.
    pub wake: Vec<Wake>,
}

/// A failed reconcile: retried with per-key backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// Something the controller needs is not there yet or not readable; it says what.
    #[error("{0}")]
    NotReady(String),
    /// The desired state cannot be carried out as it stands.
    #[error("{0}")]
    Failed(String),
}

/// A controller. Implementations must be pure: same key and snapshot, same outcome.
pub trait Controller: Send + Sync + 'static {
    /// Short name: metric label, plan slice owner (`plans/<node>/<name>`), log field.
    fn name(&self) -> &'static str;

    /// Every key to reconcile when this process becomes the leader (a full resync).
    fn all_keys(&self, snapshot: &Snapshot) -> Vec<WorkKey>;

    /// Keys to reconcile because `changed` changed (the snapshot already holds the change).
    fn keys_for(&self, changed: &Changed, snapshot: &Snapshot) -> Vec<WorkKey>;

    /// Decides what `key` needs. `now` is for timestamps in statuses; controllers take the
    /// time from here rather than the clock so that they stay pure and testable.
    fn reconcile(
        &self,
        key: &str,
        snapshot: &Snapshot,
        now: SystemTime,
    ) -> Result<Outcome, ReconcileError>;
}
