//! The `Accepted` condition of a Node: whether its spec is valid and its references resolve
//! in the desired state as stored now.
//!
//! Apply refuses invalid states, so a Node is normally accepted; it stops being so when the
//! state around it changes under it (a credential deleted by another writer, a second
//! manager added by a GitOps pipeline that bypassed validation, an older omtd's record).
//! Pure: the caller passes the objects, the previous status and the time.

use std::collections::BTreeMap;

use omtd_crds::validate::validate_set;
use omtd_crds::{Condition, ConditionStatus, Kind, Object, ObjectKey, Severity, Status};

/// The condition type this controller owns.
pub const ACCEPTED: &str = "Accepted";

/// Reasons, CamelCase as Kubernetes writes them.
pub const REASON_VALID: &str = "Valid";
pub const REASON_INVALID: &str = "Invalid";

/// How many findings the condition message lists before summarising the rest.
const MAX_LISTED: usize = 3;

/// An event to record when the condition changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `true`: a warning (the node is no longer accepted).
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The status the node should have, and the event to record when it differs from before.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: Status,
    /// Set when the condition's status flipped (or was set for the first time).
    pub transition: Option<Transition>,
}

/// Decides the `Accepted` condition of `node` among `objects` (the whole desired state).
/// Returns `None` when the node is not in `objects` (deleted: nothing to write).
///
/// `now` is an RFC 3339 time; it lands in `lastTransitionTime` only when the condition's
/// status flips, so re-running on an unchanged state yields the same status byte for byte.
pub fn decide(node: &ObjectKey, objects: &[Object], now: &str) -> Option<Decision> {
    let object = objects.iter().find(|o| &o.key() == node)?;
    let errors = Verdicts::of(objects);
    Some(decide_with(object, errors.errors(node), now))
}

/// Every Node's validation errors in one desired state: what [`decide_with`] reads. The
/// whole-state validation costs O(objects), so a runtime computes this once per state and
/// decides every node from it, rather than validating the whole state once per node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    errors: BTreeMap<ObjectKey, Vec<String>>,
}

impl Verdicts {
    pub fn of(objects: &[Object]) -> Verdicts {
        let mut errors: BTreeMap<ObjectKey, Vec<String>> = BTreeMap::new();
        for d in validate_set(objects)
            .into_iter()
            .filter(|d| d.severity == Severity::Error && d.object.kind == Kind::Node)
        {
            let line = match d.fix.is_empty() {
                true => format!("{}: {}", d.field, d.message),
                false => format!("{}: {} (fix: {})", d.field, d.message, d.fix),
            };
            errors.entry(d.object).or_default().push(line);
        }
        Verdicts { errors }
    }

    /// The node's errors, in validation order (none: it is valid).
    pub fn errors(&self, node: &ObjectKey) -> &[String] {
        self.errors.get(node).map_or(&[], Vec::as_slice)
    }

    /// Whether deciding `node` (with its stored status) would change that status: its
    /// `Accepted` condition or its observed generation differs from what `errors` make it.
    /// Cheap (no allocation), so a runtime can ask it of every node after each change.
    pub fn would_change(&self, node: &Object) -> bool {
        let errors = self.errors(&node.key());
        let Some(status) = node.status() else {
            return true;
        };
        if status.observed_generation != node.meta().generation {
            return true;
        }
        let Some(c) = status.condition(ACCEPTED) else {
            return true;
        };
        let (want_status, want_reason) = if errors.is_empty() {
            (ConditionStatus::True, REASON_VALID)
        } else {
            (ConditionStatus::False, REASON_INVALID)
        };
        let message_differs = if errors.is_empty() {
            c.message != VALID_MESSAGE
        } else {
            c.message != message(errors)
        };
        c.status != want_status || c.reason != want_reason || message_differs
    }
}

/// The condition message for a node with `errors`.
fn message(errors: &[String]) -> String {
    if errors.is_empty() {
        return VALID_MESSAGE.to_owned();
    }
    let mut message = errors
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > MAX_LISTED {
        message.push_str(&format!("; and {} more", errors.len() - MAX_LISTED));
    }
    message
}

const VALID_MESSAGE: &str = "spec is valid and every reference resolves";

/// Decides the `Accepted` condition of `object` (a Node, with its stored status) from its
/// validation `errors` in the whole state (see [`Verdicts`]).
pub fn decide_with(object: &Object, errors: &[String], now: &str) -> Decision {
    let (status, reason) = if errors.is_empty() {
        (ConditionStatus::True, REASON_VALID)
    } else {
        (ConditionStatus::False, REASON_INVALID)
    };
    let message = message(errors);

    let previous = object.status().cloned().unwrap_or_default();
    let old = previous.condition(ACCEPTED);
    let flipped = old.is_none_or(|c| c.status != status);
    let last_transition_time = match old {
        Some(c) if !flipped && !c.last_transition_time.is_empty() => c.last_transition_time.clone(),
        _ => now.to_owned(),
    };
    let condition = Condition {
        type_: ACCEPTED.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.clone(),
        last_transition_time,
    };
    let mut next = previous;
    next.observed_generation = object.meta().generation;
    match next.conditions.iter_mut().find(|c| c.type_ == ACCEPTED) {
        Some(c) => *c = condition,
        None => next.conditions.push(condition),
    }
    let transition = flipped.then(|| Transition {
        warning: status != ConditionStatus::True,
        reason: if status == ConditionStatus::True {
            "Accepted".to_owned()
        } else {
            "Rejected".to_owned()
        },
        message,
    });
    Decision {
        status: next,
        transition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omtd_crds::Kind;

    fn objects(yaml: &str) -> Vec<Object> {
        omtd_crds::manifest::parse(yaml).unwrap_or_default()
    }

    const MANAGER: &str = "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: m, generation: 3}\nspec: {address: 10.0.0.1, roles: [manager]}\n";
    const WORKER: &str = "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: w}\nspec: {address: 10.0.0.2, roles: [worker], credential: w}\n";
    const CRED: &str = "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: w}\nspec: {principal: w, secret: {value: hunter2}, use: mesos-agent}\n";

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            kind: Kind::Node,
            name: name.into(),
        }
    }

    #[test]
    fn valid_node_is_accepted_with_its_generation() {
        let objs = objects(MANAGER);
        let d = decide(&key("m"), &objs, "2024-01-01T00:00:00Z").unwrap();
        let c = d.status.condition(ACCEPTED).unwrap();
        assert_eq!(c.status, ConditionStatus::True);
        assert_eq!(c.last_transition_time, "2024-01-01T00:00:00Z");
        assert_eq!(d.status.observed_generation, 3);
        assert!(d.transition.is_some_and(|t| !t.warning));
    }

    #[test]
    fn missing_credential_rejects_without_leaking_secrets() {
        let objs = objects(&format!("{MANAGER}---\n{WORKER}"));
        let d = decide(&key("w"), &objs, "t1").unwrap();
        let c = d.status.condition(ACCEPTED).unwrap();
        assert_eq!(c.status, ConditionStatus::False);
        assert!(c.message.contains("credential"), "{}", c.message);
        assert!(d.transition.is_some_and(|t| t.warning));
        let objs = objects(&format!("{MANAGER}---\n{WORKER}---\n{CRED}"));
        let d = decide(&key("w"), &objs, "t1").unwrap();
        assert!(!format!("{d:?}").contains("hunter2"));
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut objs = objects(MANAGER);
        let first = decide(&key("m"), &objs, "t1").unwrap();
        objs[0].set_status(Some(first.status.clone()));
        let again = decide(&key("m"), &objs, "t2").unwrap();
        assert_eq!(again.status, first.status, "same state, same bytes");
        assert!(again.transition.is_none());
    }

    #[test]
    fn would_change_tells_exactly_when_a_decision_writes() {
        let mut objs = objects(&format!("{MANAGER}---\n{WORKER}"));
        let w = key("w");
        let rejected = Verdicts::of(&objs);
        assert!(rejected.would_change(&objs[1]), "no status yet");
        let first = decide_with(&objs[1], rejected.errors(&w), "t1");
        objs[1].set_status(Some(first.status));
        assert!(!rejected.would_change(&objs[1]), "stored as decided");
        // The credential arrives: the verdict flips, so the decision would write.
        objs.extend(objects(CRED));
        let accepted = Verdicts::of(&objs);
        assert!(accepted.errors(&w).is_empty());
        assert!(accepted.would_change(&objs[1]));
        let second = decide_with(&objs[1], accepted.errors(&w), "t2");
        objs[1].set_status(Some(second.status));
        assert!(!accepted.would_change(&objs[1]));
    }

    #[test]
    fn deleted_node_yields_nothing() {
        assert!(decide(&key("gone"), &objects(MANAGER), "t").is_none());
    }
}
