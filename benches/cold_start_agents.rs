//! The real-agents cold start (issue #11 item 5): N `omtd agent --root` processes (the
//! release binary, linux driver, each its own temp root) and the five service nodes' sim
//! agents, one `omtd operator`, a real etcd the bench starts; from `apply` to every node
//! ready (see `omtd_test_support::agent::fleet` for what stands in for what).
//!
//! `cargo bench --bench cold_start_agents`; `OMTD_BENCH_AGENTS=50` for a short run
//! (default 1,000), `OMTD_BENCH_TIMEOUT_SECS` (default 900), `OMTD_BENCH_RESYNC` (default
//! 30s) and `OMTD_BENCH_SERVICE_CHECK` (default 60s, the agents' `--service-check`).
//!
//! Why the service check is 60 s here and not the agent's 5 s: each check runs the host's
//! five init scripts' `status` and the fake `docker inspect` (a shell script), some ten
//! process spawns. A real host pays that alone (a few ms every 5 s); a thousand hosts on
//! this machine's two cores pay some 2,000 spawns a second, which alone saturates it (load
//! 240–520, the operator idle, no convergence in 900 s). The figure is omtd's apply → Ready,
//! not a thousand hosts' idle polling on one machine. Each agent holds about 5 MB of
//! its own memory: 1,000 need some 5 GB. Exits non-zero when the nodes did not all become
//! ready in time.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use omtd::bench::targets::{self, judge, Metric, Store, Value};
use omtd_test_support::agent::fleet::{self, Config};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let cfg = Config {
        workers: env_num("OMTD_BENCH_AGENTS", 1000) as usize,
        timeout: Duration::from_secs(env_num("OMTD_BENCH_TIMEOUT_SECS", 900)),
        resync: std::env::var("OMTD_BENCH_RESYNC").unwrap_or_else(|_| "30s".into()),
        service_check: std::env::var("OMTD_BENCH_SERVICE_CHECK").unwrap_or_else(|_| "60s".into()),
    };
    let bin = env!("CARGO_BIN_EXE_omtd");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "cold_start_agents: {bin}: {} worker agents (linux driver) + 5 service nodes (sim), \
         resync {}, service check {}",
        cfg.workers, cfg.resync, cfg.service_check
    );
    let m = runtime.block_on(fleet::cold_start(Path::new(bin), &cfg));
    if let Some(limit) = m.inotify_instances.filter(|l| *l < cfg.workers) {
        println!(
            "note: fs.inotify.max_user_instances is {limit}: agents past it find drift by \
             resync only (one agent per host has no such limit to meet)"
        );
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "cold_start_agents: start-up (not timed) {:.1} s; apply -> all ready {}; operator \
         peak RSS {:.1} MB, CPU {:.1} s; agent RSS max {:.1} MB, mean {:.1} MB",
        m.startup.as_secs_f64(),
        m.took.map_or_else(
            || "not within the timeout".into(),
            |d| format!("{:.1} s", d.as_secs_f64())
        ),
        mb(m.operator_peak),
        m.operator_cpu.as_secs_f64(),
        mb(m.agent_rss_max),
        mb(m.agent_rss_mean),
    );
    for p in &m.pending {
        println!("  not ready: {p}");
    }
    let Some(took) = m.took else {
        return ExitCode::FAILURE;
    };
    print!(
        "{}",
        targets::render(&[judge(
            Metric::ColdStartRealAgents,
            Some(m.workers),
            Some(Store::Etcd),
            Value::Time(took)
        )])
    );
    ExitCode::SUCCESS
}
