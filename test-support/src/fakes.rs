//! HTTP test servers on loopback that answer like the real services (Chronos, Prometheus,
//! the registry behind Apache), for `tests/probes_http.rs`. The Mesos master is the sim
//! world's (see [`crate::mesos`]).
//!
//! Each fake is one axum fallback handler matching on method and path: the point is the
//! documented JSON and status codes, not routing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;

/// Serves `router` on 127.0.0.1 (a free port) until the test's runtime ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A port that accepts connections and never answers: the "hung service".
pub async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // keep it open, say nothing
        }
    });
    addr
}

/// A loopback port with nothing listening (bound, then released).
pub fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], crate::ports::free_port()))
}

pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Whether the request carries exactly these basic-auth credentials.
pub fn authorized(headers: &HeaderMap, user: &str, pass: &str) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == basic(user, pass))
}

pub fn json(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn unauthorized(realm: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, format!("Basic realm=\"{realm}\""))],
        "",
    )
        .into_response()
}

// ---- Chronos ----

pub struct ChronosFake {
    /// `http_credentials`, when Chronos has them.
    pub creds: Option<(String, String)>,
    /// 3.x serves `/v1/scheduler/jobs`, 2.x `/scheduler/jobs`.
    pub v3: bool,
}

pub async fn chronos(fake: ChronosFake) -> SocketAddr {
    let fake = Arc::new(fake);
    serve(
        Router::new().fallback(move |m: Method, uri: Uri, h: HeaderMap| {
            let fake = Arc::clone(&fake);
            async move {
                if let Some((u, p)) = &fake.creds {
                    if !authorized(&h, u, p) {
                        return unauthorized("Chronos");
                    }
                }
                let jobs = r#"[{"name":"galaxy_job_1","command":"echo hi","owner":"galaxy@omtd",
                "schedule":"R1//PT1M","epsilon":"PT60S","disabled":false,"successCount":3,
                "errorCount":0,"lastSuccess":"2018-04-10T10:00:00.000Z","lastError":""}]"#;
                match (m, uri.path(), fake.v3) {
                    (Method::GET, "/ping", _) => "pong\n".into_response(),
                    (Method::GET, "/v1/scheduler/jobs", true) => json(StatusCode::OK, jobs.into()),
                    (Method::GET, "/scheduler/jobs", false) => json(StatusCode::OK, jobs.into()),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }),
    )
    .await
}

// ---- Prometheus ----

pub struct PrometheusFake {
    pub lifecycle: bool,
    pub reloads: AtomicUsize,
    pub requests: AtomicUsize,
}

/// Prometheus 2.x under `--web.route-prefix=/prometheus`, two workers' node exporter and
/// cAdvisor targets from file_sd, one of them down.
pub async fn prometheus(fake: Arc<PrometheusFake>) -> SocketAddr {
    serve(Router::new().fallback(move |m: Method, uri: Uri| {
        let fake = Arc::clone(&fake);
        async move {
            fake.requests.fetch_add(1, Ordering::SeqCst);
            match (m, uri.path()) {
                (Method::GET, "/prometheus/api/v1/targets") => {
                    json(StatusCode::OK, PROMETHEUS_TARGETS.to_owned())
                }
                (Method::POST, "/prometheus/-/reload") if fake.lifecycle => {
                    fake.reloads.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK.into_response()
                }
                (Method::POST, "/prometheus/-/reload") => {
                    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response()
                }
                _ => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
            }
        }
    }))
    .await
}

pub const PROMETHEUS_TARGETS: &str = r#"{
  "status": "success",
  "data": {
    "activeTargets": [
      {
        "discoveredLabels": {"__address__": "10.0.0.11:9100", "__metrics_path__": "/metrics",
          "__scheme__": "http", "job": "node", "__meta_filepath": "/etc/prometheus/file_sd/workers.json"},
        "labels": {"instance": "node1.omtd", "job": "node"},
        "scrapePool": "node",
        "scrapeUrl": "http://10.0.0.11:9100/metrics",
        "globalUrl": "http://10.0.0.11:9100/metrics",
        "lastError": "",
        "lastScrape": "2018-04-10T10:00:00.123Z",
        "lastScrapeDuration": 0.0123,
        "health": "up",
        "scrapeInterval": "15s",
        "scrapeTimeout": "10s"
      },
      {
        "discoveredLabels": {"__address__": "10.0.0.11:8080", "__metrics_path__": "/metrics",
          "__scheme__": "http", "job": "cadvisor"},
        "labels": {"instance": "10.0.0.11:8080", "job": "cadvisor"},
        "scrapePool": "cadvisor",
        "scrapeUrl": "http://10.0.0.11:8080/metrics",
        "lastError": "",
        "lastScrape": "2018-04-10T10:00:01.000Z",
        "lastScrapeDuration": 0.05,
        "health": "up"
      },
      {
        "discoveredLabels": {"__address__": "10.0.0.12:9100", "__metrics_path__": "/metrics",
          "__scheme__": "http", "job": "node"},
        "labels": {"instance": "10.0.0.12:9100", "job": "node"},
        "scrapePool": "node",
        "scrapeUrl": "http://10.0.0.12:9100/metrics",
        "lastError": "Get \"http://10.0.0.12:9100/metrics\": dial tcp 10.0.0.12:9100: connect: connection refused",
        "lastScrape": "2018-04-10T10:00:02.000Z",
        "lastScrapeDuration": 0.001,
        "health": "down"
      },
      {
        "discoveredLabels": {"__address__": "10.0.0.12:9100", "job": "node-dup"},
        "labels": {"instance": "10.0.0.12:9100", "job": "node-dup"},
        "scrapePool": "node-dup",
        "scrapeUrl": "http://10.0.0.12:9100/metrics",
        "health": "unknown"
      }
    ],
    "droppedTargets": [
      {"discoveredLabels": {"__address__": "10.0.0.99:9100", "job": "node"}}
    ]
  }
}"#;

// ---- Registry behind Apache ----

/// `registry:2` behind Apache's basic auth (`creds` = None: no guard at all).
pub async fn registry(creds: Option<(String, String)>, echo_auth_in_401: bool) -> SocketAddr {
    let creds = Arc::new(creds);
    serve(Router::new().fallback(move |uri: Uri, h: HeaderMap| {
        let creds = Arc::clone(&creds);
        async move {
            if let Some((u, p)) = creds.as_ref() {
                if !authorized(&h, u, p) {
                    if echo_auth_in_401 {
                        // A badly behaved guard that repeats the request's header back.
                        let sent = h
                            .get(AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        return (StatusCode::UNAUTHORIZED, format!("denied: {sent}"))
                            .into_response();
                    }
                    // Apache's 401 page, no registry header.
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(WWW_AUTHENTICATE, "Basic realm=\"Registry\"")],
                        "<html><head><title>401 Unauthorized</title></head><body>\
                         <h1>Unauthorized</h1></body></html>",
                    )
                        .into_response();
                }
            }
            if uri.path() != "/v2/" {
                return StatusCode::NOT_FOUND.into_response();
            }
            (
                StatusCode::OK,
                [
                    ("docker-distribution-api-version", "registry/2.0"),
                    ("content-type", "application/json; charset=utf-8"),
                ],
                "{}",
            )
                .into_response()
        }
    }))
    .await
}
