//! A sim machine in another process (see [`super::machine`]), seen from here: a mirror
//! [`SimHost`] kept in step with the machine's `GET /state`, so the sim world's model and
//! a test's checks read it like a local host, and the machine's faults and agent service
//! driven over HTTP.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::drivers::sim::{Fault, SimHost, SimState};

/// Why a call to a sim machine failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("sim machine at {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("sim machine at {url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// A handle on a sim machine's API and a local mirror of its host. Clone freely.
#[derive(Clone)]
pub struct RemoteHost {
    base: String,
    client: reqwest::Client,
    mirror: SimHost,
}

impl RemoteHost {
    /// `base`: `http://127.0.0.1:PORT`.
    pub fn new(base: &str) -> RemoteHost {
        RemoteHost {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            mirror: SimHost::new(),
        }
    }

    /// The mirror: the machine's host as of the last refresh. Read it; a fault injected
    /// into it would be overwritten (use [`RemoteHost::inject`]).
    pub fn mirror(&self) -> &SimHost {
        &self.mirror
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::Response, RemoteError> {
        self.send(
            self.client.request(method, format!("{}{path}", self.base)),
            path,
        )
        .await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::Response, RemoteError> {
        let url = format!("{}{path}", self.base);
        let response = request.send().await.map_err(|source| RemoteError::Http {
            url: url.clone(),
            source,
        })?;
        if !response.status().is_success() {
            return Err(RemoteError::Status {
                url,
                status: response.status(),
            });
        }
        Ok(response)
    }

    /// Takes the machine's current state into the mirror.
    pub async fn refresh(&self) -> Result<(), RemoteError> {
        let response = self.call(reqwest::Method::GET, "/state").await?;
        let state: SimState = response.json().await.map_err(|source| RemoteError::Http {
            url: format!("{}/state", self.base),
            source,
        })?;
        self.mirror.replace_state(state);
        Ok(())
    }

    /// Does `fault` to the machine, then refreshes the mirror.
    pub async fn inject(&self, fault: &Fault) -> Result<(), RemoteError> {
        let request = self.client.post(format!("{}/fault", self.base)).json(fault);
        self.send(request, "/fault").await?;
        self.refresh().await
    }

    /// Stops the machine's agent service (the machine stays up).
    pub async fn stop_agent(&self) -> Result<(), RemoteError> {
        self.call(reqwest::Method::POST, "/agent/stop")
            .await
            .map(drop)
    }

    pub async fn start_agent(&self) -> Result<(), RemoteError> {
        self.call(reqwest::Method::POST, "/agent/start")
            .await
            .map(drop)
    }

    /// Refreshes the mirror every `every` until `stop` (a failed refresh keeps the last
    /// state: the machine may be restarting).
    pub fn follow(&self, every: Duration, stop: CancellationToken) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.refresh().await {
                    tracing::debug!(error = %e, "sim machine refresh failed");
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        })
    }
}
