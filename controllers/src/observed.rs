//! What the shell measured, handed to the controllers: agent reports and liveness, probe
//! results (Mesos master, ZooKeeper, Prometheus), the plan slices as stored, and `now`.
//!
//! A probe that could not answer is `None`: the controllers then decide nothing that
//! depends on it (no recovery on a missing Mesos answer, no removal confirmed on a missing
//! Prometheus answer), and say so in conditions.

use std::collections::BTreeMap;
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
}

impl MesosState {
    /// Whether one of `names` (a node's name and address) is an active agent.
    pub fn agent_active(&self, names: &[&str]) -> bool {
        self.agents
            .iter()
            .any(|a| a.active && names.contains(&a.hostname.as_str()))
    }

    /// Whether a framework called `name` is registered and active.
    pub fn framework_active(&self, name: &str) -> bool {
        self.frameworks.iter().any(|f| f.name == name && f.active)
    }

    pub fn machine_down(&self, names: &[&str]) -> bool {
        self.down_machines
            .iter()
            .any(|m| names.contains(&m.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MesosAgent {
    pub hostname: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
