//! The sim world over HTTP on loopback: a Mesos master (1.4) endpoint set per sim host and
//! a Prometheus per monitor, answering with the documented JSON and status codes so that
//! omtd's real probes (`crate::probes`) run against them unchanged.
//!
//! A service that is not running answers 503 with a body saying so, where a real host
//! would refuse the connection: the probes report both as the service being unavailable,
//! and the port stays stable for when the service comes back.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::config::{self, Credential};
use super::maintenance::{Machine, Schedule};
use super::{master, prometheus, MasterRole, Service, SimError, SimWorld};

/// Binds a loopback port for `service` on `name` and serves it until `stop`.
pub(super) fn bind(
    world: &SimWorld,
    name: &str,
    service: Service,
    stop: CancellationToken,
) -> Result<SocketAddr, SimError> {
    let what = format!("{service:?} on {name}");
    let handle = tokio::runtime::Handle::try_current().map_err(|_| SimError::NoRuntime)?;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| SimError::Bind {
            what: what.clone(),
            source,
        })?;
    let addr = std_listener.local_addr().map_err(|source| SimError::Bind {
        what: what.clone(),
        source,
    })?;
    let world = world.clone();
    let node = name.to_owned();
    let router = Router::new().fallback(move |m: Method, uri: Uri, h: HeaderMap, body: Bytes| {
        let world = world.clone();
        let node = node.clone();
        async move {
            match service {
                Service::MesosMaster => mesos(&world, &node, &m, &uri, &h, &body),
                Service::Prometheus => prom(&world, &node, &m, &uri),
            }
        }
    });
    handle.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%what, error = %e, "sim endpoint cannot listen");
                return;
            }
        };
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(%what, error = %e, "sim endpoint stopped");
        }
    });
    Ok(addr)
}

fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

fn redirect(location: String) -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)], "").into_response()
}

/// Whether the request's basic auth is one of `known` exactly.
fn authorized(h: &HeaderMap, known: &[Credential]) -> bool {
    let Some(token) = h
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
        return false;
    };
    let Ok(pair) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, pass)) = pair.split_once(':') else {
        return false;
    };
    known
        .iter()
        .any(|c| c.principal == user && c.secret == pass)
}

fn mesos(
    world: &SimWorld,
    name: &str,
    m: &Method,
    uri: &Uri,
    h: &HeaderMap,
    body: &[u8],
) -> Response {
    let path = uri.path();
    let leader = match world.master_role(name) {
        MasterRole::Led(l) => Some(l),
        MasterRole::NoLeader => None,
        MasterRole::NotRunning => return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("sim: mesos-master is not running on {name} (a real host would refuse the connection)"),
        ),
    };
    if path == "/master/health" || path == "/health" {
        return StatusCode::OK.into_response(); // never authenticated in Mesos
    }
    let Ok(host) = world.host(name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // libprocess authenticates before the handler runs, leader or not.
    let flag = if m == Method::GET {
        "/etc/mesos-master/authenticate_http_readonly"
    } else {
        "/etc/mesos-master/authenticate_http_readwrite"
    };
    if config::flag_true(&host, flag) && !authorized(h, &config::master_credentials(&host)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Basic realm=\"mesos\"")],
            "",
        )
            .into_response();
    }
    if path == "/metrics/snapshot" {
        let view = (leader.as_deref() == Some(name))
            .then(|| world.leader_view(name))
            .flatten();
        return json(StatusCode::OK, &master::metrics_json(view.as_ref()));
    }
    let Some(leader) = leader else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected");
    };
    let port = match world.endpoint(&leader, Service::MesosMaster) {
        Ok(a) => a.port(),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if path == "/master/redirect" {
        return redirect(format!("//127.0.0.1:{port}"));
    }
    if leader != name {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return redirect(format!("//127.0.0.1:{port}{path}{query}"));
    }
    leading(world, name, &host, m, path, body)
}

/// The endpoints only the leader serves.
fn leading(
    world: &SimWorld,
    name: &str,
    host: &crate::agent::drivers::sim::SimHost,
    m: &Method,
    path: &str,
    body: &[u8],
) -> Response {
    let state = || {
        world.leader_view(name).map(|v| {
            let cluster = config::flag(host, "/etc/mesos-master/cluster");
            master::state_json(&v, cluster, &world.tasks())
        })
    };
    let refused = |e: super::maintenance::Refused| text(StatusCode::BAD_REQUEST, e.0);
    match (m.clone(), path) {
        (Method::GET, "/master/state" | "/master/state.json" | "/state") => match state() {
            Some(s) => json(StatusCode::OK, &s),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
        },
        (Method::GET, "/master/slaves") => match state() {
            Some(s) => json(StatusCode::OK, &serde_json::json!({"slaves": s["slaves"]})),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
        },
        (Method::GET, "/master/frameworks") => match state() {
            Some(s) => json(
                StatusCode::OK,
                &serde_json::json!({"frameworks": s["frameworks"]}),
            ),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
        },
        (Method::GET, "/master/maintenance/status") => {
            json(StatusCode::OK, &world.maintenance().status_json())
        }
        (Method::GET, "/master/maintenance/schedule") => {
            let schedule = serde_json::to_value(world.maintenance().schedule())
                .unwrap_or_else(|_| serde_json::json!({}));
            json(StatusCode::OK, &schedule)
        }
        (Method::POST, "/master/maintenance/schedule") => {
            match serde_json::from_slice::<Schedule>(body) {
                Ok(s) => match world.maintenance().set_schedule(s) {
                    Ok(()) => StatusCode::OK.into_response(),
                    Err(e) => refused(e),
                },
                Err(e) => text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to parse body into JSON: {e}"),
                ),
            }
        }
        (Method::POST, "/master/machine/down" | "/master/machine/up") => {
            let ids = match serde_json::from_slice::<Vec<Machine>>(body) {
                Ok(ids) => ids,
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("Failed to parse body into JSON: {e}"),
                    )
                }
            };
            let down = path.ends_with("down");
            let done = {
                let mut maintenance = world.maintenance();
                if down {
                    maintenance.down(ids)
                } else {
                    maintenance.up(ids)
                }
            };
            match done {
                Ok(()) => {
                    if down {
                        world.lose_tasks_on_down_machines();
                    }
                    StatusCode::OK.into_response()
                }
                Err(e) => refused(e),
            }
        }
        (Method::POST, "/api/v1") => {
            let agents: Vec<String> = world
                .leader_view(name)
                .map(|v| v.agents.iter().map(|a| master::agent_id(&a.node)).collect())
                .unwrap_or_default();
            let done = world
                .agent_control()
                .call(body, |id| agents.iter().any(|a| a == id));
            match done {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => refused(e),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn prom(world: &SimWorld, name: &str, m: &Method, uri: &Uri) -> Response {
    let Some(targets) = world.prometheus_targets(name) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("sim: prometheus is not running on {name} (a real host would refuse the connection)"),
        );
    };
    let path = uri
        .path()
        .strip_prefix(prometheus::ROUTE_PREFIX)
        .unwrap_or("");
    match (m.clone(), path) {
        (Method::GET, "/api/v1/targets") => {
            json(StatusCode::OK, &prometheus::targets_json(&targets))
        }
        (Method::GET, "/-/healthy" | "/-/ready") => {
            text(StatusCode::OK, "Prometheus is Healthy.\n")
        }
        (Method::POST | Method::PUT, "/-/reload") => {
            let enabled = world
                .host(name)
                .is_ok_and(|h| prometheus::lifecycle_enabled(&h));
            if enabled {
                StatusCode::OK.into_response()
            } else {
                text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.")
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
