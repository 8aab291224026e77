//! The reconcile contract: a controller is a value that turns (work key, snapshot, time)
//! into an [`Outcome`]. It does no I/O; the runtime writes what the outcome asks for, and
//! only what differs from the store.

use std::time::{Duration, SystemTime};

use omtd_crds::plan::PlanSlice;
use omtd_crds::{Kind, ObjectKey, Status};

use super::error::ReconcileError;
pub use super::event_record::{EventNote, EventType};
use super::snapshot::{Changed, Snapshot};

/// What a controller reconciles: one object (`node/node1.omtd`), or a controller-wide key
/// (`cluster`) for controllers that look at everything at once.
pub type WorkKey = String;

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
    /// The parts of shared statuses this controller owns, per kind. A status of a kind
    /// listed here is merged into the newest stored one (only these conditions and keys
    /// replaced), so controllers sharing a status never undo each other's writes; a kind
    /// not listed is written whole.
    pub owned: Vec<StatusParts>,
    /// Objects to delete, spec and status (a finished finalizer-style removal). Refused
    /// if the spec changed since the reconcile read it (the removal may have been
    /// cancelled): the reconcile then runs again.
    pub delete: Vec<ObjectKey>,
    pub events: Vec<EventNote>,
    /// Look at this key again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// Related keys to run next.
    pub wake: Vec<Wake>,
}

/// The conditions and `status` keys of one kind's status that one controller owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusParts {
    pub kind: Kind,
    pub conditions: Vec<String>,
    pub extra: Vec<String>,
}

impl StatusParts {
    pub fn new(kind: Kind, conditions: &[&str], extra: &[&str]) -> StatusParts {
        StatusParts {
            kind,
            conditions: conditions.iter().map(|c| (*c).to_owned()).collect(),
            extra: extra.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    /// Whether [`StatusParts::merge`] of `ours` into `stored` gives `stored` back, without
    /// building it: every pass of a cluster-wide controller hands back a status per object,
    /// nearly all as stored.
    pub fn unchanged(&self, stored: &Status, ours: &Status) -> bool {
        if ours.observed_generation > stored.observed_generation {
            return false;
        }
        let conditions = self.conditions.iter().all(|t| {
            let mut theirs = stored.conditions.iter().filter(|c| &c.type_ == t);
            let mut mine = ours.conditions.iter().filter(|c| &c.type_ == t);
            // A type twice in either is left to the full merge (false is always safe: the
            // writer then compares bytes).
            theirs.next() == mine.next() && theirs.next().is_none() && mine.next().is_none()
        });
        conditions
            && self
                .extra
                .iter()
                .all(|k| stored.extra.get(k) == ours.extra.get(k))
    }

    /// `stored` with this controller's parts taken from `ours`: owned conditions replaced
    /// in place (or appended, or dropped when `ours` no longer has them), owned keys
    /// likewise; everything else as stored. `observedGeneration` never moves back.
    pub fn merge(&self, stored: &Status, ours: &Status) -> Status {
        let owns = |t: &str| self.conditions.iter().any(|c| c == t);
        let mut merged = stored.clone();
        merged
            .conditions
            .retain(|c| !owns(&c.type_) || ours.condition(&c.type_).is_some());
        for c in ours.conditions.iter().filter(|c| owns(&c.type_)) {
            match merged.conditions.iter_mut().find(|m| m.type_ == c.type_) {
                Some(m) => *m = c.clone(),
                None => merged.conditions.push(c.clone()),
            }
        }
        for key in &self.extra {
            match ours.extra.get(key) {
                Some(v) => {
                    merged.extra.insert(key.clone(), v.clone());
                }
                None => {
                    merged.extra.remove(key);
                }
            }
        }
        merged.observed_generation = stored.observed_generation.max(ours.observed_generation);
        merged
    }
}

/// What a reconcile returns: the outcome to write, or why there is none.
pub type Reconciled = Result<Outcome, ReconcileError>;

/// A controller. Implementations must be pure: same key and snapshot, same outcome.
pub trait Controller: Send + Sync + 'static {
    /// Short name: metric label, plan slice owner (`plans/<node>/<name>`), log field.
    fn name(&self) -> &'static str;

    /// Whether this controller's slices are part of every node's plan: the runtime then
    /// records its decision for each node in the node's plan manifest, and an agent's plan
    /// is complete only once every such controller has decided
    /// (`omtd_crds::plan_manifest`).
    fn plans_nodes(&self) -> bool {
        false
    }

    /// Every key to reconcile when this process becomes the leader (a full resync).
    fn all_keys(&self, snapshot: &Snapshot) -> Vec<WorkKey>;

    /// Keys to reconcile because `changed` changed (the snapshot already holds the change).
    fn keys_for(&self, changed: &Changed, snapshot: &Snapshot) -> Vec<WorkKey>;

    /// Keys to reconcile because everything in `batch` changed (one watched burst, one
    /// snapshot holding all of it), each once. A controller whose answer for one change is
    /// a cluster-wide list overrides this to compute that list once per burst: asked per
    /// change, a 1,000-spec apply at 10,000 nodes is ten million queued keys.
    fn keys_for_batch(&self, batch: &[Changed], snapshot: &Snapshot) -> Vec<WorkKey> {
        let mut seen = std::collections::HashSet::new();
        batch
            .iter()
            .flat_map(|changed| self.keys_for(changed, snapshot))
            .filter(|key| seen.insert(key.clone()))
            .collect()
    }

    /// Decides what `key` needs. `now` is for timestamps in statuses; controllers take the
    /// time from here rather than the clock so that they stay pure and testable.
    fn reconcile(&self, key: &str, snapshot: &Snapshot, now: SystemTime) -> Reconciled;
}

#[cfg(test)]
mod tests {
    use super::*;
    use omtd_crds::{Condition, ConditionStatus};

    fn cond(t: &str, reason: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: ConditionStatus::True,
            reason: reason.into(),
            message: String::new(),
            last_transition_time: String::new(),
        }
    }

    #[test]
    fn merge_replaces_only_the_owned_parts() {
        let parts = StatusParts::new(Kind::Node, &["Ready"], &["removal"]);
        let stored = Status {
            observed_generation: 3,
            conditions: vec![cond("Accepted", "Valid"), cond("Ready", "Old")],
            extra: [
                (
                    "removal".to_owned(),
                    serde_json::json!({"phase": "Draining"}),
                ),
                ("other".to_owned(), serde_json::json!(1)),
            ]
            .into_iter()
            .collect(),
        };
        // Computed from an older status: no Accepted, no removal, an older generation.
        let ours = Status {
            observed_generation: 2,
            conditions: vec![cond("Accepted", "Stale"), cond("Ready", "New")],
            extra: Default::default(),
        };
        let merged = parts.merge(&stored, &ours);
        assert_eq!(
            merged.conditions,
            vec![cond("Accepted", "Valid"), cond("Ready", "New")]
        );
        assert!(!merged.extra.contains_key("removal"));
        assert_eq!(merged.extra.get("other"), Some(&serde_json::json!(1)));
        assert_eq!(merged.observed_generation, 3);
        // Nothing of ours differs: the stored status comes back as it was.
        assert_eq!(parts.merge(&merged, &merged), merged);
        assert!(parts.unchanged(&merged, &merged));
        assert!(!parts.unchanged(&stored, &ours), "Ready differs");
        let mut older = merged.clone();
        older.observed_generation = 2;
        assert!(
            parts.unchanged(&merged, &older),
            "generation never moves back"
        );
        assert!(
            !parts.unchanged(&older, &merged),
            "generation moves forward"
        );
        let dropped = parts.merge(&stored, &Status::default());
        assert_eq!(dropped.conditions, vec![cond("Accepted", "Valid")]);
    }
}
