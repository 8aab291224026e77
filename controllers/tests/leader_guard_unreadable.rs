//! Leader guard: a `status.recovery` (or a time in it) that does not parse holds the
//! recovery, with `Recovery=Unknown` naming what cannot be read, instead of starting over
//! from Idle or counting a grace period from now.

mod common;

use common::*;
use omtd_controllers::crds::Object;
use omtd_controllers::leader_guard::{
    self, step, Phase, RecoveryInputs, RecoveryState, RECOVERY_KEY,
};
use omtd_controllers::{Intent, Observed, RecoveryPolicy};

const MANAGER: &str = "manager.omtd";

fn set_recovery(objs: &mut [Object], value: serde_json::Value) {
    for o in objs.iter_mut() {
        if let Object::Cluster(c) = o {
            let mut st = c.status.clone().unwrap_or_default();
            st.extra.insert(RECOVERY_KEY.into(), value.clone());
            c.status = Some(st);
        }
    }
}

/// Every node up, the manager's master down and Mesos not answering: a readable record
/// would move (Idle → Watching).
fn unhealthy_observed(objs: &[Object]) -> Observed {
    let d = desired(objs);
    let mut o = healthy(&d, t(100_000));
    o.mesos = None;
    o.reports.insert(
        MANAGER.into(),
        report(
            MANAGER,
            vec![res(
                "service:mesos-master",
                omtd_controllers::crds::plan::ResourceState::Failed,
            )],
        ),
    );
    o
}

fn run(objs: &[Object], o: &Observed) -> Intent {
    leader_guard::reconcile(&desired(objs), o, &settings()).expect("leader-guard reconcile")
}

#[test]
fn an_unreadable_recovery_record_holds_with_recovery_unknown() {
    // The slices a Stopping attempt planned, stored: the hold must keep them as they are.
    let mut objs = objects();
    let stopping = RecoveryState {
        phase: Phase::Stopping,
        attempt: 2,
        since: omtd_controllers::time::format(t(0)),
        attempt_id: "A".into(),
        ..Default::default()
    };
    set_recovery(&mut objs, serde_json::to_value(&stopping).expect("json"));
    let mut o = unhealthy_observed(&objs);
    let before = run(&objs, &o);
    store_slices(&mut o, leader_guard::NAME, &before);

    let table = [
        serde_json::json!("not a record"),
        serde_json::json!({"phase": "Rebooting"}),
        serde_json::json!({"phase": "Stopping", "attempt": "two"}),
    ];
    for value in table {
        set_recovery(&mut objs, value.clone());
        let out = run(&objs, &o);
        assert_eq!(
            cond(&out, &cluster_key(), "Recovery"),
            ("Unknown".into(), "UnreadableRecoveryState".into()),
            "{value}"
        );
        let status = status_of(&out, &cluster_key());
        assert_eq!(status.extra.get(RECOVERY_KEY), Some(&value), "{value}");
        for (node, slice) in &out.slices {
            let stored = &o.plans[node][leader_guard::NAME];
            assert_eq!(slice.services, stored.services, "{value}: {node}");
        }
        assert_eq!(out.requeue_after, None, "{value}");
    }
}

#[test]
fn an_unreadable_time_holds_the_state_machine() {
    let bad = "yesterday-ish".to_string();
    let at0 = omtd_controllers::time::format(t(0));
    let unhealthy = RecoveryInputs {
        healthy: Some(false),
        problems: vec!["no master leads".into()],
        ..Default::default()
    };
    let healthy_inp = RecoveryInputs {
        healthy: Some(true),
        master_elected: true,
        chronos_registered: true,
        agents_active: true,
        ..Default::default()
    };
    // (state with one unreadable time, inputs that would move it, the field named)
    let table = [
        (
            RecoveryState {
                phase: Phase::Stopping,
                attempt: 1,
                since: bad.clone(),
                attempt_id: "A".into(),
                ..Default::default()
            },
            unhealthy.clone(),
            "since",
        ),
        (
            RecoveryState {
                phase: Phase::Watching,
                since: at0.clone(),
                unhealthy_since: Some(bad.clone()),
                ..Default::default()
            },
            unhealthy.clone(),
            "unhealthySince",
        ),
        (
            RecoveryState {
                phase: Phase::Backoff,
                attempt: 1,
                since: at0.clone(),
                next_attempt_at: Some(bad.clone()),
                ..Default::default()
            },
            unhealthy.clone(),
            "nextAttemptAt",
        ),
        (
            RecoveryState {
                phase: Phase::Idle,
                attempt: 3,
                since: at0.clone(),
                healthy_since: Some(bad.clone()),
                ..Default::default()
            },
            healthy_inp.clone(),
            "healthySince",
        ),
    ];
    let policy = RecoveryPolicy::default();
    for (state, inp, field) in table {
        assert_eq!(state.unreadable_times(), vec![field]);
        let next = step(&state, &inp, &policy, t(100_000));
        assert_eq!(next, state, "{field}: the state machine holds");

        let mut objs = objects();
        set_recovery(&mut objs, serde_json::to_value(&state).expect("json"));
        let out = run(&objs, &unhealthy_observed(&objs));
        assert_eq!(
            cond(&out, &cluster_key(), "Recovery"),
            ("Unknown".into(), "UnreadableRecoveryTime".into()),
            "{field}"
        );
        assert!(
            message(&out, &cluster_key(), "Recovery").contains(field),
            "{field}"
        );
    }
}
