//! `omtd operator`: the controller runtime with the registered controllers (accepted, and
//! the four pure ones: node, storage, credentials, leader-guard), the probe loop feeding
//! them, the Mesos maintenance loop acting for the node controller, the admin HTTP
//! endpoints, and signal handling, wired together.

pub mod adapter;
pub mod maintenance;
pub mod mesos_auth;
pub mod mirror;
pub mod observe;
pub mod preview;
pub mod probes;
pub mod store_credentials;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use omtd_controllers::Settings;
use tokio_util::sync::CancellationToken;

use crate::resources::Repo;
use crate::runtime::accepted::AcceptedController;
use crate::runtime::{admin, shutdown, Controller, Manager, Metrics, RuntimeConfig};
use adapter::Wiring;
use maintenance::MaintenanceApi;
use probes::{HttpProbes, ProbeSource, ProbeTargets};
use store_credentials::StoreCredentials;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot serve metrics on {addr}: {source} (is another process using the port? pick one with --metrics-addr)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// Not a `#[source]`: the message already carries it (it would print twice).
    #[error("probe configuration: {0}")]
    Probes(crate::probes::ProbeError),
}

/// How `omtd operator` runs.
pub struct Options {
    pub metrics_addr: SocketAddr,
    pub runtime: RuntimeConfig,
    pub settings: Settings,
    /// How often the probes are asked.
    pub probe_interval: Duration,
    /// Where probe answers come from; `None`: every probe answer is unknown.
    pub probes: Option<Arc<dyn ProbeSource>>,
    /// Where Mesos maintenance calls go; `None`: none are made.
    pub maintenance: Option<Arc<dyn MaintenanceApi>>,
    /// `--registry-credential`: the `use: registry` Credential the registry probe presents.
    pub registry_credential: Option<String>,
}

impl Options {
    /// Options with no probes (every answer unknown) and the default settings.
    pub fn new(metrics_addr: SocketAddr, runtime: RuntimeConfig) -> Options {
        Options {
            metrics_addr,
            runtime,
            settings: Settings::default(),
            probe_interval: Duration::from_secs(5),
            probes: None,
            maintenance: None,
            registry_credential: None,
        }
    }

    /// Probes (and maintenance calls, when a Mesos master is given) over the network.
    pub fn with_targets(mut self, targets: &ProbeTargets) -> Result<Options, OperatorError> {
        if targets.is_empty() {
            return Ok(self);
        }
        let http = HttpProbes::new(targets).map_err(OperatorError::Probes)?;
        self.maintenance = http.maintenance();
        self.registry_credential = targets.registry_credential.clone();
        self.probes = Some(Arc::new(http));
        Ok(self)
    }
}

/// The controllers `omtd operator` runs, sharing `wiring`.
pub fn controllers(wiring: &Wiring) -> Vec<Arc<dyn Controller>> {
    let mut all: Vec<Arc<dyn Controller>> = vec![Arc::new(AcceptedController::new())];
    for c in wiring.controllers() {
        all.push(Arc::new(c));
    }
    all
}

/// Runs until SIGTERM or SIGINT, then drains, resigns and returns.
pub async fn run(repo: &Repo, options: Options) -> Result<(), OperatorError> {
    let shutdown = shutdown::on_signals().map_err(OperatorError::Signals)?;
    run_until(repo, options, shutdown).await
}

/// Runs until `shutdown` is cancelled (the testable core of [`run`]).
pub async fn run_until(
    repo: &Repo,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    let (listener, bound) =
        admin::bind(options.metrics_addr)
            .await
            .map_err(|source| OperatorError::Bind {
                addr: options.metrics_addr,
                source,
            })?;
    let metrics = Arc::new(Metrics::new());
    let identity = options.runtime.identity.clone();
    let wiring = Wiring::new(options.settings);
    let manager = Manager::new(
        Arc::clone(&repo.store),
        repo.keys.clone(),
        controllers(&wiring),
        Arc::clone(&metrics),
        options.runtime,
    );
    let notifier = manager.notifier();
    let running = manager.start(shutdown);

    // Probes and maintenance stop after the manager has drained.
    let helpers_stop = CancellationToken::new();
    let mut helpers = tokio::task::JoinSet::new();
    if let Some(source) = options.probes {
        // The probes' credentials are the store's records as the cache holds them now.
        let cache = Arc::clone(running.cache());
        let registry = options.registry_credential.clone();
        let credentials = Arc::new(move || {
            StoreCredentials::from_snapshot(&cache.snapshot(), registry.as_deref())
        });
        helpers.spawn(probes::run(
            source,
            credentials,
            Arc::clone(&wiring.probes),
            notifier,
            options.probe_interval,
            helpers_stop.clone(),
        ));
    }
    if let Some(api) = options.maintenance {
        helpers.spawn(maintenance::run(
            api,
            Arc::clone(&wiring.maintenance),
            Arc::clone(&wiring.probes),
            running.leadership(),
            helpers_stop.clone(),
        ));
    }

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
    helpers_stop.cancel();
    while helpers.join_next().await.is_some() {}
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!("operator stopped");
    Ok(())
}
