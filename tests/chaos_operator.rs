//! Operator chaos (issue #21 item 8: `kill -9` of an `omtd operator` mid-procedure), see
//! `omtd_test_support::chaos::operator`: on the end-to-end world (real etcd and ZooKeeper,
//! sim agents, the operator's real probes on the sim world), each round starts a drain, the
//! ordered recovery, a credential rotation or a relabel, kills the operator inside it and
//! starts a new one. No task killed before its drain deadline, no wanted export or mount
//! removed, every started procedure finished after the restart, every round converged.
//!
//! The short run is a normal test; the long one is ignored by default:
//! `OMTD_CHAOS_MINUTES=20 OMTD_CHAOS_ROUNDS=1000 cargo test --test chaos_operator -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use omtd_test_support::chaos::operator::{run, Config};
use omtd_test_support::chaos::{env_num, seed};

async fn check(cfg: Config) {
    let figures = run(&cfg).await;
    println!("operator chaos (seed {}):\n{figures}", cfg.seed);
    assert!(figures.rounds > 0, "no round ran");
    assert_eq!(figures.unsafe_steps, 0, "unsafe steps:\n{figures}");
    assert_eq!(
        figures.converged, figures.rounds,
        "not converged:\n{figures}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_killed_mid_procedure_finishes_it_after_the_restart() {
    check(Config {
        rounds: env_num("OMTD_CHAOS_ROUNDS", 4) as usize,
        until: Some(Instant::now() + Duration::from_secs(75)),
        seed: seed(),
        kill_within: Duration::from_secs(3),
        restart_within: Duration::from_millis(500),
        bound: Duration::from_secs(45),
        cycle: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the long operator chaos run: minutes; see docs/reliability.md"]
async fn long_operator_chaos_run() {
    check(Config {
        rounds: env_num("OMTD_CHAOS_ROUNDS", 1000) as usize,
        until: Some(Instant::now() + Duration::from_secs(60 * env_num("OMTD_CHAOS_MINUTES", 20))),
        seed: seed(),
        kill_within: Duration::from_millis(env_num("OMTD_CHAOS_KILL_MS", 3000)),
        restart_within: Duration::from_millis(env_num("OMTD_CHAOS_RESTART_MS", 500)),
        bound: Duration::from_secs(60),
        cycle: false,
    })
    .await;
}
