//! Short runs of the benches' scenarios (the figures come from `omtd bench` and the cargo
//! benches; see docs/performance.md): what they assert is what a user would notice if it
//! broke, never a timing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use omtd_test_support::agent::{drift_repair, fleet, with_timeout};

/// `omtd bench --scenario add-node`: every added node reaches the master's credentials,
/// the exports, the scrape targets and its own host; nothing is written while idle.
#[test]
fn bench_adds_nodes_end_to_end_and_writes_nothing_idle() {
    let out = Command::new(env!("CARGO_BIN_EXE_omtd"))
        .env_remove("OMTD_STORE")
        .args(["bench", "--nodes", "8", "--changes", "2", "--idle", "2s"])
        .args(["--scenario", "add-node", "--timeout", "60s"])
        .output()
        .expect("run omtd bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| 8 | sqlite | add-node |"), "{stdout}");
    let idle = stdout
        .lines()
        .find(|l| l.contains("idle store writes"))
        .unwrap_or_else(|| panic!("no idle line in the summary:\n{stdout}"));
    assert!(idle.contains(" 0 in 2s") && idle.ends_with("met"), "{idle}");
}

/// Real `omtd agent --root` processes (linux driver) for three workers, the service nodes'
/// sim agents and one operator on a real etcd: every node ends up ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agent_processes_cold_start_to_every_node_ready() {
    let cfg = fleet::Config {
        workers: 3,
        timeout: Duration::from_secs(60),
        resync: "30s".into(),
        service_check: "5s".into(),
    };
    let m = with_timeout(
        Duration::from_secs(120),
        fleet::cold_start(Path::new(env!("CARGO_BIN_EXE_omtd")), &cfg),
    )
    .await;
    println!("{m:?}");
    assert!(m.took.is_some(), "not every node ready: {:?}", m.pending);
    assert!(m.agent_rss_max > 0, "the agents were running at the end");
}

/// Hand edits of managed files on the linux driver are each put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hand_edit_of_a_managed_file_is_repaired() {
    let m = with_timeout(
        Duration::from_secs(60),
        drift_repair::run(env!("CARGO_BIN_EXE_omtd"), 12),
    )
    .await;
    println!(
        "{} edits over {} files: {}",
        m.edits,
        m.files,
        m.latencies.describe()
    );
    assert_eq!(m.unrepaired, 0);
    assert_eq!(m.latencies.len(), 12);
    assert!(
        m.files >= 3,
        "the edits go round enough files for the repair limiter"
    );
}
