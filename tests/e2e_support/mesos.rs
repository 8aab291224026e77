//! Mesos, Chronos, ZooKeeper and Prometheus for the end-to-end tests: the sim world
//! (`omtd::sim`), which computes what those services would make of the sim hosts and
//! serves it over HTTP on loopback, so the operator runs its real probes and real
//! maintenance calls against it.
//!
//! One fault the sim world does not model is added here: Chronos losing its registration
//! and staying disconnected until a new Chronos process starts (the runbook's "Chronos is
//! not connected": the master failed over and Chronos missed it). [`ChronosFault`] wraps
//! the sim's probe answers and marks Chronos inactive while it holds.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use omtd::agent::drivers::sim::SimHost;
use omtd::operator::maintenance::MaintenanceApi;
use omtd::operator::probes::{ProbeResults, ProbeSource};
use omtd::sim::probes::SimProbes;
use omtd::sim::SimWorld;

/// The example cluster's manager, ZooKeeper URL, monitor and the credential the probes
/// present to the master (which authenticates even read-only HTTP).
pub const MANAGER: &str = "manager.omtd";
pub const MONITOR: &str = "monitor.omtd";
pub const ZK_URL: &str = "zk://10.0.0.12:2181/mesos";
pub const PROBE_PRINCIPAL: (&str, &str) = ("chronos.omtd", "ch-Pw2eR7uT4v");

/// "Chronos is not connected" until it is restarted.
#[derive(Default)]
pub struct ChronosFault {
    manager: Mutex<Option<SimHost>>,
    /// The Chronos process (pid) that lost its registration.
    pid: Mutex<Option<u64>>,
}

impl ChronosFault {
    pub fn new() -> Arc<ChronosFault> {
        Arc::default()
    }

    pub fn watch_manager(&self, host: &SimHost) {
        *self.manager.lock().unwrap_or_else(PoisonError::into_inner) = Some(host.clone());
    }

    fn chronos_pid(&self) -> Option<u64> {
        let manager = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
        manager.as_ref()?.service("chronos").map(|s| s.pid)
    }

    /// The running Chronos loses its registration.
    pub fn disconnect(&self) {
        let pid = self.chronos_pid();
        *self.pid.lock().unwrap_or_else(PoisonError::into_inner) = pid;
    }

    /// Whether the Chronos that lost its registration still runs.
    fn holds(&self) -> bool {
        let lost = *self.pid.lock().unwrap_or_else(PoisonError::into_inner);
        lost.is_some() && lost == self.chronos_pid()
    }
}

/// The sim world's probe answers, with the Chronos fault applied.
struct Faulty {
    inner: Arc<dyn ProbeSource>,
    chronos: Arc<ChronosFault>,
}

#[async_trait]
impl ProbeSource for Faulty {
    async fn probe(&self) -> ProbeResults {
        let mut results = self.inner.probe().await;
        if self.chronos.holds() {
            if let Some(mesos) = results.mesos.as_mut() {
                mesos.frameworks.retain(|f| f.name != "chronos");
            }
        }
        results
    }
}

/// What the operator probes and calls for maintenance, over the sim world's HTTP.
pub fn wiring(
    world: &SimWorld,
    chronos: Arc<ChronosFault>,
) -> (Arc<dyn ProbeSource>, Option<Arc<dyn MaintenanceApi>>) {
    let w = SimProbes::wiring(
        world,
        MANAGER,
        Some(MONITOR),
        Some(PROBE_PRINCIPAL),
        ZK_URL,
        Duration::from_secs(2),
    )
    .expect("the sim world's endpoints");
    let probes: Arc<dyn ProbeSource> = Arc::new(Faulty {
        inner: w.probes,
        chronos,
    });
    (probes, w.maintenance)
}
