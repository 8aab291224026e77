//! The admin HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (the process answers),
//! `/readyz` (the cache follows the store).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::leader::Leadership;
use super::metrics::Metrics;
use super::reflector::Health;

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: watch::Receiver<Health>,
    leadership: watch::Receiver<Leadership>,
}

/// Binds the admin address. Done before anything else starts, so that a taken port fails
/// the start instead of leaving a running operator nobody can probe.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves the endpoints on `listener` until `shutdown`.
pub fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: watch::Receiver<Health>,
    leadership: watch::Receiver<Leadership>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState {
            metrics,
            health,
            leadership,
        });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the admin HTTP server failed");
        }
    });
    task
}

async fn metrics_handler(State(state): State<AdminState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let health = *state.health.borrow();
    let role = match *state.leadership.borrow() {
        Leadership::Leader { .. } => "leader",
        Leadership::Follower => "standby",
    };
    if health.synced && health.watching {
        (StatusCode::OK, format!("ready ({role})\n"))
    } else if health.synced {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready ({role}): the store watch is down, retrying\n"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready ({role}): the first list of the store has not completed\n"),
        )
    }
}
