//! The controller runtime against real stores (etcd and SQLite): latency from a change to its
//! reconcile, coalescing of rapid updates, backoff of failing reconciles.

use std::sync::Arc;
use std::time::Duration;

use omtd::resources::Keys;
use omtd::runtime::leader::Leadership;
use omtd::runtime::{Controller, Manager, Metrics, Running, RuntimeConfig};
use omtd::store::Store;
use omtd_test_support::poll;
use omtd_test_support::runtime::{store, Probe};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn config() -> RuntimeConfig {
    RuntimeConfig {
        lease_ttl: Duration::from_secs(2),
        renew_every: Duration::from_millis(500),
        ..RuntimeConfig::default()
    }
}

/// Starts a manager running `probe` and waits until it leads with a synced cache.
async fn start(
    store: Arc<dyn Store>,
    keys: &Keys,
    probe: &Arc<Probe>,
) -> (Running, CancellationToken) {
    let shutdown = CancellationToken::new();
    let controllers: Vec<Arc<dyn Controller>> = vec![Arc::clone(probe) as Arc<dyn Controller>];
    let running = Manager::new(
        store,
        keys.clone(),
        controllers,
        Arc::new(Metrics::new()),
        config(),
    )
    .start(shutdown.clone());
    let role = running.leadership();
    assert!(
        poll::within(Duration::from_secs(10))
            .until(|| {
                matches!(*role.borrow(), Leadership::Leader { .. }) && running.health().synced
            })
            .await
            .is_some(),
        "the only operator never became the leader"
    );
    (running, shutdown)
}

async fn change_reaches_reconcile_quickly(backend: &str) {
    let (store, _guard) = store(backend).await;
    let keys = Keys::for_cluster("latency");
    let probe = Probe::new(keys.prefix());
    let (running, shutdown) = start(Arc::clone(&store), &keys, &probe).await;
    // Let the term's workers start before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    for i in 0..20 {
        let value = format!("v{i}");
        let start = Instant::now();
        store
            .put(
                &format!("{}test/k", keys.prefix()),
                value.clone().into_bytes(),
            )
            .await
            .unwrap();
        let reached = poll::within(Duration::from_secs(2))
            .until(|| {
                probe
                    .seen_of("k")
                    .iter()
                    .any(|s| s.value.as_deref() == Some(value.as_str()))
            })
            .await
            .is_some();
        assert!(reached, "{backend}: change {i} never reached its reconcile");
        let at = probe
            .seen_of("k")
            .into_iter()
            .find(|s| s.value.as_deref() == Some(value.as_str()))
            .map(|s| s.at)
            .unwrap();
        latencies.push(at.duration_since(start));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let p90 = latencies[latencies.len() * 9 / 10];
    eprintln!(
        "{backend}: change -> reconcile latency (put included): median {median:?}, p90 {p90:?}, max {:?}",
        latencies[latencies.len() - 1]
    );
    assert!(
        median < Duration::from_millis(50),
        "{backend}: median {median:?}"
    );
    assert!(p90 < Duration::from_millis(50), "{backend}: p90 {p90:?}");
    shutdown.cancel();
    running.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_reaches_reconcile_within_50ms_etcd() {
    change_reaches_reconcile_quickly("etcd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_reaches_reconcile_within_50ms_sqlite() {
    change_reaches_reconcile_quickly("sqlite").await;
}

async fn rapid_updates_coalesce(backend: &str) {
    let (store, _guard) = store(backend).await;
    let keys = Keys::for_cluster("burst");
    let mut probe = Probe::new(keys.prefix());
    // A real reconcile costs a few milliseconds (its write is a store round trip).
    Arc::get_mut(&mut probe).unwrap().work = Duration::from_millis(5);
    let (running, shutdown) = start(Arc::clone(&store), &keys, &probe).await;
    let key = format!("{}test/hot", keys.prefix());
    let start = Instant::now();
    for i in 0..1000 {
        store.put(&key, i.to_string().into_bytes()).await.unwrap();
    }
    let wrote_in = start.elapsed();
    assert!(
        poll::within(Duration::from_secs(10))
            .until(|| probe
                .seen_of("hot")
                .last()
                .is_some_and(|s| s.value.as_deref() == Some("999")))
            .await
            .is_some(),
        "{backend}: the last state never reached a reconcile"
    );
    // Nothing runs after the last state was seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = probe.seen_of("hot");
    assert_eq!(seen.last().and_then(|s| s.value.as_deref()), Some("999"));
    eprintln!(
        "{backend}: 1000 updates in {wrote_in:?} -> {} reconciles of the key",
        seen.len()
    );
    assert!(
        seen.len() < 1000 / 4,
        "{backend}: {} reconciles",
        seen.len()
    );
    // Never two reconciles of one key at once: each starts after the previous one's work.
    for pair in seen.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(5));
    }
    shutdown.cancel();
    running.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rapid_updates_coalesce_and_last_state_wins_etcd() {
    rapid_updates_coalesce("etcd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rapid_updates_coalesce_and_last_state_wins_sqlite() {
    rapid_updates_coalesce("sqlite").await;
}

async fn failing_reconcile_backs_off(backend: &str) {
    let (store, _guard) = store(backend).await;
    let keys = Keys::for_cluster("failing");
    let probe = Probe::new(keys.prefix());
    probe.failing.lock().unwrap().insert("bad".into());
    let (running, shutdown) = start(Arc::clone(&store), &keys, &probe).await;
    store
        .put(&format!("{}test/bad", keys.prefix()), b"x".to_vec())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let attempts = probe.seen_of("bad");
    let gaps: Vec<Duration> = attempts
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    eprintln!(
        "{backend}: {} attempts in 3.5 s, gaps {gaps:?}",
        attempts.len()
    );
    // 100 ms doubling with up to 100% jitter: 5 or 6 attempts fit in 3.5 s; a hot loop
    // would make thousands.
    assert!(
        (4..=7).contains(&attempts.len()),
        "{backend}: {} attempts",
        attempts.len()
    );
    assert!(gaps[0] >= Duration::from_millis(95), "{gaps:?}");
    for pair in gaps.windows(2) {
        assert!(pair[1] > pair[0], "{backend}: delays must grow: {gaps:?}");
    }
    let metrics = running.metrics().encode().unwrap();
    let retries = omtd_test_support::runtime::metric(
        &metrics,
        r#"omtd_reconcile_retries_total{controller="probe"}"#,
    );
    assert!(retries.is_some_and(|r| r >= 3.0), "{metrics}");

    // Fixed: the next change reconciles cleanly, and the backoff starts again from the bottom.
    probe.failing.lock().unwrap().clear();
    store
        .put(&format!("{}test/bad", keys.prefix()), b"fixed".to_vec())
        .await
        .unwrap();
    assert!(poll::within(Duration::from_secs(2))
        .until(|| probe
            .seen_of("bad")
            .last()
            .is_some_and(|s| s.value.as_deref() == Some("fixed")))
        .await
        .is_some());
    probe.failing.lock().unwrap().insert("bad".into());
    let before = probe.seen_of("bad").len();
    store
        .put(&format!("{}test/bad", keys.prefix()), b"broken".to_vec())
        .await
        .unwrap();
    assert!(
        poll::within(Duration::from_secs(2))
            .until(|| probe.seen_of("bad").len() >= before + 2)
            .await
            .is_some(),
        "{backend}: no retry after a new failure"
    );
    let again = probe.seen_of("bad");
    let gap = again[before + 1].at.duration_since(again[before].at);
    assert!(
        gap < Duration::from_millis(350),
        "{backend}: backoff was not reset: {gap:?}"
    );
    shutdown.cancel();
    running.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_reconcile_retries_with_growing_delays_etcd() {
    failing_reconcile_backs_off("etcd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_reconcile_retries_with_growing_delays_sqlite() {
    failing_reconcile_backs_off("sqlite").await;
}
