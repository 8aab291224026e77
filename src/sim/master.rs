//! What a leading Mesos master (1.4) would know: which agents and frameworks managed to
//! register with it, computed from the hosts as they are now.
//!
//! Services are judged on their files as they stand, i.e. as if each had just (re)read
//! them: a stricter model than a real host, where a broken file bites at the next restart,
//! so a broken file shows at once instead of at some later restart.
//!
//! - An agent (`mesos-slave` running) registers when its `/etc/mesos/zk` reaches the
//!   leader's ensemble and it authenticates: its credential (principal and secret) equals
//!   one of the leader's credentials exactly. Without a credential it registers only if
//!   the leader does not set `authenticate_agents`. A DOWN machine's agent is removed.
//!   A hung mesos-slave (running, doing nothing: see `Fault::HangService`) is not registered.
//! - Chronos (`chronos` running) registers as a framework under the same rule, with the
//!   principal and secret file its launcher passes (see `config`); frameworks authenticate
//!   only when given a principal, and Mesos 1.4 does not require it unless
//!   `authenticate_frameworks` is set. (The master's `acls` only deny what a rule denies,
//!   and omtd's rule allows Chronos, so they change nothing here.)

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::config::{self, Credential};
use super::election::{ensemble_of, Ensemble};
use super::maintenance::Maintenance;
use super::tasks::SimTask;
use super::SimNode;

pub const MASTER_PORT: u16 = 5050;
const AGENT_PORT: u16 = 5051;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub node: String,
    pub hostname: String,
    pub ip: String,
    /// Deactivated by the operator API (`DEACTIVATE_AGENT`, Mesos >= 1.9): no offers.
    pub deactivated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framework {
    pub node: String,
    pub name: String,
    pub hostname: String,
    pub principal: Option<String>,
}

/// The leader's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub leader: String,
    pub hostname: String,
    pub ip: String,
    pub agents: Vec<Agent>,
    pub frameworks: Vec<Framework>,
    /// The Mesos version the master reports.
    pub version: String,
}

/// Whether `presented` authenticates against `known` (exact principal and secret), or,
/// with nothing presented, whether the master lets the unauthenticated in.
fn admitted(presented: Option<&Credential>, known: &[Credential], required: bool) -> bool {
    match presented {
        Some(c) => known.iter().any(|k| k == c),
        None => !required,
    }
}

/// The view of `leader`, the master leading `ensemble`.
pub fn view(
    nodes: &BTreeMap<String, SimNode>,
    leader: &str,
    ensemble: &Ensemble,
    maintenance: &Maintenance,
) -> Option<LeaderView> {
    let lnode = nodes.get(leader)?;
    let known = config::master_credentials(&lnode.host);
    let agents_required = config::flag_true(&lnode.host, "/etc/mesos-master/authenticate_agents");
    let frameworks_required =
        config::flag_true(&lnode.host, "/etc/mesos-master/authenticate_frameworks");
    // A hung service runs but never talks to the master.
    let running =
        |n: &SimNode, svc: &str| n.host.service(svc).is_some_and(|s| s.running && !s.hung);
    let reaches = |name: &str| ensemble_of(nodes, name).as_ref() == Some(ensemble);

    let mut agents = Vec::new();
    let mut frameworks = Vec::new();
    for (name, node) in nodes {
        if running(node, "mesos-slave") && reaches(name) {
            let cred = config::agent_credential(&node.host);
            let (hostname, ip) = agent_address(name, node);
            if admitted(cred.as_ref(), &known, agents_required)
                && !maintenance.agent_down(&hostname, &ip)
            {
                agents.push(Agent {
                    node: name.clone(),
                    hostname,
                    ip,
                    deactivated: false,
                });
            }
        }
        if running(node, "chronos") && reaches(name) {
            let cred = config::chronos_credential(&node.host);
            if admitted(cred.as_ref(), &known, frameworks_required) {
                frameworks.push(Framework {
                    node: name.clone(),
                    name: config::flag(&node.host, "/etc/chronos/conf/mesos_framework_name")
                        .unwrap_or_else(|| "chronos".to_owned()),
                    hostname: config::flag(&node.host, "/etc/chronos/conf/hostname")
                        .unwrap_or_else(|| name.clone()),
                    principal: cred.map(|c| c.principal),
                });
            }
        }
    }
    Some(LeaderView {
        leader: leader.to_owned(),
        hostname: lnode.master_hostname(leader),
        ip: lnode.master_ip(),
        agents,
        frameworks,
        version: super::operator_api::DEFAULT_VERSION.to_owned(),
    })
}

/// The id the leader gives `node`'s agent.
pub fn agent_id(node: &str) -> String {
    format!("{}-S0", id("agent", node))
}

/// The agent's `--hostname` and `--ip` (its flag files), else the node's name and address.
pub fn agent_address(name: &str, node: &SimNode) -> (String, String) {
    let hostname =
        config::flag(&node.host, "/etc/mesos-slave/hostname").unwrap_or_else(|| name.to_owned());
    let ip =
        config::flag(&node.host, "/etc/mesos-slave/ip").unwrap_or_else(|| node.address.clone());
    (hostname, ip)
}

/// `tasks[]` entries (Mesos's `Task` JSON, the fields omtd reads) of the running tasks of
/// `framework`, or with `None` of frameworks the leader has not registered (its
/// `orphan_tasks`).
fn tasks_json(v: &LeaderView, tasks: &[SimTask], framework: Option<&str>) -> Vec<Value> {
    let registered = |f: &str| v.frameworks.iter().any(|x| x.name == f);
    tasks
        .iter()
        .filter(|t| t.running())
        .filter(|t| match framework {
            Some(f) => t.framework == f,
            None => !registered(&t.framework),
        })
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "slave_id": agent_id(&t.node),
                "state": t.state,
                "resources": {"cpus": 1.0, "mem": 128.0},
            })
        })
        .collect()
}

/// A stable id from a name (Mesos ids are UUIDs; these only need to be unique and stable).
fn id(kind: &str, name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff_ffff_ffff
    )
}

/// `MasterInfo` as Mesos renders it in `leader_info` and in the ZooKeeper znode.
pub fn master_info(v: &LeaderView) -> Value {
    json!({
        "id": id("master", &v.leader),
        "pid": format!("master@{}:{MASTER_PORT}", v.ip),
        "port": MASTER_PORT,
        "hostname": v.hostname,
        "address": {"hostname": v.hostname, "ip": v.ip, "port": MASTER_PORT},
        "version": v.version,
    })
}

/// `GET /master/state` of the leader (the fields omtd and the Mesos UI use).
pub fn state_json(v: &LeaderView, cluster: Option<String>, tasks: &[SimTask]) -> Value {
    let pid = format!("master@{}:{MASTER_PORT}", v.ip);
    let slaves: Vec<Value> = v
        .agents
        .iter()
        .map(|a| {
            let mut agent = json!({
                "id": agent_id(&a.node),
                "pid": format!("slave(1)@{}:{AGENT_PORT}", a.ip),
                "hostname": a.hostname,
                "port": AGENT_PORT,
                "active": true,
                "version": v.version,
                "resources": {"cpus": 4.0, "mem": 15_360.0, "disk": 100_000.0, "ports": "[31000-32000]"},
                "attributes": {},
            });
            // Mesos reports the field only from 1.9, which has the call that sets it.
            if omtd_controllers::observed::has_deactivate_agent(&v.version) {
                agent["deactivated"] = json!(a.deactivated);
            }
            agent
        })
        .collect();
    let frameworks: Vec<Value> = v
        .frameworks
        .iter()
        .map(|f| {
            json!({
                "id": format!("{}-0000", id("framework", &f.node)),
                "name": f.name,
                "hostname": f.hostname,
                "principal": f.principal,
                "active": true,
                "connected": true,
                "recovered": false,
                "role": "*",
                "tasks": tasks_json(v, tasks, Some(&f.name)),
            })
        })
        .collect();
    json!({
        "version": v.version,
        "id": id("master", &v.leader),
        "pid": pid,
        "hostname": v.hostname,
        "leader": pid,
        "leader_info": master_info(v),
        "cluster": cluster,
        "activated_slaves": v.agents.len(),
        "deactivated_slaves": 0,
        "unreachable_slaves": 0,
        "slaves": slaves,
        "frameworks": frameworks,
        "completed_frameworks": [],
        "unregistered_frameworks": [],
        "orphan_tasks": tasks_json(v, tasks, None),
    })
}

/// `GET /metrics/snapshot` of a master.
pub fn metrics_json(v: Option<&LeaderView>) -> Value {
    json!({
        "master/elected": if v.is_some() { 1.0 } else { 0.0 },
        "master/slaves_active": v.map_or(0, |v| v.agents.len()),
        "master/frameworks_active": v.map_or(0, |v| v.frameworks.len()),
    })
}
