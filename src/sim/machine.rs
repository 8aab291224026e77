//! A sim machine in its own process: `omtd agent --driver sim --sim-api ADDR`. The process
//! is the machine (its [`SimHost`]) with the omtd agent as one service on it, and serves
//! the machine on loopback so that the end-to-end tests and the sim world in another
//! process can look at it and break it:
//!
//! - `GET /state`: the whole host (files, services, LVM, mounts, exports) as JSON;
//! - `POST /fault`: a [`Fault`] (a stray service, a file edited by hand, a disk attached);
//! - `POST /agent/stop`, `POST /agent/start`, `GET /agent`: the agent service stopped and
//!   started while the machine stays up (`systemctl stop omtd-agent`), so a host can drift
//!   unattended and be found again.
//!
//! Test and demo use only: it listens on loopback and has no authentication.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::drivers::sim::{Fault, SimHost};
use crate::agent::{Agent, AgentError};

/// Builds a fresh agent for the machine's host (each start is a new agent process).
pub type AgentFactory = Box<dyn Fn() -> Agent + Send + Sync>;

/// Why the machine stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("cannot serve the sim machine's API: {0}")]
    Serve(std::io::Error),
    #[error("the agent stopped: {0}")]
    Agent(String),
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AgentError>>,
}

/// One sim machine: its host and its agent service.
pub struct SimMachine {
    host: SimHost,
    factory: AgentFactory,
    agent: Mutex<Option<Running>>,
    /// Cancelled when the agent fails on its own (not stopped through the API).
    failed: CancellationToken,
    failure: std::sync::Mutex<Option<String>>,
}

impl SimMachine {
    pub fn new(host: SimHost, factory: AgentFactory) -> Arc<SimMachine> {
        Arc::new(SimMachine {
            host,
            factory,
            agent: Mutex::new(None),
            failed: CancellationToken::new(),
            failure: std::sync::Mutex::new(None),
        })
    }

    pub fn host(&self) -> &SimHost {
        &self.host
    }

    /// Starts the agent; false when it already runs.
    pub async fn start_agent(self: &Arc<Self>) -> bool {
        let mut slot = self.agent.lock().await;
        if slot.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return false;
        }
        let agent = (self.factory)();
        let (stop, rx) = oneshot::channel::<()>();
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = agent
                .run(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = &result {
                *me.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                me.failed.cancel();
            }
            result
        });
        *slot = Some(Running { stop, task });
        true
    }

    /// Stops the agent (its heartbeat is revoked, as on SIGTERM); false when it was not
    /// running.
    pub async fn stop_agent(&self) -> bool {
        let Some(running) = self.agent.lock().await.take() else {
            return false;
        };
        let _ = running.stop.send(());
        if let Err(e) = running.task.await {
            tracing::warn!(error = %e, "the sim agent task panicked");
        }
        true
    }

    async fn agent_running(&self) -> bool {
        self.agent
            .lock()
            .await
            .as_ref()
            .is_some_and(|r| !r.task.is_finished())
    }

    fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/state", get(state))
            .route("/fault", post(fault))
            .route("/agent", get(agent_state))
            .route("/agent/stop", post(agent_stop))
            .route("/agent/start", post(agent_start))
            .with_state(Arc::clone(self))
    }

    /// Starts the agent and serves the API on `listener` until `shutdown` (then stops the
    /// agent) or until the agent fails on its own (an error).
    pub async fn run(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), MachineError> {
        self.start_agent().await;
        let stop = CancellationToken::new();
        let server = axum::serve(listener, self.router())
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });
        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            () = self.failed.cancelled() => {
                let why = self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(MachineError::Agent(why.unwrap_or_default()))
            }
        };
        self.stop_agent().await;
        stop.cancel();
        match server.await {
            Ok(Err(e)) => return Err(MachineError::Serve(e)),
            Err(e) => tracing::warn!(error = %e, "the sim machine's API task panicked"),
            Ok(Ok(())) => {}
        }
        outcome
    }
}

/// Binds the API's address (port 0: any free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    // No authentication: never reachable from another host (the CLI refuses it too).
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address; the sim API listens on loopback only"),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

async fn state(State(m): State<Arc<SimMachine>>) -> Result<Vec<u8>, StatusCode> {
    serde_json::to_vec(&*m.host.state()).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

async fn fault(State(m): State<Arc<SimMachine>>, Json(fault): Json<Fault>) -> StatusCode {
    m.host.inject(&fault);
    StatusCode::NO_CONTENT
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct AgentState {
    pub running: bool,
}

async fn agent_state(State(m): State<Arc<SimMachine>>) -> Json<AgentState> {
    Json(AgentState {
        running: m.agent_running().await,
    })
}

async fn agent_stop(State(m): State<Arc<SimMachine>>) -> Json<AgentState> {
    m.stop_agent().await;
    Json(AgentState { running: false })
}

async fn agent_start(State(m): State<Arc<SimMachine>>) -> Json<AgentState> {
    m.start_agent().await;
    Json(AgentState { running: true })
}
