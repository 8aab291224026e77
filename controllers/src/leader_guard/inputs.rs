//! What the leader guard reads from the observations: who leads, whether Chronos and the
//! agents are connected, and whether the last stop step was confirmed.

use omtd_crds::plan::ResourceState;
use omtd_crds::Node;

use super::slice::{agent_token, master_token, plain_token};
use super::state::{RecoveryInputs, RecoveryState};
use super::{CHRONOS_FRAMEWORK, RETRY_ANNOTATION};
use crate::desired::Desired;
use crate::health::ClusterHealth;
use crate::observed::{zk_leader, Observed};
use crate::removal::RemovalPhase;
use crate::settings::Settings;

pub(super) fn names(n: &Node) -> [&str; 2] {
    [n.metadata.name.as_str(), n.spec.address.as_str()]
}

/// Workers whose agents take part in a recovery: not retiring, agent not lost.
fn participants<'a>(
    desired: &'a Desired,
    health: &'a ClusterHealth,
) -> impl Iterator<Item = &'a Node> {
    desired.workers().filter(move |w| {
        let name = &w.metadata.name;
        !health.is_lost(name)
            && desired
                .removal_phase(name)
                .is_none_or(|p| p < RemovalPhase::Stopping)
    })
}

/// Reads the observations into the state machine's inputs.
pub fn inputs(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    state: &RecoveryState,
) -> RecoveryInputs {
    let health = ClusterHealth::assess(desired, observed, settings);
    let mut inp = RecoveryInputs {
        retry: desired
            .cluster
            .as_ref()
            .and_then(|c| c.metadata.annotations.get(RETRY_ANNOTATION).cloned()),
        ..Default::default()
    };
    let Some(manager) = desired.manager() else {
        inp.suppressed = Some("there is no manager".into());
        return inp;
    };
    let m = manager.metadata.name.as_str();
    if health.mass_loss {
        inp.suppressed = Some(health.mass_loss_message());
    } else if health.is_lost(m) {
        inp.suppressed = Some(format!("the agent on the manager {m} is lost"));
    } else if !observed.reports.contains_key(m) {
        inp.suppressed = Some(format!("the agent on the manager {m} has not reported yet"));
    }

    // Agents expected active: participants not draining whose agent has handled
    // mesos-slave at least once (a host still being set up is not "disconnected").
    let expected: Vec<&Node> = participants(desired, &health)
        .filter(|w| desired.removal_phase(&w.metadata.name).is_none())
        .filter(|w| {
            observed
                .resource(&w.metadata.name, "service:mesos-slave")
                .is_some()
        })
        .collect();

    match &observed.mesos {
        Some(mesos) => {
            inp.master_elected = mesos
                .leader
                .as_deref()
                .is_some_and(|l| names(manager).contains(&l))
                && observed.zookeeper.as_deref().is_none_or(|z| {
                    zk_leader(z).is_some_and(|e| names(manager).contains(&e.hostname.as_str()))
                });
            inp.chronos_registered = mesos.framework_active(CHRONOS_FRAMEWORK);
            let inactive: Vec<&str> = expected
                .iter()
                .filter(|w| !mesos.agent_active(&names(w)))
                .map(|w| w.metadata.name.as_str())
                .collect();
            inp.agents_active = inactive.is_empty();
            // More than half inactive at once points at the master or the network, not at
            // the agents: only then do the agents count against the cluster's health.
            let most_inactive = inactive.len() * 2 > expected.len();
            inp.inactive = inactive.iter().map(|n| (*n).to_owned()).collect();
            if !inp.master_elected {
                inp.problems.push(match mesos.leader.as_deref() {
                    Some(l) => format!("the leading master is {l}, not the manager {m}"),
                    None => "no master leads".into(),
                });
            }
            if !inp.chronos_registered {
                inp.problems
                    .push("Chronos is not registered with the master".into());
            }
            let cluster_wide = !inp.problems.is_empty() || most_inactive;
            if !inactive.is_empty() && cluster_wide {
                inp.problems.push(format!(
                    "agents not active: {} ({} of {})",
                    inactive.join(", "),
                    inactive.len(),
                    expected.len()
                ));
            }
            inp.healthy = Some(inp.problems.is_empty());
        }
        None => {
            // No answer from Mesos: only the manager's own report can say the master is
            // down (else the probe, not the master, may be what failed).
            if let Some(r) = observed.resource(m, "service:mesos-master") {
                if r.state != ResourceState::Converged && !state.phase.in_attempt() {
                    inp.healthy = Some(false);
                    inp.problems.push(format!(
                        "mesos-master on {m} is {:?}: {}",
                        r.state, r.message
                    ));
                }
            }
        }
    }

    // Step 1 evidence: each service reported with this attempt's stop token.
    let stop = format!("{}-stop", state.attempt_id);
    let master_stop = master_token(desired, &stop);
    let chronos_stop = plain_token(&stop);
    inp.stopped = observed.service_stopped_with(m, "mesos-master", &master_stop)
        && observed.service_stopped_with(m, "chronos", &chronos_stop)
        && participants(desired, &health).all(|w| {
            let name = w.metadata.name.as_str();
            !observed.agents.contains_key(name)
                || observed.service_stopped_with(
                    name,
                    "mesos-slave",
                    &agent_token(state, name, &stop),
                )
        });
    inp
}
