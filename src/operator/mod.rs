//! `omtd operator`: the controller runtime with the registered controllers, the admin HTTP
//! endpoints, and signal handling, wired together.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::resources::Repo;
use crate::runtime::accepted::AcceptedController;
use crate::runtime::{admin, shutdown, Controller, Manager, Metrics, RuntimeConfig};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot serve metrics on {addr}: {source} (is another process using the port? pick one with --metrics-addr)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The controllers `omtd operator` runs.
pub fn controllers() -> Vec<Arc<dyn Controller>> {
    vec![Arc::new(AcceptedController)]
}

/// Runs until SIGTERM or SIGINT, then drains, resigns and returns.
pub async fn run(
    repo: &Repo,
    metrics_addr: SocketAddr,
    config: RuntimeConfig,
) -> Result<(), OperatorError> {
    let shutdown = shutdown::on_signals().map_err(OperatorError::Signals)?;
    run_until(repo, metrics_addr, config, controllers(), shutdown).await
}

/// Runs `controllers` until `shutdown` is cancelled (the testable core of [`run`]).
pub async fn run_until(
    repo: &Repo,
    metrics_addr: SocketAddr,
    config: RuntimeConfig,
    controllers: Vec<Arc<dyn Controller>>,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    let (listener, bound) =
        admin::bind(metrics_addr)
            .await
            .map_err(|source| OperatorError::Bind {
                addr: metrics_addr,
                source,
            })?;
    let metrics = Arc::new(Metrics::new());
    let identity = config.identity.clone();
    let manager = Manager::new(
        Arc::clone(&repo.store),
        repo.keys.clone(),
        controllers,
        Arc::clone(&metrics),
        config,
    );
    let running = manager.start(shutdown);
    // The admin server outlives the manager's drain so probes answer until the very end.
    let admin_stop = CancellationToken::new();
    let admin_task = admin::serve(
        listener,
        metrics,
        running.cache().health(),
        running.leadership(),
        admin_stop.clone(),
    );
    tracing::info!(
        store = repo.store.backend(),
        prefix = repo.keys.prefix(),
        %identity,
        metrics = %format!("http://{bound}/metrics"),
        "operator started"
    );
    running.stopped().await;
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!("operator stopped");
    Ok(())
}
