//! The `accepted` controller end to end through the runtime on real etcd: statuses written
//! once and only when they change, transition times that move only on a flip, deduplicated
//! events, and zero writes while nothing changes.

use std::sync::Arc;
use std::time::Duration;

use omtd::resources::Keys;
use omtd::runtime::accepted::AcceptedController;
use omtd::runtime::events::{self, Event};
use omtd::runtime::leader::Leadership;
use omtd::runtime::{Controller, Manager, Metrics, RuntimeConfig};
use omtd::store::Store;
use omtd_crds::{ConditionStatus, Status};
use omtd_test_support::runtime::store;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = r#"{"apiVersion":"omtd/v1","kind":"Node","metadata":{"name":"m","generation":1},"spec":{"address":"10.0.0.1","roles":["manager"]}}"#;
const WORKER: &str = r#"{"apiVersion":"omtd/v1","kind":"Node","metadata":{"name":"w","generation":1},"spec":{"address":"10.0.0.2","roles":["worker"],"credential":"w"}}"#;
const CRED: &str = r#"{"apiVersion":"omtd/v1","kind":"Credential","metadata":{"name":"w","generation":1},"spec":{"principal":"w","secret":{"value":"hunter2"},"use":"mesos-agent"}}"#;

async fn status(store: &Arc<dyn Store>, keys: &Keys, node: &str) -> Option<Status> {
    let kv = store
        .get(&keys.status(omtd_crds::Kind::Node, node))
        .await
        .unwrap()?;
    Some(serde_json::from_slice(&kv.value).unwrap())
}

async fn accepted(
    store: &Arc<dyn Store>,
    keys: &Keys,
    node: &str,
) -> Option<(ConditionStatus, String, String)> {
    let s = status(store, keys, node).await?;
    let c = s.condition("Accepted")?;
    Some((c.status, c.reason.clone(), c.last_transition_time.clone()))
}

async fn wait_accepted(
    store: &Arc<dyn Store>,
    keys: &Keys,
    node: &str,
    want: ConditionStatus,
) -> (ConditionStatus, String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(a) = accepted(store, keys, node).await {
            if a.0 == want {
                return a;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {node} never became Accepted={want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A runtime with only the accepted controller, on a short leader lease.
fn start_accepted(
    store: &Arc<dyn Store>,
    keys: &Keys,
) -> (omtd::runtime::Running, Arc<Metrics>, CancellationToken) {
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let controllers: Vec<Arc<dyn Controller>> = vec![Arc::new(AcceptedController::new())];
    let running = Manager::new(
        Arc::clone(store),
        keys.clone(),
        controllers,
        Arc::clone(&metrics),
        RuntimeConfig {
            lease_ttl: Duration::from_secs(2),
            renew_every: Duration::from_millis(500),
            ..RuntimeConfig::default()
        },
    )
    .start(shutdown.clone());
    (running, metrics, shutdown)
}

fn find<'a>(events: &'a [Event], object: &str, reason: &str) -> Option<&'a Event> {
    events
        .iter()
        .find(|e| e.object == object && e.reason == reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepted_condition_follows_references_with_minimal_writes() {
    let (store, _guard) = store("etcd").await;
    let keys = Keys::for_cluster("acc");
    store
        .put(&keys.spec(omtd_crds::Kind::Node, "m"), MANAGER.into())
        .await
        .unwrap();
    store
        .put(&keys.spec(omtd_crds::Kind::Node, "w"), WORKER.into())
        .await
        .unwrap();
    store
        .put(&keys.spec(omtd_crds::Kind::Credential, "w"), CRED.into())
        .await
        .unwrap();

    let (running, metrics, shutdown) = start_accepted(&store, &keys);

    let (_, reason, first_time) = wait_accepted(&store, &keys, "w", ConditionStatus::True).await;
    assert_eq!(reason, "Valid");
    let (_, _, m_first) = wait_accepted(&store, &keys, "m", ConditionStatus::True).await;
    assert_eq!(
        status(&store, &keys, "m")
            .await
            .unwrap()
            .observed_generation,
        1
    );

    // Converged: nothing is written while nothing changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = metrics.writes();
    let revision = store.current_revision().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(metrics.writes(), writes, "writes while idle");
    assert_eq!(
        store.current_revision().await.unwrap(),
        revision,
        "the store moved while idle"
    );

    // The credential goes (another writer, bypassing apply's checks): w is rejected.
    store
        .delete(&keys.spec(omtd_crds::Kind::Credential, "w"))
        .await
        .unwrap();
    let (_, reason, rejected_time) =
        wait_accepted(&store, &keys, "w", ConditionStatus::False).await;
    assert_eq!(reason, "Invalid");
    let s = status(&store, &keys, "w").await.unwrap();
    let message = &s.condition("Accepted").unwrap().message;
    assert!(message.contains("credential"), "{message}");
    assert!(rejected_time >= first_time);
    // m is untouched by w's trouble.
    let (_, _, m_time) = accepted(&store, &keys, "m").await.unwrap();
    assert_eq!(
        m_time, m_first,
        "m's condition did not flip, so its time must not move"
    );

    // Back again: accepted, and the repeated "Accepted" event of w is counted, not copied.
    store
        .put(&keys.spec(omtd_crds::Kind::Credential, "w"), CRED.into())
        .await
        .unwrap();
    wait_accepted(&store, &keys, "w", ConditionStatus::True).await;
    let mut listed = Vec::new();
    for _ in 0..150 {
        listed = events::list(store.as_ref(), &keys).await.unwrap();
        if find(&listed, "node/w", "Accepted").is_some_and(|e| e.count == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        find(&listed, "node/w", "Accepted").map(|e| e.count),
        Some(2),
        "events: {listed:#?}"
    );
    let rejected = find(&listed, "node/w", "Rejected").expect("a Rejected event for w");
    assert_eq!(rejected.count, 1);
    assert_eq!(
        find(&listed, "node/m", "Accepted").map(|e| e.count),
        Some(1)
    );
    assert_eq!(listed.iter().filter(|e| e.object == "node/w").count(), 2);
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains("hunter2"), "a secret reached an event");
    // Event records expire: they are attached to a lease.
    let raw = store.list(&keys.events(), None).await.unwrap();
    assert!(raw.kvs.iter().all(|kv| kv.lease.is_some()));

    // Someone tampers with the status: the condition is put back.
    store
        .put(
            &keys.status(omtd_crds::Kind::Node, "m"),
            br#"{"observedGeneration":1}"#.to_vec(),
        )
        .await
        .unwrap();
    wait_accepted(&store, &keys, "m", ConditionStatus::True).await;

    assert!(matches!(
        *running.leadership().borrow(),
        Leadership::Leader { .. }
    ));
    shutdown.cancel();
    running.stopped().await;
    assert_eq!(
        store.get(&keys.leader()).await.unwrap(),
        None,
        "did not resign"
    );
}

/// `omtd_reconciles_total` of the accepted controller, every result.
fn accepted_reconciles(metrics: &Metrics) -> u64 {
    let text = metrics.encode().unwrap();
    let scrape = omtd::bench::scrape::Scrape::parse(&text);
    scrape.reconciles.get("accepted").copied().unwrap_or(0.0) as u64
}

fn worker(i: usize, label: &str) -> String {
    format!(
        r#"{{"apiVersion":"omtd/v1","kind":"Node","metadata":{{"name":"w{i}","generation":1,"labels":{{"l":"{label}"}}}},"spec":{{"address":"10.0.1.{i}","roles":["worker"],"credential":"w{i}"}}}}"#
    )
}

fn credential(i: usize) -> String {
    format!(
        r#"{{"apiVersion":"omtd/v1","kind":"Credential","metadata":{{"name":"w{i}","generation":1}},"spec":{{"principal":"w{i}","secret":{{"value":"s{i}"}},"use":"mesos-agent"}}}}"#
    )
}

/// A spec change wakes only the nodes whose verdict it changes (and the changed node): a
/// relabelled worker costs a couple of reconciles, not one per node, on both stores. Each
/// reconcile validated the whole state, so waking every node made a change O(nodes²).
async fn spec_change_reconciles_only_affected_nodes(backend: &str) {
    const WORKERS: usize = 30;
    let (store, _guard) = store(backend).await;
    let keys = Keys::for_cluster("acc-scope");
    let node = |name: &str| keys.spec(omtd_crds::Kind::Node, name);
    store.put(&node("m"), MANAGER.into()).await.unwrap();
    for i in 0..WORKERS {
        store
            .put(&node(&format!("w{i}")), worker(i, "a").into())
            .await
            .unwrap();
        store
            .put(
                &keys.spec(omtd_crds::Kind::Credential, &format!("w{i}")),
                credential(i).into(),
            )
            .await
            .unwrap();
    }
    let (running, metrics, shutdown) = start_accepted(&store, &keys);
    for i in 0..WORKERS {
        wait_accepted(&store, &keys, &format!("w{i}"), ConditionStatus::True).await;
    }
    // Settle: the last statuses' own wake-ups run and write nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Relabel one worker: only it is looked at again (its own status write wakes it once
    // more), never the other thirty nodes.
    let before = accepted_reconciles(&metrics);
    store.put(&node("w7"), worker(7, "b").into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let relabel = accepted_reconciles(&metrics) - before;
    assert!(
        (1..=3).contains(&relabel),
        "{backend}: a relabel cost {relabel} reconciles"
    );

    // A credential goes: exactly the worker that used it flips, and only it is looked at.
    let before = accepted_reconciles(&metrics);
    store
        .delete(&keys.spec(omtd_crds::Kind::Credential, "w3"))
        .await
        .unwrap();
    wait_accepted(&store, &keys, "w3", ConditionStatus::False).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let flipped = accepted_reconciles(&metrics) - before;
    assert!(
        (1..=3).contains(&flipped),
        "{backend}: a deleted credential cost {flipped} reconciles"
    );
    let (others, _, _) = accepted(&store, &keys, "w4").await.unwrap();
    assert_eq!(others, ConditionStatus::True);

    shutdown.cancel();
    running.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_change_reconciles_only_affected_nodes_etcd() {
    spec_change_reconciles_only_affected_nodes("etcd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_change_reconciles_only_affected_nodes_sqlite() {
    spec_change_reconciles_only_affected_nodes("sqlite").await;
}
