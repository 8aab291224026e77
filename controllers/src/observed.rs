//! What the shell measured, handed to the controllers: agent reports and liveness, probe
//! results (Mesos master, ZooKeeper, Prometheus, the registry, Chronos), the plan slices
//! as stored, and `now`.
//!
//! A probe that could not answer is `None`: the controllers then decide nothing that
//! depends on it (no recovery on a missing Mesos answer, no removal confirmed on a missing
//! Prometheus answer), and say so in conditions.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use omtd_crds::plan::{PlanSlice, Report, ResourceReport, ResourceState};

use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct Observed {
    /// The time of this reconcile, from the caller's clock.
    pub now: SystemTime,
    /// Each node's last agent report, by node name.
    pub reports: BTreeMap<String, Report>,
    /// Each node's agent heartbeat, by node name. A node with no entry has never had an
    /// agent seen by this operator.
    pub agents: BTreeMap<String, AgentLiveness>,
    /// The Mesos master's state (from the leading master), if the probe answered.
    pub mesos: Option<MesosState>,
    /// The Mesos leader-election entries in ZooKeeper, if the probe answered.
    pub zookeeper: Option<Vec<MasterEntry>>,
    /// Prometheus's active scrape targets (`host:port`), if the probe answered.
    pub prometheus_targets: Option<Vec<String>>,
    /// The registry's `GET /v2/` without and with a credential; `None`: not probed.
    pub registry: Option<RegistryCheck>,
    /// Chronos's `/ping`: `Err` says why it did not answer (never a credential); `None`:
    /// not probed. Unlike the other probes a failure is kept, not `None`: a Chronos that
    /// does not answer is a fact about Chronos, and `ChronosReady` says so.
    pub chronos_ping: Option<Result<(), String>>,
    /// The plan slices as stored: node → controller → slice. The credentials controller
    /// reads its own previous slice to hold a rotated secret back until the master has it.
    pub plans: BTreeMap<String, BTreeMap<String, PlanSlice>>,
    /// Every stored slice's digest (`PlanSlice::digest`): node → controller → digest. A
    /// node's report is about its current plan when it names exactly these.
    pub plan_digests: BTreeMap<String, BTreeMap<String, String>>,
}

impl Observed {
    /// Nothing observed yet, at `now`.
    pub fn at(now: SystemTime) -> Observed {
        Observed {
            now,
            reports: BTreeMap::new(),
            agents: BTreeMap::new(),
            mesos: None,
            zookeeper: None,
            prometheus_targets: None,
            registry: None,
            chronos_ping: None,
            plans: BTreeMap::new(),
            plan_digests: BTreeMap::new(),
        }
    }

    /// One resource of a node's report (`service:mesos-master`, `pv:/dev/vdd`, ...).
    pub fn resource(&self, node: &str, id: &str) -> Option<&ResourceReport> {
        self.reports
            .get(node)?
            .resources
            .iter()
            .find(|r| r.id == id)
    }

    /// Whether the node's agent reported `service:<name>` brought to a stopped plan that
    /// carried `token`: converged with that token, or converged with none at all (the
    /// agent reports no token for a service that is not installed, which is as stopped as
    /// it gets). Only sound when every running plan of the service carries a token, so an
    /// older report of it running cannot pass.
    pub fn service_stopped_with(&self, node: &str, service: &str, token: &str) -> bool {
        self.resource(node, &format!("service:{service}"))
            .is_some_and(|r| {
                r.state == ResourceState::Converged
                    && r.observed.get(RESTART_TOKEN_KEY).is_none_or(|t| t == token)
            })
    }

    /// The restart token the node's agent last applied to a service.
    pub fn service_token(&self, node: &str, service: &str) -> Option<&str> {
        self.resource(node, &format!("service:{service}"))?
            .observed
            .get(RESTART_TOKEN_KEY)
            .map(String::as_str)
    }

    /// How the node's agent stands.
    pub fn liveness(&self, node: &str, settings: &Settings) -> Liveness {
        match self.agents.get(node) {
            None => Liveness::NeverSeen,
            Some(a) if a.lease_present => Liveness::Alive,
            Some(a) if a.since_heartbeat <= settings.agent_grace => Liveness::Alive,
            Some(a) => Liveness::Lost(a.since_heartbeat),
        }
    }

    /// Whether the node's last report is about the slices stored for it now: the agent
    /// names the digest of each slice it applied, and a report of an older plan (or one
    /// missing a slice) must not pass for this one. A report naming no slices at all comes
    /// from an agent older than these digests: it is taken as it stands, as before.
    pub fn report_is_current(&self, node: &str) -> bool {
        let Some(report) = self.reports.get(node) else {
            return false;
        };
        if report.slices.is_empty() {
            return true;
        }
        match self.plan_digests.get(node) {
            Some(stored) => *stored == report.slices,
            None => false,
        }
    }

    /// A stored slice of `controller` for `node`.
    pub fn stored_slice(&self, node: &str, controller: &str) -> Option<&PlanSlice> {
        self.plans.get(node)?.get(controller)
    }
}

/// The key under which the agent reports a service's applied restart token.
pub const RESTART_TOKEN_KEY: &str = "restartToken";

/// A node's agent heartbeat, as the runtime measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLiveness {
    /// The agent's lease key exists (it keeps it alive while it runs).
    pub lease_present: bool,
    /// Time since the runtime last saw the lease appear or be renewed, on its own
    /// monotonic clock (never a time written by another host).
    pub since_heartbeat: Duration,
}

/// A node's agent, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Lease present, or gone for less than the grace period.
    Alive,
    /// Lease gone for longer than the grace period, by this much.
    Lost(Duration),
    /// No agent ever seen for this node (a new host not yet set up).
    NeverSeen,
}

/// The registry's `GET /v2/` asked twice: without credentials (the guard must refuse it)
/// and with the credential omtd checks it with (the guard must let it through). A failed
/// check is kept with its reason, not dropped: "the registry does not answer" is what
/// `RegistryReady=False` is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCheck {
    pub anonymous: RegistryAnswer,
    /// `None`: no credential to try (none in the store).
    pub authenticated: Option<RegistryAnswer>,
}

/// One `GET /v2/` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAnswer {
    /// 200.
    Ok,
    /// 401.
    Unauthorized,
    /// No usable answer (unreachable, a timeout, another status): why, without a
    /// credential.
    Failed(String),
}

/// The Mesos master's view (`/master/state`, `/master/maintenance/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MesosState {
    /// Hostname (or address) of the leading master, as `leader_info.hostname` says.
    pub leader: Option<String>,
    pub agents: Vec<MesosAgent>,
    pub frameworks: Vec<MesosFramework>,
    /// Machines (hostname or address) in maintenance mode DOWN.
    pub down_machines: Vec<String>,
    /// Machines scheduled for maintenance and still draining.
    pub draining_machines: Vec<String>,
    /// The leading master's version (`/master/state` `version`, e.g. `1.4.1`).
    pub version: Option<String>,
    /// The tasks still running (STAGING, STARTING, RUNNING, KILLING): a drain waits for
    /// these to end before it marks their machine down, which would kill them.
    pub tasks: Vec<MesosTask>,
    /// `agents` by hostname, built on first use (derived: never compared).
    pub agent_index: AgentIndex,
}

/// Positions in [`MesosState::agents`] by hostname. A pass asks about every worker, and a
/// scan of every agent for each made a 10,000-node pass quadratic (a quarter of its time).
/// Built once, on the first question; a hint only: every hit is checked against the agent
/// itself, and a list that grew since it was built is scanned instead.
#[derive(Debug, Clone, Default)]
pub struct AgentIndex(OnceLock<(usize, HashMap<String, Vec<usize>>)>);

impl PartialEq for AgentIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AgentIndex {}

impl MesosState {
    /// The agents called one of `names`, in order of registration.
    fn agents_named(&self, names: &[&str]) -> Vec<&MesosAgent> {
        let (built_for, index) = self.agent_index.0.get_or_init(|| {
            let mut index: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, a) in self.agents.iter().enumerate() {
                index.entry(a.hostname.clone()).or_default().push(i);
            }
            (self.agents.len(), index)
        });
        if *built_for != self.agents.len() {
            return self
                .agents
                .iter()
                .filter(|a| names.contains(&a.hostname.as_str()))
                .collect();
        }
        let mut at: Vec<usize> = names
            .iter()
            .flat_map(|n| index.get(*n).into_iter().flatten().copied())
            .filter(|i| {
                self.agents
                    .get(*i)
                    .is_some_and(|a| names.contains(&a.hostname.as_str()))
            })
            .collect();
        at.sort_unstable();
        at.dedup();
        at.into_iter().filter_map(|i| self.agents.get(i)).collect()
    }

    /// Whether one of `names` (a node's name and address) is an active agent.
    pub fn agent_active(&self, names: &[&str]) -> bool {
        self.agents_named(names).iter().any(|a| a.active)
    }

    /// Whether a framework called `name` is registered and active.
    pub fn framework_active(&self, name: &str) -> bool {
        self.frameworks.iter().any(|f| f.name == name && f.active)
    }

    /// Whether one of `names` is scheduled for maintenance and still draining.
    pub fn machine_draining(&self, names: &[&str]) -> bool {
        self.draining_machines
            .iter()
            .any(|m| names.contains(&m.as_str()))
    }

    pub fn machine_down(&self, names: &[&str]) -> bool {
        self.down_machines
            .iter()
            .any(|m| names.contains(&m.as_str()))
    }

    /// The registered agent called one of `names`.
    pub fn agent(&self, names: &[&str]) -> Option<&MesosAgent> {
        self.agents_named(names).into_iter().next()
    }

    /// The tasks still running on the agent called one of `names` (matched by the agent's
    /// id when the task names no hostname: an agent's tasks name it by id only).
    pub fn tasks_on(&self, names: &[&str]) -> Vec<&MesosTask> {
        let id = self.agent(names).map(|a| a.id.as_str());
        self.tasks
            .iter()
            .filter(|t| {
                t.agent_hostname
                    .as_deref()
                    .is_some_and(|h| names.contains(&h))
                    || (id.is_some_and(|i| !i.is_empty() && t.agent_id == i))
            })
            .collect()
    }

    /// Whether the master has the v1 operator API's `DEACTIVATE_AGENT` (Mesos >= 1.9). An
    /// unknown or unparsable version counts as older: the call is only an extra.
    pub fn has_deactivate_agent(&self) -> bool {
        self.version.as_deref().is_some_and(has_deactivate_agent)
    }
}

/// Whether a Mesos master of `version` has the v1 operator API's `DEACTIVATE_AGENT` (added
/// in 1.9). Unparsable counts as older.
pub fn has_deactivate_agent(version: &str) -> bool {
    major_minor(version).is_some_and(|v| v >= (1, 9))
}

/// `1.9.0` → (1, 9); anything else → `None`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MesosAgent {
    /// The agent's id (`slaves[].id`): what the v1 operator API names it by.
    pub id: String,
    pub hostname: String,
    pub active: bool,
    /// Deactivated by the operator API (`DEACTIVATE_AGENT`, Mesos >= 1.9): no offers.
    pub deactivated: bool,
}

/// A task the master lists as still running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MesosTask {
    pub id: String,
    pub name: String,
    /// The framework's name (empty for a task whose framework has not re-registered).
    pub framework: String,
    /// The agent it runs on, by id (`slave_id`).
    pub agent_id: String,
    /// That agent's hostname, when the master lists the agent.
    pub agent_hostname: Option<String>,
    /// `TASK_RUNNING`, ...
    pub state: String,
}

impl MesosTask {
    /// `name (id)`, or the id alone when the task has no name, for messages.
    pub fn label(&self) -> String {
        if self.name.is_empty() || self.name == self.id {
            self.id.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

/// The task states in which a task still runs (or may still run) on its agent.
pub const RUNNING_TASK_STATES: [&str; 4] = [
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MesosFramework {
    pub name: String,
    pub active: bool,
}

/// One `/mesos/json.info_<seq>` znode: a master contending for leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterEntry {
    /// `hostname` (or `address.ip`) of the master's MasterInfo.
    pub hostname: String,
    pub sequence: u64,
}

/// The entry that leads: the lowest sequence.
pub fn zk_leader(entries: &[MasterEntry]) -> Option<&MasterEntry> {
    entries.iter().min_by_key(|e| e.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_index_answers_as_a_scan_would_even_after_the_list_changed() {
        let agent = |host: &str, active: bool| MesosAgent {
            id: format!("{host}-S0"),
            hostname: host.into(),
            active,
            deactivated: false,
        };
        // A re-registered agent: the old one inactive, the new one active.
        let mut m = MesosState {
            agents: vec![agent("w1", false), agent("w2", true), agent("w1", true)],
            ..MesosState::default()
        };
        assert!(m.agent_active(&["w1", "10.0.0.1"]));
        assert!(m.agent_active(&["10.0.0.2", "w2"]));
        assert!(!m.agent_active(&["w3"]));
        assert_eq!(
            m.agent(&["w1"]).map(|a| a.active),
            Some(false),
            "first registered"
        );
        // Changed after the index was built: grown, and an entry renamed.
        m.agents.push(agent("w3", true));
        assert!(m.agent_active(&["w3"]));
        m.agents[1].hostname = "w9".into();
        m.agents.pop();
        assert!(
            !m.agent_active(&["w2"]),
            "a renamed entry is checked, not trusted"
        );
    }

    #[test]
    fn versions_from_1_9_have_deactivate_agent() {
        let at = |v: Option<&str>| MesosState {
            version: v.map(str::to_owned),
            ..MesosState::default()
        };
        assert!(!at(Some("1.4.1")).has_deactivate_agent());
        assert!(at(Some("1.9.0")).has_deactivate_agent());
        assert!(at(Some("1.11.0-rc1")).has_deactivate_agent());
        assert!(at(Some("2.0")).has_deactivate_agent());
        assert!(!at(Some("garbage")).has_deactivate_agent());
        assert!(!at(None).has_deactivate_agent());
    }

    #[test]
    fn tasks_on_matches_hostname_or_agent_id() {
        let m = MesosState {
            agents: vec![MesosAgent {
                id: "S1".into(),
                hostname: "10.0.0.23".into(),
                active: true,
                deactivated: false,
            }],
            tasks: vec![
                MesosTask {
                    id: "a".into(),
                    agent_id: "S1".into(),
                    ..MesosTask::default()
                },
                MesosTask {
                    id: "b".into(),
                    agent_hostname: Some("10.0.0.23".into()),
                    ..MesosTask::default()
                },
                MesosTask {
                    id: "c".into(),
                    agent_id: "S2".into(),
                    ..MesosTask::default()
                },
            ],
            ..MesosState::default()
        };
        let ids: Vec<&str> = m
            .tasks_on(&["node3.omtd", "10.0.0.23"])
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
