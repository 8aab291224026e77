//! A node's status: its removal record and its `Ready` condition.

use omtd_crds::plan::ResourceState;
use omtd_crds::Role;

use super::reason;
use super::removal::NodeRemovalStep;
use crate::declaration::condition;
use crate::desired::{node_key, Desired};
use crate::health::ClusterHealth;
use crate::observed::{Liveness, Observed};
use crate::output::{not_true, Cond, Intent, StatusEdit};
use crate::removal::{NodeRemovalRecord, STATUS_KEY};
use crate::settings::Settings;

/// What a node's status is read from.
#[derive(Clone, Copy)]
pub(super) struct Seen<'a> {
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    pub settings: &'a Settings,
    pub health: &'a ClusterHealth,
}

pub(super) fn node_status(seen: Seen, name: &str, step: &NodeRemovalStep, out: &mut Intent) {
    let Seen {
        desired, observed, ..
    } = seen;
    let mut edit = StatusEdit::new(desired, node_key(name), observed.now);
    let record = step.phase.map(|phase| NodeRemovalRecord {
        phase,
        since: step.since.clone(),
        waiting_for: step.waiting_for.clone(),
        deadline: step.deadline.clone(),
        running_tasks: step.running_tasks,
        tasks: step.tasks.clone(),
        down_because: step.down_because.clone(),
    });
    edit.extra(
        STATUS_KEY,
        record.and_then(|r| serde_json::to_value(r).ok()),
    );
    edit.set(ready(seen, name, step));
    if step.cancelled {
        out.events.push(crate::output::Notice {
            object: node_key(name),
            type_: crate::output::EventType::Normal,
            reason: reason::REMOVAL_CANCELLED.into(),
            message: format!("omtd/deleting was removed: node/{name} stays in the cluster"),
        });
    }
    edit.finish(out, not_true);
}

fn ready(seen: Seen, name: &str, step: &NodeRemovalStep) -> Cond {
    let Seen {
        desired,
        observed,
        settings,
        health,
    } = seen;
    const T: &str = condition::READY;
    if let Some((reason, message)) = &step.blocked {
        return Cond::no(T, reason.clone(), message.clone());
    }
    if let Some(phase) = step.phase {
        let waiting = if step.waiting_for.is_empty() {
            String::new()
        } else {
            format!(", waiting for {}", step.waiting_for)
        };
        return Cond::no(
            T,
            reason::REMOVING,
            format!("being removed: phase {}{waiting}", phase.as_str()),
        );
    }
    if let Some(not_alive) = liveness(observed, settings, health, name) {
        return not_alive;
    }
    let Some(report) = observed.reports.get(name) else {
        return Cond::unknown(T, reason::NO_REPORT, "the agent has not reported yet");
    };
    if !observed.report_is_current(name) {
        return Cond::no(
            T,
            reason::APPLYING,
            "the plan changed; the agent has not reported on the new one yet",
        );
    }
    if !report.converged {
        let bad: Vec<String> = report
            .resources
            .iter()
            .filter(|r| r.state != ResourceState::Converged)
            .map(|r| {
                if r.message.is_empty() {
                    format!("{} is {:?}", r.id, r.state)
                } else {
                    format!("{} is {:?}: {}", r.id, r.state, r.message)
                }
            })
            .collect();
        let mut message = bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
        if bad.len() > 3 {
            message.push_str(&format!("; and {} more", bad.len() - 3));
        }
        if message.is_empty() {
            message = "the agent is still applying the plan".into();
        }
        return Cond::no(T, reason::NOT_CONVERGED, message);
    }
    if desired.has_role(name, Role::Worker) {
        let Some(node) = desired.node(name) else {
            return Cond::unknown(T, reason::UNKNOWN, "");
        };
        let names = [name, node.spec.address.as_str()];
        return match &observed.mesos {
            None => Cond::unknown(
                T,
                reason::MESOS_UNREACHABLE,
                "converged; the Mesos master did not answer, so its agent registration is unknown",
            ),
            Some(m) if m.agent_active(&names) => Cond::yes(
                T,
                reason::READY,
                "converged and registered with the Mesos master as an active agent",
            ),
            Some(_) => Cond::no(
                T,
                reason::NOT_REGISTERED,
                format!(
                    "converged, but the Mesos master does not list {} as an active agent \
                     (credentials, ZooKeeper URL, or the leader; the leader guard watches this)",
                    node.spec.address
                ),
            ),
        };
    }
    Cond::yes(T, reason::READY, "every planned resource is converged")
}

/// `Ready` of a node whose agent is not alive (never seen, or lost), `None` if alive.
fn liveness(
    observed: &Observed,
    settings: &Settings,
    health: &ClusterHealth,
    name: &str,
) -> Option<Cond> {
    const T: &str = condition::READY;
    match observed.liveness(name, settings) {
        Liveness::NeverSeen => {
            Some(Cond::unknown(
                T,
                reason::AGENT_NOT_SEEN,
                format!("no omtd agent has reported from {name} yet: start `omtd agent --node {name}` there"),
            ))
        }
        Liveness::Lost(d) => {
            let note = if health.mass_loss {
                " (most agents are lost: see the Cluster's AgentsReachable condition)"
            } else {
                ""
            };
            Some(Cond::no(
                T,
                reason::AGENT_LOST,
                format!(
                    "the omtd agent's heartbeat stopped {} ago; nothing destructive is \
                     planned for this node until it is back{note}",
                    crate::time::short(d)
                ),
            ))
        }
        Liveness::Alive => None,
    }
}
