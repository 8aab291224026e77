//! The probe loop: asks Mesos, ZooKeeper and Prometheus how they stand, keeps the latest
//! answers where the controllers read them, and wakes the controllers when an answer
//! changes.
//!
//! A probe that is not configured, or that failed this round, is `None`: the controllers
//! then decide nothing that depends on it and say so in conditions. Failures are logged
//! when they start, change or end — not every round, or a dead Mesos would fill the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use omtd_controllers::{MasterEntry, MesosState};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::probes::mesos::MesosMaster;
use crate::probes::prometheus::Prometheus;
use crate::probes::zookeeper::{self, ZkTarget};
use crate::probes::{HttpProbe, HttpTarget, ProbeConfig, ProbeError};
use crate::runtime::Notifier;

/// What [`crate::runtime::Changed::External`] says when probe results changed.
pub const PROBES_CHANGED: &str = "probes";

/// The latest answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResults {
    pub mesos: Option<MesosState>,
    pub zookeeper: Option<Vec<MasterEntry>>,
    pub prometheus_targets: Option<Vec<String>>,
}

/// The answers shared between the probe loop (writer) and the controllers (readers).
#[derive(Debug, Default)]
pub struct SharedProbes {
    results: RwLock<ProbeResults>,
    /// Asks the loop for a round now (after a maintenance call, say).
    kick: Notify,
}

impl SharedProbes {
    pub fn new() -> Arc<SharedProbes> {
        Arc::default()
    }

    pub fn get(&self) -> ProbeResults {
        self.results
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stores `results`; returns whether they differ from before.
    pub fn set(&self, results: ProbeResults) -> bool {
        let mut current = self.results.write().unwrap_or_else(PoisonError::into_inner);
        if *current == results {
            return false;
        }
        *current = results;
        true
    }

    /// Probe again now rather than at the next interval.
    pub fn refresh(&self) {
        self.kick.notify_one();
    }
}

/// Anything that can produce a round of answers (the real probes, or a test's fake).
#[async_trait]
pub trait ProbeSource: Send + Sync {
    async fn probe(&self) -> ProbeResults;
}

/// Where the services answer; each one optional.
#[derive(Debug, Clone, Default)]
pub struct ProbeTargets {
    /// A Mesos master's base URL; user-info (`http://principal:secret@host:5050`) is the
    /// credential (the master authenticates even read-only HTTP).
    pub mesos_url: Option<String>,
    /// The Mesos ZooKeeper URL, `zk://host:2181/mesos`.
    pub zookeeper: Option<String>,
    /// Prometheus's base URL with its route prefix, `http://host:9090/prometheus`.
    pub prometheus_url: Option<String>,
    pub timeout: Duration,
}

impl ProbeTargets {
    pub fn is_empty(&self) -> bool {
        self.mesos_url.is_none() && self.zookeeper.is_none() && self.prometheus_url.is_none()
    }
}

/// The real probes, over HTTP and ZooKeeper.
pub struct HttpProbes {
    mesos: Option<MesosMaster>,
    zookeeper: Option<ZkTarget>,
    prometheus: Option<Prometheus>,
    timeout: Duration,
    /// The last failure of each probe, to log changes only.
    failing: Mutex<BTreeMap<&'static str, String>>,
}

impl HttpProbes {
    /// Checks every configured address now, so a typo fails `omtd operator` at start.
    pub fn new(targets: &ProbeTargets) -> Result<HttpProbes, ProbeError> {
        let http = HttpProbe::new(ProbeConfig {
            timeout: targets.timeout,
        })?;
        let mesos = match &targets.mesos_url {
            Some(url) => Some(MesosMaster::new(http.clone(), HttpTarget::parse(url)?)),
            None => None,
        };
        let prometheus = match &targets.prometheus_url {
            Some(url) => Some(Prometheus::new(http.clone(), HttpTarget::parse(url)?)),
            None => None,
        };
        let zookeeper = match &targets.zookeeper {
            Some(url) => Some(ZkTarget::parse(url)?),
            None => None,
        };
        Ok(HttpProbes {
            mesos,
            zookeeper,
            prometheus,
            timeout: targets.timeout,
            failing: Mutex::default(),
        })
    }

    /// The Mesos master, for maintenance calls.
    pub fn mesos(&self) -> Option<&MesosMaster> {
        self.mesos.as_ref()
    }

    /// `Some(value)` on success; on failure `None`, logged when the failure is new.
    fn keep<T>(&self, probe: &'static str, result: Result<T, ProbeError>) -> Option<T> {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(v) => {
                if failing.remove(probe).is_some() {
                    tracing::info!(probe, "probe answers again");
                }
                Some(v)
            }
            Err(e) => {
                // ProbeError messages never carry a credential (see crate::probes::error).
                let message = e.to_string();
                if failing.get(probe) != Some(&message) {
                    tracing::warn!(probe, error = %message, "probe failed; its answer counts as unknown");
                    failing.insert(probe, message);
                }
                None
            }
        }
    }
}

#[async_trait]
impl ProbeSource for HttpProbes {
    async fn probe(&self) -> ProbeResults {
        let mesos = async {
            match &self.mesos {
                Some(m) => Some(m.state().await),
                None => None,
            }
        };
        let zk = async {
            match &self.zookeeper {
                Some(t) => Some(zookeeper::mesos_masters(t, self.timeout).await),
                None => None,
            }
        };
        let prometheus = async {
            match &self.prometheus {
                Some(p) => Some(p.active_targets().await),
                None => None,
            }
        };
        let (mesos, zk, prometheus) = tokio::join!(mesos, zk, prometheus);
        ProbeResults {
            mesos: mesos.and_then(|r| self.keep("mesos", r)),
            zookeeper: zk.and_then(|r| self.keep("zookeeper", r)),
            prometheus_targets: prometheus.and_then(|r| self.keep("prometheus", r)),
        }
    }
}

/// Probes every `interval` (or at once when asked to refresh) until `shutdown`, storing
/// the answers in `shared` and waking the controllers when they change.
pub async fn run(
    source: Arc<dyn ProbeSource>,
    shared: Arc<SharedProbes>,
    notifier: Notifier,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let results = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = source.probe() => r,
        };
        if shared.set(results) {
            tracing::debug!("probe results changed; waking the controllers");
            notifier.notify(PROBES_CHANGED);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = shared.kick.notified() => {}
        }
    }
}
