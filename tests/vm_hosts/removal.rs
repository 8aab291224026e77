//! The runbook's "How to remove a node" on the VMs, to its last step: `omtd delete node`,
//! and the worker's scrape targets leave the real Prometheus, which omtd's own Prometheus
//! probe confirms before the record is released. Mesos has no Debian package, so its
//! answers are a stand-in: a master that leads on the manager, Chronos registered, the
//! worker's agent active, and the worker's machine marked down when the test says (what a
//! drain ends with). The Prometheus answers are the real probe's, against the real
//! Prometheus on the executor VM through an ssh tunnel to its loopback port.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use omtd::operator::probes::{ProbeResults, ProbeSource};
use omtd::operator::store_credentials::StoreCredentials;
use omtd::probes::prometheus::Prometheus;
use omtd::probes::{HttpProbe, HttpTarget, ProbeConfig};
use omtd_controllers::{MesosAgent, MesosFramework, MesosState};
use omtd_test_support::ports::free_port;
use omtd_test_support::vm::machine::Vm;
use omtd_test_support::vm::Rig;

const WORKER_ADDR: &str = "10.0.0.21";

/// The probe answers the operator gets in this scenario.
pub struct RigProbes {
    prometheus: Prometheus,
    /// The worker's machine is DOWN in Mesos maintenance.
    down: Mutex<bool>,
}

impl RigProbes {
    pub fn new(prometheus_port: u16) -> Arc<RigProbes> {
        let http = HttpProbe::new(ProbeConfig {
            timeout: Duration::from_secs(5),
            ..ProbeConfig::default()
        })
        .expect("a probe client");
        let target = HttpTarget::parse(&format!("http://127.0.0.1:{prometheus_port}/prometheus"))
            .expect("a Prometheus URL");
        Arc::new(RigProbes {
            prometheus: Prometheus::new(http, target),
            down: Mutex::new(false),
        })
    }

    /// What Mesos says at the end of a drain: the machine is down.
    pub fn mark_down(&self) {
        *self.down.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }
}

#[async_trait]
impl ProbeSource for RigProbes {
    async fn probe(&self, _: &StoreCredentials) -> ProbeResults {
        let down = *self.down.lock().unwrap_or_else(PoisonError::into_inner);
        let mesos = MesosState {
            leader: Some("10.0.0.10".into()),
            agents: vec![MesosAgent {
                id: "vm-worker-agent".into(),
                hostname: WORKER_ADDR.into(),
                active: !down,
                deactivated: false,
            }],
            frameworks: vec![MesosFramework {
                name: omtd_controllers::leader_guard::CHRONOS_FRAMEWORK.into(),
                active: true,
            }],
            down_machines: if down {
                vec![WORKER_ADDR.into()]
            } else {
                Vec::new()
            },
            version: Some("1.4.1".into()),
            ..MesosState::default()
        };
        ProbeResults {
            mesos: Some(mesos),
            prometheus_targets: self.prometheus.active_targets().await.ok(),
            ..ProbeResults::default()
        }
    }
}

/// `omtd delete node node1.omtd` through to the release. Returns how long until the
/// record was gone, and the real Prometheus's targets after.
pub async fn remove_the_worker(rig: &mut Rig, executor: &Vm, worker: &Vm) -> (Duration, String) {
    let port = free_port();
    let _tunnel = executor.tunnel(port, "127.0.0.1:9090");
    let probes = RigProbes::new(port);
    // The tunnel is up once the real probe answers through it.
    let start = Instant::now();
    while probes.prometheus.active_targets().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no tunnel to Prometheus"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = probes.prometheus.active_targets().await.expect("targets");
    assert!(
        before.iter().any(|t| t == "10.0.0.21:9100"),
        "the real probe sees the worker's node exporter: {before:?}"
    );
    rig.restart_operator_with(probes.clone()).await;
    let start = Instant::now();
    let out = rig.omtd(&["delete", "node", "node1.omtd"]).await;
    assert!(out.contains("marked for deletion"), "{out}");
    // The drain: no task runs on the stand-in agent, Mesos marks the machine down.
    probes.mark_down();
    let deadline = Duration::from_secs(300);
    loop {
        let listed = rig.omtd(&["get", "nodes"]).await;
        if !listed.contains("node1.omtd") {
            break;
        }
        assert!(
            start.elapsed() < deadline,
            "node1.omtd not released in {deadline:?}:\n{}",
            rig.omtd(&["describe", "node", "node1.omtd"]).await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = start.elapsed();
    // The exporter was stopped by the worker's agent (the runbook's "make sure
    // prometheus-node-exporter does not send scraps"), and Prometheus lists no target of it.
    let exporter = worker
        .ssh("systemctl is-active prometheus-node-exporter")
        .await;
    assert_ne!(
        exporter.stdout.trim(),
        "active",
        "the node exporter is stopped"
    );
    let after = probes.prometheus.active_targets().await.expect("targets");
    assert!(
        after.iter().all(|t| !t.starts_with("10.0.0.21:")),
        "the worker's targets are gone from Prometheus: {after:?}"
    );
    (took, after.join(" "))
}
