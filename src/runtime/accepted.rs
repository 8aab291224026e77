//! The `accepted` controller: sets each Node's `Accepted` condition from validation and
//! reference checks (the decision itself is the pure `omtd_controllers::accepted`).
//!
//! Whole-state validation costs O(objects), and a spec change can change any node's
//! verdict (a credential deleted, a second manager). So the verdicts of a state are
//! computed once per spec revision and shared ([`VerdictCache`]), and a spec change wakes
//! only the nodes whose stored condition the new verdicts would change (and the changed
//! node), not every node: at 1,000 nodes, waking all of them, each validating the whole
//! state, cost seconds per change.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use omtd_controllers::accepted::{decide_with, Verdicts};
use omtd_crds::{Condition, ConditionStatus, Kind, ObjectKey};

use super::controller::{
    Controller, EventNote, EventType, Outcome, Reconciled, StatusParts, WorkKey,
};
use super::error::ReconcileError;
use super::snapshot::{Changed, Snapshot};
use crate::store::Revision;

#[derive(Default)]
pub struct AcceptedController {
    verdicts: VerdictCache,
    /// The nodes whose stored condition the verdicts would change, for the last snapshot
    /// asked about: a watched batch of many spec changes (an apply) is one snapshot, and
    /// the list is the same for each of its keys.
    stale: Mutex<Option<(Revision, Arc<Vec<WorkKey>>)>>,
}

/// The verdicts of the latest specs seen, under their `specs_revision`.
#[derive(Default)]
struct VerdictCache {
    latest: Mutex<Option<(Revision, Arc<Verdicts>)>>,
}

impl VerdictCache {
    /// The verdicts for `snapshot`'s specs: cached, or computed (once per spec revision).
    fn get(&self, snapshot: &Snapshot) -> Arc<Verdicts> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((rev, v)) = latest.as_ref() {
            // Revision 0: a state not read from a store, nothing to key it by.
            if *rev == snapshot.specs_revision && snapshot.specs_revision != 0 {
                return Arc::clone(v);
            }
        }
        let verdicts = Arc::new(Verdicts::of(&snapshot.all_objects()));
        // Keep the newest: a reconcile on an older snapshot must not evict it.
        if latest
            .as_ref()
            .is_none_or(|(rev, _)| *rev < snapshot.specs_revision)
        {
            *latest = Some((snapshot.specs_revision, Arc::clone(&verdicts)));
        }
        verdicts
    }
}

impl AcceptedController {
    pub fn new() -> AcceptedController {
        AcceptedController::default()
    }

    /// The keys of the nodes whose stored condition the verdicts of `snapshot` would
    /// change (computed once per snapshot revision).
    fn stale(&self, snapshot: &Snapshot) -> Arc<Vec<WorkKey>> {
        let mut stale = self.stale.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((rev, keys)) = stale.as_ref() {
            if *rev == snapshot.revision && snapshot.revision != 0 {
                return Arc::clone(keys);
            }
        }
        let verdicts = self.verdicts.get(snapshot);
        let keys: Arc<Vec<WorkKey>> = Arc::new(
            snapshot
                .of_kind(Kind::Node)
                .filter(|s| verdicts.would_change(&s.object))
                .map(|s| format!("{PREFIX}{}", s.object.name()))
                .collect(),
        );
        *stale = Some((snapshot.revision, Arc::clone(&keys)));
        keys
    }
}

const PREFIX: &str = "node/";

/// The condition a Node whose spec record does not parse carries while its last good
/// version stays in force; dropped once the record reads again.
pub const UNREADABLE: &str = "Unreadable";

impl Controller for AcceptedController {
    fn name(&self) -> &'static str {
        "accepted"
    }

    fn all_keys(&self, snapshot: &Snapshot) -> Vec<WorkKey> {
        snapshot
            .of_kind(Kind::Node)
            .map(|s| format!("{PREFIX}{}", s.object.name()))
            .collect()
    }

    fn keys_for(&self, changed: &Changed, snapshot: &Snapshot) -> Vec<WorkKey> {
        match changed {
            // Any spec can change whether a node's references resolve or a cluster-wide rule
            // (one manager, unique principals) holds: every node whose stored condition the
            // new verdicts would change, and the changed node itself.
            Changed::Spec(id) => {
                let mut keys = Vec::clone(&self.stale(snapshot));
                if id.kind == Kind::Node {
                    // The changed node itself (a deleted one finds nothing and writes
                    // nothing); the queue folds a repeat.
                    keys.push(format!("{PREFIX}{}", id.name));
                }
                keys
            }
            // Someone rewrote a node's status: put the condition back if it was touched.
            Changed::Status(id) if id.kind == Kind::Node => vec![format!("{PREFIX}{}", id.name)],
            _ => Vec::new(),
        }
    }

    fn keys_for_batch(&self, batch: &[Changed], snapshot: &Snapshot) -> Vec<WorkKey> {
        // The stale nodes once for the whole burst (at a cold start that is every node),
        // with the nodes the burst itself names.
        let mut keys: BTreeSet<WorkKey> = BTreeSet::new();
        let mut spec_changed = false;
        for changed in batch {
            match changed {
                Changed::Spec(id) => {
                    spec_changed = true;
                    if id.kind == Kind::Node {
                        keys.insert(format!("{PREFIX}{}", id.name));
                    }
                }
                Changed::Status(id) if id.kind == Kind::Node => {
                    keys.insert(format!("{PREFIX}{}", id.name));
                }
                _ => {}
            }
        }
        if spec_changed {
            keys.extend(self.stale(snapshot).iter().cloned());
        }
        keys.into_iter().collect()
    }

    fn reconcile(&self, key: &str, snapshot: &Snapshot, now: SystemTime) -> Reconciled {
        let name = key
            .strip_prefix(PREFIX)
            .ok_or_else(|| ReconcileError::UnknownKey {
                controller: self.name(),
                key: key.to_owned(),
                expected: "node/<name>",
            })?;
        let id = ObjectKey {
            kind: Kind::Node,
            name: name.to_owned(),
        };
        let now = humantime::format_rfc3339_seconds(now).to_string();
        let unreadable = unreadable_event(&id, snapshot);
        let Some(node) = snapshot.objects.get(&id) else {
            // Deleted: nothing to write. Unreadable with no last good version: only say so
            // (the writer holds the node's slices meanwhile).
            return Ok(Outcome {
                events: unreadable.into_iter().collect(),
                ..Outcome::default()
            });
        };
        let verdicts = self.verdicts.get(snapshot);
        let mut decision = decide_with(&node.object, verdicts.errors(&id), &now);
        if let Some(note) = &unreadable {
            decision
                .status
                .conditions
                .push(unreadable_condition(&node.object, note, &now));
        }
        let events = unreadable
            .into_iter()
            .chain(decision.transition.into_iter().map(|t| EventNote {
                object: id.to_string(),
                type_: if t.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: t.reason,
                message: t.message,
            }))
            .collect();
        Ok(Outcome {
            statuses: vec![(id, decision.status)],
            // The node controller writes `Ready` and `removal` on the same status.
            owned: vec![StatusParts::new(
                Kind::Node,
                &[omtd_controllers::accepted::ACCEPTED, UNREADABLE],
                &[],
            )],
            events,
            ..Outcome::default()
        })
    }
}

/// A Warning naming `id`'s spec key and why it does not parse, when it does not: never the
/// value itself (a hand-edited record may hold a secret).
fn unreadable_event(id: &ObjectKey, snapshot: &Snapshot) -> Option<EventNote> {
    // The snapshot's unreadable keys are all under this cluster's prefix, so the suffix
    // names the key without the controller knowing the prefix.
    let suffix = format!("/spec/{}/{}", id.kind.lower(), id.name);
    let (key, error) = snapshot
        .unreadable
        .iter()
        .find(|(key, _)| key.ends_with(&suffix))?;
    let held = if snapshot.objects.contains_key(id) {
        "its last good version stays in force"
    } else {
        "nothing of it is removed (its plan slices are held)"
    };
    Some(EventNote {
        object: id.to_string(),
        type_: EventType::Warning,
        reason: UNREADABLE.to_owned(),
        message: format!("{key} cannot be parsed ({error}); {held} until it reads again"),
    })
}

/// `Unreadable=True` with the event's message, its transition time kept while it holds.
fn unreadable_condition(object: &omtd_crds::Object, note: &EventNote, now: &str) -> Condition {
    let since = object
        .status()
        .and_then(|s| s.condition(UNREADABLE))
        .filter(|c| c.status == ConditionStatus::True)
        .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
    Condition {
        type_: UNREADABLE.to_owned(),
        status: ConditionStatus::True,
        reason: "ParseError".to_owned(),
        message: note.message.clone(),
        last_transition_time: since,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use omtd_crds::{Kind, ObjectKey};

    use super::AcceptedController;
    use crate::resources::Keys;
    use crate::runtime::controller::Controller;
    use crate::runtime::snapshot::{Changed, Snapshot};
    use crate::store::KeyValue;

    fn node(i: usize) -> String {
        format!(
            r#"{{"apiVersion":"omtd/v1","kind":"Node","metadata":{{"name":"w{i}","generation":1}},"spec":{{"address":"10.0.0.{i}","roles":["worker"]}}}}"#
        )
    }

    /// Nodes w0..w5 stored, none with a status yet: every one is stale.
    fn snapshot(keys: &Keys) -> Snapshot {
        let kvs = (0..6)
            .map(|i| KeyValue {
                key: keys.spec(Kind::Node, &format!("w{i}")),
                value: node(i).into_bytes(),
                create_revision: 2 + i as i64,
                mod_revision: 2 + i as i64,
                version: 1,
                lease: None,
            })
            .collect();
        Snapshot::from_list(keys, kvs, 10, &Snapshot::default())
    }

    fn spec(name: &str) -> Changed {
        Changed::Spec(ObjectKey {
            kind: Kind::Node,
            name: name.into(),
        })
    }

    fn status(name: &str) -> Changed {
        Changed::Status(ObjectKey {
            kind: Kind::Node,
            name: name.into(),
        })
    }

    /// A burst's keys, computed once for the burst, are the keys its changes ask for one
    /// by one, each once: no node the per-change answer wakes is missed.
    #[test]
    fn a_burst_wakes_what_its_changes_wake_one_by_one() {
        let keys = Keys::for_cluster("t");
        let snap = snapshot(&keys);
        let cases: Vec<(&str, Vec<Changed>)> = vec![
            ("one spec", vec![spec("w1")]),
            ("specs", vec![spec("w1"), spec("w2"), spec("gone")]),
            (
                "statuses only",
                vec![status("w3"), status("w3"), status("w4")],
            ),
            ("mixed", vec![status("w4"), spec("w0"), status("nobody")]),
            ("nothing it reads", vec![Changed::Leader, Changed::Event]),
            ("empty", vec![]),
        ];
        for (name, batch) in cases {
            let c = AcceptedController::new();
            let burst = c.keys_for_batch(&batch, &snap);
            let once: BTreeSet<&String> = burst.iter().collect();
            assert_eq!(once.len(), burst.len(), "{name}: a key twice in {burst:?}");
            let one_by_one: BTreeSet<String> =
                batch.iter().flat_map(|ch| c.keys_for(ch, &snap)).collect();
            let burst: BTreeSet<String> = burst.into_iter().collect();
            assert_eq!(burst, one_by_one, "{name}");
        }
        // The stale list is every node here: a spec change wakes all six.
        let all = AcceptedController::new().keys_for_batch(&[spec("w1")], &snap);
        assert_eq!(all.len(), 6, "{all:?}");
    }
}
