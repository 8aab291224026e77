//! A Mesos 1.4 master on loopback: `/master/state`, `/master/redirect`, `/master/health`,
//! and the maintenance endpoints, behind basic auth (`authenticate_http_readonly` and
//! `_readwrite`), answering 307 to the leader when it is not the leader itself.
//!
//! Maintenance follows Mesos's rules: the schedule is replaced by each POST, a machine may
//! appear in one window only, only scheduled (draining) machines can go down, only down
//! machines can come up, and coming up also takes a machine out of the schedule.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json as j, Value};

use super::{authorized, json, serve, unauthorized};

pub const PRINCIPAL: &str = "omtd.operator";
pub const SECRET: &str = "Zx9-secret-of-the-master";

pub struct MesosFake {
    /// `Some(addr)`: not the leader; 307 to this master.
    pub leader_at: Option<SocketAddr>,
    /// `None`: no leader elected (`/master/redirect` answers 503).
    pub elected: bool,
    pub schedule: Mutex<Value>,
    pub down: Mutex<Vec<Value>>,
    /// Requests that passed authentication, per path.
    pub served: Mutex<Vec<(Method, String)>>,
    pub posts: AtomicUsize,
    /// Answer `/master/state` with this instead of the fixture.
    pub state_override: Option<String>,
}

impl MesosFake {
    pub fn leader() -> MesosFake {
        MesosFake {
            leader_at: None,
            elected: true,
            schedule: Mutex::new(j!({})),
            down: Mutex::new(Vec::new()),
            served: Mutex::new(Vec::new()),
            posts: AtomicUsize::new(0),
            state_override: None,
        }
    }

    pub fn follower_of(leader: SocketAddr) -> MesosFake {
        MesosFake {
            leader_at: Some(leader),
            ..MesosFake::leader()
        }
    }

    pub fn served_paths(&self) -> Vec<String> {
        self.served
            .lock()
            .expect("lock")
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }
}

pub async fn start(fake: Arc<MesosFake>) -> SocketAddr {
    serve(
        Router::new().fallback(move |m: Method, uri: Uri, h: HeaderMap, body: Bytes| {
            let fake = Arc::clone(&fake);
            async move { handle(&fake, m, uri, h, body) }
        }),
    )
    .await
}

fn handle(fake: &MesosFake, m: Method, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    if path == "/master/health" {
        return StatusCode::OK.into_response(); // never authenticated in Mesos
    }
    // libprocess authenticates before the handler runs, leader or not.
    if !authorized(&h, PRINCIPAL, SECRET) {
        return unauthorized("mesos");
    }
    fake.served
        .lock()
        .expect("lock")
        .push((m.clone(), path.clone()));
    if path == "/master/redirect" {
        return match (fake.elected, fake.leader_at) {
            (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "No leader elected").into_response(),
            (true, Some(l)) => redirect(format!("//127.0.0.1:{}", l.port())),
            // The leader redirects to itself; its "hostname" here is the loopback address.
            (true, None) => redirect("//127.0.0.1:5050".to_owned()),
        };
    }
    if let Some(leader) = fake.leader_at {
        return redirect(format!("//127.0.0.1:{}{path}", leader.port()));
    }
    match (m, path.as_str()) {
        (Method::GET, "/master/state") => json(
            StatusCode::OK,
            fake.state_override.clone().unwrap_or_else(state_fixture),
        ),
        (Method::GET, "/master/maintenance/status") => {
            json(StatusCode::OK, status(fake).to_string())
        }
        (Method::GET, "/master/maintenance/schedule") => json(
            StatusCode::OK,
            fake.schedule.lock().expect("lock").to_string(),
        ),
        (Method::POST, "/master/maintenance/schedule") => {
            fake.posts.fetch_add(1, Ordering::SeqCst);
            post_schedule(fake, &body)
        }
        (Method::POST, "/master/machine/down") => {
            fake.posts.fetch_add(1, Ordering::SeqCst);
            machine_down(fake, &body)
        }
        (Method::POST, "/master/machine/up") => {
            fake.posts.fetch_add(1, Ordering::SeqCst);
            machine_up(fake, &body)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn redirect(location: String) -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)], "").into_response()
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg).into_response()
}

fn scheduled_ids(schedule: &Value) -> Vec<Value> {
    schedule["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["machine_ids"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn status(fake: &MesosFake) -> Value {
    let down = fake.down.lock().expect("lock").clone();
    let schedule = fake.schedule.lock().expect("lock").clone();
    let draining: Vec<Value> = scheduled_ids(&schedule)
        .into_iter()
        .filter(|id| !down.contains(id))
        .map(|id| j!({"id": id, "statuses": []}))
        .collect();
    j!({"draining_machines": draining, "down_machines": down})
}

fn post_schedule(fake: &MesosFake, body: &[u8]) -> Response {
    let Ok(new): Result<Value, _> = serde_json::from_slice(body) else {
        return bad_request("Failed to parse body into JSON".into());
    };
    let ids = scheduled_ids(&new);
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return bad_request(format!(
                "Machine '{id}' appears more than once in the schedule"
            ));
        }
    }
    if let Some(windows) = new["windows"].as_array() {
        if windows
            .iter()
            .any(|w| w["machine_ids"].as_array().is_none_or(Vec::is_empty))
        {
            return bad_request("List of machines in the maintenance window is empty".into());
        }
    }
    // A down machine must stay in the schedule.
    let down = fake.down.lock().expect("lock").clone();
    if let Some(d) = down.iter().find(|d| !ids.contains(d)) {
        return bad_request(format!(
            "Machine '{d}' is deactivated and must be in the schedule"
        ));
    }
    *fake.schedule.lock().expect("lock") = new;
    StatusCode::OK.into_response()
}

fn machine_down(fake: &MesosFake, body: &[u8]) -> Response {
    let Ok(ids): Result<Vec<Value>, _> = serde_json::from_slice(body) else {
        return bad_request("Failed to parse body into JSON".into());
    };
    let scheduled = scheduled_ids(&fake.schedule.lock().expect("lock"));
    let mut down = fake.down.lock().expect("lock");
    for id in &ids {
        if !scheduled.contains(id) || down.contains(id) {
            return bad_request(format!(
                "Machine '{id}' is not in DRAINING mode and cannot be brought down"
            ));
        }
    }
    down.extend(ids);
    StatusCode::OK.into_response()
}

fn machine_up(fake: &MesosFake, body: &[u8]) -> Response {
    let Ok(ids): Result<Vec<Value>, _> = serde_json::from_slice(body) else {
        return bad_request("Failed to parse body into JSON".into());
    };
    let mut down = fake.down.lock().expect("lock");
    for id in &ids {
        if !down.contains(id) {
            return bad_request(format!(
                "Machine '{id}' is not in DOWN mode and cannot be brought up"
            ));
        }
    }
    down.retain(|d| !ids.contains(d));
    let mut schedule = fake.schedule.lock().expect("lock");
    if let Some(windows) = schedule["windows"].as_array_mut() {
        for w in windows.iter_mut() {
            if let Some(m) = w["machine_ids"].as_array_mut() {
                m.retain(|x| !ids.contains(x));
            }
        }
        windows.retain(|w| w["machine_ids"].as_array().is_some_and(|m| !m.is_empty()));
    }
    StatusCode::OK.into_response()
}

/// `/master/state` of a Mesos 1.4.1 leader: two agents (node2 disconnected), Chronos
/// registered, a disconnected second framework, one completed framework.
pub fn state_fixture() -> String {
    j!({
      "version": "1.4.1",
      "git_sha": "c844db9ac7c0cef59be87438c6781bfb71adcc42",
      "git_tag": "1.4.1",
      "build_date": "2017-11-27 22:47:38",
      "build_time": 1511822858.0,
      "build_user": "centos",
      "start_time": 1523354400.12345,
      "elected_time": 1523354401.54321,
      "id": "a1b2c3d4-0000-4000-8000-000000000001",
      "pid": "master@10.0.0.1:5050",
      "hostname": "manager.omtd",
      "activated_slaves": 1.0,
      "deactivated_slaves": 1.0,
      "unreachable_slaves": 0.0,
      "cluster": "omtd",
      "leader": "master@10.0.0.1:5050",
      "leader_info": {
        "id": "a1b2c3d4-0000-4000-8000-000000000001",
        "pid": "master@10.0.0.1:5050",
        "port": 5050,
        "hostname": "manager.omtd",
        "ip": 16777226u64,
        "address": {"hostname": "manager.omtd", "ip": "10.0.0.1", "port": 5050},
        "version": "1.4.1",
        "capabilities": [{"type": "AGENT_UPDATE"}]
      },
      "log_dir": "/var/log/mesos",
      "flags": {"authenticate_agents": "true", "authenticate_http_readonly": "true",
                "quorum": "1", "zk": "zk://10.0.0.1:2181/mesos", "cluster": "omtd"},
      "slaves": [
        {
          "id": "a1b2c3d4-0000-4000-8000-000000000001-S0",
          "pid": "slave(1)@10.0.0.11:5051",
          "hostname": "node1.omtd",
          "port": 5051,
          "registered_time": 1523354402.1,
          "resources": {"disk": 35164.0, "mem": 6814.0, "gpus": 0.0, "cpus": 4.0,
                        "ports": "[31000-32000]"},
          "used_resources": {"disk": 0.0, "mem": 128.0, "gpus": 0.0, "cpus": 0.5},
          "offered_resources": {"disk": 0.0, "mem": 0.0, "gpus": 0.0, "cpus": 0.0},
          "reserved_resources": {},
          "unreserved_resources": {"disk": 35164.0, "mem": 6814.0, "gpus": 0.0, "cpus": 4.0},
          "attributes": {},
          "active": true,
          "version": "1.4.1",
          "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]
        },
        {
          "id": "a1b2c3d4-0000-4000-8000-000000000001-S1",
          "pid": "slave(1)@10.0.0.12:5051",
          "hostname": "node2.omtd",
          "port": 5051,
          "registered_time": 1523354403.2,
          "reregistered_time": 1523354500.0,
          "resources": {"disk": 35164.0, "mem": 6814.0, "gpus": 0.0, "cpus": 4.0},
          "used_resources": {"disk": 0.0, "mem": 0.0, "gpus": 0.0, "cpus": 0.0},
          "offered_resources": {},
          "reserved_resources": {},
          "unreserved_resources": {},
          "attributes": {},
          "active": false,
          "version": "1.4.1",
          "capabilities": ["MULTI_ROLE"]
        }
      ],
      "recovered_slaves": [],
      "frameworks": [
        {
          "id": "a1b2c3d4-0000-4000-8000-000000000001-0000",
          "name": "chronos",
          "pid": "scheduler-3b6e5f0a@10.0.0.1:39417",
          "used_resources": {"disk": 0.0, "mem": 128.0, "gpus": 0.0, "cpus": 0.5},
          "offered_resources": {},
          "capabilities": [],
          "hostname": "manager.omtd",
          "webui_url": "http://manager.omtd:8080",
          "active": true,
          "connected": true,
          "recovered": false,
          "user": "root",
          "failover_timeout": 604800.0,
          "checkpoint": true,
          "role": "*",
          "registered_time": 1523354405.0,
          "unregistered_time": 0.0,
          "principal": "chronos.omtd",
          "resources": {"disk": 0.0, "mem": 128.0, "gpus": 0.0, "cpus": 0.5},
          "tasks": [],
          "unreachable_tasks": [],
          "completed_tasks": [],
          "offers": [],
          "executors": []
        },
        {
          "id": "a1b2c3d4-0000-4000-8000-000000000001-0001",
          "name": "marathon",
          "pid": "scheduler-aaaa@10.0.0.5:40000",
          "hostname": "editor.omtd",
          "active": false,
          "connected": false,
          "recovered": false,
          "principal": "marathon.omtd",
          "tasks": [], "completed_tasks": [], "offers": [], "executors": []
        }
      ],
      "completed_frameworks": [
        {"id": "a1b2c3d4-0000-4000-8000-000000000001-0002", "name": "chronos-old",
         "active": false, "connected": false, "hostname": "manager.omtd"}
      ],
      "orphan_tasks": [],
      "unregistered_frameworks": []
    })
    .to_string()
}
