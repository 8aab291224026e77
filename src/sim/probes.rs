//! The operator's probe seam for the sim world: Mesos and Prometheus through the real
//! HTTP probes against the sim's loopback endpoints, and the ZooKeeper leader entries
//! straight from the sim's election (the real ZooKeeper probe needs a real ZooKeeper).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{SimError, SimWorld};
use crate::operator::maintenance::MaintenanceApi;
use crate::operator::probes::{HttpProbes, ProbeResults, ProbeSource, ProbeTargets};
use crate::operator::store_credentials::StoreCredentials;
use crate::probes::ProbeError;

/// Probes of a sim cluster.
pub struct SimProbes {
    http: HttpProbes,
    world: SimWorld,
    zk_url: String,
}

/// What the operator needs to watch a sim cluster.
pub struct SimWiring {
    pub probes: Arc<dyn ProbeSource>,
    pub maintenance: Option<Arc<dyn MaintenanceApi>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimProbeError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

impl SimProbes {
    /// Probes for the cluster whose Mesos master runs on `manager` (reached at
    /// `mesos_auth`'s credentials, `principal:secret`, when the master authenticates HTTP),
    /// whose Prometheus runs on `monitor`, and whose masters meet at `zk_url`.
    pub fn wiring(
        world: &SimWorld,
        manager: &str,
        monitor: Option<&str>,
        mesos_auth: Option<(&str, &str)>,
        zk_url: &str,
        timeout: Duration,
    ) -> Result<SimWiring, SimProbeError> {
        let base = world.mesos_url(manager)?;
        let mesos_url = match mesos_auth {
            Some((user, pass)) => base.replacen(
                "http://",
                &format!("http://{}:{}@", encode(user), encode(pass)),
                1,
            ),
            None => base,
        };
        let prometheus_url = monitor.map(|m| world.prometheus_url(m)).transpose()?;
        let targets = ProbeTargets {
            mesos_url: Some(mesos_url),
            zookeeper: None,
            prometheus_url,
            timeout,
            ..ProbeTargets::default()
        };
        let http = HttpProbes::new(&targets)?;
        let maintenance = http.maintenance();
        Ok(SimWiring {
            probes: Arc::new(SimProbes {
                http,
                world: world.clone(),
                zk_url: zk_url.to_owned(),
            }),
            maintenance,
        })
    }
}

/// Percent-encodes what user-info cannot carry as is (the probe decodes it back).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl ProbeSource for SimProbes {
    async fn probe(&self, credentials: &StoreCredentials) -> ProbeResults {
        let mut results = self.http.probe(credentials).await;
        // A ZooKeeper that does not answer is an unknown answer, as with the real probe.
        results.zookeeper = self.world.zk_entries(&self.zk_url).ok();
        results
    }
}
