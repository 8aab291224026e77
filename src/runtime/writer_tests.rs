//! Tests of the fenced plan writer.

use super::*;
use crate::store::StoreUrl;
use std::time::Duration;

/// A SQLite store in `dir`, the keys of cluster `cluster`, and an event recorder on them.
async fn fixture(
    dir: &tempfile::TempDir,
    cluster: &str,
) -> (Arc<dyn Store>, Keys, Arc<EventRecorder>) {
    let url: StoreUrl = format!("sqlite://{}", dir.path().join("w.db").display())
        .parse()
        .expect("url");
    let store = crate::store::open(&url).await.expect("store");
    let keys = Keys::for_cluster(cluster);
    let events = Arc::new(EventRecorder::new(
        Arc::clone(&store),
        keys.clone(),
        Duration::from_secs(60),
    ));
    (store, keys, events)
}

/// A slice equal to the stored one is skipped without serializing; one stored by
/// another term (another fencing token) or with other content is written.
#[tokio::test]
async fn slices_as_stored_are_skipped_and_others_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, keys, events) = fixture(&dir, "s").await;
    let writer = |token| {
        Writer::new(
            Arc::clone(&store),
            keys.clone(),
            token,
            Arc::new(Metrics::new()),
            Arc::clone(&events),
        )
    };
    let wanted = PlanSlice {
        files: vec![omtd_crds::plan::FileSpec::plain("/etc/x", "1")],
        ..PlanSlice::default()
    };
    let stored = PlanSlice {
        controller: "c".into(),
        fencing_token: 7,
        ..wanted.clone()
    };
    let key = keys.plan("n1", "c");
    let mut snapshot = Snapshot::default();
    let kv = crate::store::KeyValue {
        key: key.clone(),
        value: serde_json::to_vec(&stored).expect("json"),
        create_revision: 2,
        mod_revision: 2,
        version: 1,
        lease: None,
    };
    snapshot.apply(&keys, &key, Some(kv), 2);
    let outcome = |slice: &PlanSlice| Outcome {
        plans: vec![("n1".into(), Some(slice.clone()))],
        ..Outcome::default()
    };
    assert!(writer(7).diff("c", &snapshot, &outcome(&wanted)).is_none());
    assert!(writer(8).diff("c", &snapshot, &outcome(&wanted)).is_some());
    let changed = PlanSlice {
        files: vec![omtd_crds::plan::FileSpec::plain("/etc/x", "2")],
        ..PlanSlice::default()
    };
    assert!(writer(7).diff("c", &snapshot, &outcome(&changed)).is_some());

    // Unreadable is not deleted: while n1's spec does not parse (with no last good
    // version, so the controller found no node), its slice is held.
    let remove = Outcome {
        plans: vec![("n1".into(), None)],
        ..Outcome::default()
    };
    assert!(writer(7).diff("c", &snapshot, &remove).is_some());
    let spec = keys.spec(omtd_crds::Kind::Node, "n1");
    let garbage = crate::store::KeyValue {
        key: spec.clone(),
        value: b"{not json".to_vec(),
        create_revision: 3,
        mod_revision: 3,
        version: 1,
        lease: None,
    };
    snapshot.apply(&keys, &spec, Some(garbage), 3);
    assert!(writer(7).diff("c", &snapshot, &remove).is_none());
    snapshot.apply(&keys, &spec, None, 4);
    assert!(writer(7).diff("c", &snapshot, &remove).is_some());
}

/// A cluster-wide controller's first reconcile on a big cluster: more writes than one
/// etcd transaction may carry go in several fenced ones, and all land.
#[tokio::test]
async fn big_outcomes_are_written_in_bounded_transactions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, keys, events) = fixture(&dir, "w").await;
    let token = store
        .put(&keys.leader(), b"me".to_vec())
        .await
        .expect("put");
    let metrics = Arc::new(Metrics::new());
    let writer = Writer::new(Arc::clone(&store), keys.clone(), token, metrics, events);
    let outcome = Outcome {
        plans: (0..250)
            .map(|i| (format!("n{i}"), Some(PlanSlice::default())))
            .collect(),
        ..Outcome::default()
    };
    let snapshot = Snapshot::default();
    let changes = writer.changes("c", &snapshot, &snapshot, &outcome);
    let txns = writer.pack(changes, MAX_TXN_OPS);
    assert_eq!(txns.len(), 3);
    assert!(txns
        .iter()
        .all(|t| t.success.len() <= MAX_TXN_OPS && t.compares.len() <= MAX_TXN_OPS));
    assert!(txns.iter().all(|t| t.compares[0] == writer.fence()));
    writer
        .write("c", &snapshot, &outcome, SystemTime::now())
        .await
        .expect("write");
    let written = store.list(keys.prefix(), None).await.expect("list");
    assert_eq!(written.kvs.len(), 251, "250 slices and the leader key");
}
