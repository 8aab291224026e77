//! What "repaired" means, judged from the sim world — what Mesos, ZooKeeper, Prometheus
//! and the hosts would show an operator — rather than from omtd's own records.

use std::collections::BTreeMap;

use crate::sim::SimWorld;

/// The cluster's parts the checks need.
#[derive(Debug, Clone)]
pub struct Topology {
    pub manager: String,
    pub executor: String,
    pub monitor: Option<String>,
    /// Workers: (node name, address).
    pub workers: Vec<(String, String)>,
    pub zk_url: String,
}

impl Topology {
    pub fn worker_names(&self) -> Vec<String> {
        self.workers.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// What the Mesos side looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MesosView {
    pub leader: Option<String>,
    pub active_agents: Vec<String>,
    pub chronos: bool,
}

impl MesosView {
    pub fn healthy(&self, t: &Topology) -> bool {
        self.leader.as_deref() == Some(t.manager.as_str())
            && self.chronos
            && t.workers
                .iter()
                .all(|(n, _)| self.active_agents.contains(n))
    }
}

pub fn mesos(world: &SimWorld, t: &Topology) -> MesosView {
    let leader = world.leader_at(&t.zk_url).ok().flatten();
    let view = leader.as_deref().and_then(|l| world.leader_view(l));
    MesosView {
        leader,
        active_agents: view
            .as_ref()
            .map(|v| v.agents.iter().map(|a| a.node.clone()).collect())
            .unwrap_or_default(),
        chronos: view
            .as_ref()
            .is_some_and(|v| v.frameworks.iter().any(|f| f.name == "chronos")),
    }
}

/// Whether `service` runs on `node`.
pub fn running(world: &SimWorld, node: &str, service: &str) -> bool {
    world
        .host(node)
        .ok()
        .and_then(|h| h.service(service))
        .is_some_and(|s| s.running)
}

/// Whether `service` is stopped and masked on `node` (or not installed at all).
pub fn stopped_and_masked(world: &SimWorld, node: &str, service: &str) -> bool {
    world
        .host(node)
        .ok()
        .and_then(|h| h.service(service))
        .is_none_or(|s| !s.running && s.masked)
}

/// Workers whose database share the executor exports and that have it mounted.
pub fn nfs_ready(world: &SimWorld, t: &Topology) -> usize {
    let Ok(executor) = world.host(&t.executor) else {
        return 0;
    };
    let exports = executor.state().exports_owned.clone();
    t.workers
        .iter()
        .filter(|(name, addr)| {
            let exported = exports
                .iter()
                .any(|l| l.contains("/database") && l.contains(&format!(" {addr}(")));
            let mounted = world
                .host(name)
                .is_ok_and(|h| h.state().mounted.contains("/srv/executor/database"));
            exported && mounted
        })
        .count()
}

/// Prometheus's active targets on the monitor.
pub fn targets(world: &SimWorld, t: &Topology) -> Vec<String> {
    t.monitor
        .as_deref()
        .and_then(|m| world.prometheus_targets(m))
        .map(|ts| ts.into_iter().map(|t| t.address).collect())
        .unwrap_or_default()
}

/// Whether both of a worker's targets (node exporter, cAdvisor) are scraped.
pub fn scraped(targets: &[String], address: &str) -> bool {
    [9100, 8080]
        .iter()
        .all(|p| targets.contains(&format!("{address}:{p}")))
}

/// Size of a logical volume and of the filesystem on it, in bytes.
pub fn lv_sizes(world: &SimWorld, node: &str, lv_path: &str) -> Option<(u64, u64)> {
    let host = world.host(node).ok()?;
    let st = host.state();
    let dev = st.devices.get(lv_path)?;
    Some((dev.size, dev.fs_size))
}

/// How far each host's change log goes now (to show what omtd changed after a fault).
pub fn log_marks(world: &SimWorld) -> BTreeMap<String, usize> {
    world
        .node_names()
        .into_iter()
        .filter_map(|n| Some((n.clone(), world.host(&n).ok()?.state().log.len())))
        .collect()
}

/// What the agents changed on each host since `marks` (`stop mesos-master`, `write
/// /etc/exports`: actions and paths, never contents), consecutive repeats folded.
pub fn changes_since(
    world: &SimWorld,
    marks: &BTreeMap<String, usize>,
) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for name in world.node_names() {
        let Ok(host) = world.host(&name) else {
            continue;
        };
        let from = marks.get(&name).copied().unwrap_or(0);
        let mut changes: Vec<String> = host.state().log.iter().skip(from).cloned().collect();
        changes.dedup();
        if !changes.is_empty() {
            out.push((name, changes));
        }
    }
    out
}
