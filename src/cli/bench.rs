//! `omtd bench [--nodes 1000] [--changes 50] [--scenario relabel|add-node] [--record
//! docs/performance.md]`: converge N sim nodes on the chosen store with the operator in its
//! own process, and print what the cold start and a change cost, and the figures against
//! issue #11's targets (see `crate::bench`).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::bench::latency::ms;
use crate::bench::targets::{self, judge, Metric, Store, Value};
use crate::bench::{self, BenchOptions, Figures, OperatorCommand, Scenario};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Nodes in all: the five service nodes and the rest workers.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Single-record changes to time.
    #[arg(long, default_value_t = 50)]
    pub changes: usize,
    /// How long to count writes while nothing changes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Give up on convergence (or on one change) after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The sim agents' heartbeat lease TTL (default: the agent's, 10s). At 10,000 nodes on
    /// one 2-core machine a longer one (30s, as Kubernetes' 40 s node leases) keeps etcd's
    /// 3,000 renewals a second, which it refuses while behind applying, from losing leases
    /// (docs/performance.md).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub agent_lease_ttl: Option<Duration>,
    /// What the timed changes are.
    #[arg(long, value_enum, default_value = "relabel")]
    pub scenario: Scenario,
    /// Append the figures, with the machine and the date, to this Markdown file.
    #[arg(long)]
    pub record: Option<std::path::PathBuf>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or_else(
            || "?".into(),
            |kb| format!("{:.1} GiB", kb as f64 / 1048576.0),
        );
    format!("{cpu}, {cores} cores, {mem} RAM")
}

/// Per controller, per change: reconciles and time (reconcile plus its write).
fn render_controllers(f: &Figures) -> String {
    let mut s = String::from(
        "| controller | reconciles/change | ms/change | ms/reconcile |\n|---|---|---|---|\n",
    );
    for c in &f.per_controller {
        let per = if c.reconciles > 0.0 {
            c.seconds * 1000.0 / c.reconciles
        } else {
            0.0
        };
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2} |\n",
            c.controller,
            c.reconciles,
            c.seconds * 1000.0,
            per
        ));
    }
    s
}

fn render(f: &Figures, store: &str) -> String {
    let mib = |b: u64| format!("{} MiB", b / (1024 * 1024));
    let c = &f.cpu_per_change;
    let l = &f.latencies;
    format!(
        "| nodes | store | scenario | cold start | operator peak RSS (cold start) | change p50 | change p99 | change max | reconciles/change | operator CPU/change (net of idle) | operator CPU/change | CPU/change, all processes | operator writes/change | store revisions/change | idle operator writes | idle store revisions | operator idle CPU | operator RSS | RSS, all processes |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {:.1} s | {} | {} | {} | {} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {} in {:?} | {} in {:?} | {:.1} ms/s | {} | {} |\n",
        f.nodes,
        store.split("://").next().unwrap_or(store),
        scenario_name(f.scenario),
        f.cold_start.as_secs_f64(),
        mib(f.operator_peak_cold),
        ms(l.p50()),
        ms(l.p99()),
        ms(l.max()),
        f.reconciles_per_change,
        ms(c.operator_net),
        ms(c.operator),
        ms(c.all),
        f.operator_writes_per_change,
        f.store_revisions_per_change,
        f.idle_operator_writes,
        f.idle,
        f.idle_store_revisions,
        f.idle,
        f.operator_idle_cpu_per_sec.as_secs_f64() * 1000.0,
        mib(f.operator_memory.rss),
        mib(f.operator_memory.rss + f.bench_memory.rss),
    )
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Relabel => "relabel",
        Scenario::AddNode => "add-node",
    }
}

/// The figures against issue #11's targets.
fn summary(f: &Figures, store: &str) -> String {
    let nodes = Some(f.nodes);
    let store = Store::of_url(store);
    let mut lines = vec![
        judge(Metric::ColdStart, nodes, store, Value::Time(f.cold_start)),
        judge(
            Metric::ColdStartOperatorRss,
            nodes,
            store,
            Value::Bytes(f.operator_peak_cold),
        ),
    ];
    let p99 = Value::Time(f.latencies.p99());
    match f.scenario {
        Scenario::Relabel => {
            lines.push(judge(Metric::RelabelP99, nodes, store, p99));
            // The table's "CPU per change" is a relabel's.
            lines.push(judge(
                Metric::OperatorCpuPerChange,
                nodes,
                store,
                Value::Time(f.cpu_per_change.operator_net),
            ));
        }
        Scenario::AddNode => lines.push(judge(Metric::AddNodeP99, nodes, store, p99)),
    }
    lines.push(
        judge(
            Metric::IdleStoreWrites,
            nodes,
            store,
            Value::Count(f.idle_store_revisions.max(0) as u64),
        )
        .with_note(format!("in {:?}", f.idle)),
    );
    targets::render(&lines)
}

/// Sim agents per etcd connection: real agents have one each; a few hundred per connection
/// keeps the bench's own process to a few dozen.
const AGENTS_PER_CONNECTION: usize = 250;

/// The etcd connections the bench's sim agents share (none for SQLite: one file, one
/// poller, whatever the connection count).
async fn agent_stores(
    global: &GlobalArgs,
    nodes: usize,
) -> anyhow::Result<Vec<Arc<dyn crate::store::Store>>> {
    if global.store_url()?.sqlite_path().is_some() {
        return Ok(Vec::new());
    }
    let mut stores = Vec::new();
    for _ in 0..nodes.div_ceil(AGENTS_PER_CONNECTION) {
        let store = super::open_store(global, super::Access::Write).await?;
        stores.push(super::secrets::seal(global, store)?);
    }
    Ok(stores)
}

pub async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let mut global = global.clone();
    if global.store.is_none() {
        temp = tempfile::Builder::new().prefix("omtd-bench-").tempdir()?;
        global.store = Some(format!(
            "sqlite://{}",
            temp.path().join("omtd.db").display()
        ));
    }
    if args.nodes < 6 {
        anyhow::bail!("--nodes must be at least 6 (five service nodes and a worker)");
    }
    let store_url = global.store_url()?.to_string();
    let repo = super::open_repo(&global, super::Access::Write).await?;
    let agent_stores = agent_stores(&global, args.nodes).await?;
    let operator = OperatorCommand {
        bin: std::env::current_exe()?,
        env: operator_env(&global),
    };
    let figures = bench::run(
        repo,
        BenchOptions {
            nodes: args.nodes,
            changes: args.changes,
            idle: args.idle,
            timeout: args.timeout,
            scenario: args.scenario,
            agent_stores,
            agent_lease_ttl: args.agent_lease_ttl,
        },
        operator,
    )
    .await?;
    if let Some(what) = &figures.timed_out {
        eprintln!(
            "error: {what} did not finish within {:?} (operator RSS {} MiB, bench process {} MiB)",
            args.timeout,
            figures.operator_memory.rss / (1024 * 1024),
            figures.bench_memory.rss / (1024 * 1024)
        );
        return Ok(ExitCode::from(1));
    }
    let table = render(&figures, &store_url);
    let controllers = render_controllers(&figures);
    print!("{table}\n{controllers}\n{}", summary(&figures, &store_url));
    if let Some(path) = &args.record {
        let date = std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(
            file,
            "\n### `omtd bench --nodes {} --changes {} --scenario {}` — {date}\n\nMachine: {}.\n\n{table}\n{controllers}",
            args.nodes,
            args.changes,
            scenario_name(args.scenario),
            machine()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The store the bench uses, for its operator process: the same URL, cluster, client
/// certificate and secrets key (their paths; the operator reads the files itself).
fn operator_env(global: &GlobalArgs) -> Vec<(String, String)> {
    let mut env = vec![("OMTD_CLUSTER".to_owned(), global.cluster.clone())];
    if let Some(store) = &global.store {
        env.push(("OMTD_STORE".to_owned(), store.clone()));
    }
    let files = [
        ("OMTD_STORE_CA", &global.store_ca),
        ("OMTD_STORE_CERT", &global.store_cert),
        ("OMTD_STORE_KEY", &global.store_key),
        ("OMTD_SECRETS_KEY", &global.secrets_key),
    ];
    for (name, path) in files {
        if let Some(p) = path {
            env.push((name.to_owned(), p.display().to_string()));
        }
    }
    env
}
