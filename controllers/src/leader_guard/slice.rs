//! The leader guard's slice on a node: mesos-master, chronos and mesos-slave, with the
//! restart tokens that carry a recovery's steps to the agents.

use omtd_crds::plan::{PlanSlice, ServiceSpec, ServiceState};
use omtd_crds::{Node, Role};

use super::state::{Phase, RecoveryState};
use super::NAME;
use crate::desired::Desired;
use crate::paths;
use crate::removal::{RemovalPhase, RETIRE_TOKEN};
use crate::render::{masked, service};

pub(super) fn master_token(desired: &Desired, recovery: &str) -> String {
    format!(
        "{};r={recovery}",
        crate::credentials::master_token_part(desired)
    )
}

pub(super) fn plain_token(recovery: &str) -> String {
    format!("r={recovery}")
}

/// A worker's mesos-slave token: the cluster-wide recovery's part, then (once the local
/// remedy restarted it) `;l=<local token>`. A worker never restarted locally keeps the
/// plain token, so adding the local remedy restarts nothing.
pub(super) fn agent_token(state: &RecoveryState, node: &str, recovery: &str) -> String {
    match state.agents.get(node).filter(|a| !a.token.is_empty()) {
        Some(a) => format!("{};l={}", plain_token(recovery), a.token),
        None => plain_token(recovery),
    }
}

/// A control-plane service in `running` or stopped-for-recovery state (still enabled).
fn control(
    name: &str,
    run: bool,
    token: String,
    restart_on: Vec<String>,
    after: &str,
) -> ServiceSpec {
    let mut s = service(
        name,
        if run {
            ServiceState::Running
        } else {
            ServiceState::Stopped
        },
    );
    s.enabled = true;
    s.restart_token = Some(token);
    s.restart_on = restart_on;
    s.after = vec![after.to_owned()];
    s
}

fn joined(a: &[&str], b: &[&str]) -> Vec<String> {
    a.iter().chain(b).map(|p| (*p).to_owned()).collect()
}

/// The leader guard's slice on one node.
pub fn node_slice(desired: &Desired, node: &Node, state: &RecoveryState) -> PlanSlice {
    let name = node.metadata.name.as_str();
    let mut s = PlanSlice {
        controller: NAME.to_owned(),
        ..Default::default()
    };
    let (master_up, chronos_up, agents_up) = match state.phase {
        Phase::Stopping => (false, false, false),
        Phase::StartingMaster => (true, false, false),
        Phase::StartingChronos => (true, true, false),
        _ => (true, true, true),
    };
    if desired.has_role(name, Role::Manager) {
        let mut chronos_files = joined(
            &paths::CHRONOS_CONFIG_RESTART_ON,
            &paths::CHRONOS_CREDENTIALS_RESTART_ON,
        );
        chronos_files.push(paths::CHRONOS_HTTP_CREDENTIALS.to_owned());
        s.services = vec![
            control(
                "mesos-master",
                master_up,
                master_token(desired, &state.tokens.master),
                joined(
                    &paths::MASTER_CONFIG_RESTART_ON,
                    &paths::MASTER_CREDENTIALS_RESTART_ON,
                ),
                "zookeeper",
            ),
            control(
                "chronos",
                chronos_up,
                plain_token(&state.tokens.chronos),
                chronos_files,
                "mesos-master",
            ),
            masked("mesos-slave"),
        ];
        return s;
    }
    s.services.push(masked("mesos-master"));
    if desired.has_role(name, Role::Worker) {
        let retired = desired
            .removal_phase(name)
            .is_some_and(|p| p >= RemovalPhase::Stopping);
        let agent = if retired {
            let mut a = service("mesos-slave", ServiceState::Stopped);
            a.restart_token = Some(RETIRE_TOKEN.to_owned());
            a
        } else {
            control(
                "mesos-slave",
                agents_up,
                agent_token(state, name, &state.tokens.agents),
                joined(
                    &paths::AGENT_CONFIG_RESTART_ON,
                    &paths::AGENT_CREDENTIALS_RESTART_ON,
                ),
                "docker",
            )
        };
        s.services.push(agent);
    }
    s
}
