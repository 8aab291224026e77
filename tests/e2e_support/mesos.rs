//! A model of what Mesos, Chronos and ZooKeeper would say about the sim hosts, answering
//! the operator's probes and maintenance calls in-process — so the runbook's Mesos
//! failures are consequences of what is on the hosts, not scripted:
//!
//! - the manager's mesos-master leads while it runs (ZooKeeper lists every running master;
//!   the manager's entry has the lowest sequence);
//! - a worker's agent is active only while mesos-slave runs there, its credentials file
//!   matches an entry of the master's credentials byte for byte, and its machine is not
//!   down for maintenance;
//! - Chronos is registered only while it runs on the manager with a principal and secret
//!   the master's credentials hold — and not after [`MesosModel::disconnect_chronos`]
//!   until Chronos is started again (a fresh process re-registers);
//! - maintenance follows Mesos's rules: scheduled machines drain, down machines are out.
//!
//! Not modelled: the master reading credentials only at start (the model reads the file
//! as it is), offers and tasks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use omtd::agent::drivers::sim::SimHost;
use omtd::operator::maintenance::MaintenanceApi;
use omtd::operator::probes::{ProbeResults, ProbeSource};
use omtd::probes::mesos::MachineId;
use omtd::probes::ProbeError;
use omtd_controllers::{MasterEntry, MesosAgent, MesosFramework, MesosState};
use serde::Deserialize;

const MASTER_CREDENTIALS: &str = "/etc/mesos-master/store/credentials.json";
const AGENT_CREDENTIALS: &str = "/etc/mesos-slave/store/credentials.json";
const CHRONOS_PRINCIPAL: &str = "/etc/chronos/conf/mesos_authentication_principal";
const CHRONOS_SECRET: &str = "/etc/chronos/store/mesos_authentication_secret";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Principal {
    principal: String,
    secret: String,
}

#[derive(Deserialize)]
struct Credentials {
    credentials: Vec<Principal>,
}

#[derive(Default)]
struct State {
    /// node → (address, host)
    hosts: BTreeMap<String, (String, SimHost)>,
    /// Machine names (addresses) scheduled and not yet down.
    draining: Vec<String>,
    down: Vec<String>,
    /// Chronos's pid when it was disconnected: it stays so until another process runs.
    chronos_disconnected_pid: Option<u64>,
    /// Maintenance calls made, in order (`schedule 10.0.0.23`).
    calls: Vec<String>,
}

#[derive(Default)]
pub struct MesosModel {
    manager: String,
    state: Mutex<State>,
}

impl MesosModel {
    pub fn new(manager: &str) -> Arc<MesosModel> {
        Arc::new(MesosModel {
            manager: manager.to_owned(),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add_host(&self, node: &str, address: &str, host: &SimHost) {
        self.state()
            .hosts
            .insert(node.to_owned(), (address.to_owned(), host.clone()));
    }

    /// Chronos loses its registration (as after a master failover it missed): it stays
    /// disconnected until a new Chronos process starts.
    pub fn disconnect_chronos(&self) {
        let mut st = self.state();
        let pid = st
            .hosts
            .get(&self.manager)
            .and_then(|(_, h)| h.service("chronos"))
            .map(|s| s.pid);
        st.chronos_disconnected_pid = pid;
    }

    pub fn down_machines(&self) -> Vec<String> {
        self.state().down.clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// What `/master/state`, `/master/maintenance/status` and ZooKeeper would say now.
    pub fn observe(&self) -> (Option<MesosState>, Vec<MasterEntry>) {
        let st = self.state();
        let running = |h: &SimHost, svc: &str| h.service(svc).is_some_and(|s| s.running);
        let mut entries = Vec::new();
        let mut sequence = 1;
        if let Some((addr, h)) = st.hosts.get(&self.manager) {
            if running(h, "mesos-master") {
                entries.push(MasterEntry {
                    hostname: addr.clone(),
                    sequence,
                });
                sequence += 1;
            }
        }
        for (node, (addr, h)) in &st.hosts {
            if *node != self.manager && running(h, "mesos-master") {
                entries.push(MasterEntry {
                    hostname: addr.clone(),
                    sequence,
                });
                sequence += 1;
            }
        }
        let Some(leader) = entries.first().map(|e| e.hostname.clone()) else {
            // No master runs: nothing answers on the master's port.
            return (None, entries);
        };
        let known: Vec<Principal> = st
            .hosts
            .get(&self.manager)
            .and_then(|(_, h)| h.file(MASTER_CREDENTIALS))
            .and_then(|f| serde_json::from_slice::<Credentials>(&f.content).ok())
            .map(|c| c.credentials)
            .unwrap_or_default();
        let mut agents = Vec::new();
        for (node, (addr, h)) in &st.hosts {
            if *node == self.manager || !running(h, "mesos-slave") {
                continue;
            }
            let authenticated = h
                .file(AGENT_CREDENTIALS)
                .and_then(|f| serde_json::from_slice::<Principal>(&f.content).ok())
                .is_some_and(|p| known.contains(&p));
            agents.push(MesosAgent {
                hostname: addr.clone(),
                active: authenticated && !st.down.contains(addr),
            });
        }
        let mut frameworks = Vec::new();
        if let Some((_, h)) = st.hosts.get(&self.manager) {
            if let Some(chronos) = h.service("chronos").filter(|s| s.running) {
                let text = |p: &str| h.file(p).map(|f| f.content).unwrap_or_default();
                let me = Principal {
                    principal: String::from_utf8_lossy(&text(CHRONOS_PRINCIPAL)).into_owned(),
                    secret: String::from_utf8_lossy(&text(CHRONOS_SECRET)).into_owned(),
                };
                let connected = st.chronos_disconnected_pid != Some(chronos.pid);
                frameworks.push(MesosFramework {
                    name: "chronos".into(),
                    active: connected && known.contains(&me),
                });
            }
        }
        let state = MesosState {
            leader: Some(leader),
            agents,
            frameworks,
            down_machines: st.down.clone(),
            draining_machines: st.draining.clone(),
        };
        (Some(state), entries)
    }
}

/// The shared model as the operator's probe source and maintenance API.
pub struct ModelProbes(pub Arc<MesosModel>);

#[async_trait]
impl ProbeSource for ModelProbes {
    async fn probe(&self) -> ProbeResults {
        let (mesos, zookeeper) = self.0.observe();
        ProbeResults {
            mesos,
            zookeeper: Some(zookeeper),
            prometheus_targets: None,
        }
    }
}

fn addresses(machines: &[MachineId]) -> Vec<String> {
    machines.iter().filter_map(|m| m.ip.clone()).collect()
}

fn refused(what: String) -> ProbeError {
    ProbeError::BadStatus {
        url: "model://master/maintenance".into(),
        status: 400,
        body: what,
    }
}

#[async_trait]
impl MaintenanceApi for ModelProbes {
    async fn schedule(&self, machines: &[MachineId], _start: SystemTime) -> Result<(), ProbeError> {
        let mut st = self.0.state();
        for a in addresses(machines) {
            st.calls.push(format!("schedule {a}"));
            if !st.draining.contains(&a) && !st.down.contains(&a) {
                st.draining.push(a);
            }
        }
        Ok(())
    }

    async fn down(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        let mut st = self.0.state();
        for a in addresses(machines) {
            st.calls.push(format!("down {a}"));
            if !st.draining.contains(&a) {
                return Err(refused(format!("{a} is not in DRAINING mode")));
            }
            st.draining.retain(|d| *d != a);
            st.down.push(a);
        }
        Ok(())
    }

    async fn up(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        let mut st = self.0.state();
        for a in addresses(machines) {
            st.calls.push(format!("up {a}"));
            st.down.retain(|d| *d != a);
        }
        Ok(())
    }

    async fn unschedule(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        let mut st = self.0.state();
        for a in addresses(machines) {
            st.calls.push(format!("unschedule {a}"));
            st.draining.retain(|d| *d != a);
        }
        Ok(())
    }
}
