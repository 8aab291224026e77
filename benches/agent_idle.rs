//! Idle footprint of the host agent: the release `omtd agent` binary on a converged host
//! against a real etcd (Debian's `etcd-server`), left alone for 60 s. Prints the store
//! writes it made (the issue asks for zero: heartbeats are lease keep-alives, not writes)
//! and its RSS in MB (the issue asks for under 20 MB). Two hosts: the sim driver, and the
//! linux driver confined to a temp root (real files under inotify, a real SysV service).
//!
//! `cargo bench --bench agent_idle`; `OMTD_BENCH_SECS=10` for a shorter window. Default
//! periods (resync 30 s, service check 5 s), so the window holds two full resyncs and a
//! dozen service checks. Exits non-zero when either limit is broken.

use std::process::ExitCode;

use omtd::bench::targets::{self, judge, Metric, Value};
use omtd_test_support::agent::idle::{self, Driver, Idle};

/// The limit on the agent's RSS.
const RSS_LIMIT_KIB: u64 = 20 * 1024;

fn main() -> ExitCode {
    let seconds = std::env::var("OMTD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
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
    println!("agent_idle: {bin}, {seconds} s per host, resync 30s, service check 5s");
    let mut ok = true;
    let mut summary = Vec::new();
    for driver in [Driver::Sim, Driver::Linux] {
        let m = runtime.block_on(idle::run(bin, driver, seconds, "30s", "5s"));
        let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
        println!(
            "agent_idle/{driver:?}: {} store writes in {} s (revision {} -> {}); RSS {:.1} MB \
             ({:.1} MiB; anon {:.1} MiB, file-backed {:.1} MiB; max sampled {:.1} MB, \
             peak {:.1} MB)",
            m.writes,
            m.seconds,
            m.rev0,
            m.rev1,
            mb(m.rss),
            Idle::mib(m.rss),
            Idle::mib(m.anon),
            Idle::mib(m.file),
            mb(m.max_rss),
            mb(m.hwm),
        );
        let mut rss = judge(
            Metric::AgentRssIdle,
            None,
            None,
            Value::Bytes(m.max_rss * 1024),
        );
        rss.label = format!("{} ({driver:?} driver, largest sample)", rss.label);
        summary.push(rss);
        let mut writes = judge(
            Metric::IdleStoreWrites,
            None,
            None,
            Value::Count((m.rev1 - m.rev0).max(0) as u64),
        )
        .with_note(format!("in {} s", m.seconds));
        writes.label = format!("{} ({driver:?} agent)", writes.label);
        summary.push(writes);
        if m.writes != 0 || m.rev0 != m.rev1 {
            eprintln!("agent_idle/{driver:?}: an idle agent wrote to the store");
            ok = false;
        }
        if m.max_rss >= RSS_LIMIT_KIB {
            eprintln!("agent_idle/{driver:?}: RSS {} KiB >= 20 MiB", m.max_rss);
            ok = false;
        }
    }
    print!("{}", targets::render(&summary));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
