//! The Cluster's front-door conditions from the probes: `RegistryReady`, `ChronosReady`,
//! `PrometheusTargetsReady` (node controller), each as a table of observations.

mod common;

use common::*;
use omtd_controllers::crds::Object;
use omtd_controllers::{node, EventType, Observed, RegistryAnswer, RegistryCheck};

fn cluster_cond(objs: &[Object], o: &Observed, type_: &str) -> (String, String, String) {
    let out = node::reconcile(&desired(objs), o, &settings()).expect("node reconcile");
    let (status, reason) = cond(&out, &cluster_key(), type_);
    (status, reason, message(&out, &cluster_key(), type_))
}

#[test]
fn registry_ready_needs_401_without_and_200_with_the_credential() {
    use RegistryAnswer::*;
    let objs = objects();
    let failed = || Failed("http://10.0.0.13/v2/: unreachable: connection refused".into());
    // (anonymous, authenticated; None = not probed, status, reason, message mentions)
    type Row = (
        Option<(RegistryAnswer, Option<RegistryAnswer>)>,
        &'static str,
        &'static str,
        &'static str,
    );
    let table: Vec<Row> = vec![
        (None, "Unknown", "NotProbed", "--registry-url"),
        (Some((Unauthorized, Some(Ok))), "True", "Ready", "401"),
        (
            Some((Unauthorized, Some(Unauthorized))),
            "False",
            "CredentialRefused",
            "with the registry credential answered 401",
        ),
        (
            Some((Ok, Some(Ok))),
            "False",
            "RegistryOpen",
            "without credentials answered 200",
        ),
        (
            Some((failed(), None)),
            "False",
            "RegistryUnreachable",
            "without credentials: http://10.0.0.13/v2/: unreachable",
        ),
        (
            Some((Unauthorized, Some(failed()))),
            "False",
            "RegistryUnreachable",
            "with the registry credential: http://10.0.0.13",
        ),
        (
            Some((Unauthorized, None)),
            "Unknown",
            "NoCredential",
            "--registry-credential",
        ),
    ];
    for (i, (check, status, reason, says)) in table.into_iter().enumerate() {
        let mut o = healthy(&desired(&objs), t(0));
        o.registry = check.map(|(anonymous, authenticated)| RegistryCheck {
            anonymous,
            authenticated,
        });
        let (s, r, m) = cluster_cond(&objs, &o, "RegistryReady");
        assert_eq!((s.as_str(), r.as_str()), (status, reason), "row {i}: {m}");
        assert!(m.contains(says), "row {i}: {m:?} should say {says:?}");
    }
}

#[test]
fn chronos_ready_needs_the_ping_and_the_registration() {
    let objs = objects();
    let d = desired(&objs);
    let unregistered = {
        let mut m = mesos_all_active(&d);
        m.frameworks[0].active = false;
        m
    };
    // (ping; None = not probed, Mesos answer, status, reason)
    let table = [
        (None, Some(mesos_all_active(&d)), "Unknown", "NotProbed"),
        (Some(Ok(())), Some(mesos_all_active(&d)), "True", "Ready"),
        (
            Some(Err("http://10.0.0.12:8080/ping: HTTP 503".to_owned())),
            Some(mesos_all_active(&d)),
            "False",
            "ChronosUnreachable",
        ),
        (Some(Ok(())), Some(unregistered), "False", "NotRegistered"),
        (Some(Ok(())), None, "Unknown", "MesosUnreachable"),
    ];
    for (i, (ping, mesos, status, reason)) in table.into_iter().enumerate() {
        let mut o = healthy(&d, t(0));
        o.chronos_ping = ping;
        o.mesos = mesos;
        let (s, r, m) = cluster_cond(&objs, &o, "ChronosReady");
        assert_eq!((s.as_str(), r.as_str()), (status, reason), "row {i}: {m}");
    }
}

#[test]
fn prometheus_targets_ready_names_the_workers_it_misses() {
    let objs = objects();
    let all = ["10.0.0.21:9100", "10.0.0.22:9100", "10.0.0.23:9100"];
    // (active targets; None = no answer, status, reason, message mentions)
    let table: [(Option<Vec<&str>>, &str, &str, &str); 4] = [
        (None, "Unknown", "NotProbed", "--prometheus-url"),
        (Some(all.to_vec()), "True", "Ready", "(3)"),
        (
            // cAdvisor's target alone does not count for the node exporter's.
            Some(vec!["10.0.0.21:9100", "10.0.0.22:8080", "10.0.0.23:9100"]),
            "False",
            "TargetsMissing",
            "1 of 3 member workers' node exporters are not scrape targets: node2.omtd (10.0.0.22:9100)",
        ),
        (Some(vec![]), "False", "TargetsMissing", "3 of 3"),
    ];
    for (i, (targets, status, reason, says)) in table.into_iter().enumerate() {
        let mut o = healthy(&desired(&objs), t(0));
        o.prometheus_targets = targets.map(|v| v.into_iter().map(String::from).collect());
        let (s, r, m) = cluster_cond(&objs, &o, "PrometheusTargetsReady");
        assert_eq!((s.as_str(), r.as_str()), (status, reason), "row {i}: {m}");
        assert!(m.contains(says), "row {i}: {m:?} should say {says:?}");
    }
}

#[test]
fn no_front_door_condition_for_a_service_the_cluster_does_not_run() {
    // Only a manager and a worker: no registry, no monitor, nothing probed.
    let objs = parse(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {}\n---\n\
         apiVersion: omtd/v1\nkind: Node\nmetadata: {name: m}\nspec: {address: 10.0.0.1, roles: [manager]}\n",
    );
    let out = node::reconcile(&desired(&objs), &Observed::at(t(0)), &settings()).unwrap();
    let status = status_of(&out, &cluster_key());
    assert!(status.condition("RegistryReady").is_none());
    assert!(status.condition("PrometheusTargetsReady").is_none());
    assert_eq!(
        status.condition("ChronosReady").map(|c| c.reason.as_str()),
        Some("NotProbed")
    );
    // Not probing is a choice, not a fault: its event is no warning.
    let event = out
        .events
        .iter()
        .find(|e| e.reason == "NotProbed")
        .expect("an event for the new condition");
    assert_eq!(event.type_, EventType::Normal);
}

#[test]
fn a_front_door_that_fails_is_a_warning_event() {
    let objs = objects();
    let mut o = healthy(&desired(&objs), t(0));
    o.chronos_ping = Some(Err("http://10.0.0.12:8080/ping: HTTP 503".into()));
    let out = node::reconcile(&desired(&objs), &o, &settings()).unwrap();
    let event = out
        .events
        .iter()
        .find(|e| e.reason == "ChronosUnreachable")
        .expect("an event for ChronosReady=False");
    assert_eq!(event.type_, EventType::Warning);
    assert!(event.message.contains("HTTP 503"), "{}", event.message);
}
