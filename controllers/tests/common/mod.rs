//! Fixtures for the controller table tests: the runbook's cluster, observations of a
//! healthy cluster, and small builders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use omtd_controllers::crds::plan::{FileSpec, PlanSlice, Report, ResourceReport, ResourceState};
use omtd_controllers::crds::{Object, ObjectKey, Status};
use omtd_controllers::{
    AgentLiveness, Desired, Intent, MesosAgent, MesosFramework, MesosState, Observed, Settings,
};

pub const EXAMPLE: &str = include_str!("../../../deploy/examples/cluster.yaml");

pub const WORKERS: [&str; 3] = ["node1.omtd", "node2.omtd", "node3.omtd"];
pub const SECRETS: [&str; 6] = [
    "n1-Xq7vL2pR9s",
    "n2-Hb4mW8tK3z",
    "n3-Jd6yF1cN5q",
    "ch-Pw2eR7uT4v",
    "gx-Lk9aS3dF6g",
    "rg-Zx5cV8bN1m",
];

/// The runbook's cluster as records.
pub fn objects() -> Vec<Object> {
    omtd_controllers::crds::manifest::parse(EXAMPLE).expect("the example cluster parses")
}

pub fn parse(yaml: &str) -> Vec<Object> {
    omtd_controllers::crds::manifest::parse(yaml).expect("test manifest parses")
}

pub fn desired(objects: &[Object]) -> Desired {
    Desired::from_objects(objects)
}

pub fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// Fast bcrypt for tests.
pub fn settings() -> Settings {
    Settings {
        bcrypt_cost: 4,
        // The controllers' part of galaxy.ini, tested here ahead of the agents' support.
        galaxy_ini_keys: true,
        ..Settings::default()
    }
}

pub fn alive() -> AgentLiveness {
    AgentLiveness {
        lease_present: true,
        since_heartbeat: Duration::ZERO,
    }
}

pub fn gone(secs: u64) -> AgentLiveness {
    AgentLiveness {
        lease_present: false,
        since_heartbeat: Duration::from_secs(secs),
    }
}

pub fn res(id: &str, state: ResourceState) -> ResourceReport {
    ResourceReport {
        id: id.into(),
        state,
        message: String::new(),
        percent: None,
        observed: BTreeMap::new(),
    }
}

pub fn with(mut r: ResourceReport, facts: &[(&str, &str)]) -> ResourceReport {
    for (k, v) in facts {
        r.observed.insert((*k).into(), (*v).into());
    }
    r
}

pub fn report(node: &str, resources: Vec<ResourceReport>) -> Report {
    let converged = resources
        .iter()
        .all(|r| r.state == ResourceState::Converged);
    Report {
        node: node.into(),
        converged,
        resources,
        ..Default::default()
    }
}

/// Every agent alive and converged (no resources), Mesos healthy: the manager leads,
/// Chronos and every worker active.
pub fn healthy(d: &Desired, now: SystemTime) -> Observed {
    let mut o = Observed::at(now);
    for name in d.nodes.keys() {
        o.agents.insert(name.clone(), alive());
        o.reports.insert(name.clone(), report(name, vec![]));
    }
    o.mesos = Some(mesos_all_active(d));
    o
}

pub fn mesos_all_active(d: &Desired) -> MesosState {
    MesosState {
        leader: d.manager().map(|m| m.spec.address.clone()),
        agents: d
            .workers()
            .map(|w| MesosAgent {
                id: format!("{}-S0", w.metadata.name),
                hostname: w.spec.address.clone(),
                active: true,
                deactivated: false,
            })
            .collect(),
        frameworks: vec![MesosFramework {
            name: "chronos".into(),
            active: true,
        }],
        ..Default::default()
    }
}

/// Stores the output's statuses back into the records (as the runtime would).
pub fn store_statuses(objects: &mut [Object], out: &Intent) {
    for o in objects.iter_mut() {
        if let Some(s) = out.statuses.get(&o.key()) {
            o.set_status(Some(s.clone()));
        }
    }
}

/// Stores the output's slices as the observed stored plans of `controller`.
pub fn store_slices(observed: &mut Observed, controller: &str, out: &Intent) {
    for plans in observed.plans.values_mut() {
        plans.remove(controller);
    }
    for (node, s) in &out.slices {
        observed
            .plans
            .entry(node.clone())
            .or_default()
            .insert(controller.to_owned(), s.clone());
    }
}

pub fn annotate(objects: &mut [Object], key: &ObjectKey, k: &str, v: &str) {
    for o in objects.iter_mut() {
        if &o.key() == key {
            o.meta_mut().annotations.insert(k.into(), v.into());
        }
    }
}

pub fn status_of<'a>(out: &'a Intent, key: &ObjectKey) -> &'a Status {
    out.statuses
        .get(key)
        .unwrap_or_else(|| panic!("no status for {key}"))
}

/// (status, reason) of a condition.
pub fn cond(out: &Intent, key: &ObjectKey, type_: &str) -> (String, String) {
    let c = status_of(out, key)
        .condition(type_)
        .unwrap_or_else(|| panic!("{key} has no {type_} condition"));
    (format!("{:?}", c.status), c.reason.clone())
}

pub fn message(out: &Intent, key: &ObjectKey, type_: &str) -> String {
    status_of(out, key)
        .condition(type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

pub fn file<'a>(out: &'a Intent, node: &str, path: &str) -> &'a FileSpec {
    slice(out, node)
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{node} has no file {path}"))
}

pub fn slice<'a>(out: &'a Intent, node: &str) -> &'a PlanSlice {
    out.slices
        .get(node)
        .unwrap_or_else(|| panic!("no slice for {node}"))
}

pub fn service_names(s: &PlanSlice) -> Vec<String> {
    let mut v: Vec<String> = s.services.iter().map(|x| x.name.clone()).collect();
    v.sort();
    v
}

pub fn node_key(name: &str) -> ObjectKey {
    omtd_controllers::desired::node_key(name)
}

pub fn volume_key(name: &str) -> ObjectKey {
    omtd_controllers::desired::volume_key(name)
}

pub fn cluster_key() -> ObjectKey {
    ObjectKey {
        kind: omtd_controllers::crds::Kind::Cluster,
        name: "omtd".into(),
    }
}

/// Whether `text` holds any of the example cluster's secrets.
pub fn leaks(text: &str) -> Option<&'static str> {
    SECRETS.iter().copied().find(|s| text.contains(s))
}
