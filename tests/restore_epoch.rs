//! "Fencing survives a restore" (issue #21 item 5), end to end on a real etcd: the store is
//! restored from a snapshot taken before a leader change, so the restored operator's
//! fencing tokens are lower than the ones every agent has seen. Agents then hold their hosts
//! (a deposed leader's plan is never applied) until the documented procedure runs
//! (`omtd epoch renew`, docs/operations.md), after which they follow the restored operator
//! without being restarted.

use std::time::Duration;

use omtd_crds::plan::{Report, ResourceState};
use omtd_crds::plan_manifest::HOLD_ID;
use omtd_test_support::e2e::{Setup, World, EXAMPLE, NODES};
use omtd_test_support::poll;

const CONVERGE: Duration = Duration::from_secs(90);

fn holding(r: &Report) -> Option<&str> {
    r.resources
        .iter()
        .find(|x| x.id == HOLD_ID && x.state == ResourceState::Refused)
        .map(|x| x.message.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restored_store_converges_after_epoch_renew_without_restarting_agents() {
    let mut w = World::start(&NODES, Setup::default()).await;
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    w.wait_converged(CONVERGE).await;
    let first_epoch = w.omtd(&["epoch"]).await.trim().to_owned();
    assert!(!first_epoch.is_empty(), "the operator made no epoch");

    // The backup, then a leader change after it: agents see higher tokens.
    let snapshot = w.dir.path().join("backup.db");
    w.etcd.save_snapshot(&snapshot);
    let node = NODES[1];
    let before = w.report(node).await.expect("report").applied;
    w.stop_operator();
    w.start_operator(&[]);
    poll::within(CONVERGE)
        .until_async(|| async {
            w.report(node)
                .await
                .is_some_and(|r| r.converged && r.applied.values().max() > before.values().max())
        })
        .await
        .unwrap_or_else(|| panic!("no new term reached {node}:\n{}", w.operator_log()));
    // With the operator stopped nothing writes a plan: what the agent applies once it has
    // settled is the plan in force before the restore.
    w.stop_operator();
    w.wait_converged(CONVERGE).await;
    let seen = w.report(node).await.expect("report");

    // Restore the older snapshot; the operator starts again on it.
    w.etcd.restore_snapshot(&snapshot);
    w.start_operator(&[]);
    let held = poll::within(CONVERGE)
        .until_async(|| async {
            w.report(node)
                .await
                .is_some_and(|r| holding(&r).is_some_and(|m| m.contains("deposed leader")))
        })
        .await;
    assert!(
        held.is_some(),
        "agents did not refuse the restored (lower-token) plans; {node}'s report: {:#?}\n{}",
        w.report(node).await,
        w.operator_log()
    );
    // Holding kept the host as it was: the plan in force is the one seen before.
    let now = w.report(node).await.expect("report");
    assert_eq!(now.slices, seen.slices, "a held host applied another plan");

    // The documented procedure: a new epoch. Same agent processes, no restart.
    let renewed = w.omtd(&["epoch", "renew"]).await.trim().to_owned();
    assert_ne!(renewed, first_epoch);
    w.wait_converged(CONVERGE).await;
    for n in NODES {
        let r = w.report(n).await.expect("report");
        assert_eq!(r.epoch, renewed, "{n} follows another epoch");
        assert!(holding(&r).is_none(), "{n} still holds: {r:?}");
    }
    w.stop().await;
}
