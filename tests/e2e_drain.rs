//! A worker's removal drains first, end to end (real etcd, `omtd operator` with its real
//! probes and maintenance calls against the sim world, sim agents, the CLI): with a task
//! running on the agent the machine is scheduled, not down, and the task keeps running
//! through several reconciles; the machine goes down only after the task ended, or, with
//! a short drain timeout, at the deadline (the task is lost). On a master >= 1.9 the agent
//! is also deactivated, so no new task lands on it meanwhile.

use std::time::Duration;

use omtd_crds::Kind;
use omtd_test_support::e2e::mesos::mesos_state;
use omtd_test_support::e2e::{Setup, World, EXAMPLE, NODES};
use omtd_test_support::poll;

const CONVERGE: Duration = Duration::from_secs(30);
const NODE3: &str = "10.0.0.23";

async fn started(operator_args: Vec<&'static str>) -> World {
    let w = World::start(
        &NODES,
        Setup {
            operator_args,
            ..Default::default()
        },
    )
    .await;
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    w.wait_converged(CONVERGE).await;
    w.status_wait().await;
    w
}

async fn down(w: &World) -> bool {
    mesos_state(w)
        .await
        .down_machines
        .iter()
        .any(|m| m == NODE3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_waits_for_the_running_task_then_downs_the_machine() {
    let w = started(vec![]).await;
    let job = w.sim.start_task("node3.omtd", "galaxy-job").expect("task");
    let out = w.omtd(&["delete", "node", "node3.omtd"]).await;
    assert!(out.contains("marked for deletion"), "{out}");
    let scheduled = poll::within(CONVERGE)
        .every(Duration::from_millis(50))
        .until_async(|| async {
            mesos_state(&w)
                .await
                .draining_machines
                .iter()
                .any(|m| m == NODE3)
        })
        .await;
    assert!(
        scheduled.is_some(),
        "node3 scheduled for maintenance: not within {CONVERGE:?}; Mesos: {:?}\n{}",
        mesos_state(&w).await,
        w.operator_log()
    );
    // Several reconciles (the node controller looks every 10 s at most, maintenance every
    // 10 s; probes much more often): still draining, the task still runs.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let m = mesos_state(&w).await;
    assert!(!down(&w).await, "downed with a task running: {m:?}");
    assert_eq!(m.tasks_on(&["node3.omtd", NODE3]).len(), 1, "{m:?}");
    let spec = w.keys.spec(Kind::Node, "node3.omtd");
    assert!(w.store.get(&spec).await.ok().flatten().is_some());
    let described = w.omtd(&["describe", "node", "node3.omtd"]).await;
    assert!(described.contains("Phase:        Draining"), "{described}");
    assert!(described.contains("galaxy-job"), "{described}");
    assert!(described.contains("Deadline:"), "{described}");

    assert!(w.sim.finish_task(&job));
    poll::within(CONVERGE)
        .every(Duration::from_millis(50))
        .expect_async("node3 down once the task ended", || down(&w))
        .await;
    poll::within(CONVERGE)
        .every(Duration::from_millis(50))
        .expect_async("node3 released", || async {
            w.store.get(&spec).await.ok().flatten().is_none()
        })
        .await;
    let finished = w.sim.tasks();
    assert_eq!(finished[0].state, "TASK_FINISHED", "{finished:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_drain_timeout_downs_the_machine_at_the_deadline() {
    let w = started(vec!["--drain-timeout", "3s"]).await;
    w.sim.start_task("node3.omtd", "galaxy-job").expect("task");
    w.omtd(&["delete", "node", "node3.omtd"]).await;
    poll::within(CONVERGE)
        .every(Duration::from_millis(50))
        .expect_async("node3 down at the deadline", || down(&w))
        .await;
    let tasks = w.sim.tasks();
    assert_eq!(
        tasks[0].state, "TASK_LOST",
        "machine/down kills it: {tasks:?}"
    );
    w.stop().await;
}

/// A master that has the v1 operator API's `DEACTIVATE_AGENT` (Mesos >= 1.9): the drained
/// agent is deactivated, so no new task lands on it while the running one goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_1_9_master_the_drained_agent_gets_no_new_task() {
    let w = started(vec![]).await;
    w.sim.set_mesos_version("1.9.0");
    let job = w.sim.start_task("node3.omtd", "galaxy-job").expect("task");
    w.omtd(&["delete", "node", "node3.omtd"]).await;
    let deactivated = poll::within(CONVERGE)
        .every(Duration::from_millis(50))
        .until_async(|| async {
            mesos_state(&w)
                .await
                .agents
                .iter()
                .any(|a| a.hostname == NODE3 && a.deactivated)
        })
        .await;
    assert!(
        deactivated.is_some(),
        "node3's agent deactivated: not within {CONVERGE:?}; Mesos: {:?}\n{}",
        mesos_state(&w).await,
        w.operator_log()
    );
    let refused = w.sim.start_task("node3.omtd", "late-job");
    assert!(refused.is_err(), "no offers, no new task: {refused:?}");
    let m = mesos_state(&w).await;
    assert!(!down(&w).await, "still draining: {m:?}");
    assert_eq!(m.tasks_on(&["node3.omtd", NODE3]).len(), 1, "{m:?}");
    assert!(
        w.sim.start_task("node1.omtd", "elsewhere").is_ok(),
        "the other agents still take work"
    );

    assert!(w.sim.finish_task(&job));
    poll::within(CONVERGE)
        .every(Duration::from_millis(50))
        .expect_async("node3 down once its task ended", || down(&w))
        .await;
    w.stop().await;
}
