//! `omtd status`'s model: what the cluster looks like at one store revision, computed by
//! a pure function from what was read ([`Inputs`]) so every rule is a plain unit test.
//!
//! **Converged** means, at one revision:
//! 1. every Node has an agent heartbeat (its `leases/agents/<node>` key exists);
//! 2. every Node has a readable report under `reports/<node>` with `converged: true`;
//! 3. every object's `Ready` condition, where a controller set one, is `True`;
//! 4. no object's `Accepted` condition is `False` (the operator refuses to act on it);
//! 5. every object's status, where one carries an `observedGeneration`, was computed from
//!    the object's current generation (the operator has seen the latest spec).
//!
//! A cluster with no Node is converged: there is nothing to wait for.

mod compute;
pub mod inputs;
pub mod progress;
pub mod table;
#[cfg(test)]
mod tests;

use omtd_crds::ConditionStatus;
use serde::Serialize;

pub use compute::compute;
pub use inputs::{read, Inputs, StatusError};

/// The whole picture: `omtd status -o json` prints this.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The store revision everything was read at.
    pub revision: i64,
    pub converged: bool,
    pub nodes: Vec<NodeStatus>,
    /// Cluster-wide conditions, grouped by the controller that owns them.
    pub conditions: Vec<ConditionRow>,
    /// Long steps under way (a pvmove, a volume's steps, the leader guard's recovery).
    pub operations: Vec<Operation>,
    /// Why the cluster is not converged; empty when it is.
    pub pending: Vec<Pending>,
    /// Temporary overrides recorded on the nodes (`omtd debug`), ended or not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OverrideView>,
}

/// One `omtd debug` override: what it changes on which node, until when.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideView {
    pub node: String,
    pub what: String,
    /// As recorded (RFC 3339); the node controller ignores one that is not a time.
    pub until: String,
}

/// One Node's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub roles: Vec<String>,
    /// The Node's `Ready` condition; `None` before a controller set it.
    pub ready: Option<ConditionView>,
    /// The agent's heartbeat key exists (its lease is alive).
    pub agent: bool,
    /// The agent's last report, summarised; `None` before it reported.
    pub report: Option<ReportSummary>,
    /// Why the report could not be read (written by a newer omtd, or corrupted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
}

/// A condition as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    pub status: ConditionStatus,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What an agent's report says, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    pub converged: bool,
    /// The report is about the plan slices stored now (it names their digests).
    pub current: bool,
    pub resources: usize,
    pub converged_resources: usize,
    pub progressing: usize,
    pub failed: usize,
    pub refused: usize,
    pub conflict: usize,
    pub crash_looping: usize,
    /// Repairs of drift the agent made since it first ran on this host.
    pub corrective_changes: u64,
    /// Changes made because the plan changed.
    pub intentional_changes: u64,
    /// Every resource that is not converged, with the agent's message.
    pub problems: Vec<ResourceProblem>,
    /// What the agent found that omtd does not manage and leaves alone (leftover sites).
    pub unmanaged: Vec<String>,
}

impl ReportSummary {
    /// Resources that are not converged and not merely progressing.
    pub fn broken(&self) -> usize {
        self.failed + self.refused + self.conflict + self.crash_looping
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceProblem {
    /// `service:nfs-server`, `file:/etc/exports`, ...
    pub id: String,
    /// `progressing`, `failed`, `refused`, `conflict`, `crashLooping`.
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One row of the conditions table. `status: None` is shown as `-`: nothing set it yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionRow {
    /// Who owns it: `leader-guard`, `node`, `storage`, `credentials`, `cluster`.
    pub group: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub status: Option<ConditionStatus>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A long step under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `node/node2.omtd`, `volume/nfs-data`, `cluster/omtd`.
    pub object: String,
    /// The resource or step: `pv:/dev/vdd`, `lvextend`, `recovery`.
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One reason the cluster is not converged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// `node/node4.omtd`, `volume/nfs-data`.
    pub object: String,
    pub reason: String,
}

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.reason)
    }
}
