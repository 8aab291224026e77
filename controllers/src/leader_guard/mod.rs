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

use omtd_crds::plan::PlanSlice;
use omtd_crds::Kind;
use omtd_crds::Node;

use crate::agent_restart;
use crate::declaration::{condition, Declaration, Owned, Plans, Reports, Wakes};
use crate::desired::Desired;
use crate::observed::Observed;
use crate::output::{Intent, Reconciled, StatusEdit};
use crate::settings::{RecoveryPolicy, Settings};

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
        reason::UNREADABLE_RECOVERY,
        reason::UNREADABLE_TIME,
        reason::WATCHING,
    ],
    wakes: Wakes {
        reports: Reports::All,
        heartbeats: true,
        probes: true,
        plans: Plans::Own,
        labels: false,
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
    /// `status.recovery` does not parse: the recovery holds (nothing restarted).
    pub const UNREADABLE_RECOVERY: &str = "UnreadableRecoveryState";
    /// A time in `status.recovery` does not parse: the recovery holds.
    pub const UNREADABLE_TIME: &str = "UnreadableRecoveryTime";
    pub const WATCHING: &str = "Watching";
}

pub fn reconcile(desired: &Desired, observed: &Observed, settings: &Settings) -> Reconciled {
    let mut out = Intent::default();
    let policy = &settings.recovery;
    let stored = stored_recovery(desired);
    let inp = inputs(
        desired,
        observed,
        settings,
        stored.as_ref().unwrap_or(&RecoveryState::default()),
    );
    // An unreadable record holds (`Err`): nothing of the recovery moves.
    let state = stored.map(|prev| next_state(desired, observed, policy, &prev, &inp));
    for n in desired.nodes.values() {
        let slice = match &state {
            Ok(state) => node_slice(desired, n, state),
            Err(_) => held_slice(desired, observed, n),
        };
        out.slices.insert(n.metadata.name.clone(), slice);
    }

    if let Some(key) = desired.cluster_key() {
        let mut edit = StatusEdit::new(desired, key, observed.now);
        if let Ok(state) = &state {
            edit.extra(RECOVERY_KEY, serde_json::to_value(state).ok());
        }
        edit.set(status::leader_condition(desired, observed));
        edit.set(status::mesos_connected(&inp));
        edit.set(match &state {
            Ok(state) => status::recovery_condition(state, &inp, policy),
            Err(why) => status::unreadable_recovery(why),
        });
        edit.finish(&mut out, status::is_warning);
    }
    if let Ok(state) = &state {
        if let Some(after) = requeue(state, policy, observed.now) {
            out.requeue(after);
        }
        // The local remedy's next restart, or a look at whether the last one took.
        for a in state.agents.values() {
            if let Some(due) = a.due(policy) {
                out.requeue(due.duration_since(observed.now).unwrap_or(policy.poll));
            }
        }
    }
    Ok(out)
}

/// `status.recovery` of the Cluster: the default state when there is none, `Err` with the
/// parse error when there is one that does not read (never reset it silently: a reset
/// would forget the attempts made and start over).
fn stored_recovery(desired: &Desired) -> Result<RecoveryState, String> {
    let stored = desired
        .cluster
        .as_ref()
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.extra.get(RECOVERY_KEY));
    match stored {
        None => Ok(RecoveryState::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string()),
    }
}

/// The recovery's next state, with the local remedy's.
fn next_state(
    desired: &Desired,
    observed: &Observed,
    policy: &RecoveryPolicy,
    prev: &RecoveryState,
    inp: &RecoveryInputs,
) -> RecoveryState {
    // Without a Cluster record there is nowhere to keep the recovery's progress: watch
    // and report, but never start one.
    if desired.cluster_key().is_none() {
        return prev.clone();
    }
    let mut state = step(prev, inp, policy, observed.now);
    // The local remedy acts only while the cluster as a whole is fine: during (or
    // before) an ordered recovery, that recovery restarts the agents itself.
    let act = state.phase == Phase::Idle && inp.healthy == Some(true) && inp.suppressed.is_none();
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
    state
}

/// A node's slice while the recovery record is unreadable: the stored one, else the one of
/// a fresh state (a node that has none yet runs nothing of ours to restart).
fn held_slice(desired: &Desired, observed: &Observed, node: &Node) -> PlanSlice {
    match observed
        .plans
        .get(&node.metadata.name)
        .and_then(|p| p.get(NAME))
    {
        Some(stored) => PlanSlice {
            fencing_token: 0,
            ..stored.clone()
        },
        None => node_slice(desired, node, &RecoveryState::default()),
    }
}
