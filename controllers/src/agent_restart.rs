//! The leader guard's local remedy: one worker's inactive Mesos agent gets a restart of
//! its own mesos-slave, not the cluster-wide ordered recovery (which stops every agent and
//! so kills every running job).
//!
//! Where it lives: the state is one entry per worker in the Cluster's `status.recovery`
//! (the `agents` map of [`crate::leader_guard::RecoveryState`]), and it is reported on the
//! Cluster's `Recovery` condition (reason `RestartingAgents`). That is the smallest design
//! that fits the status ownership declarations (`crate::declaration`): the leader guard
//! already owns that key and condition, while a condition on the Node would need a new
//! part that the runtime's merge does not know.
//!
//! Per worker: inactive for the recovery grace period → restart 1 (a new local token in
//! that node's mesos-slave restart token); still inactive `backoff(n)` after restart `n`
//! → restart `n+1`; after `max_attempts` nothing more. Active for `reset_after` → the count
//! starts over. The token is kept for good (only the count resets), so an entry that goes
//! quiet never changes the token back, which would restart a healthy agent.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::settings::RecoveryPolicy;
use crate::time;

/// One worker's local remedy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRestart {
    /// Restarts since the last reset.
    #[serde(default)]
    pub attempt: u32,
    /// Inactive since (RFC 3339); `None` while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_since: Option<String>,
    /// Active again since (RFC 3339), to reset the count after `reset_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_since: Option<String>,
    /// Earliest time of the next restart, once one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The local part of the node's mesos-slave restart token; changes once per restart.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

impl AgentRestart {
    /// Inactive and not yet given up: the remedy is still working on it.
    pub fn pending(&self, policy: &RecoveryPolicy) -> bool {
        self.inactive_since.is_some() && self.attempt < policy.max_attempts
    }

    /// When the next restart is due while inactive (grace after the first sighting, then
    /// the backoff), `None` once given up or while active.
    pub fn due(&self, policy: &RecoveryPolicy) -> Option<SystemTime> {
        if !self.pending(policy) {
            return None;
        }
        match &self.next_attempt_at {
            Some(t) if self.attempt > 0 => time::parse(t),
            _ => time::parse(self.inactive_since.as_deref()?).map(|t| t + policy.grace),
        }
    }
}

/// The next local-remedy state of every worker in `workers`, given the ones inactive now.
/// `act` false (cluster-wide recovery under way or needed, or restarts suppressed) keeps
/// the entries as they are: the ordered recovery restarts the agents itself.
pub fn step(
    prev: &BTreeMap<String, AgentRestart>,
    workers: &[&str],
    inactive: &[String],
    act: bool,
    policy: &RecoveryPolicy,
    now: SystemTime,
) -> BTreeMap<String, AgentRestart> {
    let mut next = BTreeMap::new();
    for &w in workers {
        let mut e = prev.get(w).cloned().unwrap_or_default();
        if act {
            if inactive.iter().any(|i| i == w) {
                e.active_since = None;
                if e.inactive_since.is_none() {
                    e.inactive_since = Some(time::format(now));
                }
                if e.due(policy).is_some_and(|t| now >= t) {
                    e.attempt += 1;
                    e.token = time::attempt_id(now, e.attempt);
                    e.next_attempt_at = Some(time::format(now + policy.backoff(e.attempt)));
                }
            } else {
                e.inactive_since = None;
                e.next_attempt_at = None;
                if e.active_since.is_none() {
                    e.active_since = Some(time::format(now));
                }
                let active_for = e
                    .active_since
                    .as_deref()
                    .and_then(time::parse)
                    .map(|t| time::since(now, t));
                if active_for.is_some_and(|d| d >= policy.reset_after) {
                    e.attempt = 0;
                }
            }
        }
        // A worker that never needed a restart keeps no entry.
        if e.attempt > 0 || !e.token.is_empty() || e.inactive_since.is_some() {
            next.insert(w.to_owned(), e);
        }
    }
    next
}
