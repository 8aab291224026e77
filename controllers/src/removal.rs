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

/// Key of the removal record in a node's `status`.
pub const STATUS_KEY: &str = "removal";

/// Phases, in order. A controller acts on "at or past" a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RemovalPhase {
    /// Mesos maintenance: the machine is scheduled and marked down, so Mesos stops
    /// offering it and its tasks end (runbook: the node "is not connected anymore").
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
