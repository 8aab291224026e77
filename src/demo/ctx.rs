//! What the demo's steps share ([`Ctx`]): below both the sequence ([`super::run`]) and the
//! failure scenarios ([`super::scenarios`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::checks::Topology;
use super::Out;
use crate::agent::drivers::sim::SimHost;
use crate::agent::{Agent, AgentConfig};
use crate::resources::Repo;
use crate::sim::SimWorld;
use crate::status::{self, ClusterStatus};

/// How often the demo looks at the world and the store while waiting: the sim answers in
/// microseconds and the store is local, so this sets the timings' resolution.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// What the steps share.
pub(super) struct Ctx {
    pub repo: Repo,
    pub world: SimWorld,
    pub topo: Topology,
    pub out: Out,
    pub timeout: Duration,
    pub tasks: std::sync::Mutex<JoinSet<()>>,
    pub shutdown: CancellationToken,
}

impl Ctx {
    /// Starts an agent for `node` on `host`, in this process.
    pub fn start_agent(&self, node: &str, host: &SimHost) {
        let mut config = AgentConfig::new(node, self.repo.keys.clone());
        config.watch_files = false; // the sim host signals drift itself
        config.service_check = Duration::from_secs(1);
        config.resync = Duration::from_secs(10);
        let agent = Agent::new(Arc::clone(&self.repo.store), host.host(), config)
            .with_signal(host.drift_signal());
        let stop = self.shutdown.clone();
        let node = node.to_owned();
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(async move {
                if let Err(e) = agent.run(stop.cancelled_owned()).await {
                    tracing::error!(%node, error = %e, "demo agent stopped");
                }
            });
    }

    /// omtd's own view (`omtd status`), `None` while it cannot be read.
    pub async fn status(&self) -> Option<ClusterStatus> {
        status::read(&self.repo)
            .await
            .ok()
            .map(|i| status::compute(&i))
    }

    /// Waits until `check` passes on the world and `omtd status` says converged. Returns
    /// whether it did within the timeout, how long it took, and what was still missing.
    pub async fn wait_repaired(
        &self,
        what: &str,
        check: impl Fn(&Ctx) -> Result<(), String>,
    ) -> (bool, Duration, String) {
        let start = Instant::now();
        loop {
            let missing = match check(self) {
                Err(m) => Some(m),
                Ok(()) => match self.status().await {
                    Some(s) if s.converged => None,
                    Some(s) => Some(
                        s.pending
                            .first()
                            .map_or("omtd status: not converged".into(), |p| {
                                format!("omtd status: {p}")
                            }),
                    ),
                    None => Some("omtd status: cannot read the store".into()),
                },
            };
            let waited = start.elapsed();
            match missing {
                None => return (true, waited, String::new()),
                Some(m) if waited >= self.timeout => return (false, waited, m),
                Some(m) => self.out.live(&format!("{what}: {m}"), waited),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
