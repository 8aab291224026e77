//! Leader guard: masters only on the manager, who leads, and the ordered recovery as a
//! state machine with backoff, a cap and suppression.

mod common;

use std::time::Duration;

use common::*;
use omtd_controllers::crds::plan::{ResourceState, ServiceState};
use omtd_controllers::crds::Object;
use omtd_controllers::leader_guard::{
    self, step, Phase, RecoveryInputs, RecoveryState, RECOVERY_KEY,
};
use omtd_controllers::{Intent, MasterEntry, Observed, RecoveryPolicy};

const MANAGER: &str = "manager.omtd";

fn run(objs: &[Object], o: &Observed) -> Intent {
    leader_guard::reconcile(&desired(objs), o, &settings()).expect("leader-guard reconcile")
}

fn healthy_inputs() -> RecoveryInputs {
    RecoveryInputs {
        healthy: Some(true),
        master_elected: true,
        chronos_registered: true,
        agents_active: true,
        ..Default::default()
    }
}

fn unhealthy() -> RecoveryInputs {
    RecoveryInputs {
        healthy: Some(false),
        problems: vec!["Chronos is not registered with the master".into()],
        master_elected: true,
        agents_active: true,
        ..Default::default()
    }
}

fn and(mut i: RecoveryInputs, f: impl FnOnce(&mut RecoveryInputs)) -> RecoveryInputs {
    f(&mut i);
    i
}

#[test]
fn backoff_doubles_and_is_capped() {
    let p = RecoveryPolicy::default();
    let table = [
        (1, 60),
        (2, 120),
        (3, 240),
        (4, 480),
        (5, 960),
        (6, 1800),
        (10, 1800),
        (40, 1800),
    ];
    for (failed, secs) in table {
        assert_eq!(
            p.backoff(failed),
            Duration::from_secs(secs),
            "after {failed} failures"
        );
    }
}

#[test]
fn recovery_runs_the_runbook_order_step_by_step() {
    let p = RecoveryPolicy::default();
    let stopped = and(unhealthy(), |i| i.stopped = true);
    // (seconds, inputs, phase after, attempt after)
    let table: Vec<(u64, RecoveryInputs, Phase, u32)> = vec![
        (0, healthy_inputs(), Phase::Idle, 0),
        (10, unhealthy(), Phase::Watching, 0),
        (70, unhealthy(), Phase::Watching, 0), // within the grace period
        (130, unhealthy(), Phase::Stopping, 1), // grace passed: attempt 1, stop all
        (140, unhealthy(), Phase::Stopping, 1), // not every stop confirmed yet
        (150, stopped.clone(), Phase::StartingMaster, 1),
        (
            160,
            and(stopped.clone(), |i| i.master_elected = false),
            Phase::StartingMaster,
            1,
        ),
        (170, stopped.clone(), Phase::StartingChronos, 1),
        (
            180,
            and(stopped.clone(), |i| i.chronos_registered = true),
            Phase::StartingAgents,
            1,
        ),
        (
            190,
            and(stopped.clone(), |i| {
                i.chronos_registered = true;
                i.agents_active = false
            }),
            Phase::StartingAgents,
            1,
        ),
        (200, healthy_inputs(), Phase::Idle, 1),
        (500, healthy_inputs(), Phase::Idle, 1), // the count stays a while...
        (1101, healthy_inputs(), Phase::Idle, 0), // ...and resets after 15 minutes healthy
    ];
    let mut s = RecoveryState::default();
    let mut id = String::new();
    for (secs, inp, phase, attempt) in table {
        s = step(&s, &inp, &p, t(secs));
        assert_eq!((s.phase, s.attempt), (phase, attempt), "at {secs}s");
        match s.phase {
            Phase::Stopping => {
                id = s.attempt_id.clone();
                let stop = format!("{id}-stop");
                assert_eq!(
                    (&s.tokens.master, &s.tokens.chronos, &s.tokens.agents),
                    (&stop, &stop, &stop)
                );
            }
            Phase::StartingMaster => assert_eq!(s.tokens.master, format!("{id}-master")),
            Phase::StartingChronos => assert_eq!(s.tokens.chronos, format!("{id}-chronos")),
            Phase::StartingAgents => assert_eq!(s.tokens.agents, format!("{id}-agents")),
            _ => {}
        }
    }
    // The tokens of a finished recovery stay: nothing restarts again.
    assert_eq!(s.tokens.agents, format!("{id}-agents"));
}

#[test]
fn failed_attempts_back_off_exponentially_then_give_up() {
    let p = RecoveryPolicy::default();
    let mut s = step(&RecoveryState::default(), &unhealthy(), &p, t(0));
    let mut now = 0;
    let mut waits = Vec::new();
    loop {
        now += p.grace.as_secs() + 1;
        s = step(&s, &unhealthy(), &p, t(now));
        if s.phase == Phase::GaveUp {
            break;
        }
        assert_eq!(s.phase, Phase::Stopping, "at {now}s");
        // Nothing confirms: the step times out.
        now += p.phase_timeout.as_secs();
        s = step(&s, &unhealthy(), &p, t(now));
        if s.phase == Phase::GaveUp {
            break;
        }
        assert_eq!(s.phase, Phase::Backoff);
        let next = omtd_controllers::time::parse(s.next_attempt_at.as_deref().unwrap()).unwrap();
        let wait = next.duration_since(t(now)).unwrap().as_secs();
        waits.push(wait);
        // Not before the time, even if asked.
        s = step(&s, &unhealthy(), &p, t(now + wait - 1));
        assert_eq!(s.phase, Phase::Backoff);
        now += wait;
        s = step(&s, &unhealthy(), &p, t(now));
        assert_eq!(s.phase, Phase::Stopping);
        now -= p.grace.as_secs() + 1; // the loop head adds it back
    }
    assert_eq!(waits, [60, 120, 240, 480]);
    assert_eq!(s.attempt, 5);
    assert!(s.reason.contains("attempt 5 failed"), "{}", s.reason);
    // Given up: still unhealthy, nothing more happens.
    let later = step(&s, &unhealthy(), &p, t(now + 86_400));
    assert_eq!(later.phase, Phase::GaveUp);
    // A new value of the retry annotation starts over, once.
    let retry = and(unhealthy(), |i| i.retry = Some("1".into()));
    let r = step(&later, &retry, &p, t(now + 86_401));
    assert_eq!((r.phase, r.attempt), (Phase::Stopping, 1));
    assert_eq!(r.retry_ack.as_deref(), Some("1"));
    // Healthy again clears GaveUp too.
    let h = step(&later, &healthy_inputs(), &p, t(now + 86_402));
    assert_eq!((h.phase, h.attempt), (Phase::Idle, 0));
}

#[test]
fn suppression_blocks_the_start_and_interrupts_an_attempt() {
    let p = RecoveryPolicy::default();
    let suppressed = and(unhealthy(), |i| {
        i.suppressed = Some("5 of 8 agents lost".into())
    });
    let s = step(&RecoveryState::default(), &suppressed, &p, t(0));
    assert_eq!(s.phase, Phase::Watching);
    let s = step(&s, &suppressed, &p, t(10_000));
    assert_eq!(s.phase, Phase::Watching, "never starts while suppressed");
    // Mid-attempt: back to watching, services running again.
    let s = step(&s, &unhealthy(), &p, t(10_001));
    assert_eq!(s.phase, Phase::Stopping);
    let s = step(&s, &suppressed, &p, t(10_002));
    assert_eq!(s.phase, Phase::Watching);
    assert!(s.reason.contains("interrupted"));
    // Unknown health (no answer from Mesos) neither starts nor resets.
    let unknown = RecoveryInputs::default();
    let w = step(&RecoveryState::default(), &unhealthy(), &p, t(0));
    let w2 = step(&w, &unknown, &p, t(1_000));
    assert_eq!(w2.phase, Phase::Watching);
}

fn with_recovery(objs: &mut [Object], state: &RecoveryState) {
    for o in objs.iter_mut() {
        if let Object::Cluster(c) = o {
            let mut st = c.status.clone().unwrap_or_default();
            st.extra
                .insert(RECOVERY_KEY.into(), serde_json::to_value(state).unwrap());
            c.status = Some(st);
        }
    }
}

fn svc<'a>(
    out: &'a Intent,
    node: &str,
    name: &str,
) -> &'a omtd_controllers::crds::plan::ServiceSpec {
    slice(out, node)
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{node} has no {name}"))
}

#[test]
fn the_plan_of_each_recovery_phase() {
    use ServiceState::{Running as R, Stopped as S};
    // (phase, mesos-master, chronos, agents)
    let table = [
        (Phase::Idle, R, R, R),
        (Phase::Stopping, S, S, S),
        (Phase::StartingMaster, R, S, S),
        (Phase::StartingChronos, R, R, S),
        (Phase::StartingAgents, R, R, R),
        (Phase::Backoff, R, R, R),
        (Phase::GaveUp, R, R, R),
    ];
    for (phase, master, chronos, agents) in table {
        let mut objs = objects();
        let state = RecoveryState {
            phase,
            attempt: 1,
            since: omtd_controllers::time::format(t(0)),
            attempt_id: "A".into(),
            ..Default::default()
        };
        with_recovery(&mut objs, &state);
        // A state that cannot move on: no answer from Mesos, nothing confirmed, a fresh
        // phase (and the manager's agent there, else the attempt would be interrupted).
        let mut o = Observed::at(t(1));
        o.agents.insert(MANAGER.into(), alive());
        o.reports.insert(MANAGER.into(), report(MANAGER, vec![]));
        let out = run(&objs, &o);
        assert_eq!(
            svc(&out, MANAGER, "mesos-master").state,
            master,
            "{phase:?}"
        );
        assert_eq!(svc(&out, MANAGER, "chronos").state, chronos, "{phase:?}");
        for w in WORKERS {
            let a = svc(&out, w, "mesos-slave");
            assert_eq!(a.state, agents, "{phase:?} {w}");
            assert!(a.enabled, "a recovery stop keeps the agent enabled at boot");
        }
        assert_eq!(
            svc(&out, MANAGER, "mesos-slave").state,
            ServiceState::Masked
        );
    }
}

/// An obedient world: every service the plan names reports converged with its token.
fn apply(o: &mut Observed, out: &Intent) {
    for (node, s) in &out.slices {
        let resources = s
            .services
            .iter()
            .map(|svc| match &svc.restart_token {
                Some(tok) => with(
                    res(&format!("service:{}", svc.name), ResourceState::Converged),
                    &[("restartToken", tok)],
                ),
                None => res(&format!("service:{}", svc.name), ResourceState::Converged),
            })
            .collect();
        o.reports.insert(node.clone(), report(node, resources));
    }
}

fn phase_of(out: &Intent) -> Phase {
    let v = status_of(out, &cluster_key())
        .extra
        .get(RECOVERY_KEY)
        .cloned()
        .unwrap();
    serde_json::from_value::<RecoveryState>(v).unwrap().phase
}

#[test]
fn chronos_disconnected_is_recovered_in_order_through_reconciles() {
    let mut objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    // Chronos is not connected.
    if let Some(m) = o.mesos.as_mut() {
        m.frameworks.clear();
    }
    let out = run(&objs, &o);
    apply(&mut o, &out);
    assert_eq!(phase_of(&out), Phase::Watching);
    assert_eq!(
        cond(&out, &cluster_key(), "MesosConnected"),
        ("False".into(), "Disconnected".into())
    );
    assert_eq!(cond(&out, &cluster_key(), "Recovery").1, "Watching");
    assert_eq!(out.requeue_after, Some(Duration::from_secs(120)));
    store_statuses(&mut objs, &out);

    let mut order = Vec::new();
    let mut now = 121;
    for _ in 0..10 {
        o.now = t(now);
        let out = run(&objs, &o);
        let ph = phase_of(&out);
        order.push(ph);
        // The world follows the plan: agents apply it; Mesos reacts to what runs.
        apply(&mut o, &out);
        let up = |n: &str, s: &str| svc(&out, n, s).state == ServiceState::Running;
        let master = up(MANAGER, "mesos-master");
        if let Some(m) = o.mesos.as_mut() {
            m.leader = master.then(|| "10.0.0.12".into());
            m.frameworks = if master && up(MANAGER, "chronos") {
                vec![omtd_controllers::MesosFramework {
                    name: "chronos".into(),
                    active: true,
                }]
            } else {
                vec![]
            };
            for a in m.agents.iter_mut() {
                a.active = master && up("node1.omtd", "mesos-slave");
            }
        }
        store_statuses(&mut objs, &out);
        now += 5;
        if ph == Phase::Idle {
            assert_eq!(cond(&out, &cluster_key(), "MesosConnected").0, "True");
            assert_eq!(cond(&out, &cluster_key(), "Recovery").1, "NotNeeded");
            break;
        }
        assert_eq!(cond(&out, &cluster_key(), "Recovery").0, "True", "{ph:?}");
    }
    assert_eq!(
        order,
        [
            Phase::Stopping,
            Phase::StartingMaster,
            Phase::StartingChronos,
            Phase::StartingAgents,
            Phase::Idle
        ]
    );
}

#[test]
fn mass_agent_loss_suppresses_recovery() {
    let mut objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    if let Some(m) = o.mesos.as_mut() {
        m.frameworks.clear();
    }
    for n in [
        "executor.omtd",
        "editor.omtd",
        "registry.omtd",
        "node1.omtd",
        "node2.omtd",
    ] {
        o.agents.insert(n.into(), gone(600));
    }
    let out = run(&objs, &o);
    store_statuses(&mut objs, &out);
    o.now = t(10_000);
    let out = run(&objs, &o);
    assert_eq!(phase_of(&out), Phase::Watching);
    assert_eq!(
        cond(&out, &cluster_key(), "Recovery"),
        ("False".into(), "Suppressed".into())
    );
    assert!(message(&out, &cluster_key(), "Recovery").contains("agents lost at once"));
    assert_eq!(
        svc(&out, MANAGER, "mesos-master").state,
        ServiceState::Running
    );
}

#[test]
fn a_dead_master_is_seen_from_the_managers_report_when_mesos_does_not_answer() {
    let objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    o.mesos = None;
    let out = run(&objs, &o);
    assert_eq!(cond(&out, &cluster_key(), "MesosConnected").0, "Unknown");
    assert_eq!(
        phase_of(&out),
        Phase::Idle,
        "a silent probe alone proves nothing"
    );
    let mut dead = res("service:mesos-master", ResourceState::CrashLooping);
    dead.message = "keeps stopping after it is started".into();
    o.reports
        .insert(MANAGER.into(), report(MANAGER, vec![dead]));
    let out = run(&objs, &o);
    assert_eq!(phase_of(&out), Phase::Watching);
}

#[test]
fn healthy_cluster_needs_nothing() {
    let objs = objects();
    let out = run(&objs, &healthy(&desired(&objs), t(0)));
    assert_eq!(
        cond(&out, &cluster_key(), "LeaderElected"),
        ("True".into(), "ManagerLeads".into())
    );
    assert_eq!(cond(&out, &cluster_key(), "MesosConnected").0, "True");
    assert_eq!(
        cond(&out, &cluster_key(), "Recovery"),
        ("False".into(), "NotNeeded".into())
    );
    assert_eq!(out.requeue_after, None);
    assert_eq!(phase_of(&out), Phase::Idle);
}

#[test]
fn who_leads_according_to_zookeeper() {
    let entry = |h: &str, seq| MasterEntry {
        hostname: h.into(),
        sequence: seq,
    };
    // (ZooKeeper entries, LeaderElected status, reason, message part)
    let table = [
        (
            vec![entry("10.0.0.12", 3)],
            "True",
            "ManagerLeads",
            "the manager manager.omtd leads",
        ),
        (
            vec![entry("10.0.0.12", 3), entry("10.0.0.22", 7)],
            "True",
            "ManagerLeads",
            "stray masters contending (masked by omtd): node2.omtd (10.0.0.22)",
        ),
        (
            vec![entry("10.0.0.22", 1), entry("10.0.0.12", 2)],
            "False",
            "StrayMasterLeads",
            "mesos-master on node2.omtd (10.0.0.22) holds the lowest ZooKeeper sequence",
        ),
        (
            vec![entry("192.0.2.9", 1), entry("10.0.0.12", 2)],
            "False",
            "UnknownMasterLeads",
            "stop mesos-master there by hand",
        ),
        (vec![], "False", "NoLeader", "no Mesos master"),
    ];
    let objs = objects();
    for (entries, status, reason, part) in table {
        let mut o = healthy(&desired(&objs), t(0));
        o.zookeeper = Some(entries.clone());
        let out = run(&objs, &o);
        assert_eq!(
            cond(&out, &cluster_key(), "LeaderElected"),
            (status.to_owned(), reason.to_owned()),
            "{entries:?}"
        );
        let msg = message(&out, &cluster_key(), "LeaderElected");
        assert!(msg.contains(part), "{msg}");
        // Whatever ZooKeeper says, the stray's master is masked, the manager's runs.
        assert_eq!(
            svc(&out, "node2.omtd", "mesos-master").state,
            ServiceState::Masked
        );
        assert_eq!(
            svc(&out, MANAGER, "mesos-master").state,
            ServiceState::Running
        );
    }
    // A stray leading means Mesos is not healthy: the recovery watch starts.
    let mut o = healthy(&desired(&objs), t(0));
    o.zookeeper = Some(vec![entry("10.0.0.22", 1), entry("10.0.0.12", 2)]);
    assert_eq!(phase_of(&run(&objs, &o)), Phase::Watching);
}

// ---- Proportionate recovery: a few inactive agents get a local restart only. ----

/// The example cluster, with a fourth worker when `four` (for the exact "half" case).
fn cluster(four: bool) -> Vec<Object> {
    let mut objs = objects();
    if four {
        objs.extend(parse(
            "apiVersion: omtd/v1\nkind: Node\nmetadata:\n  name: node4.omtd\nspec:\n  \
             address: 10.0.0.24\n  roles: [worker]\n",
        ));
    }
    objs
}

/// A healthy world whose agents reported the leader guard's plan once (so every worker's
/// agent is expected active), with `inactive` workers' Mesos agents inactive.
fn world(objs: &[Object], now: u64, inactive: &[&str]) -> Observed {
    let d = desired(objs);
    let mut o = healthy(&d, t(now));
    let out = run(objs, &o);
    apply(&mut o, &out);
    set_inactive(&mut o, &d, inactive);
    o
}

fn set_inactive(o: &mut Observed, d: &omtd_controllers::Desired, inactive: &[&str]) {
    let addr = |n: &str| d.nodes[n].spec.address.clone();
    let off: Vec<String> = inactive.iter().map(|n| addr(n)).collect();
    if let Some(m) = o.mesos.as_mut() {
        for a in m.agents.iter_mut() {
            a.active = !off.contains(&a.hostname);
        }
    }
}

fn agent_tokens(out: &Intent, workers: &[&str]) -> Vec<String> {
    workers
        .iter()
        .map(|w| {
            svc(out, w, "mesos-slave")
                .restart_token
                .clone()
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn which_inactive_agents_start_the_cluster_wide_recovery() {
    // (workers, inactive, master leads, Chronos registered, cluster-wide?)
    let table: [(bool, &[&str], bool, bool, bool); 7] = [
        (false, &["node1.omtd"], true, true, false),
        (false, &["node1.omtd", "node2.omtd"], true, true, true),
        (false, &[], false, true, true),
        (false, &[], true, false, true),
        (false, &["node3.omtd"], false, true, true),
        (true, &["node1.omtd", "node2.omtd"], true, true, false), // exactly half: local
        (
            true,
            &["node1.omtd", "node2.omtd", "node3.omtd"],
            true,
            true,
            true,
        ),
    ];
    for (four, inactive, leads, chronos, wide) in table {
        let mut objs = cluster(four);
        let d = desired(&objs);
        let mut o = world(&objs, 0, inactive);
        if let Some(m) = o.mesos.as_mut() {
            if !leads {
                m.leader = None;
            }
            if !chronos {
                m.frameworks.clear();
            }
        }
        let workers: Vec<&str> = d.workers().map(|w| w.metadata.name.as_str()).collect();
        let case = format!(
            "{inactive:?} of {}, leads {leads}, chronos {chronos}",
            workers.len()
        );
        let before = agent_tokens(&run(&objs, &o), &workers);
        let out = run(&objs, &o);
        store_statuses(&mut objs, &out);
        // Past the grace period.
        o.now = t(121);
        let out = run(&objs, &o);
        let after = agent_tokens(&out, &workers);
        if wide {
            assert_eq!(phase_of(&out), Phase::Stopping, "{case}");
            assert_eq!(
                cond(&out, &cluster_key(), "Recovery").1,
                "Recovering",
                "{case}"
            );
            for w in &workers {
                assert_eq!(
                    svc(&out, w, "mesos-slave").state,
                    ServiceState::Stopped,
                    "{case}"
                );
            }
        } else {
            assert_eq!(phase_of(&out), Phase::Idle, "{case}");
            assert_eq!(
                svc(&out, MANAGER, "mesos-master").state,
                ServiceState::Running,
                "{case}"
            );
            assert_eq!(svc(&out, MANAGER, "chronos").state, ServiceState::Running);
            for (i, w) in workers.iter().enumerate() {
                assert_eq!(svc(&out, w, "mesos-slave").state, ServiceState::Running);
                let restarted = before[i] != after[i];
                assert_eq!(restarted, inactive.contains(w), "{case}: {w}");
            }
            assert_eq!(
                cond(&out, &cluster_key(), "Recovery"),
                ("True".into(), "RestartingAgents".into()),
                "{case}"
            );
            assert_eq!(
                cond(&out, &cluster_key(), "MesosConnected").1,
                "AgentsInactive",
                "{case}"
            );
        }
    }
}

#[test]
fn one_crashing_agent_is_restarted_alone_after_grace_with_backoff() {
    let mut objs = cluster(false);
    let mut o = world(&objs, 0, &["node2.omtd"]);
    let initial = agent_tokens(&run(&objs, &o), &WORKERS);
    // (seconds, node2's token changes?)
    let table: [(u64, bool); 9] = [
        (0, false),   // first seen inactive
        (60, false),  // within the grace period
        (120, true),  // grace passed: restart 1
        (150, false), // waiting backoff(1) = 60 s
        (179, false),
        (180, true),  // restart 2
        (299, false), // backoff(2) = 120 s
        (300, true),  // restart 3
        (500, false),
    ];
    let mut last = initial[1].clone();
    for (secs, changes) in table {
        o.now = t(secs);
        let out = run(&objs, &o);
        store_statuses(&mut objs, &out);
        apply(&mut o, &out);
        let now = agent_tokens(&out, &WORKERS);
        assert_eq!(
            now[1] != last,
            changes,
            "at {secs}s: {} -> {}",
            last,
            now[1]
        );
        assert_eq!((&now[0], &now[2]), (&initial[0], &initial[2]), "at {secs}s");
        assert_eq!(phase_of(&out), Phase::Idle, "at {secs}s");
        assert_eq!(
            svc(&out, MANAGER, "mesos-master").state,
            ServiceState::Running
        );
        // The operator looks again when the next restart is due.
        assert!(out.requeue_after.is_some(), "at {secs}s");
        if secs == 150 {
            assert_eq!(out.requeue_after, Some(Duration::from_secs(30)));
        }
        last = now[1].clone();
    }
    // The agent reconnects: nothing restarts again, and its token stays.
    set_inactive(&mut o, &desired(&objs), &[]);
    for secs in [600, 2_000] {
        o.now = t(secs);
        let out = run(&objs, &o);
        store_statuses(&mut objs, &out);
        assert_eq!(agent_tokens(&out, &WORKERS)[1], last, "at {secs}s");
        assert_eq!(cond(&out, &cluster_key(), "Recovery").1, "NotNeeded");
        assert_eq!(cond(&out, &cluster_key(), "MesosConnected").0, "True");
    }
}

#[test]
fn the_local_remedy_resumes_from_stored_status_and_gives_up_after_max_attempts() {
    let p = RecoveryPolicy::default();
    let mut objs = cluster(false);
    let mut o = world(&objs, 0, &["node1.omtd"]);
    let mut now = 0;
    let mut tokens = Vec::new();
    // Each reconcile starts from the stored status only (as after an operator crash).
    for _ in 0..40 {
        o.now = t(now);
        let out = run(&objs, &o);
        store_statuses(&mut objs, &out);
        let tok = agent_tokens(&out, &WORKERS)[0].clone();
        if tokens.last() != Some(&tok) {
            tokens.push(tok);
        }
        now += 30;
    }
    // The initial token, then max_attempts restarts, then nothing more.
    assert_eq!(tokens.len() as u32, 1 + p.max_attempts, "{tokens:?}");
    let out = run(&objs, &o);
    assert!(
        message(&out, &cluster_key(), "Recovery").contains("restarts it no more"),
        "{}",
        message(&out, &cluster_key(), "Recovery")
    );
    assert_eq!(
        cond(&out, &cluster_key(), "Recovery"),
        ("False".into(), "RestartingAgents".into()),
        "given up: no longer under way"
    );
    assert_eq!(phase_of(&out), Phase::Idle);
}

#[test]
fn a_locally_restarted_agent_still_confirms_the_cluster_wide_stop() {
    let mut objs = objects();
    let mut agents = std::collections::BTreeMap::new();
    agents.insert(
        "node1.omtd".to_owned(),
        omtd_controllers::agent_restart::AgentRestart {
            attempt: 1,
            token: "L1".into(),
            ..Default::default()
        },
    );
    let state = RecoveryState {
        phase: Phase::Stopping,
        attempt: 1,
        since: omtd_controllers::time::format(t(0)),
        attempt_id: "A".into(),
        tokens: leader_guard::Tokens {
            master: "A-stop".into(),
            chronos: "A-stop".into(),
            agents: "A-stop".into(),
        },
        agents,
        ..Default::default()
    };
    with_recovery(&mut objs, &state);
    let mut o = healthy(&desired(&objs), t(1));
    o.mesos = None;
    let out = run(&objs, &o);
    let tok = svc(&out, "node1.omtd", "mesos-slave").restart_token.clone();
    assert_eq!(tok.as_deref(), Some("r=A-stop;l=L1"));
    assert_eq!(
        svc(&out, "node2.omtd", "mesos-slave")
            .restart_token
            .as_deref(),
        Some("r=A-stop")
    );
    // The agents obey the stop: step 1 is confirmed, node1's local token included.
    apply(&mut o, &out);
    o.now = t(2);
    assert_eq!(phase_of(&run(&objs, &o)), Phase::StartingMaster);
}
