//! Drift repair on the real driver (issue #11 item 6): the release `omtd agent` binary,
//! linux driver under a temp `--root`, on a converged host against a real etcd; managed
//! files edited by hand one at a time, each timed from the edit to its planned bytes being
//! back (inotify on the agent's side; see `omtd_test_support::agent::drift_repair`).
//!
//! `cargo bench --bench drift_repair`; `OMTD_BENCH_EDITS=100` for a shorter run (default
//! 1,000). Prints p50/p99/max and the summary line against the target; exits
//! non-zero only when an edit was not repaired at all.

use std::process::ExitCode;

use omtd::bench::targets::{self, judge, Metric, Value};
use omtd_test_support::agent::drift_repair;

fn main() -> ExitCode {
    let edits = std::env::var("OMTD_BENCH_EDITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000usize);
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
    let m = runtime.block_on(drift_repair::run(bin, edits));
    println!(
        "drift_repair: {bin}: {} edits over {} managed files: {}; {} not repaired within 5 s",
        m.edits,
        m.files,
        m.latencies.describe(),
        m.unrepaired
    );
    print!(
        "{}",
        targets::render(&[judge(
            Metric::DriftRepairP99,
            None,
            None,
            Value::Time(m.latencies.p99())
        )
        .with_note(format!("over {}", m.latencies.len()))])
    );
    if m.unrepaired > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
