//! The sim world models what Mesos, ZooKeeper, Chronos and Prometheus would make of the
//! sim hosts, and serves it over HTTP: these tests configure hosts by hand (files and
//! services, as a person at a shell would) and read the consequences with omtd's real
//! probes.

use std::time::{Duration, SystemTime};

use omtd::agent::drivers::sim::SimHost;
use omtd::probes::mesos::{MachineId, MesosMaster};
use omtd::probes::prometheus::Prometheus;
use omtd::probes::{HttpProbe, HttpTarget, ProbeConfig};
use omtd::sim::SimWorld;
use omtd_controllers::observed::MesosState;

const ZK: &str = "zk://10.0.0.12:2181/mesos";
const CHRONOS_SECRET: &str = "/etc/chronos/store/mesos_authentication_secret";

fn running(h: &SimHost, svc: &str) {
    h.start_stray(svc); // "start it by hand": installs, unmasks, starts
}

/// The runbook's cluster in miniature: a manager, two workers, a monitor.
fn world() -> SimWorld {
    let w = SimWorld::new();
    let manager = SimHost::new();
    manager.edit_file("/etc/mesos/zk", ZK.as_bytes());
    manager.edit_file("/etc/mesos-master/hostname", b"10.0.0.12");
    manager.edit_file("/etc/mesos-master/ip", b"10.0.0.12");
    manager.edit_file(
        "/etc/mesos-master/credentials",
        b"/etc/mesos-master/store/credentials.json",
    );
    manager.edit_file(
        "/etc/mesos-master/store/credentials.json",
        br#"{"credentials":[{"principal":"node1.omtd","secret":"s1"},{"principal":"node2.omtd","secret":"s2"},{"principal":"chronos.omtd","secret":"cs"}]}"#,
    );
    manager.edit_file("/etc/mesos-master/authenticate_agents", b"true");
    manager.edit_file("/etc/mesos-master/authenticate_http_readonly", b"true");
    manager.edit_file("/etc/mesos-master/authenticate_http_readwrite", b"true");
    manager.edit_file(
        "/etc/chronos/conf/mesos_authentication_principal",
        b"chronos.omtd",
    );
    manager.edit_file(
        "/etc/chronos/conf/mesos_authentication_secret_file",
        CHRONOS_SECRET.as_bytes(),
    );
    manager.edit_file(CHRONOS_SECRET, b"cs");
    running(&manager, "zookeeper");
    running(&manager, "mesos-master");
    running(&manager, "chronos");
    w.add_node("manager.omtd", "10.0.0.12", manager);

    for (i, addr) in [(1, "10.0.0.21"), (2, "10.0.0.22")] {
        let h = SimHost::new();
        h.edit_file("/etc/mesos/zk", ZK.as_bytes());
        h.edit_file("/etc/mesos-slave/hostname", addr.as_bytes());
        h.edit_file("/etc/mesos-slave/ip", addr.as_bytes());
        h.edit_file(
            "/etc/mesos-slave/credential",
            b"/etc/mesos-slave/store/credentials.json",
        );
        h.edit_file(
            "/etc/mesos-slave/store/credentials.json",
            format!(r#"{{"principal":"node{i}.omtd","secret":"s{i}"}}"#).as_bytes(),
        );
        running(&h, "mesos-slave");
        w.add_node(&format!("node{i}.omtd"), addr, h);
    }

    let monitor = SimHost::new();
    monitor.edit_file(
        "/etc/prometheus/prometheus.yml",
        b"scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:9090']\n  - job_name: omtd-workers\n    file_sd_configs:\n      - files: ['/etc/prometheus/file_sd/omtd-workers.json']\n",
    );
    monitor.edit_file(
        "/etc/prometheus/file_sd/omtd-workers.json",
        br#"[{"targets":["10.0.0.21:9100","10.0.0.21:8080"],"labels":{"node":"node1.omtd"}}]"#,
    );
    running(&monitor, "prometheus");
    w.add_node("monitor.omtd", "10.0.0.14", monitor);
    w
}

fn probe(w: &SimWorld, node: &str, user: &str, pass: &str) -> MesosMaster {
    let http = HttpProbe::new(ProbeConfig {
        timeout: Duration::from_secs(2),
        ..ProbeConfig::default()
    })
    .unwrap();
    let url = w.mesos_url(node).unwrap();
    let target = HttpTarget::parse(&url)
        .unwrap()
        .with_auth(omtd::probes::BasicAuth::new(user, pass));
    MesosMaster::new(http, target)
}

async fn state(w: &SimWorld) -> MesosState {
    probe(w, "manager.omtd", "node1.omtd", "s1")
        .state()
        .await
        .unwrap()
}

#[tokio::test]
async fn matching_credentials_register_agents_and_chronos() {
    let w = world();
    let s = state(&w).await;
    assert_eq!(s.leader.as_deref(), Some("10.0.0.12"));
    assert!(s.agent_active(&["10.0.0.21"]), "{s:?}");
    assert!(s.agent_active(&["10.0.0.22"]), "{s:?}");
    assert!(s.framework_active("chronos"), "{s:?}");
    let entries = w.zk_entries(ZK).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].hostname, "10.0.0.12");
}

#[tokio::test]
async fn a_trailing_newline_in_the_agents_secret_keeps_it_out() {
    let w = world();
    w.host("node2.omtd").unwrap().edit_file(
        "/etc/mesos-slave/store/credentials.json",
        br#"{"principal":"node2.omtd","secret":"s2\n"}"#,
    );
    let s = state(&w).await;
    assert!(s.agent_active(&["10.0.0.21"]));
    assert!(!s.agent_active(&["10.0.0.22"]), "{s:?}");
    // A newline after the JSON document is only whitespace to Mesos's parser.
    w.host("node2.omtd").unwrap().edit_file(
        "/etc/mesos-slave/store/credentials.json",
        b"{\"principal\":\"node2.omtd\",\"secret\":\"s2\"}\n",
    );
    assert!(state(&w).await.agent_active(&["10.0.0.22"]));
}

#[tokio::test]
async fn a_trailing_newline_in_chronos_secret_file_keeps_it_unregistered() {
    let w = world();
    let manager = w.host("manager.omtd").unwrap();
    manager.edit_file(CHRONOS_SECRET, b"cs\n");
    assert!(!state(&w).await.framework_active("chronos"));
    // The principal is a flag the launcher passes through `$(< file)`: a newline there
    // is dropped before Chronos sees it.
    manager.edit_file(CHRONOS_SECRET, b"cs");
    manager.edit_file(
        "/etc/chronos/conf/mesos_authentication_principal",
        b"chronos.omtd\n",
    );
    assert!(state(&w).await.framework_active("chronos"));
}

#[tokio::test]
async fn a_stray_master_with_a_lower_sequence_leads_and_the_cluster_vanishes() {
    let w = world();
    w.start_stray_master("node2.omtd").unwrap();
    // Started after the manager's: a higher sequence, it only contends.
    let entries = w.zk_entries(ZK).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(w.leader_at(ZK).unwrap().as_deref(), Some("manager.omtd"));
    // The manager's master loses its ZooKeeper session and re-contends: the stray now
    // holds the lowest sequence.
    w.expire_master_session("manager.omtd");
    assert_eq!(w.leader_at(ZK).unwrap().as_deref(), Some("node2.omtd"));
    let entries = w.zk_entries(ZK).unwrap();
    assert_eq!(entries[0].hostname, "node2.omtd", "{entries:?}");

    // The probe asks the manager and is redirected to the stray, which knows no
    // credentials: no agent, no Chronos.
    // No `hostname` flag on the worker: the stray calls itself by the host's name.
    let s = state(&w).await;
    assert_eq!(s.leader.as_deref(), Some("node2.omtd"));
    assert!(s.agents.is_empty(), "{s:?}");
    assert!(!s.framework_active("chronos"), "{s:?}");
    let leader = probe(&w, "manager.omtd", "node1.omtd", "s1")
        .leader_url()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        leader.port(),
        Some(
            w.endpoint("node2.omtd", omtd::sim::Service::MesosMaster)
                .unwrap()
                .port()
        )
    );

    // Stopping the stray gives the lead back to the manager, and everyone re-registers.
    w.host("node2.omtd").unwrap().kill_service("mesos-master");
    let s = state(&w).await;
    assert_eq!(s.leader.as_deref(), Some("10.0.0.12"));
    assert!(s.agent_active(&["10.0.0.21"]) && s.framework_active("chronos"));
}

#[tokio::test]
async fn maintenance_down_deactivates_the_agent_and_up_brings_it_back() {
    let w = world();
    let m = probe(&w, "manager.omtd", "node1.omtd", "s1");
    let node1 = MachineId::new("10.0.0.21", "10.0.0.21");
    // Mesos refuses to bring down a machine that is not scheduled.
    assert!(m.machines_down(std::slice::from_ref(&node1)).await.is_err());
    m.schedule_maintenance(std::slice::from_ref(&node1), SystemTime::now(), None)
        .await
        .unwrap();
    let s = state(&w).await;
    assert_eq!(s.draining_machines, vec!["10.0.0.21"]);
    assert!(s.agent_active(&["10.0.0.21"]), "draining agents still run");
    m.machines_down(std::slice::from_ref(&node1)).await.unwrap();
    let s = state(&w).await;
    assert_eq!(s.down_machines, vec!["10.0.0.21"]);
    assert!(!s.agent_active(&["10.0.0.21"]), "{s:?}");
    assert!(s.agent_active(&["10.0.0.22"]));
    m.machines_up(&[node1]).await.unwrap();
    let s = state(&w).await;
    assert!(s.agent_active(&["10.0.0.21"]) && s.down_machines.is_empty());
    assert!(m.maintenance_schedule().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_master_authenticates_http_and_a_stopped_master_does_not_answer() {
    let w = world();
    let bad = probe(&w, "manager.omtd", "node1.omtd", "wrong");
    let e = bad.state().await.unwrap_err().to_string();
    assert!(!e.contains("wrong"), "no secret in errors: {e}");
    assert!(probe(&w, "manager.omtd", "x", "y").health().await.is_ok());
    w.host("manager.omtd").unwrap().kill_service("mesos-master");
    assert!(probe(&w, "manager.omtd", "node1.omtd", "s1")
        .state()
        .await
        .is_err());
    assert!(w.zk_entries(ZK).unwrap().is_empty());
    w.host("manager.omtd").unwrap().kill_service("zookeeper");
    assert!(w.zk_entries(ZK).is_err(), "no ZooKeeper: no answer");
}

#[tokio::test]
async fn prometheus_scrapes_what_its_file_sd_names() {
    let w = world();
    let http = HttpProbe::new(ProbeConfig::default()).unwrap();
    let p = Prometheus::new(
        http,
        HttpTarget::parse(&w.prometheus_url("monitor.omtd").unwrap()).unwrap(),
    );
    assert_eq!(
        p.active_targets().await.unwrap(),
        vec!["10.0.0.21:8080", "10.0.0.21:9100", "127.0.0.1:9090"]
    );
    let monitor = w.host("monitor.omtd").unwrap();
    // A file that does not parse keeps the last good targets, as Prometheus does.
    monitor.edit_file("/etc/prometheus/file_sd/omtd-workers.json", b"[{");
    assert_eq!(p.active_targets().await.unwrap().len(), 3);
    monitor.edit_file(
        "/etc/prometheus/file_sd/omtd-workers.json",
        br#"[{"targets":["10.0.0.22:9100"]}]"#,
    );
    assert_eq!(
        p.active_targets().await.unwrap(),
        vec!["10.0.0.22:9100", "127.0.0.1:9090"]
    );
    monitor.kill_service("prometheus");
    assert!(p.active_targets().await.is_err());
}
