//! The reflector recovers from a watch whose start revision was compacted by relisting,
//! against real etcd and SQLite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use omtd::resources::Keys;
use omtd::runtime::{reflector, Metrics};
use omtd::store::{
    KeyValue, Lease, LeaseId, ListResult, Result, Revision, Store, Txn, TxnResult, WatchStream,
};
use omtd_test_support::poll;
use omtd_test_support::runtime::store;
use tokio::sync::Notify;

/// Delegates to a real store, but holds the first `watch` call until released, so the test
/// can write and compact in between the reflector's list and its watch.
struct HeldWatch {
    inner: Arc<dyn Store>,
    asked: Notify,
    release: Notify,
    held: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Store for HeldWatch {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        self.inner.list(prefix, revision).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        if !self.held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.asked.notify_one();
            self.release.notified().await;
        }
        self.inner.watch(prefix, from_revision).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.inner.keep_alive(id).await
    }
    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.inner.revoke_lease(id).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

async fn relists_after_compaction(backend: &str) {
    let (real, _guard) = store(backend).await;
    let keys = Keys::for_cluster("compact");
    let p = keys.prefix().to_owned();
    real.put(&format!("{p}test/stays"), b"1".to_vec())
        .await
        .unwrap();
    real.put(&format!("{p}test/goes"), b"1".to_vec())
        .await
        .unwrap();
    real.put(&format!("{p}test/changes"), b"old".to_vec())
        .await
        .unwrap();

    let held = Arc::new(HeldWatch {
        inner: Arc::clone(&real),
        asked: Notify::new(),
        release: Notify::new(),
        held: false.into(),
    });
    let metrics = Arc::new(Metrics::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let (cache, task) = reflector::spawn(
        Arc::clone(&held) as Arc<dyn Store>,
        keys.clone(),
        Arc::clone(&metrics),
        stop.clone(),
    );
    let mut changes = cache.subscribe();
    tokio::time::timeout(Duration::from_secs(5), held.asked.notified())
        .await
        .expect("the reflector never started its watch");
    let listed_at = cache.snapshot().revision;
    assert!(cache.snapshot().raw.contains_key(&format!("{p}test/goes")));

    // Between the list and the watch: changes, then history compacted past the list.
    real.delete(&format!("{p}test/goes")).await.unwrap();
    real.put(&format!("{p}test/changes"), b"new".to_vec())
        .await
        .unwrap();
    let rev = real
        .put(&format!("{p}test/added"), b"1".to_vec())
        .await
        .unwrap();
    real.compact(rev).await.unwrap();
    assert!(listed_at + 1 < rev);
    held.release.notify_one();

    let value = |k: &str| {
        cache
            .snapshot()
            .raw
            .get(&format!("{p}test/{k}"))
            .map(|kv| kv.value.clone())
    };
    assert!(
        poll::within(Duration::from_secs(5))
            .until(|| value("changes").as_deref() == Some(&b"new"[..]))
            .await
            .is_some(),
        "{backend}: the reflector did not recover by relisting"
    );
    assert_eq!(
        value("goes"),
        None,
        "{backend}: a delete during the gap was missed"
    );
    assert_eq!(value("added").as_deref(), Some(&b"1"[..]));
    assert_eq!(value("stays").as_deref(), Some(&b"1"[..]));
    // The relist announced exactly what differs (skipping the first list's announcement,
    // which may or may not have reached the subscriber).
    let mut announced: Vec<String> = Vec::new();
    for _ in 0..3 {
        let batch = tokio::time::timeout(Duration::from_secs(1), changes.recv())
            .await
            .unwrap()
            .unwrap();
        announced = batch.iter().cloned().collect();
        if announced.contains(&format!("{p}test/added")) {
            break;
        }
    }
    announced.sort();
    assert_eq!(
        announced,
        vec![
            format!("{p}test/added"),
            format!("{p}test/changes"),
            format!("{p}test/goes")
        ]
    );
    let text = metrics.encode().unwrap();
    assert_eq!(
        omtd_test_support::runtime::metric(
            &text,
            r#"omtd_watch_restarts_total{reason="compacted"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // And it follows the store again afterwards.
    real.put(&format!("{p}test/after"), b"1".to_vec())
        .await
        .unwrap();
    assert!(
        poll::within(Duration::from_secs(2))
            .until(|| value("after").is_some())
            .await
            .is_some(),
        "{backend}: no watch after the relist"
    );
    assert!(cache.health().borrow().watching);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_relists_etcd() {
    relists_after_compaction("etcd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_relists_sqlite() {
    relists_after_compaction("sqlite").await;
}
