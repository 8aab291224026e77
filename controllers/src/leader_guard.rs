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

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use omtd_crds::plan::{PlanSlice, ResourceState, ServiceSpec, ServiceState};
use omtd_crds::{ConditionStatus, Node, Role};
use serde::{Deserialize, Serialize};

use crate::agent_restart::{self, AgentRestart};
use crate::desired::Desired;
use crate::error::Error;
use crate::health::Health;
use crate::observed::{zk_leader, Observed};
use crate::output::{Cond, Output, StatusEdit};
use crate::paths;
use crate::removal::{RemovalPhase, RETIRE_TOKEN};
use crate::render::{masked, service};
use crate::settings::{RecoveryPolicy, Settings};
use crate::time;

pub const NAME: &str = "leader-guard";

/// Key of the recovery record in the Cluster's status.
pub const RECOVERY_KEY: &str = "recovery";

/// Change this annotation on the Cluster (any new value) to retry after giving up.
pub const RETRY_ANNOTATION: &str = "omtd/retry-recovery";

/// Chronos's framework name (`--mesos_framework_name`, default `chronos`).
pub const CHRONOS_FRAMEWORK: &str = "chronos";

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

/// What the state machine needs to know, gathered from the observations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
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
    /// healthy and get the local remedy ([`agent_restart`]); more make it unhealthy.
    pub inactive: Vec<String>,
}

/// One step of the recovery state machine. Pure: the next state from the previous one, the
/// inputs and `now`.
pub fn step(
    prev: &RecoveryState,
    inp: &Inputs,
    policy: &RecoveryPolicy,
    now: SystemTime,
) -> RecoveryState {
    let mut s = prev.clone();
    let at = |t: &Option<String>| t.as_deref().and_then(time::parse);
    let since = time::parse(&s.since).unwrap_or(now);
    let timed_out = time::since(now, since) >= policy.phase_timeout;
    let enter = |s: &mut RecoveryState, phase: Phase| {
        s.phase = phase;
        s.since = time::format(now);
    };
    let start_attempt = |s: &mut RecoveryState| {
        if s.attempt >= policy.max_attempts {
            enter(s, Phase::GaveUp);
            s.next_attempt_at = None;
            return;
        }
        s.attempt += 1;
        s.attempt_id = time::attempt_id(now, s.attempt);
        let stop = format!("{}-stop", s.attempt_id);
        s.tokens = Tokens {
            master: stop.clone(),
            chronos: stop.clone(),
            agents: stop,
        };
        s.next_attempt_at = None;
        s.reason = inp.problems.join("; ");
        enter(s, Phase::Stopping);
    };
    let fail = |s: &mut RecoveryState, why: String| {
        s.reason = format!("attempt {} failed: {why}", s.attempt);
        if s.attempt >= policy.max_attempts {
            enter(s, Phase::GaveUp);
            s.next_attempt_at = None;
        } else {
            enter(s, Phase::Backoff);
            s.next_attempt_at = Some(time::format(now + policy.backoff(s.attempt)));
        }
    };
    let healthy_now = |s: &mut RecoveryState| {
        if s.healthy_since.is_none() {
            s.healthy_since = Some(time::format(now));
        }
        s.unhealthy_since = None;
        let healthy_for = at(&s.healthy_since).map_or(Duration::ZERO, |h| time::since(now, h));
        if s.attempt > 0 && healthy_for >= policy.reset_after {
            s.attempt = 0;
        }
    };

    if s.phase.in_attempt() {
        if let Some(why) = &inp.suppressed {
            // Abort: services go back to running (with the tokens they already have, so
            // nothing restarts twice); the attempt still counts.
            s.reason = format!("attempt {} interrupted: {why}", s.attempt);
            s.unhealthy_since = Some(time::format(now));
            enter(&mut s, Phase::Watching);
            return s;
        }
    }

    match s.phase {
        Phase::Idle | Phase::Watching => match inp.healthy {
            Some(true) => {
                healthy_now(&mut s);
                if s.phase != Phase::Idle {
                    enter(&mut s, Phase::Idle);
                    s.reason.clear();
                }
            }
            None => {}
            Some(false) => {
                s.healthy_since = None;
                if s.phase == Phase::Idle {
                    enter(&mut s, Phase::Watching);
                    s.unhealthy_since = Some(time::format(now));
                    s.reason = inp.problems.join("; ");
                } else {
                    let since_bad = at(&s.unhealthy_since).unwrap_or(now);
                    if time::since(now, since_bad) >= policy.grace && inp.suppressed.is_none() {
                        start_attempt(&mut s);
                    }
                }
            }
        },
        Phase::Stopping => {
            if inp.stopped {
                s.tokens.master = format!("{}-master", s.attempt_id);
                enter(&mut s, Phase::StartingMaster);
            } else if timed_out {
                fail(&mut s, "the services did not all report stopped".into());
            }
        }
        Phase::StartingMaster => {
            if inp.master_elected {
                s.tokens.chronos = format!("{}-chronos", s.attempt_id);
                enter(&mut s, Phase::StartingChronos);
            } else if timed_out {
                fail(&mut s, "the manager's mesos-master was not elected".into());
            }
        }
        Phase::StartingChronos => {
            if inp.chronos_registered {
                s.tokens.agents = format!("{}-agents", s.attempt_id);
                enter(&mut s, Phase::StartingAgents);
            } else if timed_out {
                fail(&mut s, "Chronos did not register with the master".into());
            }
        }
        Phase::StartingAgents => {
            if inp.agents_active {
                enter(&mut s, Phase::Idle);
                s.reason.clear();
                s.healthy_since = None;
                healthy_now(&mut s);
            } else if timed_out {
                fail(&mut s, "not every agent became active".into());
            }
        }
        Phase::Backoff => match inp.healthy {
            Some(true) => {
                enter(&mut s, Phase::Idle);
                s.next_attempt_at = None;
                healthy_now(&mut s);
            }
            _ => {
                let due = at(&s.next_attempt_at).is_none_or(|t| now >= t);
                if due && inp.healthy == Some(false) && inp.suppressed.is_none() {
                    start_attempt(&mut s);
                }
            }
        },
        Phase::GaveUp => {
            let retry = inp.retry.is_some() && inp.retry != s.retry_ack;
            if inp.healthy == Some(true) {
                enter(&mut s, Phase::Idle);
                s.attempt = 0;
                s.reason.clear();
                healthy_now(&mut s);
            } else if retry {
                s.retry_ack = inp.retry.clone();
                s.attempt = 0;
                if inp.suppressed.is_none() && inp.healthy == Some(false) {
                    start_attempt(&mut s);
                }
            }
        }
    }
    s
}

/// When to look again for this state.
pub fn requeue(s: &RecoveryState, policy: &RecoveryPolicy, now: SystemTime) -> Option<Duration> {
    // A deadline already past (start blocked by suppression or unknown health) polls
    // instead of spinning.
    let until = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(now).ok())
            .filter(|d| !d.is_zero())
            .or(Some(policy.poll))
    };
    match s.phase {
        Phase::Idle | Phase::GaveUp => None,
        Phase::Watching => until(
            s.unhealthy_since
                .as_deref()
                .and_then(time::parse)
                .map(|t| t + policy.grace),
        ),
        Phase::Backoff => until(s.next_attempt_at.as_deref().and_then(time::parse)),
        _ => Some(policy.poll),
    }
}

fn names(n: &Node) -> [&str; 2] {
    [n.metadata.name.as_str(), n.spec.address.as_str()]
}

/// Workers whose agents take part in a recovery: not retiring, agent not lost.
fn participants<'a>(desired: &'a Desired, health: &'a Health) -> impl Iterator<Item = &'a Node> {
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
) -> Inputs {
    let health = Health::assess(desired, observed, settings);
    let mut inp = Inputs {
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

fn master_token(desired: &Desired, recovery: &str) -> String {
    format!(
        "{};r={recovery}",
        crate::credentials::master_token_part(desired)
    )
}

fn plain_token(recovery: &str) -> String {
    format!("r={recovery}")
}

/// A worker's mesos-slave token: the cluster-wide recovery's part, then (once the local
/// remedy restarted it) `;l=<local token>`. A worker never restarted locally keeps the
/// plain token, so adding the local remedy restarts nothing.
fn agent_token(state: &RecoveryState, node: &str, recovery: &str) -> String {
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

pub fn reconcile(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Result<Output, Error> {
    let mut out = Output::default();
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
        edit.set(leader_condition(desired, observed));
        edit.set(match inp.healthy {
            Some(true) if !inp.inactive.is_empty() => Cond::no(
                "MesosConnected",
                "AgentsInactive",
                format!(
                    "the manager's master leads and Chronos is registered; agents not active: \
                     {} (each gets a restart of its own mesos-slave)",
                    inp.inactive.join(", ")
                ),
            ),
            Some(true) => Cond::yes(
                "MesosConnected",
                "Connected",
                "the manager's master leads; Chronos and every agent are connected",
            ),
            Some(false) => Cond::no("MesosConnected", "Disconnected", inp.problems.join("; ")),
            None => Cond::unknown(
                "MesosConnected",
                "MesosUnreachable",
                "the Mesos master did not answer the probe",
            ),
        });
        edit.set(recovery_condition(&state, &inp, policy));
        edit.finish(&mut out, |c| {
            matches!(
                c.reason.as_str(),
                "StrayMasterLeads"
                    | "UnknownMasterLeads"
                    | "NoLeader"
                    | "GaveUp"
                    | "BackingOff"
                    | "Disconnected"
                    | "Recovering"
                    | "AgentsInactive"
                    | "RestartingAgents"
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

fn recovery_condition(s: &RecoveryState, inp: &Inputs, policy: &RecoveryPolicy) -> Cond {
    const T: &str = "Recovery";
    let of = format!("attempt {} of {}", s.attempt, policy.max_attempts);
    match s.phase {
        Phase::Idle => {
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
                Cond::no(T, "NotNeeded", "no recovery running")
            } else {
                Cond::new(
                    T,
                    if restarting {
                        ConditionStatus::True
                    } else {
                        ConditionStatus::False
                    },
                    "RestartingAgents",
                    format!(
                        "restarting only the inactive agents' mesos-slave ({}); the ordered \
                         restart of the whole cluster runs only when the master does not lead, \
                         Chronos is not registered or more than half the agents are inactive",
                        local.join("; ")
                    ),
                )
            }
        }
        Phase::Watching => match &inp.suppressed {
            Some(why) => Cond::no(
                T,
                "Suppressed",
                format!("{}; not recovering: {why}", s.reason),
            ),
            None => Cond::no(
                T,
                "Watching",
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
            "Recovering",
            format!(
                "{of}: step 1/4, stopping mesos-master, Chronos and every agent ({})",
                s.reason
            ),
        ),
        Phase::StartingMaster => Cond::yes(
            T,
            "Recovering",
            format!("{of}: step 2/4, mesos-master started, waiting until it is elected"),
        ),
        Phase::StartingChronos => Cond::yes(
            T,
            "Recovering",
            format!("{of}: step 3/4, Chronos started, waiting until it registers"),
        ),
        Phase::StartingAgents => Cond::yes(
            T,
            "Recovering",
            format!("{of}: step 4/4, agents started, waiting until they are active"),
        ),
        Phase::Backoff => Cond::no(
            T,
            "BackingOff",
            format!(
                "{}; next attempt at {}",
                s.reason,
                s.next_attempt_at.as_deref().unwrap_or("?")
            ),
        ),
        Phase::GaveUp => Cond::no(
            T,
            "GaveUp",
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
fn leader_condition(desired: &Desired, observed: &Observed) -> Cond {
    const T: &str = "LeaderElected";
    let Some(manager) = desired.manager() else {
        return Cond::unknown(T, "NoManager", "no node has the manager role");
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
                    "Unknown",
                    "neither ZooKeeper nor the Mesos master answered",
                )
            }
        };
    match leader {
        None => Cond::no(T, "NoLeader", "no Mesos master is registered in ZooKeeper"),
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
                "ManagerLeads",
                format!("the manager {} leads{extra}", m[0]),
            )
        }
        Some(l) => match node_of(&l) {
            Some(_) => Cond::no(
                T,
                "StrayMasterLeads",
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
                "UnknownMasterLeads",
                format!(
                    "a Mesos master at {l}, not a node of this cluster, leads instead of the \
                     manager {}: omtd cannot stop it; stop mesos-master there by hand",
                    m[0]
                ),
            ),
        },
    }
}
