//! `omtd bench [--nodes 1000] [--changes 50] [--record docs/performance.md]`: converge N
//! sim nodes on the chosen store and print what a change costs (see `crate::bench`).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::bench::{self, BenchOptions, Figures};

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
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "| nodes | store | initial convergence | change p50 | change p99 | reconciles/change | CPU/change | operator writes/change | store revisions/change | idle operator writes | idle store revisions | RSS (operator + agents + sim) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {:.1} s | {} | {} | {:.1} | {} | {:.1} | {:.1} | {} in {:?} | {} in {:?} | {} MiB |\n",
        f.nodes,
        store.split("://").next().unwrap_or(store),
        f.initial_convergence.as_secs_f64(),
        ms(f.quantile(0.5)),
        ms(f.quantile(0.99)),
        f.reconciles_per_change,
        ms(f.cpu_per_change),
        f.operator_writes_per_change,
        f.store_revisions_per_change,
        f.idle_operator_writes,
        f.idle,
        f.idle_store_revisions,
        f.idle,
        f.rss_bytes / (1024 * 1024),
    )
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
    let figures = bench::run(
        repo,
        BenchOptions {
            nodes: args.nodes,
            changes: args.changes,
            idle: args.idle,
            timeout: args.timeout,
        },
    )
    .await?;
    if figures.timed_out {
        eprintln!(
            "error: {} nodes did not converge within {:?} (process RSS {} MiB)",
            figures.nodes,
            args.timeout,
            figures.rss_bytes / (1024 * 1024)
        );
        return Ok(ExitCode::from(1));
    }
    let table = render(&figures, &store_url);
    let controllers = render_controllers(&figures);
    print!("{table}\n{controllers}");
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
            "\n### `omtd bench --nodes {} --changes {}` — {date}\n\nMachine: {}.\n\n{table}\n{controllers}",
            args.nodes,
            args.changes,
            machine()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
