//! A member cut off from the others (a partition, not a crash) keeps answering on its client
//! port, from data that no longer moves. omtd connects with etcd's "require leader": a watch
//! through that member ends with an error within a few election timeouts instead of going
//! silent, a read through it fails at once instead of answering stale, and a client of every
//! member carries on through the others. Real three-member etcd, the cut made by the
//! test-support peer proxies (`omtd_test_support::etcd_partition`).

use std::time::{Duration, Instant};

use futures::StreamExt;
use omtd::store::etcd::EtcdStore;
use omtd::store::{Store, StoreError};
use omtd_test_support::etcd::EtcdCluster;
use omtd_test_support::poll;

/// etcd cancels require-leader watches after three election timeouts without a leader
/// (1 s each by default); the rest is slack for a loaded machine.
const WATCH_NOTICES: Duration = Duration::from_secs(20);

async fn value(store: &dyn Store, key: &str) -> Option<String> {
    let kv = store.get(key).await.ok().flatten()?;
    String::from_utf8(kv.value).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_member_fails_its_clients_instead_of_serving_stale_data() {
    let cluster = EtcdCluster::start(3);
    let lone = EtcdStore::connect(&[cluster.member_endpoint(0)])
        .await
        .expect("connect to member 0");
    let others = EtcdStore::connect(&[cluster.member_endpoint(1), cluster.member_endpoint(2)])
        .await
        .expect("connect to members 1 and 2");
    let mut watch = lone.watch("/p/", 0).await.expect("watch through member 0");
    lone.put("/p/a", b"1".to_vec()).await.expect("put a");
    let first = watch.next().await.expect("an event").expect("not an error");
    assert_eq!(first.kv.key, "/p/a");

    cluster.isolate_member(0);
    let cut_at = Instant::now();
    // The majority goes on (after electing a leader, if member 0 led).
    poll::within(Duration::from_secs(20))
        .every(Duration::from_millis(200))
        .expect_async("a write through the majority", || async {
            others.put("/p/b", b"2".to_vec()).await.is_ok()
        })
        .await;

    let ended = tokio::time::timeout(WATCH_NOTICES, watch.next()).await;
    match ended {
        Ok(Some(Err(StoreError::Unavailable(m)))) => {
            assert!(m.contains("no leader"), "the error says why: {m}")
        }
        Ok(other) => panic!("the watch through the cut member ended oddly: {other:?}"),
        Err(_) => panic!(
            "the watch through the cut member stayed silent for {WATCH_NOTICES:?} after the \
             cut: a client would wait on data that no longer moves"
        ),
    }
    eprintln!("watch ended {:?} after the cut", cut_at.elapsed());

    let asked = Instant::now();
    let read = lone.get("/p/b").await;
    assert!(
        matches!(&read, Err(StoreError::Unavailable(m)) if m.contains("no leader")),
        "a read through the cut member fails, it does not answer stale: {read:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "and fails at once, not at the request timeout: {:?}",
        asked.elapsed()
    );

    // A client of all three members routes around the cut one, every time.
    let all = EtcdStore::connect(&cluster.endpoints())
        .await
        .expect("connect to all members");
    for i in 0..20 {
        assert_eq!(value(&all, "/p/b").await.as_deref(), Some("2"), "read {i}");
    }

    cluster.heal();
    poll::within(Duration::from_secs(20))
        .every(Duration::from_millis(200))
        .expect_async(
            "member 0 serves the majority's write once healed",
            || async { value(&lone, "/p/b").await.as_deref() == Some("2") },
        )
        .await;
}
