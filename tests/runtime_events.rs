//! Event records through the fenced writer on a real etcd with its default limits.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omtd::resources::Keys;
use omtd::runtime::events::{self, EventRecorder};
use omtd::runtime::writer::Writer;
use omtd::runtime::{EventNote, EventType, Metrics, Outcome, Snapshot};
use omtd_test_support::runtime::store;

/// A cluster-wide controller's first pass notes a flip for each of many nodes: more
/// event records than one etcd transaction may carry (128 ops by default). All of them
/// are recorded.
#[tokio::test]
async fn an_outcome_with_hundreds_of_events_records_them_all() {
    let (store, _guard) = store("etcd").await;
    let keys = Keys::for_cluster("ev");
    let token = store
        .put(&keys.leader(), b"me".to_vec())
        .await
        .expect("take the leader key");
    let recorder = Arc::new(EventRecorder::new(
        Arc::clone(&store),
        keys.clone(),
        Duration::from_secs(60),
    ));
    let writer = Writer::new(
        Arc::clone(&store),
        keys.clone(),
        token,
        Arc::new(Metrics::new()),
        recorder,
    );
    let outcome = Outcome {
        events: (0..300)
            .map(|i| EventNote {
                object: format!("node/n{i}"),
                type_: EventType::Normal,
                reason: "Ready".into(),
                message: format!("n{i} converged"),
            })
            .collect(),
        ..Outcome::default()
    };
    writer
        .write("node", &Snapshot::default(), &outcome, SystemTime::now())
        .await
        .expect("write 300 events");
    let stored = events::list(store.as_ref(), &keys).await.expect("list");
    assert_eq!(stored.len(), 300, "every note recorded once");
    assert!(stored.iter().all(|e| e.count == 1 && e.source == "node"));
}
