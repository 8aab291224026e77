//! Proportionate recovery end to end (#21 item 4): a real etcd and ZooKeeper, `omtd
//! operator` probing the sim world over HTTP, one `omtd agent --driver sim` per node.
//!
//! One worker's mesos-slave hangs (still running, no longer registered with the master:
//! `Fault::HangService`, which only a restart cures; the omtd agent on the host sees a
//! running service and has nothing to repair). The leader guard restarts that mesos-slave
//! alone, through the restart token in that worker's slice, and reports it on the
//! Cluster's `Recovery` condition as `RestartingAgents`; mesos-master, Chronos and the
//! other workers' agents are never touched, so their jobs would keep running. Then more
//! than half the workers hang at once, which points at the master or the network: the
//! ordered cluster-wide recovery (master → Chronos → agents) still runs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use omtd::agent::drivers::sim::Fault;
use omtd_crds::{ConditionStatus, Kind, Status};
use omtd_test_support::e2e::mesos::{assert_ordered_recovery, FAST_RECOVERY};
use omtd_test_support::e2e::{Setup, World, EXAMPLE, NODES};
use omtd_test_support::poll;

const CONVERGE: Duration = Duration::from_secs(30);
const MANAGER: &str = "manager.omtd";
const WORKERS: [&str; 3] = ["node1.omtd", "node2.omtd", "node3.omtd"];
/// The worker whose mesos-slave hangs alone.
const FLAKY: &str = "node2.omtd";

fn log(step: &str, took: Duration) {
    eprintln!("[e2e] {step}: {:.2}s", took.as_secs_f64());
}

async fn cluster_status(w: &World) -> Option<Status> {
    let kv = w
        .store
        .get(&w.keys.status(Kind::Cluster, "omtd"))
        .await
        .ok()??;
    serde_json::from_slice(&kv.value).ok()
}

/// The Cluster's `Recovery` condition: (status, reason).
async fn recovery(w: &World) -> Option<(ConditionStatus, String)> {
    let s = cluster_status(w).await?;
    s.condition("Recovery")
        .map(|c| (c.status, c.reason.clone()))
}

/// How often `service` on `node` was started or restarted.
fn starts(w: &World, node: &str, service: &str) -> u64 {
    w.host(node)
        .service(service)
        .map_or_else(|| panic!("{service} not installed on {node}"), |s| s.starts)
}

/// The control-plane services whose starts the test watches: (node, service).
fn control_plane() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![(MANAGER, "mesos-master"), (MANAGER, "chronos")];
    v.extend(WORKERS.iter().map(|w| (*w, "mesos-slave")));
    v
}

/// The mesos-slave restart token in a worker's leader-guard slice.
async fn agent_token(w: &World, node: &str) -> Option<String> {
    let slices = w.slices(node).await;
    slices
        .get("leader-guard")?
        .services
        .iter()
        .find(|s| s.name == "mesos-slave")?
        .restart_token
        .clone()
}

/// Whether the sim master counts `node`'s agent as registered.
fn registered(w: &World, node: &str) -> bool {
    w.host(node)
        .service("mesos-slave")
        .is_some_and(|s| s.running && !s.hung)
}

/// The host's change log from `from` on, only lines naming `service`.
fn touched(w: &World, node: &str, service: &str, from: usize) -> Vec<String> {
    w.host(node).log()[from..]
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some(service))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hung_mesos_slave_restarts_only_itself() {
    let test_start = Instant::now();
    let w = World::start(
        &NODES,
        Setup {
            operator_args: FAST_RECOVERY.to_vec(),
            ..Default::default()
        },
    )
    .await;
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    w.converged("initial convergence").await;

    let before: Vec<u64> = control_plane()
        .iter()
        .map(|(n, s)| starts(&w, n, s))
        .collect();
    let logs_from: Vec<usize> = control_plane()
        .iter()
        .map(|(n, _)| w.host(n).log().len())
        .collect();
    let mut tokens_before = Vec::new();
    for n in WORKERS {
        tokens_before.push(agent_token(&w, n).await);
    }

    // ---- One worker's mesos-slave hangs: only it is restarted. ----
    let start = Instant::now();
    w.fault(
        FLAKY,
        Fault::HangService {
            name: "mesos-slave".into(),
        },
    )
    .await;
    assert!(!registered(&w, FLAKY), "the fault took");
    let flaky_before = starts(&w, FLAKY, "mesos-slave");
    // Every (status, reason) the Recovery condition shows on the way.
    let seen = Mutex::new(Vec::new());
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async(
            "the flaky worker's mesos-slave restarted and registered",
            || async {
                if let Some(r) = recovery(&w).await {
                    let mut seen = seen.lock().expect("not poisoned");
                    if !seen.contains(&r) {
                        seen.push(r);
                    }
                }
                starts(&w, FLAKY, "mesos-slave") > flaky_before && registered(&w, FLAKY)
            },
        )
        .await;
    let seen = seen.into_inner().expect("not poisoned");
    log(
        "one hung mesos-slave: restarted and registered",
        start.elapsed(),
    );
    let local: Vec<_> = seen
        .iter()
        .filter(|(_, reason)| reason == "RestartingAgents")
        .collect();
    assert!(
        !local.is_empty(),
        "the Recovery condition named the local remedy: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, reason)| reason != "Recovering"
            && reason != "Watching"
            && reason != "BackingOff"),
        "no cluster-wide recovery for one agent: {seen:?}"
    );
    // The restart went through the flaky worker's own token, and only its token changed.
    for (i, n) in WORKERS.iter().enumerate() {
        let now = agent_token(&w, n).await;
        if *n == FLAKY {
            assert_ne!(now, tokens_before[i], "{n}: a new local restart token");
            assert!(
                now.as_deref().is_some_and(|t| t.contains(";l=")),
                "{n}: {now:?}"
            );
        } else {
            assert_eq!(now, tokens_before[i], "{n}: token unchanged");
        }
    }
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("the Recovery condition settles", || async {
            recovery(&w)
                .await
                .is_some_and(|(s, _)| s != ConditionStatus::True)
        })
        .await;
    w.converged("one hung mesos-slave: converged").await;
    // Over the whole episode: mesos-master, Chronos and the other agents never started,
    // restarted or stopped; the flaky agent restarted (no stop: a plain restart).
    for (i, (n, s)) in control_plane().into_iter().enumerate() {
        let lines = touched(&w, n, s, logs_from[i]);
        if n == FLAKY {
            assert!(starts(&w, n, s) > before[i], "{n} {s}: {lines:?}");
            assert!(
                !lines.iter().any(|l| l.starts_with("stop ")),
                "{n} {s}: {lines:?}"
            );
        } else {
            assert_eq!(starts(&w, n, s), before[i], "{n} {s}: {lines:?}");
            assert!(lines.is_empty(), "{n} {s} touched: {lines:?}");
        }
    }

    // ---- More than half the workers hang at once: the ordered cluster-wide recovery. ----
    let manager_from = w.host(MANAGER).log().len();
    let worker_from = w.host("node1.omtd").log().len();
    let start = Instant::now();
    for n in ["node1.omtd", "node3.omtd"] {
        w.fault(
            n,
            Fault::HangService {
                name: "mesos-slave".into(),
            },
        )
        .await;
    }
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("the ordered recovery starts", || async {
            recovery(&w)
                .await
                .is_some_and(|(s, r)| s == ConditionStatus::True && r == "Recovering")
        })
        .await;
    log(
        "two of three hung: ordered recovery started",
        start.elapsed(),
    );
    poll::within(CONVERGE)
        .every(Duration::from_millis(20))
        .expect_async("every agent registered, recovery over", || async {
            WORKERS.iter().all(|n| registered(&w, n))
                && recovery(&w)
                    .await
                    .is_some_and(|(s, _)| s != ConditionStatus::True)
        })
        .await;
    log("two of three hung: recovered", start.elapsed());
    assert_ordered_recovery(
        &w.host(MANAGER).log()[manager_from..],
        &w.host("node1.omtd").log()[worker_from..],
    );
    w.converged("two of three hung: converged").await;
    log("whole test", test_start.elapsed());
    w.stop().await;
}
