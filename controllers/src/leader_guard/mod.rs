//! The leader guard: "most errors are caused by electing the wrong leader".
//!
//! It owns the three Mesos control-plane services on every node — mesos-master, chronos,
//! mesos-slave — so one controller decides their state, order and restarts:
//!
//! - mesos-master runs only on the manager; on every other node it is masked (a stray
//!   master with a lower ZooKeeper sequence would steal leadership). No mesos-slave on the
//!   manager. Chronos after mesos-master, on the manager.
//! - It watches who leads (ZooKeeper's lowest `json.info_` sequence, and the master's
//!   state), whether Chronos is registered (framework `chronos` active) and which agents
//!   are active, into the Cluster's `LeaderElected` and `MesosConnected` conditions.
//! - One or a few inactive agents (half of the expected or fewer) leave the cluster
//!   healthy: each gets a restart of just its own mesos-slave, with backoff
//!   ([`crate::agent_restart`]), so one flaky worker never stops the others' jobs.
//! - When the master does not lead, Chronos is not registered or more than half the
//!   expected agents are inactive, and that lasts past a grace period, it runs the
//!   runbook's ordered recovery as a state machine recorded in the Cluster's status (`status.recovery`):
//!   stop all → start the master, wait until it is elected → start Chronos, wait until it
//!   is registered → start the agents, wait until they are active. Each step is confirmed
//!   (restart tokens reported back by the agents, or the master's state), each has a
//!   timeout; a failed attempt waits base·2^(n-1) (capped) before the next, and after
//!   `max_attempts` it gives up with `Recovery=False, GaveUp` and restarts nothing more
//!   until the cluster is healthy again or the Cluster's `omtd/retry-recovery` annotation
//!   changes. Nothing of this starts while most agents are lost or the manager's is.
//!
//! Restart tokens: a service's token is `<credentials part>;r=<recovery token>` (master)
//! or `r=<recovery token>` (a worker restarted by the local remedy: `r=…;l=<local>`); the
//! recovery token is the last one an attempt gave the service and stays in the status, so
//! a finished recovery restarts nothing again.

mod inputs;
mod recovery;
mod slice;
mod state;
mod status;

use crate::agent_restart;
use crate::declaration::{condition, Declaration, Owned, Plans, Reports, Wakes};
use crate::desired::Desired;
use crate::error::Error;
use crate::observed::Observed;
use crate::output::{Cond, Intent, StatusEdit};
use crate::settings::Settings;
use omtd_crds::Kind;

pub use inputs::inputs;
pub use recovery::{requeue, step};
pub use slice::node_slice;
pub use state::{Phase, RecoveryInputs, RecoveryState, Tokens};

pub const NAME: &str = "leader-guard";

/// Key of the recovery record in the Cluster's status.
pub const RECOVERY_KEY: &str = "recovery";

/// Change this annotation on the Cluster (any new value) to retry after giving up.
pub const RETRY_ANNOTATION: &str = "omtd/retry-recovery";

/// Chronos's framework name (`--mesos_framework_name`, default `chronos`).
pub const CHRONOS_FRAMEWORK: &str = "chronos";

/// What this controller owns and what wakes it.
pub const DECLARATION: Declaration = Declaration {
    name: NAME,
    owns: &[Owned {
        kind: Kind::Cluster,
        conditions: &[
            condition::LEADER_ELECTED,
            condition::MESOS_CONNECTED,
            condition::RECOVERY,
        ],
        status_keys: &[RECOVERY_KEY],
    }],
    reasons: &[
        reason::AGENTS_INACTIVE,
        reason::BACKING_OFF,
        reason::CONNECTED,
        reason::DISCONNECTED,
        reason::GAVE_UP,
        reason::MANAGER_LEADS,
        reason::MESOS_UNREACHABLE,
        reason::NO_LEADER,
        reason::NO_MANAGER,
        reason::NOT_NEEDED,
        reason::RECOVERING,
        reason::RESTARTING_AGENTS,
        reason::STRAY_MASTER_LEADS,
        reason::SUPPRESSED,
        reason::UNKNOWN,
        reason::UNKNOWN_MASTER_LEADS,
        reason::WATCHING,
    ],
    wakes: Wakes {
        reports: Reports::All,
        heartbeats: true,
        probes: true,
        plans: Plans::Own,
    },
};

/// The reasons of the conditions this controller sets.
pub mod reason {
    pub const AGENTS_INACTIVE: &str = "AgentsInactive";
    pub const BACKING_OFF: &str = "BackingOff";
    pub const CONNECTED: &str = "Connected";
    pub const DISCONNECTED: &str = "Disconnected";
    pub const GAVE_UP: &str = "GaveUp";
    pub const MANAGER_LEADS: &str = "ManagerLeads";
    pub const MESOS_UNREACHABLE: &str = "MesosUnreachable";
    pub const NO_LEADER: &str = "NoLeader";
    pub const NO_MANAGER: &str = "NoManager";
    pub const NOT_NEEDED: &str = "NotNeeded";
    pub const RECOVERING: &str = "Recovering";
    pub const RESTARTING_AGENTS: &str = "RestartingAgents";
    pub const STRAY_MASTER_LEADS: &str = "StrayMasterLeads";
    pub const SUPPRESSED: &str = "Suppressed";
    pub const UNKNOWN: &str = "Unknown";
    pub const UNKNOWN_MASTER_LEADS: &str = "UnknownMasterLeads";
    pub const WATCHING: &str = "Watching";
}

pub fn reconcile(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Result<Intent, Error> {
    let mut out = Intent::default();
    let policy = &settings.recovery;
    let prev: RecoveryState = desired
        .cluster
        .as_ref()
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.extra.get(RECOVERY_KEY))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let inp = inputs(desired, observed, settings, &prev);
    // Without a Cluster record there is nowhere to keep the recovery's progress: watch
    // and report, but never start one.
    let mut state = if desired.cluster_key().is_some() {
        step(&prev, &inp, policy, observed.now)
    } else {
        prev.clone()
    };
    if desired.cluster_key().is_some() {
        // The local remedy acts only while the cluster as a whole is fine: during (or
        // before) an ordered recovery, that recovery restarts the agents itself.
        let act =
            state.phase == Phase::Idle && inp.healthy == Some(true) && inp.suppressed.is_none();
        let workers: Vec<&str> = desired
            .workers()
            .map(|w| w.metadata.name.as_str())
            .collect();
        state.agents = agent_restart::step(
            &prev.agents,
            &workers,
            &inp.inactive,
            act,
            policy,
            observed.now,
        );
    }

    for n in desired.nodes.values() {
        out.slices
            .insert(n.metadata.name.clone(), node_slice(desired, n, &state));
    }

    if let Some(key) = desired.cluster_key() {
        let mut edit = StatusEdit::new(desired, key, observed.now);
        edit.extra(RECOVERY_KEY, serde_json::to_value(&state).ok());
        edit.set(status::leader_condition(desired, observed));
        edit.set(match inp.healthy {
            Some(true) if !inp.inactive.is_empty() => Cond::no(
                condition::MESOS_CONNECTED,
                reason::AGENTS_INACTIVE,
                format!(
                    "the manager's master leads and Chronos is registered; agents not active: \
                     {} (each gets a restart of its own mesos-slave)",
                    inp.inactive.join(", ")
                ),
            ),
            Some(true) => Cond::yes(
                condition::MESOS_CONNECTED,
                reason::CONNECTED,
                "the manager's master leads; Chronos and every agent are connected",
            ),
            Some(false) => Cond::no(
                condition::MESOS_CONNECTED,
                reason::DISCONNECTED,
                inp.problems.join("; "),
            ),
            None => Cond::unknown(
                condition::MESOS_CONNECTED,
                reason::MESOS_UNREACHABLE,
                "the Mesos master did not answer the probe",
            ),
        });
        edit.set(status::recovery_condition(&state, &inp, policy));
        edit.finish(&mut out, |c| {
            matches!(
                c.reason.as_str(),
                reason::STRAY_MASTER_LEADS
                    | reason::UNKNOWN_MASTER_LEADS
                    | reason::NO_LEADER
                    | reason::GAVE_UP
                    | reason::BACKING_OFF
                    | reason::DISCONNECTED
                    | reason::RECOVERING
                    | reason::AGENTS_INACTIVE
                    | reason::RESTARTING_AGENTS
            )
        });
    }
    if let Some(after) = requeue(&state, policy, observed.now) {
        out.requeue(after);
    }
    // The local remedy's next restart, or a look at whether the last one took.
    for a in state.agents.values() {
        if let Some(due) = a.due(policy) {
            out.requeue(due.duration_since(observed.now).unwrap_or(policy.poll));
        }
    }
    Ok(out)
}
