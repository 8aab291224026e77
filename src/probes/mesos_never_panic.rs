//! Parsers never panic (issue #21 item 9): the Mesos master's JSON (`/master/state`,
//! `/master/maintenance/status`, maintenance windows) read through the probe's own
//! `Answer::json`, on arbitrary, near-valid and cut-short bodies. A child of `mesos` because
//! the JSON shapes are private to it; the public parsers are in `tests/parsers_never_panic.rs`.

use omtd_test_support::never_panic as support;

use proptest::prelude::*;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

use super::{to_state, MaintenanceWindow, StateJson, StatusJson};
use crate::probes::http::Answer;
use crate::probes::HttpTarget;
use support::{any_bytes, near_bytes, truncated};

const STATE: &[&str] = &[
    r#"{"version":"1.4.1","pid":"master@10.0.0.1:5050","hostname":"manager.omtd",
    "leader":"master@10.0.0.1:5050",
    "leader_info":{"id":"a1","pid":"master@10.0.0.1:5050","port":5050,"hostname":"manager.omtd",
      "ip":16777226,"address":{"hostname":"manager.omtd","ip":"10.0.0.1","port":5050}},
    "slaves":[{"id":"S0","pid":"slave(1)@10.0.0.11:5051","hostname":"node1.omtd","active":true,
      "resources":{"cpus":4.0,"ports":"[31000-32000]"}},
      {"id":"S1","hostname":"node2.omtd","active":false}],
    "frameworks":[{"id":"F0","name":"chronos","active":true,"connected":true,"tasks":[]},
      {"name":"marathon","active":true,"connected":false}]}"#,
    r#"{"leader":"master@10.0.0.2:5050"}"#,
];

const STATUS: &[&str] = &[
    r#"{"draining_machines":[{"id":{"hostname":"node1.omtd","ip":"10.0.0.11"},"statuses":[]}],
    "down_machines":[{"hostname":"node2.omtd","ip":"10.0.0.12"},{"ip":"10.0.0.13"}]}"#,
    r#"{}"#,
];

const WINDOWS: &[&str] = &[
    r#"[{"machine_ids":[{"hostname":"node1.omtd","ip":"10.0.0.11"}],
    "unavailability":{"start":{"nanoseconds":1523354400000000000},"duration":{"nanoseconds":3600000000000}}}]"#,
];

fn answer(body: &[u8]) -> Answer {
    Answer {
        url: Url::parse("http://10.0.0.1:5050/master/state").expect("a valid URL"),
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: body.to_vec(),
    }
}

fn target() -> HttpTarget {
    HttpTarget::parse("http://10.0.0.1:5050").expect("a valid target")
}

/// What the probe does with the two answers of `MesosMaster::state`.
fn state_of(state: &[u8], status: &[u8]) {
    let t = target();
    let state = answer(state).json::<StateJson>(&t);
    let status = answer(status).json::<StatusJson>(&t);
    if let (Ok(state), Ok(status)) = (state, status) {
        let s = to_state(state, status);
        let _ = crate::probes::chronos::registered(&s, "chronos");
    }
}

proptest! {
    #[test]
    fn mesos_state_any(a in any_bytes(), b in any_bytes()) {
        state_of(&a, &b);
        let _ = answer(&a).json::<Vec<MaintenanceWindow>>(&target());
    }

    #[test]
    fn mesos_state_near(a in near_bytes(STATE), b in near_bytes(STATUS), w in near_bytes(WINDOWS)) {
        state_of(&a, STATUS[0].as_bytes());
        state_of(STATE[0].as_bytes(), &b);
        let _ = answer(&w).json::<Vec<MaintenanceWindow>>(&target());
    }

    #[test]
    fn mesos_state_truncated_are_errors(a in truncated(STATE), b in truncated(STATUS), w in truncated(WINDOWS)) {
        let t = target();
        prop_assert!(answer(a.as_bytes()).json::<StateJson>(&t).is_err(), "accepted: {}", a);
        prop_assert!(answer(b.as_bytes()).json::<StatusJson>(&t).is_err(), "accepted: {}", b);
        prop_assert!(answer(w.as_bytes()).json::<Vec<MaintenanceWindow>>(&t).is_err(), "accepted: {}", w);
    }
}
