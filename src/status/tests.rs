//! The convergence rules, one at a time.

use omtd_crds::plan::{Report, ResourceReport, ResourceState};
use omtd_crds::{Condition, ConditionStatus, Object, Status};
use serde_json::json;

use super::progress::{Tone, Tracker};
use super::*;
use crate::resources::Stored;

fn node(name: &str, generation: i64) -> Object {
    Object::from_value(json!({
        "apiVersion": "omtd/v1", "kind": "Node",
        "metadata": {"name": name, "generation": generation},
        "spec": {"address": "10.0.0.1", "roles": ["worker"], "credential": "c"}
    }))
    .unwrap()
}

fn cond(type_: &str, status: ConditionStatus, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: String::new(),
        last_transition_time: String::new(),
    }
}

fn with_status(mut obj: Object, observed: i64, conditions: Vec<Condition>) -> Object {
    obj.set_status(Some(Status {
        observed_generation: observed,
        conditions,
        ..Status::default()
    }));
    obj
}

fn report(node: &str, states: &[ResourceState], corrective: u64) -> Report {
    Report {
        node: node.into(),
        converged: states.iter().all(|s| *s == ResourceState::Converged),
        resources: states
            .iter()
            .enumerate()
            .map(|(i, s)| ResourceReport {
                id: format!("file:/f{i}"),
                state: *s,
                message: String::new(),
                percent: (*s == ResourceState::Progressing).then_some(40),
                observed: Default::default(),
            })
            .collect(),
        corrective_changes: corrective,
        ..Report::default()
    }
}

fn inputs(objects: Vec<Object>) -> Inputs {
    let mut i = Inputs::default();
    for o in objects {
        i.objects.objects.insert(
            o.key(),
            Stored {
                object: o,
                mod_revision: 1,
            },
        );
    }
    i
}

fn healthy(i: &mut Inputs, name: &str) {
    i.agents.insert(name.into());
    i.reports.insert(
        name.into(),
        Ok(report(name, &[ResourceState::Converged], 0)),
    );
}

#[test]
fn no_nodes_is_converged() {
    let s = compute(&Inputs::default());
    assert!(s.converged);
    assert!(s.pending.is_empty());
}

#[test]
fn converged_needs_agent_report_and_ready() {
    let mut i = inputs(vec![with_status(
        node("a", 1),
        1,
        vec![cond("Ready", ConditionStatus::True, "Ready")],
    )]);
    assert!(!compute(&i).converged);
    healthy(&mut i, "a");
    let s = compute(&i);
    assert!(s.converged, "{:?}", s.pending);
    assert!(s.nodes[0].agent);
    assert_eq!(s.nodes[0].report.as_ref().unwrap().resources, 1);
}

#[test]
fn a_missing_agent_is_the_reason_shown_before_its_missing_report() {
    let i = inputs(vec![node("a", 1)]);
    let s = compute(&i);
    assert_eq!(s.pending.len(), 1, "one reason per object");
    assert!(s.pending[0].reason.starts_with("no agent heartbeat"));
}

#[test]
fn ready_not_true_is_pending_even_with_a_converged_report() {
    let mut i = inputs(vec![with_status(
        node("a", 1),
        1,
        vec![cond("Ready", ConditionStatus::False, "NotRegistered")],
    )]);
    healthy(&mut i, "a");
    let s = compute(&i);
    assert_eq!(s.pending[0].reason, "Ready is False (NotRegistered)");
}

#[test]
fn a_status_from_an_older_generation_is_pending() {
    let mut i = inputs(vec![with_status(
        node("a", 3),
        2,
        vec![cond("Ready", ConditionStatus::True, "Ready")],
    )]);
    healthy(&mut i, "a");
    let s = compute(&i);
    assert!(!s.converged);
    assert!(s.pending[0].reason.contains("generation 3"));
}

#[test]
fn not_accepted_comes_before_the_report() {
    let mut i = inputs(vec![with_status(
        node("a", 1),
        1,
        vec![cond(
            "Accepted",
            ConditionStatus::False,
            "MissingCredential",
        )],
    )]);
    i.agents.insert("a".into());
    let s = compute(&i);
    assert_eq!(s.pending[0].reason, "not accepted (MissingCredential)");
}

#[test]
fn report_problems_are_counted_named_and_progress_is_an_operation() {
    use ResourceState::*;
    let mut i = inputs(vec![node("a", 1)]);
    i.agents.insert("a".into());
    i.reports.insert(
        "a".into(),
        Ok(report(
            "a",
            &[Converged, Progressing, Failed, Refused, Conflict],
            4,
        )),
    );
    let s = compute(&i);
    let r = s.nodes[0].report.as_ref().unwrap();
    assert_eq!((r.converged_resources, r.broken()), (1, 3));
    assert_eq!(r.corrective_changes, 4);
    assert!(s.pending[0]
        .reason
        .starts_with("4 of 5 resources not converged"));
    assert!(s.pending[0].reason.ends_with("and 1 more"));
    assert_eq!(s.operations.len(), 1);
    assert_eq!(s.operations[0].percent, Some(40));
    assert_eq!(
        table::resources_cell(r),
        "1/5 converged (1 progressing, 1 failed, 1 refused, 1 conflict)"
    );
}

#[test]
fn unreadable_report_is_pending() {
    let mut i = inputs(vec![node("a", 1)]);
    i.agents.insert("a".into());
    i.reports.insert("a".into(), Err("expected value".into()));
    let s = compute(&i);
    assert!(s.pending[0].reason.contains("unreadable"));
    assert!(table::render(&s, false).contains("report unreadable"));
}

#[test]
fn unreadable_spec_is_pending_as_unreadable_and_not_converged() {
    let mut i = inputs(vec![node("a", 1)]);
    i.agents.insert("a".into());
    i.unreadable.insert(
        "node/b".into(),
        "/omtd/c/spec/node/b cannot be parsed: expected value at line 1 column 1".into(),
    );
    let s = compute(&i);
    assert!(!s.converged);
    let b = s
        .pending
        .iter()
        .find(|p| p.object == "node/b")
        .expect("node/b pending");
    assert!(
        b.reason.starts_with("Unreadable: /omtd/c/spec/node/b"),
        "{}",
        b.reason
    );
    assert!(table::render(&s, false).contains("Unreadable"));
}

#[test]
fn cluster_conditions_show_dash_until_set_and_summaries_count_ready() {
    let cluster = with_status(
        Object::from_value(json!({
            "apiVersion": "omtd/v1", "kind": "Cluster",
            "metadata": {"name": "omtd", "generation": 1}, "spec": {}
        }))
        .unwrap(),
        1,
        vec![
            cond("LeaderElected", ConditionStatus::True, "ManagerLeads"),
            cond("Recovery", ConditionStatus::True, "Recovering"),
            cond("SomethingNew", ConditionStatus::False, "Why"),
            cond("RegistryReady", ConditionStatus::False, "CredentialRefused"),
        ],
    );
    let s = compute(&inputs(vec![cluster]));
    let find = |t: &str| s.conditions.iter().find(|c| c.type_ == t).unwrap();
    assert_eq!(find("LeaderElected").status, Some(ConditionStatus::True));
    assert_eq!(find("MesosConnected").status, None);
    assert_eq!(find("SomethingNew").group, "cluster");
    // A front door is shown under the controller that owns it, and only once set.
    assert_eq!(find("RegistryReady").group, "node");
    assert_eq!(find("RegistryReady").reason, "CredentialRefused");
    assert!(s.conditions.iter().all(|c| c.type_ != "ChronosReady"));
    assert_eq!(find("VolumesReady").message, "no volumes");
    assert_eq!(s.operations[0].step, "recovery");
    let text = table::render(&s, false);
    assert!(text.contains("No nodes."));
    assert!(text.lines().any(|l| l.starts_with("leader-guard")
        && l.contains("MesosConnected")
        && l.contains(" -")));
}

#[test]
fn tracker_prints_only_changes_and_the_end_of_a_subject() {
    let mut i = inputs(vec![node("a", 1)]);
    let mut t = Tracker::default();
    let first = t.update(&compute(&i));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, Tone::Pending);
    assert!(t.update(&compute(&i)).is_empty(), "nothing changed");
    healthy(&mut i, "a");
    let done = t.update(&compute(&i));
    assert_eq!(done, vec![(Tone::Good, "node/a: converged".to_owned())]);
}

#[test]
fn with_an_operator_running_an_object_without_ready_is_still_pending() {
    // Agents converged on the slices written so far, but no controller has reported on
    // the node yet: a first reconcile still under way is not convergence.
    let mut i = inputs(vec![node("n1", 1)]);
    healthy(&mut i, "n1");
    i.operator = true;
    let s = compute(&i);
    assert!(!s.converged, "{s:?}");
    assert!(
        s.pending[0].reason.contains("not reported on it yet"),
        "{s:?}"
    );
    // Once the node controller says Ready, it is converged.
    let mut i = inputs(vec![with_status(
        node("n1", 1),
        1,
        vec![cond("Ready", ConditionStatus::True, "Converged")],
    )]);
    healthy(&mut i, "n1");
    i.operator = true;
    assert!(compute(&i).converged);
}

#[test]
fn a_report_about_an_older_plan_is_pending() {
    let mut i = inputs(vec![with_status(
        node("a", 1),
        1,
        vec![cond("Ready", ConditionStatus::True, "Ready")],
    )]);
    healthy(&mut i, "a");
    let stored = |digests: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        digests
            .iter()
            .map(|(c, d)| ((*c).to_owned(), (*d).to_owned()))
            .collect()
    };
    if let Some(Ok(r)) = i.reports.get_mut("a") {
        r.slices = stored(&[("node", "d1")]);
    }
    // (slices stored now, converged?)
    let table = [
        (stored(&[("node", "d1")]), true),
        (stored(&[("node", "d2")]), false),
        (stored(&[("node", "d1"), ("credentials", "c1")]), false),
    ];
    for (plans, converged) in table {
        i.plans.insert("a".into(), plans.clone());
        let s = compute(&i);
        assert_eq!(s.converged, converged, "{plans:?}: {:?}", s.pending);
        if !converged {
            assert!(
                s.pending[0]
                    .reason
                    .contains("has not reported on the new one"),
                "{:?}",
                s.pending
            );
        }
    }
}
