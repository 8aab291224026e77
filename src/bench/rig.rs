//! The bench's world: sim hosts and their agents in this process, the operator in its own,
//! and the readings the figures are made of.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd_crds::Object;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::operator_process::{OperatorCommand, OperatorProcess, ProbeUrls};
use super::procfs::{self, Memory, Pid};
use super::scrape::Scrape;
use super::{cluster, BenchError, BenchOptions};
use crate::agent::{Agent, AgentConfig};
use crate::demo::{hosts, records};
use crate::resources::Repo;
use crate::sim::SimWorld;
use crate::store::Store;

/// The runbook's service nodes the bench's probes and changes look at.
pub(super) const MANAGER: &str = "manager.omtd";
pub(super) const MONITOR: &str = "monitor.omtd";
pub(super) const EXECUTOR: &str = "executor.omtd";

/// One reading of every counter, at a moment.
pub(super) struct Sample {
    pub at: Instant,
    pub scrape: Scrape,
    pub revision: i64,
    pub operator_cpu: Duration,
    pub bench_cpu: Duration,
}

impl Sample {
    pub fn all_cpu(&self) -> Duration {
        self.operator_cpu + self.bench_cpu
    }
}

pub(super) struct Rig {
    pub repo: Repo,
    pub world: SimWorld,
    /// The cluster's records, applied at once by the cold start.
    records: Vec<Object>,
    nodes: usize,
    agents: JoinSet<()>,
    stop: CancellationToken,
    http: reqwest::Client,
    metrics_url: String,
    operator: OperatorProcess,
    /// The stores the sim agents use, round robin (see [`BenchOptions::agent_stores`]).
    agent_stores: Vec<Arc<dyn Store>>,
    started_agents: usize,
    /// See [`BenchOptions::agent_lease_ttl`].
    agent_lease_ttl: Option<Duration>,
    /// The bench's own watched copy of the cluster's keys, that the cold start's
    /// convergence is read from (see [`crate::status::Inputs::from_snapshot`]).
    cache: Arc<crate::runtime::reflector::Cache>,
    /// What was still pending when the cold start timed out.
    pub pending_at_timeout: Option<ColdStartProgress>,
    /// Holds the operator's log.
    _dir: tempfile::TempDir,
}

/// Sim agents started together before the bench waits for their leases.
const AGENT_WAVE: usize = 500;

/// A loopback port free now, for the operator's `/metrics` (it fails to start, and says
/// so, should another process take it first).
fn free_port() -> Result<SocketAddr, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| BenchError::Io {
            what: "find a free loopback port for the operator's /metrics".into(),
            source,
        })
}

impl Rig {
    pub async fn start(
        repo: Repo,
        opts: &BenchOptions,
        cmd: &OperatorCommand,
    ) -> Result<Rig, BenchError> {
        let records = cluster::parse(&cluster::manifests(opts.nodes))?;
        let world = SimWorld::new();
        let mut names = Vec::new();
        for object in &records {
            if let Object::Node(n) = object {
                hosts::provision(&world, n);
                names.push(n.metadata.name.clone());
            }
        }
        let probes = probe_urls(&world, &records)?;
        let dir = tempfile::Builder::new()
            .prefix("omtd-bench-operator-")
            .tempdir()
            .map_err(|source| BenchError::Io {
                what: "create a temp dir for the operator's log".into(),
                source,
            })?;
        let metrics = free_port()?;
        let mut operator =
            OperatorProcess::spawn(cmd, metrics, &probes, &dir.path().join("operator.log"))?;
        let http = reqwest::Client::new();
        operator.wait_up(&http, Duration::from_secs(30)).await?;
        let stop = CancellationToken::new();
        let (cache, _) = crate::runtime::reflector::spawn(
            Arc::clone(&repo.store),
            repo.keys.clone(),
            Arc::new(crate::runtime::Metrics::new()),
            stop.clone(),
        );
        let mut rig = Rig {
            repo,
            world,
            records,
            nodes: opts.nodes,
            agents: JoinSet::new(),
            stop,
            http,
            metrics_url: format!("http://{metrics}/metrics"),
            operator,
            agent_stores: opts.agent_stores.clone(),
            started_agents: 0,
            agent_lease_ttl: opts.agent_lease_ttl,
            cache,
            pending_at_timeout: None,
            _dir: dir,
        };
        // The fleet is up before the clock starts: the cold start times what the operator
        // does with running agents. They start in waves, each holding its heartbeat lease
        // before the next starts, as 10,000 agents granting leases at once swamp a 2-core
        // etcd (that is a fleet's own start, not the cluster's convergence).
        let start = Instant::now();
        for wave in names.chunks(AGENT_WAVE) {
            for name in wave {
                rig.start_agent(name)?;
            }
            rig.wait_agents_up(opts.timeout).await?;
        }
        eprintln!(
            "{} agents up in {:.1} s (heartbeat lease {})",
            rig.started_agents,
            start.elapsed().as_secs_f64(),
            opts.agent_lease_ttl.map_or_else(
                || "the agent's default".to_owned(),
                |ttl| humantime::format_duration(ttl).to_string()
            )
        );
        Ok(rig)
    }

    /// Waits until every agent started so far holds its heartbeat lease and has written
    /// its first report (the writes of an agent's start).
    async fn wait_agents_up(&self, timeout: Duration) -> Result<(), BenchError> {
        let start = Instant::now();
        let prefixes = [self.repo.keys.agent_leases(), self.repo.keys.reports()];
        loop {
            let mut up = usize::MAX;
            for prefix in &prefixes {
                up = up.min(match self.repo.store.list(prefix, None).await {
                    Ok(listed) => listed.kvs.len(),
                    // A store too busy to answer in time: the agents are still starting.
                    Err(_) => 0,
                });
            }
            if up >= self.started_agents {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(BenchError::AgentsNotUp {
                    up,
                    nodes: self.started_agents,
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the sim agent of `node`'s host (provisioned already).
    pub fn start_agent(&mut self, node: &str) -> Result<(), BenchError> {
        let host = self.world.host(node)?;
        let mut config = AgentConfig::new(node, self.repo.keys.clone());
        config.watch_files = false;
        if let Some(ttl) = self.agent_lease_ttl {
            config.lease_ttl = ttl;
        }
        let store = match self.agent_stores.len() {
            0 => Arc::clone(&self.repo.store),
            n => Arc::clone(&self.agent_stores[self.started_agents % n]),
        };
        self.started_agents += 1;
        let agent = Agent::new(store, host.host(), config).with_signal(host.drift_signal());
        let stop = self.stop.clone();
        self.agents.spawn(async move {
            let _ = agent.run(stop.cancelled_owned()).await;
        });
        Ok(())
    }

    /// Applies every record in one apply and waits until the cluster has converged;
    /// `None` when it did not within `timeout`.
    pub async fn cold_start(&mut self, timeout: Duration) -> Result<Option<Duration>, BenchError> {
        let start = Instant::now();
        // One apply, as a user applies one spec: a staged apply of any size is all or
        // nothing, and the operator sees none of it before its release. (Ten applies of
        // 1,000 nodes each had the later ones list the store while the operator was busy
        // with the first: at 10,000 nodes those lists timed out.)
        records::apply(&self.repo, &self.records).await?;
        // Read from the watched copy: `omtd status` lists every record, report and slice,
        // and at 10,000 nodes doing that each second was most of etcd's load. Copying the
        // cache's objects costs the bench some milliseconds per thousand nodes: less often
        // at 10,000.
        let every = if self.nodes > 2000 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(250)
        };
        loop {
            self.check_operator()?;
            // Caught up with the store first, so the convergence seen is the store's now
            // (a store that does not answer counts as not converged).
            let caught_up = match self.repo.store.current_revision().await {
                Ok(now) => {
                    self.cache
                        .wait_for_revision(now, Duration::from_secs(5))
                        .await
                }
                Err(_) => false,
            };
            let status = caught_up.then(|| {
                let snapshot = self.cache.snapshot();
                let inputs = crate::status::Inputs::from_snapshot(&self.repo.keys, &snapshot);
                crate::status::compute(&inputs)
            });
            if status.as_ref().is_some_and(|s| s.converged) {
                return Ok(Some(start.elapsed()));
            }
            if start.elapsed() > timeout {
                // How far it got, for the figures: objects still pending, not a bare "no".
                self.pending_at_timeout = status.map(|s| ColdStartProgress::of(&s));
                return Ok(None);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The operator's counters (all zero when it does not answer).
    pub async fn scrape(&self) -> Scrape {
        match async { self.http.get(&self.metrics_url).send().await?.text().await }.await {
            Ok(text) => Scrape::parse(&text),
            Err(_) => Scrape::default(),
        }
    }

    /// Waits until the operator has written nothing for a second (at most `limit`).
    pub async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = self.scrape().await.writes;
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.scrape().await.writes;
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
    }

    pub async fn revision(&self) -> i64 {
        // The backend's own revision read: on a secured etcd every identity may make it,
        // where a list of a prefix outside the cluster is refused (and counted 0).
        self.repo.store.current_revision().await.unwrap_or(0)
    }

    pub async fn sample(&self) -> Sample {
        let scrape = self.scrape().await;
        let revision = self.revision().await;
        Sample {
            at: Instant::now(),
            scrape,
            revision,
            operator_cpu: procfs::cpu_time(Pid::Of(self.operator.pid())),
            bench_cpu: procfs::cpu_time(Pid::This),
        }
    }

    pub fn operator_memory(&self) -> Memory {
        procfs::memory(Pid::Of(self.operator.pid()))
    }

    /// An error if the operator has exited.
    pub fn check_operator(&mut self) -> Result<(), BenchError> {
        self.operator.check()
    }

    /// Stops the operator, then the agents and the sim world.
    pub async fn stop(mut self) {
        self.operator.stop().await;
        self.stop.cancel();
        self.world.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            while self.agents.join_next().await.is_some() {}
        })
        .await;
    }
}

/// The sim manager's Mesos master (with the Chronos framework's credential, which the
/// master takes for its HTTP endpoints) and the monitor's Prometheus.
fn probe_urls(world: &SimWorld, records: &[Object]) -> Result<ProbeUrls, BenchError> {
    let base = world.mesos_url(MANAGER)?;
    let mesos = match records::probe_credential(records) {
        Some((user, pass)) => base.replacen(
            "http://",
            &format!(
                "http://{}:{}@",
                crate::sim::probes::encode(&user),
                crate::sim::probes::encode(&pass)
            ),
            1,
        ),
        None => base,
    };
    Ok(ProbeUrls {
        mesos,
        prometheus: world.prometheus_url(MONITOR)?,
    })
}

/// Whether `path` on `host` holds `needle` (read in place: the bench polls every
/// millisecond, and a 1,000-node targets file copied that often would cost more than the
/// changes it times).
pub(super) fn file_has(
    host: &crate::agent::drivers::sim::SimHost,
    path: &str,
    needle: &str,
) -> bool {
    host.state()
        .files
        .get(path)
        .is_some_and(|f| String::from_utf8_lossy(&f.content).contains(needle))
}

/// How far a cold start that timed out got: objects pending, nodes in all, and the most
/// common reasons (the first word of each pending line) with their counts.
#[derive(Debug, Clone)]
pub struct ColdStartProgress {
    pub objects: usize,
    pub nodes: usize,
    pub reasons: Vec<(String, usize)>,
}

impl ColdStartProgress {
    fn of(status: &crate::status::ClusterStatus) -> ColdStartProgress {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for p in &status.pending {
            let reason = p.reason.split([':', ',']).next().unwrap_or("").trim();
            *counts.entry(reason.to_owned()).or_default() += 1;
        }
        let mut reasons: Vec<(String, usize)> = counts.into_iter().collect();
        reasons.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        reasons.truncate(3);
        ColdStartProgress {
            objects: status.pending.len(),
            nodes: status.nodes.len(),
            reasons,
        }
    }
}

impl std::fmt::Display for ColdStartProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} objects still pending of {} nodes",
            self.objects, self.nodes
        )?;
        for (reason, n) in &self.reasons {
            write!(f, "; {n}× {reason}")?;
        }
        Ok(())
    }
}

/// What did not land within the timeout, if anything.
pub(super) type Outcome = Result<(), String>;

/// Polls `done` every millisecond until it holds (its latency from `t`) or `timeout`.
pub(super) async fn wait_landed(
    t: Instant,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    loop {
        if done() {
            return Some(t.elapsed());
        }
        if t.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
