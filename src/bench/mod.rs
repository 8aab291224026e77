//! `omtd bench`: how omtd scales. It runs the operator and one sim agent per node (in one
//! process, as the demo does) for N nodes on the chosen store, converges them, then times
//! a series of single-record changes from `apply` to the change being on the affected
//! host, and counts what each change and an idle period cost.
//!
//! Each change relabels one worker: the node controller must re-render the monitor's
//! file_sd targets, the monitor's agent must write them. The latency is taken on the sim
//! host itself (the file's bytes), so it covers store, watch, reconcile, plan write, agent
//! watch and apply.

pub mod cluster;
pub mod scrape;

use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd_crds::Object;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentConfig};
use crate::demo::{hosts, records, DemoError};
use crate::operator::{self, Options};
use crate::resources::Repo;
use crate::runtime::RuntimeConfig;
use crate::sim::probes::SimProbes;
use crate::sim::SimWorld;
use scrape::{ControllerCost, Scrape};

const TARGETS: &str = "/etc/prometheus/file_sd/omtd-workers.json";

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub nodes: usize,
    pub changes: usize,
    pub idle: Duration,
    pub timeout: Duration,
}

/// What the bench measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub nodes: usize,
    pub initial_convergence: Duration,
    pub latencies: Vec<Duration>,
    pub reconciles_per_change: f64,
    /// Per controller, per timed change: reconciles and the time they took.
    pub per_controller: Vec<ControllerCost>,
    pub operator_writes_per_change: f64,
    /// CPU time (user + system) the whole process spent per change: unlike the latency,
    /// it hardly moves when other work shares the machine.
    pub cpu_per_change: Duration,
    pub store_revisions_per_change: f64,
    pub idle: Duration,
    pub idle_operator_writes: u64,
    pub idle_store_revisions: i64,
    pub rss_bytes: u64,
    pub timed_out: bool,
}

impl Figures {
    /// The `q` quantile (0..=1) of the change latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        // Nearest rank.
        let rank = (q * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// The operator's counters, from its /metrics (all zero when it does not answer).
async fn scrape(http: &reqwest::Client, url: &str) -> Scrape {
    match async { http.get(url).send().await?.text().await }.await {
        Ok(text) => Scrape::parse(&text),
        Err(_) => Scrape::default(),
    }
}

/// Waits until the operator has written nothing for a second (at most `limit`).
async fn settle(http: &reqwest::Client, url: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = scrape(http, url).await.writes;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = scrape(http, url).await.writes;
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
}

async fn revision(repo: &Repo) -> i64 {
    // The backend's own revision read: on a secured etcd every identity may make it, where
    // a list of a prefix outside the cluster is refused (and counted 0 revisions).
    repo.store.current_revision().await.unwrap_or(0)
}

/// CPU time this process has used (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) in parentheses:
            // utime and stime are the 12th and 13th of them.
            let rest = s.rsplit_once(')')?.1;
            let mut fields = rest.split_whitespace().skip(11);
            let user = fields.next()?.parse::<u64>().ok()?;
            let system = fields.next()?.parse::<u64>().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

pub async fn run(repo: Repo, opts: BenchOptions) -> Result<Figures, DemoError> {
    let objects = cluster::parse(&cluster::manifests(opts.nodes))?;
    let world = SimWorld::new();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let nodes: Vec<&omtd_crds::Node> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Node(n) => Some(n),
            _ => None,
        })
        .collect();
    // A free port for the operator's /metrics, which the bench reads.
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| DemoError::Store(format!("no free port for /metrics: {e}")))?;
    for n in &nodes {
        hosts::provision(&world, n);
    }
    let cred = records::probe_credential(&objects);
    let wiring = SimProbes::wiring(
        &world,
        "manager.omtd",
        Some("monitor.omtd"),
        cred.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        "zk://10.0.0.12:2181/mesos",
        Duration::from_secs(5),
    )?;
    let mut options = Options::new(
        metrics_addr,
        RuntimeConfig {
            identity: format!("omtd-bench/{}", std::process::id()),
            ..RuntimeConfig::default()
        },
    );
    options.probes = Some(wiring.probes);
    options.maintenance = wiring.maintenance;
    options.probe_interval = Duration::from_secs(1);
    {
        let repo = repo.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            if let Err(e) = operator::run_until(&repo, options, stop).await {
                tracing::error!(error = %e, "bench operator stopped");
            }
        });
    }
    for n in &nodes {
        let host = world.host(&n.metadata.name)?;
        let mut config = AgentConfig::new(&n.metadata.name, repo.keys.clone());
        config.watch_files = false;
        let agent = Agent::new(Arc::clone(&repo.store), host.host(), config)
            .with_signal(host.drift_signal());
        let stop = stop.clone();
        tasks.spawn(async move {
            let _ = agent.run(stop.cancelled_owned()).await;
        });
    }

    let mut figures = Figures {
        nodes: nodes.len(),
        ..Figures::default()
    };
    let result = measure(
        &repo,
        &world,
        &opts,
        &metrics_addr.to_string(),
        &mut figures,
    )
    .await;
    figures.rss_bytes = rss_bytes();
    stop.cancel();
    world.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    result.map(|()| figures)
}

async fn measure(
    repo: &Repo,
    world: &SimWorld,
    opts: &BenchOptions,
    metrics_addr: &str,
    figures: &mut Figures,
) -> Result<(), DemoError> {
    let objects = cluster::parse(&cluster::manifests(opts.nodes))?;
    let http = reqwest::Client::new();
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let start = Instant::now();
    records::apply(repo, &objects).await?;
    loop {
        let converged = crate::status::read(repo)
            .await
            .ok()
            .map(|i| crate::status::compute(&i))
            .is_some_and(|s| s.converged);
        if converged {
            break;
        }
        if start.elapsed() > opts.timeout {
            figures.timed_out = true;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    figures.initial_convergence = start.elapsed();
    eprintln!(
        "converged {} nodes in {:.1} s; timing {} changes",
        figures.nodes,
        figures.initial_convergence.as_secs_f64(),
        opts.changes
    );

    // Let the first convergence's tail (statuses, reports) settle: the changes are timed
    // on a quiet operator, not one still writing the last nodes' statuses.
    settle(
        &http,
        &metrics_url,
        opts.timeout.saturating_sub(start.elapsed()),
    )
    .await;
    let monitor = world.host("monitor.omtd")?;
    let workers = opts.nodes.saturating_sub(5).max(1);
    let before = scrape(&http, &metrics_url).await;
    let cpu0 = cpu_time();
    let rev0 = revision(repo).await;
    for k in 0..opts.changes {
        let i = 1 + (k * 7919) % workers;
        let label = format!("change-{k}");
        let needle = format!("\"bench\":\"{label}\"");
        let change = cluster::parse(&cluster::worker(i, Some(&label)))?;
        let t = Instant::now();
        records::apply(repo, &change).await?;
        loop {
            let landed = monitor
                .file(TARGETS)
                .is_some_and(|f| String::from_utf8_lossy(&f.content).contains(&needle));
            if landed {
                figures.latencies.push(t.elapsed());
                break;
            }
            if t.elapsed() > opts.timeout {
                figures.timed_out = true;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the change's follow-up writes (reports, statuses) land before the next.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let after = scrape(&http, &metrics_url).await;
    figures.cpu_per_change = cpu_time().saturating_sub(cpu0) / opts.changes.max(1) as u32;
    let rev1 = revision(repo).await;
    let n = opts.changes.max(1) as f64;
    figures.reconciles_per_change = (after.total_reconciles() - before.total_reconciles()) / n;
    figures.operator_writes_per_change = (after.writes - before.writes) / n;
    figures.per_controller = after
        .since(&before)
        .into_iter()
        .map(|c| ControllerCost {
            reconciles: c.reconciles / n,
            seconds: c.seconds / n,
            ..c
        })
        .collect();
    figures.store_revisions_per_change = (rev1 - rev0) as f64 / n;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let wr2 = scrape(&http, &metrics_url).await.writes;
    let rev2 = revision(repo).await;
    tokio::time::sleep(opts.idle).await;
    let wr3 = scrape(&http, &metrics_url).await.writes;
    let rev3 = revision(repo).await;
    figures.idle = opts.idle;
    figures.idle_operator_writes = (wr3 - wr2).max(0.0) as u64;
    figures.idle_store_revisions = rev3 - rev2;
    Ok(())
}
