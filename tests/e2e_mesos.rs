//! The runbook procedures that need Mesos's answers, end to end: a real etcd, `omtd
//! operator` probing a model of Mesos, Chronos and ZooKeeper built from the sim hosts
//! (`e2e_support::mesos`: an agent registers only when its credential matches the master's
//! byte for byte, Chronos likewise, maintenance drains and downs machines), one sim agent
//! per node, and the `omtd` CLI. Each step ends with `omtd status --wait` converged.

mod common;
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{text, Setup, World, EXAMPLE, NODES};
use omtd_controllers::{RecoveryPolicy, Settings};
use omtd_crds::{ConditionStatus, Kind, Status};

const CONVERGE: Duration = Duration::from_secs(30);

fn log(step: &str, took: Duration) {
    eprintln!("[e2e] {step}: {:.2}s", took.as_secs_f64());
}

/// The leader guard's recovery, shortened from minutes to seconds.
fn settings() -> Settings {
    Settings {
        recovery: RecoveryPolicy {
            grace: Duration::from_secs(1),
            phase_timeout: Duration::from_secs(20),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
            max_attempts: 3,
            reset_after: Duration::from_secs(60),
            poll: Duration::from_millis(200),
        },
        ..Settings::default()
    }
}

async fn status(w: &World, kind: Kind, name: &str) -> Option<Status> {
    let kv = w.store.get(&w.keys.status(kind, name)).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

fn condition(s: &Option<Status>, t: &str) -> Option<ConditionStatus> {
    s.as_ref()?.condition(t).map(|c| c.status)
}

/// `omtd status --wait` until converged; returns how long it took.
async fn status_wait(w: &World) -> Duration {
    let start = Instant::now();
    let (code, out, err) = w
        .omtd_status(&["status", "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(code, 0, "omtd status --wait:\n{out}\n{err}");
    start.elapsed()
}

async fn wait_until<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < CONVERGE,
            "{what}: not within {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runbook_with_mesos() {
    let mut w = World::start(
        &NODES,
        Setup {
            mesos: true,
            settings: Some(settings()),
        },
    )
    .await;
    let model = w.mesos.clone().expect("a Mesos model");

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

    // ---- How to remove a node: node3 drained, stopped, cleaned up, released. ----
    let out = w.omtd(&["delete", "node", "node3.omtd"]).await;
    assert!(out.contains("marked for deletion"), "{out}");
    let spec = w.keys.spec(Kind::Node, "node3.omtd");
    let took = wait_until("node3 released", || async {
        w.store.get(&spec).await.ok().flatten().is_none()
    })
    .await;
    log("remove node3: record released", took);
    let calls = model.calls();
    let schedule = calls.iter().position(|c| c == "schedule 10.0.0.23");
    let down = calls.iter().position(|c| c == "down 10.0.0.23");
    assert!(
        schedule.is_some() && down > schedule,
        "drained through Mesos maintenance: {calls:?}"
    );
    assert_eq!(model.down_machines(), ["10.0.0.23"]);
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
    w.forget("node3.omtd").await;
    // Unreferenced now: the credential can go too.
    w.omtd(&["delete", "credential", "node3.omtd"]).await;
    let (code, _, err) = w.omtd_status(&["get", "node", "node3.omtd"]).await;
    assert!(code != 0 && err.contains("not found"), "{err}");
    log("remove node3: converged", status_wait(&w).await);

    // ---- Chronos disconnected: the ordered recovery, master → Chronos → agents. ----
    let from = manager.log().len();
    let worker_from = w.host("node1.omtd").log().len();
    model.disconnect_chronos();
    let start = Instant::now();
    wait_until("the leader guard starts a recovery", || async {
        let s = status(&w, Kind::Cluster, "omtd").await;
        condition(&s, "Recovery") == Some(ConditionStatus::True)
    })
    .await;
    log("Chronos disconnected: recovery started", start.elapsed());
    wait_until("Chronos registered again", || async {
        let s = status(&w, Kind::Cluster, "omtd").await;
        condition(&s, "MesosConnected") == Some(ConditionStatus::True)
            && condition(&s, "Recovery") != Some(ConditionStatus::True)
    })
    .await;
    log("Chronos disconnected: recovered", start.elapsed());
    let log_m: Vec<String> = manager.log()[from..].to_vec();
    let at = |line: &str| log_m.iter().position(|l| l == line);
    let (stop_master, stop_chronos) = (at("stop mesos-master"), at("stop chronos"));
    let start_master = at("start mesos-master");
    let start_chronos = at("start chronos");
    assert!(
        stop_master.is_some() && stop_chronos.is_some(),
        "stop all first: {log_m:?}"
    );
    assert!(
        start_master > stop_master.max(stop_chronos) && start_chronos > start_master,
        "master, then Chronos: {log_m:?}"
    );
    let log_w: Vec<String> = w.host("node1.omtd").log()[worker_from..].to_vec();
    let stop_agent = log_w.iter().position(|l| l == "stop mesos-slave");
    let start_agent = log_w.iter().position(|l| l == "start mesos-slave");
    assert!(
        stop_agent.is_some() && start_agent > stop_agent,
        "the agents stopped, then started last: {log_w:?}"
    );
    log("Chronos disconnected: converged", status_wait(&w).await);

    w.stop().await;
}
