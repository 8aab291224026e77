//! What a controller asks for, and helpers to build statuses that only move when something
//! changed (so an unchanged state yields the same bytes, and the runtime writes nothing).
//!
//! Which controller owns which conditions and `status` keys of which object is declared
//! beside each controller (`DECLARATION`, see [`crate::declaration`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use omtd_crds::plan::PlanSlice;
use omtd_crds::{Condition, ConditionStatus, ObjectKey, Status};

use crate::desired::Desired;

/// What a controller's `reconcile` returns.
pub type Reconciled = Result<Intent, crate::error::Error>;

/// The result of one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intent {
    /// This controller's slice per node. A node not in the map has no slice of this
    /// controller (the runtime deletes a stored one). `fencing_token` is left 0: the
    /// runtime sets it.
    pub slices: BTreeMap<String, PlanSlice>,
    /// Statuses to store, each the whole status (stored one with this controller's part
    /// replaced). Only objects that exist.
    pub statuses: BTreeMap<ObjectKey, Status>,
    pub events: Vec<Notice>,
    /// Objects whose removal is complete: the runtime deletes these records.
    pub release: Vec<ObjectKey>,
    /// How each worker should stand in Mesos maintenance (node controller only). The shell
    /// compares with `/master/maintenance/status` and posts only what differs.
    pub maintenance: Vec<MachineWish>,
    /// Look again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
}

impl Intent {
    /// Keeps the earliest requeue.
    pub fn requeue(&mut self, after: Duration) {
        let after = after.max(Duration::from_secs(1));
        self.requeue_after = Some(self.requeue_after.map_or(after, |r| r.min(after)));
    }
}

/// The slice of `controller` on `node` in `slices`, made empty if missing (for the
/// controllers that plan on some nodes only).
pub fn slice_of<'a>(
    slices: &'a mut BTreeMap<String, PlanSlice>,
    node: &str,
    controller: &str,
) -> &'a mut PlanSlice {
    slices.entry(node.to_owned()).or_insert_with(|| PlanSlice {
        controller: controller.to_owned(),
        ..Default::default()
    })
}

/// Normal or Warning, as in Kubernetes events: the one type for a controller's notice and
/// the stored event record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        })
    }
}

/// An event to record. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub object: ObjectKey,
    pub type_: EventType,
    /// CamelCase, e.g. `AgentLost`.
    pub reason: String,
    pub message: String,
}

/// A machine in Mesos maintenance terms (hostname and IP are the node's address: omtd
/// writes the address as the agent's hostname).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineWish {
    pub node: String,
    pub hostname: String,
    pub ip: String,
    pub mode: MachineMode,
    /// When the machine is to become unavailable (the drain deadline): the start of its
    /// maintenance window, which frameworks see in their inverse offers. `None`: now.
    pub unavailable_from: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MachineMode {
    /// In service: no maintenance scheduled (`/master/machine/up` if it was down).
    #[default]
    Up,
    /// Scheduled for maintenance from now (`/master/maintenance/schedule`: DRAINING, with
    /// an unavailability window) but not down: its running tasks go on. On a master that
    /// has it (>= 1.9) the agent is also deactivated so no new task lands there.
    Draining,
    /// Scheduled and marked down (`/master/machine/down`): Mesos kills every task still on
    /// it (TASK_LOST). Asked only once no task runs there or the drain timed out.
    Down,
}

/// A condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Cond {
        Cond {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn yes(type_: &'static str, reason: impl Into<String>, msg: impl Into<String>) -> Cond {
        Cond::new(type_, ConditionStatus::True, reason, msg)
    }
    pub fn no(type_: &'static str, reason: impl Into<String>, msg: impl Into<String>) -> Cond {
        Cond::new(type_, ConditionStatus::False, reason, msg)
    }
    pub fn unknown(type_: &'static str, reason: impl Into<String>, msg: impl Into<String>) -> Cond {
        Cond::new(type_, ConditionStatus::Unknown, reason, msg)
    }
}

/// Builds one object's new status from its stored one.
pub struct StatusEdit {
    key: ObjectKey,
    status: Status,
    now: SystemTime,
    /// Condition changes worth an event: (type, new condition).
    changes: Vec<Condition>,
}

impl StatusEdit {
    pub fn new(desired: &Desired, key: ObjectKey, now: SystemTime) -> StatusEdit {
        let mut status = desired.status(&key).cloned().unwrap_or_default();
        status.observed_generation = desired.generation(&key);
        StatusEdit {
            key,
            status,
            now,
            changes: Vec::new(),
        }
    }

    /// Sets a condition; `lastTransitionTime` moves only when its status flips.
    pub fn set(&mut self, c: Cond) -> &mut Self {
        let old = self.status.conditions.iter().find(|o| o.type_ == c.type_);
        let flipped = old.is_none_or(|o| o.status != c.status);
        let reason_changed = old.is_none_or(|o| o.reason != c.reason);
        let last_transition_time = match old {
            Some(o) if !flipped && !o.last_transition_time.is_empty() => {
                o.last_transition_time.clone()
            }
            _ => crate::time::format(self.now),
        };
        let new = Condition {
            type_: c.type_.to_owned(),
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_transition_time,
        };
        if flipped || reason_changed {
            self.changes.push(new.clone());
        }
        match self
            .status
            .conditions
            .iter_mut()
            .find(|o| o.type_ == c.type_)
        {
            Some(o) => *o = new,
            None => self.status.conditions.push(new),
        }
        self
    }

    /// Sets (or with `None`, removes) one of this controller's `status` keys.
    pub fn extra(&mut self, key: &str, value: Option<serde_json::Value>) -> &mut Self {
        match value {
            Some(v) => {
                self.status.extra.insert(key.to_owned(), v);
            }
            None => {
                self.status.extra.remove(key);
            }
        }
        self
    }

    /// The condition as it will be stored.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status.condition(type_)
    }

    /// Adds the status to `out`, with an event for every condition that flipped or changed
    /// reason (`warning_when` decides which statuses are warnings for each type).
    pub fn finish(self, out: &mut Intent, warning_when: impl Fn(&Condition) -> bool) {
        for c in &self.changes {
            out.events.push(Notice {
                object: self.key.clone(),
                type_: if warning_when(c) {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                message: c.message.clone(),
            });
        }
        out.statuses.insert(self.key, self.status);
    }
}

/// The usual rule: a condition that is not True is a warning.
pub fn not_true(c: &Condition) -> bool {
    c.status != ConditionStatus::True
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::node_key;
    use std::time::Duration;

    fn desired() -> Desired {
        let objs = omtd_crds::manifest::parse(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: n}\nspec: {address: 10.0.0.1}\n",
        )
        .unwrap_or_default();
        Desired::from_objects(&objs)
    }

    #[test]
    fn transition_time_and_events_move_only_on_change() {
        let mut d = desired();
        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut out = Intent::default();
        let mut e = StatusEdit::new(&d, node_key("n"), t1);
        e.set(Cond::no("Ready", "AgentLost", "gone"));
        e.finish(&mut out, not_true);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].type_, EventType::Warning);
        let stored = out.statuses.values().next().cloned();
        if let Some(n) = d.nodes.get_mut("n") {
            n.status = stored.clone();
        }
        let mut again = Intent::default();
        let mut e = StatusEdit::new(&d, node_key("n"), t1 + Duration::from_secs(60));
        e.set(Cond::no("Ready", "AgentLost", "gone"));
        e.finish(&mut again, not_true);
        assert!(again.events.is_empty());
        assert_eq!(again.statuses.values().next().cloned(), stored);
    }

    #[test]
    fn requeue_keeps_the_earliest() {
        let mut out = Intent::default();
        out.requeue(Duration::from_secs(30));
        out.requeue(Duration::from_secs(5));
        out.requeue(Duration::from_secs(60));
        assert_eq!(out.requeue_after, Some(Duration::from_secs(5)));
    }
}
