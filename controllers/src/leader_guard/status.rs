//! The Cluster's conditions the leader guard owns: `LeaderElected`, `MesosConnected` and
//! `Recovery`.

use omtd_crds::{Condition, ConditionStatus};

use super::inputs::names;
use super::reason;
use super::state::{Phase, RecoveryInputs, RecoveryState};
use super::{RECOVERY_KEY, RETRY_ANNOTATION};
use crate::declaration::condition;
use crate::desired::Desired;
use crate::observed::{zk_leader, Observed};
use crate::output::Cond;
use crate::settings::RecoveryPolicy;
use crate::time;

pub(super) fn recovery_condition(
    s: &RecoveryState,
    inp: &RecoveryInputs,
    policy: &RecoveryPolicy,
) -> Cond {
    const T: &str = condition::RECOVERY;
    let unreadable = s.unreadable_times();
    if !unreadable.is_empty() {
        return Cond::unknown(
            T,
            reason::UNREADABLE_TIME,
            format!(
                "the Cluster's status.{RECOVERY_KEY} holds times that are not RFC 3339 ({}): \
                 omtd starts no recovery step and restarts nothing until they are fixed or \
                 status.{RECOVERY_KEY} is removed",
                unreadable.join(", ")
            ),
        );
    }
    let of = format!("attempt {} of {}", s.attempt, policy.max_attempts);
    match s.phase {
        Phase::Idle => local_remedy(s, policy),
        Phase::Watching => match &inp.suppressed {
            Some(why) => Cond::no(
                T,
                reason::SUPPRESSED,
                format!("{}; not recovering: {why}", s.reason),
            ),
            None => Cond::no(
                T,
                reason::WATCHING,
                format!(
                    "{} since {}; the ordered restart starts after {} unless it reconnects",
                    s.reason,
                    s.unhealthy_since.as_deref().unwrap_or("now"),
                    time::short(policy.grace)
                ),
            ),
        },
        Phase::Stopping => Cond::yes(
            T,
            reason::RECOVERING,
            format!(
                "{of}: step 1/4, stopping mesos-master, Chronos and every agent ({})",
                s.reason
            ),
        ),
        Phase::StartingMaster => Cond::yes(
            T,
            reason::RECOVERING,
            format!("{of}: step 2/4, mesos-master started, waiting until it is elected"),
        ),
        Phase::StartingChronos => Cond::yes(
            T,
            reason::RECOVERING,
            format!("{of}: step 3/4, Chronos started, waiting until it registers"),
        ),
        Phase::StartingAgents => Cond::yes(
            T,
            reason::RECOVERING,
            format!("{of}: step 4/4, agents started, waiting until they are active"),
        ),
        Phase::Backoff => Cond::no(
            T,
            reason::BACKING_OFF,
            format!(
                "{}; next attempt at {}",
                s.reason,
                s.next_attempt_at.as_deref().unwrap_or("?")
            ),
        ),
        Phase::GaveUp => Cond::no(
            T,
            reason::GAVE_UP,
            format!(
                "gave up after {} attempts ({}); omtd restarts nothing more until Mesos is \
                 healthy again, or until the Cluster's {RETRY_ANNOTATION} annotation changes. \
                 Check the credentials on the master, agents and Chronos, and stray masters",
                policy.max_attempts, s.reason
            ),
        ),
    }
}

/// Who leads, from ZooKeeper (lowest sequence) or else the master's state.
pub(super) fn leader_condition(desired: &Desired, observed: &Observed) -> Cond {
    const T: &str = condition::LEADER_ELECTED;
    let Some(manager) = desired.manager() else {
        return Cond::unknown(T, reason::NO_MANAGER, "no node has the manager role");
    };
    let m = names(manager);
    let node_of = |host: &str| {
        desired
            .nodes
            .values()
            .find(|n| names(n).contains(&host))
            .map(|n| n.metadata.name.clone())
    };
    let describe = |host: &str| match node_of(host) {
        Some(n) if n != host => format!("{n} ({host})"),
        Some(n) => n,
        None => host.to_owned(),
    };
    let (leader, strays): (Option<String>, Vec<String>) =
        match (&observed.zookeeper, &observed.mesos) {
            (Some(entries), _) => (
                zk_leader(entries).map(|e| e.hostname.clone()),
                entries
                    .iter()
                    .filter(|e| !m.contains(&e.hostname.as_str()))
                    .map(|e| describe(&e.hostname))
                    .collect(),
            ),
            (None, Some(mesos)) => (mesos.leader.clone(), Vec::new()),
            (None, None) => {
                return Cond::unknown(
                    T,
                    reason::UNKNOWN,
                    "neither ZooKeeper nor the Mesos master answered",
                )
            }
        };
    match leader {
        None => Cond::no(
            T,
            reason::NO_LEADER,
            "no Mesos master is registered in ZooKeeper",
        ),
        Some(l) if m.contains(&l.as_str()) => {
            let extra = if strays.is_empty() {
                String::new()
            } else {
                format!(
                    "; stray masters contending (masked by omtd): {}",
                    strays.join(", ")
                )
            };
            Cond::yes(
                T,
                reason::MANAGER_LEADS,
                format!("the manager {} leads{extra}", m[0]),
            )
        }
        Some(l) => match node_of(&l) {
            Some(_) => Cond::no(
                T,
                reason::STRAY_MASTER_LEADS,
                format!(
                    "mesos-master on {} holds the lowest ZooKeeper sequence and leads instead \
                     of the manager {}: omtd masks mesos-master there; the manager takes over \
                     once it stops",
                    describe(&l),
                    m[0]
                ),
            ),
            None => Cond::no(
                T,
                reason::UNKNOWN_MASTER_LEADS,
                format!(
                    "a Mesos master at {l}, not a node of this cluster, leads instead of the \
                     manager {}: omtd cannot stop it; stop mesos-master there by hand",
                    m[0]
                ),
            ),
        },
    }
}

/// `MesosConnected`, from the inputs.
pub(super) fn mesos_connected(inp: &RecoveryInputs) -> Cond {
    const T: &str = condition::MESOS_CONNECTED;
    match inp.healthy {
        Some(true) if !inp.inactive.is_empty() => Cond::no(
            T,
            reason::AGENTS_INACTIVE,
            format!(
                "the manager's master leads and Chronos is registered; agents not active: \
                 {} (each gets a restart of its own mesos-slave)",
                inp.inactive.join(", ")
            ),
        ),
        Some(true) => Cond::yes(
            T,
            reason::CONNECTED,
            "the manager's master leads; Chronos and every agent are connected",
        ),
        Some(false) => Cond::no(T, reason::DISCONNECTED, inp.problems.join("; ")),
        None => Cond::unknown(
            T,
            reason::MESOS_UNREACHABLE,
            "the Mesos master did not answer the probe",
        ),
    }
}

/// `Recovery` while `status.recovery` does not parse: unknown, and holding.
pub(super) fn unreadable_recovery(why: &str) -> Cond {
    Cond::unknown(
        condition::RECOVERY,
        reason::UNREADABLE_RECOVERY,
        format!(
            "the Cluster's status.{RECOVERY_KEY} does not parse ({why}): omtd starts no \
             recovery step and restarts nothing until it is fixed or removed"
        ),
    )
}

/// Which of the leader guard's conditions are warnings, by reason.
pub(super) fn is_warning(c: &Condition) -> bool {
    [
        reason::STRAY_MASTER_LEADS,
        reason::UNKNOWN_MASTER_LEADS,
        reason::NO_LEADER,
        reason::GAVE_UP,
        reason::BACKING_OFF,
        reason::DISCONNECTED,
        reason::RECOVERING,
        reason::AGENTS_INACTIVE,
        reason::RESTARTING_AGENTS,
        reason::UNREADABLE_RECOVERY,
        reason::UNREADABLE_TIME,
    ]
    .contains(&c.reason.as_str())
}

/// `Recovery` while no ordered recovery runs: the local remedy's restarts, if any.
fn local_remedy(s: &RecoveryState, policy: &RecoveryPolicy) -> Cond {
    const T: &str = condition::RECOVERY;
    let local: Vec<String> = s
        .agents
        .iter()
        .filter(|(_, a)| a.inactive_since.is_some())
        .map(|(n, a)| match a.attempt {
            0 => format!("{n} inactive, restart after {}", time::short(policy.grace)),
            k if k >= policy.max_attempts => {
                format!("{n} still inactive after {k} restarts: omtd restarts it no more")
            }
            k => format!(
                "{n}: restart {k} of {}, next at {}",
                policy.max_attempts,
                a.next_attempt_at.as_deref().unwrap_or("?")
            ),
        })
        .collect();
    // True while a restart was made and more may follow, so `omtd status` lists it
    // among the operations under way (as it does the ordered recovery).
    let restarting = s
        .agents
        .values()
        .any(|a| a.attempt > 0 && a.pending(policy));
    if local.is_empty() {
        Cond::no(T, reason::NOT_NEEDED, "no recovery running")
    } else {
        Cond::new(
            T,
            if restarting {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason::RESTARTING_AGENTS,
            format!(
                "restarting only the inactive agents' mesos-slave ({}); the ordered \
                 restart of the whole cluster runs only when the master does not lead, \
                 Chronos is not registered or more than half the agents are inactive",
                local.join("; ")
            ),
        )
    }
}
