//! A node's removal, as a finalizer-style sequence recorded in its status.
//!
//! `omtd delete node X` does not delete the record: it sets the annotation
//! [`DELETING_ANNOTATION`]` = "true"`. The node controller then walks the phases below,
//! one at a time, each confirmed by what the hosts and Mesos report, and records the phase
//! in the node's status (`status.removal`). The other controllers read the recorded phase
//! and take their part out of the plans at the right moment. When the last phase is
//! confirmed the node controller lists the node in [`crate::Intent::release`] and the
//! runtime deletes the record (its plan slices go with it). Removing the annotation before
//! that cancels the removal: everything comes back.

use serde::{Deserialize, Serialize};

use omtd_crds::Status;

/// Set to `"true"` by the CLI to ask for a node's removal.
pub const DELETING_ANNOTATION: &str = "omtd/deleting";

/// A node's own drain timeout (humantime: `30m`, `2h`, `0s`), overriding the operator's
/// `--drain-timeout`. `0s` (what `omtd delete node X --now` sets) means "do not wait for
/// the running tasks: kill them now".
pub const DRAIN_TIMEOUT_ANNOTATION: &str = "omtd/drain-timeout";

/// Key of the removal record in a node's `status`.
pub const STATUS_KEY: &str = "removal";

/// Phases, in order. A controller acts on "at or past" a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RemovalPhase {
    /// Mesos maintenance: the machine is scheduled (DRAINING, with an unavailability
    /// window) while tasks still run on its agent, then marked down once none does, the
    /// drain timeout passed, or Mesos already has it down (runbook: the node "is not
    /// connected anymore"). Marking down kills what still runs, so it waits.
    Draining,
    /// Its Mesos agent and node exporter are stopped, cAdvisor removed, the database share
    /// unmounted (runbook: "stop the exporter service").
    Stopping,
    /// Its principal leaves the master's credentials (master restarted), its export leaves
    /// `/etc/exports`, its targets leave Prometheus (runbook: remove IP, principal, secret).
    Cleanup,
    /// All of it confirmed: the record may go.
    Released,
}

impl RemovalPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalPhase::Draining => "Draining",
            RemovalPhase::Stopping => "Stopping",
            RemovalPhase::Cleanup => "Cleanup",
            RemovalPhase::Released => "Released",
        }
    }

    /// The phase recorded in a node's status.
    pub fn from_status(status: &Status) -> Option<RemovalPhase> {
        let record: NodeRemovalRecord =
            serde_json::from_value(status.extra.get(STATUS_KEY)?.clone()).ok()?;
        Some(record.phase)
    }
}

/// What the node's status holds under `removal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRemovalRecord {
    pub phase: RemovalPhase,
    /// RFC 3339 time the phase began.
    pub since: String,
    /// What the phase waits for, for `omtd describe`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub waiting_for: String,
    /// Draining: RFC 3339 time after which the machine goes down even with tasks on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Draining: how many tasks still ran on the agent at the last look.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub running_tasks: usize,
    /// Draining: a few of them, `name (id)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// Draining: why the machine was asked down, once it was (no task left, deadline
    /// passed, `--now`). Kept so the ask is not taken back and its notice comes once.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub down_because: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl NodeRemovalRecord {
    pub fn from_status(status: &Status) -> Option<NodeRemovalRecord> {
        serde_json::from_value(status.extra.get(STATUS_KEY)?.clone()).ok()
    }
}

/// The restart token put on a retired node's stopped services: seeing it reported back
/// tells the node controller the agent applied the stop (a report of "converged" alone
/// might predate the stop).
pub const RETIRE_TOKEN: &str = "omtd-retire";
