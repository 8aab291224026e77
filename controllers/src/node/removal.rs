//! The node controller's side of a worker's removal: it moves the phases of
//! [`crate::removal`] one at a time, on evidence.

use std::time::Duration;

use omtd_crds::Role;

use super::drain::{because, drain_step};
use super::prometheus::host_port;
use super::reason;
use crate::desired::Desired;
use crate::health::ClusterHealth;
use crate::observed::Observed;
use crate::output::MachineMode;
use crate::removal::{NodeRemovalRecord, RemovalPhase, RETIRE_TOKEN};
use crate::settings::Settings;

/// The removal decision for one node this reconcile.
#[derive(Debug, Clone, Default)]
pub struct NodeRemovalStep {
    pub phase: Option<RemovalPhase>,
    /// When the phase began (kept from the stored record when the phase did not move).
    pub since: String,
    pub waiting_for: String,
    /// Removal asked but not progressing: why (blocked, paused by mass loss).
    pub blocked: Option<(String, String)>,
    pub release: bool,
    pub cancelled: bool,
    /// How the machine should stand in Mesos maintenance (workers only).
    pub machine: MachineMode,
    /// Draining: when the machine goes down even with tasks on it (RFC 3339).
    pub deadline: Option<String>,
    /// Draining: how many tasks still run on the agent, and a few of them.
    pub running_tasks: usize,
    pub tasks: Vec<String>,
    /// Draining: why the machine is asked down (empty while it only drains).
    pub down_because: String,
    /// A Warning to record this reconcile: (reason, message).
    pub notice: Option<(String, String)>,
    /// Look again after this long (the drain deadline).
    pub requeue: Option<Duration>,
}

/// Moves a node's removal at most one phase, on evidence, and says how its machine
/// should stand in Mesos maintenance.
pub fn removal_step(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    health: &ClusterHealth,
    name: &str,
) -> NodeRemovalStep {
    step(desired, observed, settings, health, name).with_machine()
}

fn step(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    health: &ClusterHealth,
    name: &str,
) -> NodeRemovalStep {
    let stored = desired
        .node(name)
        .and_then(|n| n.status.as_ref())
        .and_then(NodeRemovalRecord::from_status);
    let now = crate::time::format(observed.now);
    if !desired.deleting(name) {
        return NodeRemovalStep {
            cancelled: stored.is_some(),
            ..Default::default()
        };
    }
    let Some(node) = desired.node(name) else {
        return NodeRemovalStep::default();
    };
    let roles = desired.roles(name);
    let keep = |phase: RemovalPhase, since: &str, waiting: String| NodeRemovalStep {
        phase: Some(phase),
        since: since.to_owned(),
        waiting_for: waiting,
        release: phase == RemovalPhase::Released,
        ..Default::default()
    };
    let advance = |phase: RemovalPhase| NodeRemovalStep {
        phase: Some(phase),
        since: now.clone(),
        release: phase == RemovalPhase::Released,
        ..Default::default()
    };

    if !roles.contains(&Role::Worker) {
        return match roles.iter().find(|r| r.is_single_host()) {
            Some(role) => blocked_by_role(name, *role),
            // A node with no role left has nothing to drain or clean up.
            None => advance(RemovalPhase::Released),
        };
    }

    let current = stored.as_ref().map(|r| r.phase);
    let since = stored.as_ref().map_or(now.clone(), |r| r.since.clone());
    if health.mass_loss {
        let step = match current {
            Some(p) => keep(p, &since, "the mass agent loss to clear".into()),
            None => NodeRemovalStep::default(),
        };
        return paused(step, stored.as_ref());
    }
    let addr = node.spec.address.as_str();
    match current {
        None => {
            // The drain starts now; even a machine Mesos has down already moves on only at
            // the next look (one phase per reconcile).
            let mut step = drain_step(observed, settings, node, &now, None);
            if step.phase == Some(RemovalPhase::Stopping) {
                step = NodeRemovalStep {
                    phase: Some(RemovalPhase::Draining),
                    since: now.clone(),
                    waiting_for: format!("Mesos to mark machine {addr} down (maintenance)"),
                    down_because: because::ALREADY_DOWN.into(),
                    ..Default::default()
                };
            }
            step
        }
        Some(RemovalPhase::Draining) => {
            drain_step(observed, settings, node, &since, stored.as_ref())
        }
        Some(RemovalPhase::Stopping) => {
            if health.is_lost(name) {
                return keep(
                    RemovalPhase::Stopping,
                    &since,
                    format!(
                        "the agent on {name}, which is lost, to confirm its Mesos agent and \
                         node exporter stopped"
                    ),
                );
            }
            let stopped = |svc: &str| observed.service_stopped_with(name, svc, RETIRE_TOKEN);
            if stopped("mesos-slave") && stopped("prometheus-node-exporter") {
                advance(RemovalPhase::Cleanup)
            } else {
                keep(
                    RemovalPhase::Stopping,
                    &since,
                    format!("the agent on {name} to stop mesos-slave and the node exporter"),
                )
            }
        }
        Some(RemovalPhase::Cleanup) => {
            let waiting = cleanup_waiting(desired, observed, health, addr);
            if waiting.is_empty() {
                advance(RemovalPhase::Released)
            } else {
                keep(RemovalPhase::Cleanup, &since, waiting.join("; "))
            }
        }
        Some(RemovalPhase::Released) => keep(RemovalPhase::Released, &since, String::new()),
    }
}

/// A removal refused: the node holds a role no other node has.
fn blocked_by_role(name: &str, role: Role) -> NodeRemovalStep {
    NodeRemovalStep {
        blocked: Some((
            reason::REMOVAL_BLOCKED.into(),
            format!(
                "node/{name} holds the {role} role, which no other node has: give \
                 the role to another node first, then delete this one"
            ),
        )),
        ..Default::default()
    }
}

/// A removal held where it stands while most agents are lost at once: nothing is released.
fn paused(mut step: NodeRemovalStep, stored: Option<&NodeRemovalRecord>) -> NodeRemovalStep {
    // A down already asked stands; a drain that was only draining stays so.
    step.down_because = stored.map(|r| r.down_because.clone()).unwrap_or_default();
    step.release = false;
    step.blocked = Some((
        reason::REMOVAL_PAUSED.into(),
        "removal paused: most agents are lost at once (see the Cluster's \
         AgentsReachable condition)"
            .into(),
    ));
    step
}

/// What a worker's cleanup still waits for: the master without its principal, the
/// executor without its export, Prometheus without its targets.
fn cleanup_waiting(
    desired: &Desired,
    observed: &Observed,
    health: &ClusterHealth,
    addr: &str,
) -> Vec<String> {
    let mut waiting = Vec::new();
    if !crate::credentials::master_applied(desired, observed) {
        waiting.push("mesos-master to restart without the node's principal".to_owned());
    }
    if let Some(ex) = desired.executor() {
        let export = format!("export:{} {addr}", desired.database_path());
        let gone = observed
            .reports
            .get(&ex.metadata.name)
            .is_some_and(|r| r.resources.iter().all(|x| x.id != export));
        if !gone || health.is_lost(&ex.metadata.name) {
            waiting.push(format!("{} to drop the export to {addr}", ex.metadata.name));
        }
    }
    if let Some(targets) = &observed.prometheus_targets {
        let ours = [
            host_port(addr, desired.spec.ports.node_exporter),
            host_port(addr, desired.spec.ports.cadvisor),
        ];
        if targets.iter().any(|t| ours.contains(t)) {
            waiting.push(format!("Prometheus to drop the targets of {addr}"));
        }
    }
    waiting
}
