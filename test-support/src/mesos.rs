//! A Mesos 1.4 master for the probe tests: the sim world's (`omtd::sim`, which serves Mesos
//! over HTTP on loopback with Mesos's maintenance rules and basic auth), with a thin front
//! per master for what the sim does not model.
//!
//! The front forwards every request to the master's sim endpoint and answers with what it
//! answered, after three things only: it records the requests that passed authentication
//! (what a test asserts about who was asked), it can put a recorded `/master/state`
//! document in place of the sim's (a disconnected agent or framework, or JSON that is not
//! Mesos's), and it rewrites the sim's redirects to the leader's front, so a test sees
//! every master through its front.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use omtd::agent::drivers::sim::SimHost;
use omtd::sim::{Service, SimWorld};
use serde_json::{json as j, Value};

use crate::fakes::{basic, serve};

/// The principal the masters know, with its secret.
pub const PRINCIPAL: &str = "omtd.operator";
pub const SECRET: &str = "Zx9-secret-of-the-master";

/// The leading master and its standby.
pub const LEADER: &str = "manager.omtd";
pub const STANDBY: &str = "standby.omtd";
const ZK: &str = "zk://10.0.0.1:2181/mesos";
const CREDENTIALS: &str = "/etc/mesos-master/store/credentials.json";

/// A sim world with a Mesos master on `manager.omtd` (it runs the ZooKeeper too, and leads),
/// a standby master on `standby.omtd`, and agents on node1 and node2. Every master
/// authenticates read-only and read-write HTTP against [`PRINCIPAL`]/[`SECRET`].
pub struct Cluster {
    pub world: SimWorld,
    /// Sim endpoint port → its front's port, shared by the fronts to rewrite redirects.
    fronts: Arc<Mutex<BTreeMap<u16, u16>>>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::with_zookeeper(true)
    }

    /// The masters run but reach no ZooKeeper: no leader is elected.
    pub fn leaderless() -> Cluster {
        Cluster::with_zookeeper(false)
    }

    fn with_zookeeper(zookeeper: bool) -> Cluster {
        let world = SimWorld::new();
        let leader = master();
        if zookeeper {
            leader.start_stray("zookeeper");
        }
        world.add_node(LEADER, "10.0.0.1", leader);
        world.add_node(STANDBY, "10.0.0.2", master());
        for (name, ip) in [("node1.omtd", "10.0.0.11"), ("node2.omtd", "10.0.0.12")] {
            let agent = SimHost::new();
            agent.edit_file("/etc/mesos/zk", ZK.as_bytes());
            agent.start_stray("mesos-slave");
            world.add_node(name, ip, agent);
        }
        Cluster {
            world,
            fronts: Arc::default(),
        }
    }

    /// `node`'s master, seen through a new front.
    pub async fn front(&self, node: &str) -> Arc<Front> {
        let sim = self
            .world
            .endpoint(node, Service::MesosMaster)
            .unwrap_or_else(|e| panic!("the sim master on {node}: {e}"));
        let front = Arc::new(Front::default());
        let addr = serve_front(Arc::clone(&front), sim, Arc::clone(&self.fronts)).await;
        self.fronts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sim.port(), addr.port());
        *front.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
        front
    }

    /// Sets the leader's maintenance as it stands before a test: `schedule` posted, then
    /// the machines in `down` marked DOWN (straight to the sim: no front records it).
    pub async fn seed_maintenance(&self, schedule: Value, down: Value) {
        let sim = self
            .world
            .endpoint(LEADER, Service::MesosMaster)
            .unwrap_or_else(|e| panic!("the sim master on {LEADER}: {e}"));
        let client = reqwest::Client::new();
        for (path, body) in [
            ("/master/maintenance/schedule", schedule),
            ("/master/machine/down", down),
        ] {
            let answer = client
                .post(format!("http://{sim}{path}"))
                .header(AUTHORIZATION, basic(PRINCIPAL, SECRET))
                .body(body.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {path} to the sim master: {e}"));
            assert_eq!(answer.status(), 200, "POST {path} to the sim master");
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

/// A host running mesos-master, following the ZooKeeper on the leader.
fn master() -> SimHost {
    let host = SimHost::new();
    host.edit_file("/etc/mesos/zk", ZK.as_bytes());
    host.edit_file("/etc/mesos-master/credentials", CREDENTIALS.as_bytes());
    host.edit_file(
        CREDENTIALS,
        j!({"credentials": [{"principal": PRINCIPAL, "secret": SECRET}]})
            .to_string()
            .as_bytes(),
    );
    host.edit_file("/etc/mesos-master/authenticate_http_readonly", b"true");
    host.edit_file("/etc/mesos-master/authenticate_http_readwrite", b"true");
    host.start_stray("mesos-master");
    host
}

/// One master's front (see the module's comment).
#[derive(Default)]
pub struct Front {
    addr: Mutex<Option<SocketAddr>>,
    /// Requests that passed authentication.
    served: Mutex<Vec<(Method, String)>>,
    /// POSTs this master handled itself (not redirected).
    pub posts: AtomicUsize,
    /// Answer `/master/state` with this instead of the sim's document.
    pub state_override: Mutex<Option<String>>,
}

impl Front {
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect("a front serves once made")
    }

    /// Answer `/master/state` with `document` from now on.
    pub fn override_state(&self, document: String) {
        *self
            .state_override
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(document);
    }

    /// The requests that passed authentication, as `METHOD /path`.
    pub fn served_paths(&self) -> Vec<String> {
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }
}

async fn serve_front(
    front: Arc<Front>,
    sim: SocketAddr,
    fronts: Arc<Mutex<BTreeMap<u16, u16>>>,
) -> SocketAddr {
    // The probes follow redirects themselves; the front passes them on.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    serve(
        Router::new().fallback(move |m: Method, uri: Uri, h: HeaderMap, body: Bytes| {
            let front = Arc::clone(&front);
            let fronts = Arc::clone(&fronts);
            let client = client.clone();
            async move { forward(&front, &client, sim, &fronts, m, uri, h, body).await }
        }),
    )
    .await
}

#[allow(clippy::too_many_arguments)] // one request's parts, as axum hands them over
async fn forward(
    front: &Front,
    client: &reqwest::Client,
    sim: SocketAddr,
    fronts: &Mutex<BTreeMap<u16, u16>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut request = client
        .request(m.clone(), format!("http://{sim}{path}{query}"))
        .body(body);
    for name in [AUTHORIZATION, CONTENT_TYPE] {
        if let Some(v) = h.get(&name) {
            request = request.header(name, v);
        }
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("front: {e}")).into_response(),
    };
    let status = answer.status();
    if status != StatusCode::UNAUTHORIZED {
        front
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((m.clone(), path.clone()));
        if m == Method::POST && status != StatusCode::TEMPORARY_REDIRECT {
            front.posts.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut headers = HeaderMap::new();
    for name in [CONTENT_TYPE, WWW_AUTHENTICATE] {
        if let Some(v) = answer.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    if let Some(location) = answer.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
        let location = to_front(location, &fronts.lock().unwrap_or_else(|e| e.into_inner()));
        if let Ok(v) = HeaderValue::from_str(&location) {
            headers.insert(LOCATION, v);
        }
    }
    let replaced = (status == StatusCode::OK && m == Method::GET && path == "/master/state")
        .then(|| {
            front
                .state_override
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
        .flatten();
    let body = match replaced {
        Some(document) => Bytes::from(document),
        None => answer.bytes().await.unwrap_or_default(),
    };
    (status, headers, body).into_response()
}

/// A sim redirect (`//127.0.0.1:SIM/path`) pointed at that master's front instead.
fn to_front(location: &str, fronts: &BTreeMap<u16, u16>) -> String {
    for (sim, front) in fronts {
        let from = format!("//127.0.0.1:{sim}");
        if let Some(rest) = location.strip_prefix(&from) {
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                return format!("//127.0.0.1:{front}{rest}");
            }
        }
    }
    location.to_owned()
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
