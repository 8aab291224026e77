//! The recovery's record (`status.recovery` of the Cluster) and the state machine's
//! inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agent_restart::AgentRestart;
use crate::time;

/// Where the recovery stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Healthy, or never looked.
    #[default]
    Idle,
    /// Disconnected since `unhealthySince`; recovery starts after the grace period.
    Watching,
    /// Step 1: mesos-master, chronos and every agent stopped.
    Stopping,
    /// Step 2: mesos-master started; waiting until it is elected.
    StartingMaster,
    /// Step 3: Chronos started; waiting until it is registered.
    StartingChronos,
    /// Step 4: agents started; waiting until they are active.
    StartingAgents,
    /// An attempt failed; the next one starts at `nextAttemptAt`.
    Backoff,
    /// `max_attempts` failed: nothing more is restarted.
    GaveUp,
}

impl Phase {
    pub fn in_attempt(self) -> bool {
        matches!(
            self,
            Phase::Stopping
                | Phase::StartingMaster
                | Phase::StartingChronos
                | Phase::StartingAgents
        )
    }
}

/// The recovery tokens each service group last got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    #[serde(default)]
    pub master: String,
    #[serde(default)]
    pub chronos: String,
    #[serde(default)]
    pub agents: String,
}

/// `status.recovery` of the Cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryState {
    pub phase: Phase,
    /// Attempts since the last reset (healthy for `reset_after`, or a retry).
    #[serde(default)]
    pub attempt: u32,
    /// When the phase began (RFC 3339).
    #[serde(default)]
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The current (or last) attempt's id; its tokens derive from it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attempt_id: String,
    #[serde(default)]
    pub tokens: Tokens,
    /// Why the last attempt failed, or why recovery is needed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The retry annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ack: Option<String>,
    /// The local remedy per worker (restarts of just its mesos-slave).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, AgentRestart>,
}

impl RecoveryState {
    /// The times of this record that are set but do not parse (RFC 3339), by their field
    /// names in the status. Such a record holds: counting from `now` instead would
    /// silently restart a grace period or a timeout on every pass.
    pub fn unreadable_times(&self) -> Vec<&'static str> {
        let bad = |t: &str| !t.is_empty() && time::parse(t).is_none();
        let mut fields = Vec::new();
        if bad(&self.since) {
            fields.push("since");
        }
        for (field, t) in [
            ("unhealthySince", &self.unhealthy_since),
            ("healthySince", &self.healthy_since),
            ("nextAttemptAt", &self.next_attempt_at),
        ] {
            if t.as_deref().is_some_and(bad) {
                fields.push(field);
            }
        }
        fields
    }
}

/// What the state machine needs to know, gathered from the observations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInputs {
    /// `Some(true)`: leader right, Chronos registered, agents active; `Some(false)`: not,
    /// with `problems`; `None`: cannot tell (no answer from Mesos, the master's host fine).
    pub healthy: Option<bool>,
    pub problems: Vec<String>,
    /// Why recovery must not restart anything now (mass agent loss, manager's agent lost).
    pub suppressed: Option<String>,
    /// Step 1 done: every stop confirmed by the agents.
    pub stopped: bool,
    /// Step 2 done: the manager's master is elected.
    pub master_elected: bool,
    /// Step 3 done: Chronos registered.
    pub chronos_registered: bool,
    /// Step 4 done: every expected agent active.
    pub agents_active: bool,
    /// The Cluster's retry annotation, if set.
    pub retry: Option<String>,
    /// Expected agents not active now. Half of the expected or fewer leave the cluster
    /// healthy and get the local remedy ([`crate::agent_restart`]); more make it unhealthy.
    pub inactive: Vec<String>,
}
