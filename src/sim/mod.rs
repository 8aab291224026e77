//! The sim world: the sim hosts of a cluster and what the real services on them would do.
//!
//! The agent's sim driver (`crate::agent::drivers::sim`) models one host: files, services,
//! LVM, mounts. This module models what the cluster's services make of those hosts, so
//! the runbook's failures have real consequences rather than scripted ones:
//!
//! - [`election`]: ZooKeeper's Mesos leader election (the lowest sequence leads, a master
//!   that restarts or loses its session gets the next one — a stray master can lead);
//! - [`master`]: which agents and frameworks register with the leader (credentials byte
//!   for byte, maintenance);
//! - [`maintenance`]: the master's maintenance schedule and DOWN machines;
//! - [`prometheus`]: the monitor's scrape targets from its file_sd files;
//! - [`http`]: all this served on 127.0.0.1 with the services' documented JSON, one port
//!   per sim host and service, so omtd's real probes run against it;
//! - [`probes`]: the ZooKeeper entries, which the real probe can only read from a real
//!   ZooKeeper, handed to the operator through its probe seam.
//!
//! Everything is computed from the hosts' state when asked; only what the services would
//! remember (ZooKeeper sequences, the maintenance registry, Prometheus's last good
//! targets) is kept here.

pub mod config;
pub mod election;
pub mod http;
pub mod machine;
pub mod maintenance;
pub mod master;
pub mod operator_api;
pub mod packages;
pub mod probes;
pub mod prometheus;
pub mod remote;
pub mod tasks;
pub mod zk_mirror;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use omtd_controllers::observed::MasterEntry;
use tokio_util::sync::CancellationToken;

use crate::agent::drivers::sim::SimHost;
use election::{Election, Ensemble};
use maintenance::Maintenance;
use master::LeaderView;
use prometheus::PromState;

/// Why the sim world could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no sim host named {0}")]
    NoSuchNode(String),
    #[error(
        "no offers from {0}: its agent is deactivated (DEACTIVATE_AGENT), so no task starts there"
    )]
    NoOffers(String),
    #[error("cannot listen on a loopback port for {what}: {source}")]
    Bind {
        what: String,
        source: std::io::Error,
    },
    #[error("the sim's HTTP endpoints need a tokio runtime")]
    NoRuntime,
    #[error("{url} does not parse as a Mesos ZooKeeper URL (zk://host:port/path)")]
    BadZkUrl { url: String },
    #[error("no ZooKeeper answers at {url}: no sim host it names runs zookeeper")]
    ZkUnreachable { url: String },
}

/// One sim host of the world and the address the records give it.
#[derive(Clone)]
pub struct SimNode {
    pub address: String,
    pub host: SimHost,
}

impl SimNode {
    /// The master's `--hostname` (its flag file), else the node's name.
    pub fn master_hostname(&self, name: &str) -> String {
        config::flag(&self.host, "/etc/mesos-master/hostname").unwrap_or_else(|| name.to_owned())
    }

    /// The master's `--ip`, else the node's address.
    pub fn master_ip(&self) -> String {
        config::flag(&self.host, "/etc/mesos-master/ip").unwrap_or_else(|| self.address.clone())
    }
}

/// How one host's mesos-master stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MasterRole {
    NotRunning,
    /// Running, but it reaches no ZooKeeper or no master leads there.
    NoLeader,
    /// Running, and this node's master leads its ensemble (maybe itself).
    Led(String),
}

/// Which service an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    MesosMaster,
    Prometheus,
}

#[derive(Default)]
struct Inner {
    nodes: RwLock<BTreeMap<String, SimNode>>,
    election: Mutex<Election>,
    maintenance: Mutex<Maintenance>,
    agent_control: Mutex<operator_api::AgentControl>,
    /// Chronos processes (node → pid) that lost their registration: they stay
    /// disconnected until restarted.
    chronos_lost: Mutex<BTreeMap<String, u64>>,
    prometheus: Mutex<BTreeMap<String, PromState>>,
    tasks: Mutex<tasks::Tasks>,
    endpoints: Mutex<BTreeMap<(String, Service), SocketAddr>>,
    stop: CancellationToken,
}

/// The world: a cheap handle, clone it freely.
#[derive(Clone, Default)]
pub struct SimWorld {
    inner: Arc<Inner>,
}

/// A poisoned lock still yields its data: nothing here has an invariant a panic could
/// break halfway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimWorld {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn nodes(&self) -> RwLockReadGuard<'_, BTreeMap<String, SimNode>> {
        self.inner.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) a host.
    pub fn add_node(&self, name: &str, address: &str, host: SimHost) {
        self.inner
            .nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                name.to_owned(),
                SimNode {
                    address: address.to_owned(),
                    host,
                },
            );
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Result<SimHost, SimError> {
        self.nodes()
            .get(name)
            .map(|n| n.host.clone())
            .ok_or_else(|| SimError::NoSuchNode(name.to_owned()))
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes().keys().cloned().collect()
    }

    /// Brings the election in line with the hosts' services (see [`election`]). Every
    /// query does this first; fault helpers do it around the fault.
    pub fn refresh(&self) {
        let nodes = self.nodes();
        lock(&self.inner.election).refresh(&nodes);
    }

    /// The ensemble a ZooKeeper URL reaches.
    fn ensemble_at(&self, url: &str) -> Result<Ensemble, SimError> {
        let zk = config::ZkUrl::parse(url).ok_or_else(|| SimError::BadZkUrl {
            url: url.to_owned(),
        })?;
        election::reach(&self.nodes(), "", &zk).ok_or_else(|| SimError::ZkUnreachable {
            url: url.to_owned(),
        })
    }

    /// The Mesos leader-election entries at a ZooKeeper URL (`zk://10.0.0.12:2181/mesos`),
    /// as `probes::zookeeper::mesos_masters` reads them from a real ZooKeeper.
    pub fn zk_entries(&self, url: &str) -> Result<Vec<MasterEntry>, SimError> {
        self.refresh();
        let ensemble = self.ensemble_at(url)?;
        let nodes = self.nodes();
        Ok(lock(&self.inner.election).entries(&nodes, &ensemble))
    }

    /// The node whose master leads the ensemble at `url`.
    pub fn leader_at(&self, url: &str) -> Result<Option<String>, SimError> {
        self.refresh();
        let ensemble = self.ensemble_at(url)?;
        Ok(lock(&self.inner.election)
            .leader(&ensemble)
            .map(str::to_owned))
    }

    /// How `name`'s master stands.
    pub(crate) fn master_role(&self, name: &str) -> MasterRole {
        self.refresh();
        let running = self
            .nodes()
            .get(name)
            .and_then(|n| n.host.service("mesos-master"))
            .is_some_and(|s| s.running);
        if !running {
            return MasterRole::NotRunning;
        }
        let election = lock(&self.inner.election);
        match election.ensemble(name).and_then(|e| election.leader(e)) {
            Some(leader) => MasterRole::Led(leader.to_owned()),
            None => MasterRole::NoLeader,
        }
    }

    /// The view of `leader`'s master (which must lead its ensemble).
    pub fn leader_view(&self, leader: &str) -> Option<LeaderView> {
        self.refresh();
        let nodes = self.nodes();
        let election = lock(&self.inner.election);
        let ensemble = election.ensemble(leader)?;
        if election.leader(ensemble) != Some(leader) {
            return None;
        }
        let maintenance = lock(&self.inner.maintenance);
        let mut view = master::view(&nodes, leader, ensemble, &maintenance)?;
        drop(maintenance);
        let control = self.agent_control();
        control.version().clone_into(&mut view.version);
        for a in &mut view.agents {
            a.deactivated = control.is_deactivated(&master::agent_id(&a.node));
        }
        drop(control);
        let lost = lock(&self.inner.chronos_lost);
        view.frameworks.retain(|f| {
            let pid = nodes
                .get(&f.node)
                .and_then(|n| n.host.service("chronos"))
                .map(|s| s.pid);
            pid.is_none() || lost.get(&f.node) != pid.as_ref()
        });
        Some(view)
    }

    pub(crate) fn maintenance(&self) -> MutexGuard<'_, Maintenance> {
        lock(&self.inner.maintenance)
    }

    pub(crate) fn agent_control(&self) -> MutexGuard<'_, operator_api::AgentControl> {
        lock(&self.inner.agent_control)
    }

    /// The version every sim master reports (default [`operator_api::DEFAULT_VERSION`]);
    /// from 1.9 on they take `DEACTIVATE_AGENT`.
    pub fn set_mesos_version(&self, version: &str) {
        self.agent_control().set_version(version);
    }

    /// Launches a task called `name` on `node`'s agent (as Chronos would run a job there);
    /// returns its id.
    pub fn start_task(&self, node: &str, name: &str) -> Result<String, SimError> {
        self.host(node)?;
        if self.agent_control().is_deactivated(&master::agent_id(node)) {
            return Err(SimError::NoOffers(node.to_owned()));
        }
        Ok(lock(&self.inner.tasks).start("chronos", node, name))
    }

    /// The task `id` ends by itself (TASK_FINISHED); `false` if it was not running.
    pub fn finish_task(&self, id: &str) -> bool {
        lock(&self.inner.tasks).finish(id)
    }

    /// Every task the master knows, running or ended.
    pub fn tasks(&self) -> Vec<tasks::SimTask> {
        lock(&self.inner.tasks).all().to_vec()
    }

    /// After `machine/down`: the tasks on DOWN machines' agents are lost (Mesos kills them).
    pub(crate) fn lose_tasks_on_down_machines(&self) {
        let nodes = self.nodes();
        let maintenance = lock(&self.inner.maintenance);
        lock(&self.inner.tasks).lose_on(|node| {
            nodes.get(node).is_some_and(|n| {
                let (hostname, ip) = master::agent_address(node, n);
                maintenance.agent_down(&hostname, &ip)
            })
        });
    }

    /// Prometheus's active targets on `name` (`None` when prometheus is not running).
    pub fn prometheus_targets(&self, name: &str) -> Option<Vec<prometheus::Target>> {
        let host = self.host(name).ok()?;
        host.service("prometheus").filter(|s| s.running)?;
        let mut states = lock(&self.inner.prometheus);
        Some(states.entry(name.to_owned()).or_default().targets(&host))
    }

    // ---- faults that involve more than one host's state ----

    /// Someone starts mesos-master by hand on `name` (see `SimHost::start_stray`); it
    /// joins the election at once.
    pub fn start_stray_master(&self, name: &str) -> Result<(), SimError> {
        self.refresh();
        self.host(name)?.start_stray("mesos-master");
        self.refresh();
        Ok(())
    }

    /// Chronos on `name` loses its registration and stays disconnected until a new Chronos
    /// process starts (the runbook's "Chronos is not connected": the master failed over
    /// and Chronos missed it).
    pub fn disconnect_chronos(&self, name: &str) -> Result<(), SimError> {
        let pid = self
            .host(name)?
            .service("chronos")
            .filter(|s| s.running)
            .map(|s| s.pid);
        if let Some(pid) = pid {
            lock(&self.inner.chronos_lost).insert(name.to_owned(), pid);
        }
        Ok(())
    }

    /// The ZooKeeper session of `name`'s master expires (a long pause, a network blip):
    /// its znode goes and it re-contends with a new, higher sequence, so any other master
    /// contending now leads.
    pub fn expire_master_session(&self, name: &str) {
        self.refresh();
        lock(&self.inner.election).expire(name);
        self.refresh();
    }

    // ---- endpoints ----

    /// `http://127.0.0.1:PORT` of `name`'s Mesos master (bound on first use).
    pub fn mesos_url(&self, name: &str) -> Result<String, SimError> {
        Ok(format!(
            "http://{}",
            self.endpoint(name, Service::MesosMaster)?
        ))
    }

    /// `http://127.0.0.1:PORT/prometheus` of `name`'s Prometheus (bound on first use).
    pub fn prometheus_url(&self, name: &str) -> Result<String, SimError> {
        Ok(format!(
            "http://{}/prometheus",
            self.endpoint(name, Service::Prometheus)?
        ))
    }

    /// The loopback address serving `service` for `name`, bound on first use.
    pub fn endpoint(&self, name: &str, service: Service) -> Result<SocketAddr, SimError> {
        if !self.nodes().contains_key(name) {
            return Err(SimError::NoSuchNode(name.to_owned()));
        }
        let mut endpoints = lock(&self.inner.endpoints);
        if let Some(addr) = endpoints.get(&(name.to_owned(), service)) {
            return Ok(*addr);
        }
        let addr = http::bind(self, name, service, self.inner.stop.clone())?;
        endpoints.insert((name.to_owned(), service), addr);
        Ok(addr)
    }

    /// Stops every endpoint.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}
