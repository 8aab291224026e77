//! The `accepted` controller: sets each Node's `Accepted` condition from validation and
//! reference checks (the decision itself is the pure `omtd_controllers::accepted`).

use std::time::SystemTime;

use omtd_controllers::accepted::decide;
use omtd_crds::{Kind, ObjectKey};

use super::controller::{
    Controller, EventNote, EventType, Outcome, ReconcileError, StatusParts, WorkKey,
};
use super::snapshot::{Changed, Snapshot};

pub struct AcceptedController;

const PREFIX: &str = "node/";

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
            // (one manager, unique principals) holds: look at every node again. Cheap: the
            // queue folds repeats, and an unchanged verdict writes nothing.
            Changed::Spec(id) => {
                let mut keys = self.all_keys(snapshot);
                if id.kind == Kind::Node {
                    // A deleted node is no longer in the snapshot; nothing to do for it.
                    keys.retain(|k| k != &format!("{PREFIX}{}", id.name));
                    keys.push(format!("{PREFIX}{}", id.name));
                }
                keys
            }
            // Someone rewrote a node's status: put the condition back if it was touched.
            Changed::Status(id) if id.kind == Kind::Node => vec![format!("{PREFIX}{}", id.name)],
            _ => Vec::new(),
        }
    }

    fn reconcile(
        &self,
        key: &str,
        snapshot: &Snapshot,
        now: SystemTime,
    ) -> Result<Outcome, ReconcileError> {
        let name = key
            .strip_prefix(PREFIX)
            .ok_or_else(|| ReconcileError::Failed(format!("{key:?} is not a node key")))?;
        let id = ObjectKey {
            kind: Kind::Node,
            name: name.to_owned(),
        };
        let now = humantime::format_rfc3339_seconds(now).to_string();
        let Some(decision) = decide(&id, &snapshot.all_objects(), &now) else {
            return Ok(Outcome::default());
        };
        let events = decision
            .transition
            .into_iter()
            .map(|t| EventNote {
                object: id.to_string(),
                type_: if t.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: t.reason,
                message: t.message,
            })
            .collect();
        Ok(Outcome {
            statuses: vec![(id, decision.status)],
            // The node controller writes `Ready` and `removal` on the same status.
            owned: vec![StatusParts::new(
                Kind::Node,
                &[omtd_controllers::accepted::ACCEPTED],
                &[],
            )],
            events,
            ..Outcome::default()
        })
    }
}
