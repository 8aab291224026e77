//! The runbook procedures that need Mesos's answers, end to end: a real etcd, `omtd
//! operator` running its real probes and maintenance calls over HTTP against the sim
//! world (`omtd::sim`: an agent registers only when its credential matches the leading
//! master's byte for byte, Chronos likewise, the lowest ZooKeeper sequence leads,
//! maintenance drains and downs machines, Prometheus scrapes what its file_sd lists), one
//! `omtd agent --driver sim` process per node, and the `omtd` CLI. Each step ends with `omtd status --wait`
//! converged.

use std::time::{Duration, Instant};

use omtd::agent::drivers::sim::Fault;
use omtd_crds::{ConditionStatus, Kind, Status};
use omtd_test_support::e2e::mesos::{assert_ordered_recovery, mesos_state, FAST_RECOVERY};
use omtd_test_support::e2e::{text, Setup, World, EXAMPLE, NODES};
use omtd_test_support::poll;

const CONVERGE: Duration = Duration::from_secs(30);

fn log(step: &str, took: Duration) {
    eprintln!("[e2e] {step}: {:.2}s", took.as_secs_f64());
}

async fn status(w: &World, kind: Kind, name: &str) -> Option<Status> {
    let kv = w.store.get(&w.keys.status(kind, name)).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

fn condition(s: &Option<Status>, t: &str) -> Option<ConditionStatus> {
    s.as_ref()?.condition(t).map(|c| c.status)
}

async fn status_wait(w: &World) -> Duration {
    w.status_wait().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runbook_with_mesos() {
    let mut w = World::start(
        &NODES,
        Setup {
            operator_args: FAST_RECOVERY.to_vec(),
            ..Default::default()
        },
    )
    .await;

    // ---- Up, and Ready: every worker registered with the master. ----
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    log(
        "initial convergence (hosts)",
        w.wait_converged(CONVERGE).await,
    );
    log(
        "initial convergence (omtd status --wait)",
        status_wait(&w).await,
    );
    for n in ["node1.omtd", "node2.omtd", "node3.omtd"] {
        let s = status(&w, Kind::Node, n).await;
        assert_eq!(
            condition(&s, "Ready"),
            Some(ConditionStatus::True),
            "{n}: {s:?}"
        );
    }
    let cluster = status(&w, Kind::Cluster, "omtd").await;
    assert_eq!(
        condition(&cluster, "LeaderElected"),
        Some(ConditionStatus::True)
    );
    assert_eq!(
        condition(&cluster, "MesosConnected"),
        Some(ConditionStatus::True)
    );
    let mesos = mesos_state(&w).await;
    assert_eq!(mesos.leader.as_deref(), Some("10.0.0.12"), "{mesos:?}");
    assert!(mesos.framework_active("chronos"), "{mesos:?}");
    assert_eq!(
        mesos.agents.iter().filter(|a| a.active).count(),
        3,
        "{mesos:?}"
    );

    // ---- How to remove a node: node3 drained, stopped, cleaned up, released. ----
    let out = w.omtd(&["delete", "node", "node3.omtd"]).await;
    assert!(out.contains("marked for deletion"), "{out}");
    let spec = w.keys.spec(Kind::Node, "node3.omtd");
    let took = poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("node3 released", || async {
            w.store.get(&spec).await.ok().flatten().is_none()
        })
        .await;
    log("remove node3: record released", took);
    let mesos = mesos_state(&w).await;
    assert_eq!(
        mesos.down_machines,
        ["10.0.0.23"],
        "drained through Mesos maintenance: {mesos:?}"
    );
    assert!(!mesos.agent_active(&["10.0.0.23"]), "{mesos:?}");
    let node3 = w.host("node3.omtd").clone();
    for svc in ["mesos-slave", "prometheus-node-exporter"] {
        assert!(
            node3.service(svc).is_some_and(|s| !s.running),
            "{svc} still runs on node3"
        );
    }
    assert!(!node3.state().containers.contains_key("cadvisor"));
    let manager = w.host("manager.omtd").clone();
    let executor = w.host("executor.omtd").clone();
    let creds = text(&manager, "/etc/mesos-master/store/credentials.json");
    assert!(!creds.contains("node3.omtd"), "{creds}");
    assert!(creds.contains("node2.omtd"), "{creds}");
    assert!(
        executor
            .state()
            .exports_owned
            .iter()
            .all(|l| !l.contains("10.0.0.23")),
        "{:?}",
        executor.state().exports_owned
    );
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("node3's plan slices gone", || async {
            w.slices("node3.omtd").await.is_empty()
        })
        .await;
    w.forget("node3.omtd").await;
    // Unreferenced now: the credential can go too.
    w.omtd(&["delete", "credential", "node3.omtd"]).await;
    let (code, _, err) = w.omtd_status(&["get", "node", "node3.omtd"]).await;
    assert!(code != 0 && err.contains("not found"), "{err}");
    log("remove node3: converged", status_wait(&w).await);

    // ---- The wrong leader: a mesos-master started by hand on node2 while its agent is
    // down, and the manager's ZooKeeper session expires: the stray holds the lowest
    // sequence and leads, and nothing registers with it (it has no credentials). ----
    let sim = w.sim.clone();
    let node2 = w.host("node2.omtd").clone();
    w.pause_agent("node2.omtd").await;
    let start = Instant::now();
    w.fault(
        "node2.omtd",
        Fault::StartStray {
            name: "mesos-master".into(),
        },
    )
    .await;
    sim.expire_master_session("manager.omtd");
    assert_eq!(
        sim.leader_at(omtd_test_support::e2e::mesos::ZK_URL)
            .ok()
            .flatten()
            .as_deref(),
        Some("node2.omtd")
    );
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("the operator sees the stray lead", || async {
            let s = status(&w, Kind::Cluster, "omtd").await;
            s.as_ref()
                .and_then(|s| s.condition("LeaderElected"))
                .is_some_and(|c| c.reason == "StrayMasterLeads")
        })
        .await;
    log(
        "stray master leading: seen by the operator",
        start.elapsed(),
    );
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async(
            "node1 no longer Ready: its agent cannot register",
            || async {
                let s = status(&w, Kind::Node, "node1.omtd").await;
                s.as_ref()
                    .and_then(|s| s.condition("Ready"))
                    .is_some_and(|c| c.reason == "NotRegistered")
            },
        )
        .await;
    // node2's agent comes back and masks the stray; the manager leads again.
    // The operator saw the stray through its real ZooKeeper probe (the sim's election is
    // copied into a real ZooKeeper), not only through the master's answer.
    let target =
        omtd::probes::zookeeper::ZkTarget::parse(&format!("zk://{}/mesos", w.zookeeper.endpoint()))
            .expect("zk url");
    let entries = omtd::probes::zookeeper::mesos_masters(&target, Duration::from_secs(5))
        .await
        .expect("the real ZooKeeper answers");
    let lowest = omtd_controllers::observed::zk_leader(&entries).map(|e| e.hostname.clone());
    assert_eq!(lowest.as_deref(), Some("node2.omtd"), "{entries:?}");
    let operator_log = w.operator_log();
    let zk_failures: Vec<&str> = operator_log
        .lines()
        .filter(|l| l.contains("probe failed") && l.contains("zookeeper"))
        .collect();
    assert!(
        zk_failures.is_empty(),
        "the operator's ZooKeeper probe failed: {zk_failures:?}"
    );
    w.resume_agent("node2.omtd").await;
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("the stray masked and the manager leading again", || async {
            let s = status(&w, Kind::Cluster, "omtd").await;
            node2
                .service("mesos-master")
                .is_some_and(|m| m.masked && !m.running)
                && sim
                    .leader_at(omtd_test_support::e2e::mesos::ZK_URL)
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some("manager.omtd")
                && condition(&s, "LeaderElected") == Some(ConditionStatus::True)
                && condition(&s, "MesosConnected") == Some(ConditionStatus::True)
        })
        .await;
    log("stray master leading: manager leads again", start.elapsed());
    log("stray master leading: converged", status_wait(&w).await);

    // ---- Chronos disconnected: the ordered recovery, master → Chronos → agents. ----
    let from = manager.log().len();
    let worker_from = w.host("node1.omtd").log().len();
    w.sim
        .disconnect_chronos("manager.omtd")
        .expect("the manager is a sim node");
    let start = Instant::now();
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("the leader guard starts a recovery", || async {
            let s = status(&w, Kind::Cluster, "omtd").await;
            condition(&s, "Recovery") == Some(ConditionStatus::True)
        })
        .await;
    log("Chronos disconnected: recovery started", start.elapsed());
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("Chronos registered again", || async {
            let s = status(&w, Kind::Cluster, "omtd").await;
            condition(&s, "MesosConnected") == Some(ConditionStatus::True)
                && condition(&s, "Recovery") != Some(ConditionStatus::True)
        })
        .await;
    log("Chronos disconnected: recovered", start.elapsed());
    let log_m: Vec<String> = manager.log()[from..].to_vec();
    let log_w: Vec<String> = w.host("node1.omtd").log()[worker_from..].to_vec();
    assert_ordered_recovery(&log_m, &log_w);
    log("Chronos disconnected: converged", status_wait(&w).await);
    // What a person sees: the recovery recorded on the Cluster, and its events.
    let described = w.omtd(&["describe", "cluster", "omtd"]).await;
    assert!(
        described.contains("Operation:") && described.contains("recovery"),
        "{described}"
    );
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        !events.contains("<none>") && !events.trim().is_empty(),
        "{described}"
    );

    // Steady, with probes answering every 100 ms: no writes at all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let revision = w.revision().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.revision().await,
        revision,
        "the store was written while idle"
    );

    w.stop().await;
}
