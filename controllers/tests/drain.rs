//! A worker's drain (the Draining phase of its removal): the machine stays scheduled, not
//! down, while tasks run on its agent, up to the drain deadline; then, or once no task is
//! left, or when Mesos already has it down, it is asked down.

mod common;

use common::*;
use omtd_controllers::crds::Object;
use omtd_controllers::removal::{
    NodeRemovalRecord, RemovalPhase, DELETING_ANNOTATION, DRAIN_TIMEOUT_ANNOTATION,
};
use omtd_controllers::{node, EventType, Intent, MachineMode, MesosTask, Observed};

const NODE: &str = "node3.omtd";
const ADDR: &str = "10.0.0.23";

/// One node-controller round, its statuses stored back.
fn round(objs: &mut [Object], o: &Observed) -> Intent {
    let out = node::reconcile(&desired(objs), o, &settings()).expect("node reconcile");
    store_statuses(objs, &out);
    out
}

fn mode(out: &Intent) -> MachineMode {
    out.maintenance
        .iter()
        .find(|m| m.node == NODE)
        .map(|m| m.mode)
        .expect("node3 is a worker")
}

fn record(objs: &[Object]) -> NodeRemovalRecord {
    desired(objs)
        .node(NODE)
        .and_then(|n| n.status.as_ref())
        .and_then(NodeRemovalRecord::from_status)
        .expect("a removal record")
}

fn task(id: &str) -> MesosTask {
    MesosTask {
        id: id.into(),
        name: format!("galaxy-job-{id}"),
        framework: "chronos".into(),
        agent_id: format!("{NODE}-S0"),
        agent_hostname: Some(ADDR.into()),
        state: "TASK_RUNNING".into(),
    }
}

/// The runbook's cluster with node3 being removed (and any extra annotation), observed
/// healthy at `t(0)` with `tasks` running on node3.
fn removing(extra: &[(&str, &str)], tasks: &[&str]) -> (Vec<Object>, Observed) {
    let mut objs = objects();
    annotate(&mut objs, &node_key(NODE), DELETING_ANNOTATION, "true");
    for (k, v) in extra {
        annotate(&mut objs, &node_key(NODE), k, v);
    }
    let mut o = healthy(&desired(&objs), t(0));
    if let Some(m) = o.mesos.as_mut() {
        m.tasks = tasks.iter().map(|id| task(id)).collect();
    }
    (objs, o)
}

fn warnings(out: &Intent, reason: &str) -> Vec<String> {
    out.events
        .iter()
        .filter(|e| e.type_ == EventType::Warning && e.reason == reason)
        .map(|e| e.message.clone())
        .collect()
}

#[test]
fn tasks_running_keep_the_machine_draining_not_down() {
    let (mut objs, mut o) = removing(&[], &["t1", "t2"]);
    for secs in [0, 60, 600, 3599] {
        o.now = t(secs);
        let out = round(&mut objs, &o);
        assert_eq!(mode(&out), MachineMode::Draining, "at {secs}s");
        assert_eq!(record(&objs).phase, RemovalPhase::Draining);
    }
    let r = record(&objs);
    assert_eq!(r.running_tasks, 2);
    assert_eq!(r.tasks, ["galaxy-job-t1 (t1)", "galaxy-job-t2 (t2)"]);
    assert_eq!(
        r.deadline.as_deref(),
        Some("2023-11-14T23:13:20Z"),
        "start + 1h"
    );
    assert!(r.down_because.is_empty());
    let out = round(&mut objs, &o);
    assert!(message(&out, &node_key(NODE), "Ready").contains("2 task(s) to end"));
}

#[test]
fn tasks_done_bring_the_machine_down() {
    let (mut objs, mut o) = removing(&[], &["t1"]);
    assert_eq!(mode(&round(&mut objs, &o)), MachineMode::Draining);
    scheduled(&mut o);
    if let Some(m) = o.mesos.as_mut() {
        m.tasks.clear();
    }
    o.now = t(120);
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Down);
    assert!(warnings(&out, "DrainTimedOut").is_empty(), "nothing killed");
    assert_eq!(record(&objs).down_because, "no task runs on the agent");
    // Mesos has it down: the removal moves on.
    if let Some(m) = o.mesos.as_mut() {
        m.down_machines.push(ADDR.into());
    }
    round(&mut objs, &o);
    assert_eq!(record(&objs).phase, RemovalPhase::Stopping);
}

/// The master shows the machine scheduled (as it does once the maintenance call took).
fn scheduled(o: &mut Observed) {
    if let Some(m) = o.mesos.as_mut() {
        m.draining_machines.push(ADDR.into());
    }
}

#[test]
fn no_task_asks_down_only_once_the_master_shows_the_machine_scheduled() {
    let (mut objs, mut o) = removing(&[], &[]);
    // The view predates the schedule: a task may have started since, so nothing is downed.
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Draining);
    assert_eq!(record(&objs).phase, RemovalPhase::Draining);
    assert!(
        message(&out, &node_key(NODE), "Ready").contains("scheduled for maintenance"),
        "{}",
        message(&out, &node_key(NODE), "Ready")
    );
    o.now = t(1);
    assert_eq!(mode(&round(&mut objs, &o)), MachineMode::Draining);
    scheduled(&mut o);
    o.now = t(2);
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Down);
    assert_eq!(record(&objs).down_because, "no task runs on the agent");
}

#[test]
fn a_task_started_after_the_first_view_is_not_killed() {
    // The removal's first look saw no task; a job starts before the schedule takes.
    let (mut objs, mut o) = removing(&[], &[]);
    assert_eq!(mode(&round(&mut objs, &o)), MachineMode::Draining);
    scheduled(&mut o);
    if let Some(m) = o.mesos.as_mut() {
        m.tasks.push(task("late"));
    }
    o.now = t(5);
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Draining);
    assert_eq!(record(&objs).running_tasks, 1);
}

#[test]
fn deadline_passed_brings_it_down_with_one_warning_naming_the_tasks() {
    let (mut objs, mut o) = removing(&[], &["t1"]);
    round(&mut objs, &o);
    o.now = t(3600);
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Down);
    let w = warnings(&out, "DrainTimedOut");
    assert_eq!(w.len(), 1, "{:?}", out.events);
    assert!(w[0].contains("galaxy-job-t1 (t1)"), "{}", w[0]);
    assert!(w[0].contains(ADDR), "{}", w[0]);
    assert_eq!(record(&objs).down_because, "the drain deadline passed");
    // The ask stands and the warning is not repeated.
    o.now = t(3610);
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Down);
    assert!(warnings(&out, "DrainTimedOut").is_empty());
}

#[test]
fn mesos_unreachable_waits_and_says_so() {
    let (mut objs, mut o) = removing(&[], &["t1"]);
    round(&mut objs, &o);
    o.mesos = None;
    o.now = t(7200); // past the deadline: still nothing is downed on a guess
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Draining);
    assert_eq!(record(&objs).phase, RemovalPhase::Draining);
    assert_eq!(record(&objs).running_tasks, 1, "last seen tasks kept");
    assert!(message(&out, &node_key(NODE), "Ready").contains("an answer from the Mesos master"));
    assert!(warnings(&out, "DrainTimedOut").is_empty());
}

#[test]
fn the_annotation_overrides_the_timeout() {
    // (annotation, seconds after start, wanted mode)
    let table: [(&str, u64, MachineMode); 5] = [
        ("10m", 599, MachineMode::Draining),
        ("10m", 600, MachineMode::Down),
        ("3h", 3600, MachineMode::Draining),
        ("3h", 3 * 3600, MachineMode::Down),
        ("0s", 0, MachineMode::Down),
    ];
    for (timeout, secs, want) in table {
        let (mut objs, mut o) = removing(&[(DRAIN_TIMEOUT_ANNOTATION, timeout)], &["t1"]);
        round(&mut objs, &o);
        o.now = t(secs);
        let out = round(&mut objs, &o);
        assert_eq!(mode(&out), want, "{timeout} at {secs}s");
    }
}

#[test]
fn an_unparsable_annotation_holds_the_drain() {
    let (mut objs, mut o) = removing(&[(DRAIN_TIMEOUT_ANNOTATION, "an hour")], &["t1"]);
    round(&mut objs, &o);
    o.now = t(2 * 3600); // past the default deadline: the default is not used
    let out = round(&mut objs, &o);
    assert_eq!(mode(&out), MachineMode::Draining);
    assert_eq!(record(&objs).phase, RemovalPhase::Draining);
    assert_eq!(
        cond(&out, &node_key(NODE), "Ready"),
        ("False".into(), "DrainHeld".into())
    );
    let msg = message(&out, &node_key(NODE), "Ready");
    assert!(msg.contains("omtd/drain-timeout=\"an hour\""), "{msg}");
    // Even with no task left on a scheduled machine, a held drain does not go down.
    scheduled(&mut o);
    if let Some(m) = o.mesos.as_mut() {
        m.tasks.clear();
    }
    assert_eq!(mode(&round(&mut objs, &o)), MachineMode::Draining);
}

#[test]
fn a_machine_mesos_has_down_already_moves_on() {
    let (mut objs, mut o) = removing(&[], &["t1"]);
    if let Some(m) = o.mesos.as_mut() {
        m.down_machines.push(ADDR.into());
    }
    let out = round(&mut objs, &o);
    assert_eq!(
        mode(&out),
        MachineMode::Down,
        "never up again, never re-drained"
    );
    assert_eq!(record(&objs).phase, RemovalPhase::Draining);
    round(&mut objs, &o);
    assert_eq!(record(&objs).phase, RemovalPhase::Stopping);
}

#[test]
fn cancelling_a_drain_brings_the_machine_back_up() {
    let (mut objs, o) = removing(&[], &["t1"]);
    assert_eq!(mode(&round(&mut objs, &o)), MachineMode::Draining);
    for obj in objs.iter_mut() {
        if obj.key() == node_key(NODE) {
            obj.meta_mut().annotations.clear();
        }
    }
    assert_eq!(mode(&round(&mut objs, &o)), MachineMode::Up);
}
