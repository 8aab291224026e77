//! The store conformance suite: one set of tests, written against `dyn Store` only, run against
//! every backend. A backend is correct when it passes all of them; etcd's behaviour is the
//! reference (the SQLite backend must be a drop-in for it).
//!
//! `conformance!(name, fixture)` instantiates the suite in module `name`, so the same test
//! appears as `sqlite::cas_on_mod_revision` and `etcd::cas_on_mod_revision`. Each test gets a
//! fresh store (its own SQLite file, its own etcd server): several tests assert exact revision
//! steps or compact the whole store, which other writers would disturb. Each also keeps to a
//! key prefix of its own, so a failure's leftovers are easy to tell apart.
//!
//! etcd tests start a real `etcd` (Debian's `etcd-server`); see `test-support/src/etcd.rs`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use omtd::store::{
    etcd::EtcdStore, sqlite::SqliteStore, Compare, CompareOp, EventKind, KeyValue, Op, Revision,
    Store, StoreError, Txn, WatchEvent, WatchStream,
};

use omtd::store::sealed::keyring::{MasterKey, SecretKey};
use omtd::store::sealed::{Keyring, SealedStore};
use omtd_test_support::etcd::EtcdServer;

/// Longest any single test may run: a hung backend fails the test instead of the whole run.
const TEST_TIMEOUT: Duration = Duration::from_secs(45);
/// How long to wait for a watch event that should come.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Fixtures

/// A store under test, plus what keeps its data alive and a way to open more handles on the
/// same data (for the racing-writers tests).
struct Fixture {
    store: Arc<dyn Store>,
    backend: Backend,
}

enum Backend {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    /// SQLite behind the secrets-at-rest decorator, with a key: what every omtd command
    /// opens. The suite's keys hold no secrets, so this checks that the decorator passes
    /// the backend's semantics through untouched (`tests/secrets_at_rest.rs` the sealing).
    SealedSqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Etcd(EtcdServer),
}

impl Fixture {
    /// A second, independent handle on the same store (another connection or client).
    async fn open_another(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                Arc::new(SqliteStore::open(path).expect("open a second SQLite handle"))
            }
            Backend::SealedSqlite { path, .. } => sealed(path),
            Backend::Etcd(server) => Arc::new(
                EtcdStore::connect(&server.endpoints())
                    .await
                    .expect("connect a second etcd client"),
            ),
        }
    }
}

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let store = Arc::new(SqliteStore::open(&path).expect("open SQLite store"));
    Fixture {
        store,
        backend: Backend::Sqlite { path, _dir: dir },
    }
}

fn sealed(path: &std::path::Path) -> Arc<dyn Store> {
    let raw = Arc::new(SqliteStore::open(path).expect("open SQLite store"));
    let key = MasterKey {
        id: "conformance".into(),
        key: SecretKey::from_bytes([7; 32]),
    };
    let keyring = Keyring::new(vec![key], vec![]).expect("a keyring");
    Arc::new(SealedStore::new(raw, keyring))
}

async fn sealed_sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    Fixture {
        store: sealed(&path),
        backend: Backend::SealedSqlite { path, _dir: dir },
    }
}

async fn etcd_fixture() -> Fixture {
    // Starting etcd blocks for ~0.5 s; keep the runtime's worker free meanwhile.
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("start etcd");
    let store = Arc::new(
        EtcdStore::connect(&server.endpoints())
            .await
            .expect("connect to etcd"),
    );
    Fixture {
        store,
        backend: Backend::Etcd(server),
    }
}

/// Run one suite test against a fresh fixture, with a deadline.
async fn run<F, Fut>(fixture: impl Future<Output = Fixture>, test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    let fx = fixture.await;
    if tokio::time::timeout(TEST_TIMEOUT, test(fx)).await.is_err() {
        panic!("test did not finish within {TEST_TIMEOUT:?} (a hung store call or watch?)");
    }
}

macro_rules! conformance {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            conformance!(@tests $fixture;
                create_update_delete_revisions,
                get_missing_and_list_empty,
                txn_ops_share_one_revision,
                noop_txn_does_not_bump_revision,
                cas_on_mod_revision,
                absent_and_present_compares,
                value_version_and_create_revision_compares,
                multi_key_txn_is_all_or_nothing,
                failure_branch_runs_atomically,
                large_txn_applies_atomically,
                delete_prefix,
                list_prefix_is_sorted_and_scoped,
                list_at_past_revision,
                list_at_future_revision_fails,
                watch_replays_then_follows,
                watch_from_zero_starts_now,
                compacted_history_fails_watch_and_list,
                lease_expiry_deletes_keys,
                keep_alive_keeps_key_beyond_ttl,
                revoke_deletes_keys,
                put_with_dead_lease_fails,
                racing_cas_one_winner_per_round,
                racing_creates_one_winner,
                concurrent_increments_lose_nothing,
            );
        }
    };
    (@tests $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::run($fixture(), super::$name).await;
            }
        )*
    };
}

conformance!(sqlite, super::sqlite_fixture);
conformance!(sealed_sqlite, super::sealed_sqlite_fixture);
conformance!(etcd, super::etcd_fixture);

// ---------------------------------------------------------------------------------------
// Helpers

/// A key prefix no other test uses.
fn prefix(test: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/conformance/{test}-{}/",
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

async fn must_get(store: &dyn Store, key: &str) -> KeyValue {
    store
        .get(key)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{key} should exist"))
}

async fn value_of(store: &dyn Store, key: &str) -> Option<String> {
    store
        .get(key)
        .await
        .expect("get")
        .map(|kv| String::from_utf8(kv.value).expect("UTF-8 value"))
}

async fn txn(store: &dyn Store, txn: Txn) -> omtd::store::TxnResult {
    store.txn(txn).await.expect("txn")
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

#[track_caller]
fn assert_put(ev: &WatchEvent, key: &str, value: &str, revision: Revision) {
    assert_eq!(ev.kind, EventKind::Put, "{ev:?}");
    assert_eq!(ev.kv.key, key, "{ev:?}");
    assert_eq!(ev.kv.value, value.as_bytes(), "value of {key}");
    assert_eq!(ev.revision(), revision, "{ev:?}");
}

#[track_caller]
fn assert_delete(ev: &WatchEvent, key: &str, revision: Revision) {
    assert_eq!(ev.kind, EventKind::Delete, "{ev:?}");
    assert_eq!(ev.kv.key, key, "{ev:?}");
    assert_eq!(ev.revision(), revision, "{ev:?}");
    assert!(
        ev.kv.value.is_empty(),
        "a delete event carries no value: {ev:?}"
    );
    assert_eq!(
        (ev.kv.create_revision, ev.kv.version, ev.kv.lease),
        (0, 0, None),
        "{ev:?}"
    );
}

/// A watch from a compacted revision must fail with `Compacted`, either at once or as the
/// stream's first (and last) item. Returns `(requested, compacted)`.
async fn expect_watch_compacted(
    store: &dyn Store,
    prefix: &str,
    from: Revision,
) -> (Revision, Revision) {
    let mut stream = match store.watch(prefix, from).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => return (requested, compacted),
        Err(e) => panic!("watch from compacted revision {from}: expected Compacted, got {e:?}"),
        Ok(stream) => stream,
    };
    let found = match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Err(StoreError::Compacted {
            requested,
            compacted,
        }))) => (requested, compacted),
        Ok(Some(Err(e))) => {
            panic!("watch from compacted revision {from}: expected Compacted, got {e:?}")
        }
        Ok(Some(Ok(ev))) => {
            panic!("watch from compacted revision {from} delivered {ev:?} instead of Compacted")
        }
        Ok(None) => panic!("watch from compacted revision {from} ended without an error"),
        Err(_) => panic!(
            "watch from compacted revision {from}: no Compacted error within {EVENT_TIMEOUT:?}"
        ),
    };
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(None) => {}
        Ok(Some(item)) => panic!("watch went on after Compacted: {item:?}"),
        Err(_) => panic!("watch did not end after Compacted"),
    }
    found
}

/// Poll until `key` is gone; returns how long it took, or panics after `limit`.
async fn wait_until_gone(
    store: &dyn Store,
    key: &str,
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        if store.get(key).await.expect("get").is_none() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "{key} still there {:?} after the lease was granted",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Keys and revisions

async fn create_update_delete_revisions(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("crud");
    let k = format!("{p}k");
    assert!(!s.backend().is_empty());

    let r0 = s.current_revision().await.unwrap();
    let r1 = s.put(&k, b"a".to_vec()).await.unwrap();
    assert_eq!(r1, r0 + 1, "a write bumps the revision by exactly one");
    let kv = must_get(s, &k).await;
    assert_eq!(
        (
            kv.key.as_str(),
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease
        ),
        (k.as_str(), &b"a"[..], r1, r1, 1, None)
    );

    let r2 = s.put(&k, b"b".to_vec()).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let kv = must_get(s, &k).await;
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2),
        "update keeps create_revision"
    );
    assert_eq!(kv.value, b"b");

    assert!(
        s.delete(&k).await.unwrap(),
        "delete reports the key existed"
    );
    let r3 = s.current_revision().await.unwrap();
    assert_eq!(r3, r2 + 1, "a delete is a write");
    assert_eq!(s.get(&k).await.unwrap(), None);

    assert!(
        !s.delete(&k).await.unwrap(),
        "deleting a missing key reports false"
    );
    assert_eq!(
        s.current_revision().await.unwrap(),
        r3,
        "deleting a missing key writes nothing"
    );

    let r4 = s.put(&k, b"c".to_vec()).await.unwrap();
    assert_eq!(r4, r3 + 1);
    let kv = must_get(s, &k).await;
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r4, r4, 1),
        "re-creation resets the bookkeeping"
    );
    assert_eq!(s.current_revision().await.unwrap(), r4);
}

async fn get_missing_and_list_empty(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("empty");
    s.put(
        &format!("{}-not-inside", p.trim_end_matches('/')),
        b"x".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(s.get(&format!("{p}missing")).await.unwrap(), None);
    let cur = s.current_revision().await.unwrap();
    let list = s.list(&p, None).await.unwrap();
    assert!(list.kvs.is_empty(), "{list:?}");
    assert_eq!(
        list.revision, cur,
        "a list at the current revision reports it"
    );
}

async fn txn_ops_share_one_revision(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("onerev");
    let (a, b, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    s.put(&c, b"old".to_vec()).await.unwrap();
    let before = s.current_revision().await.unwrap();

    let res = txn(
        s,
        Txn::new()
            .then(Op::put(&a, "1"))
            .then(Op::put(&b, "2"))
            .then(Op::delete(&c)),
    )
    .await;
    assert!(res.succeeded);
    assert_eq!(
        res.revision,
        before + 1,
        "one transaction is one revision, however many ops"
    );
    assert_eq!(s.current_revision().await.unwrap(), res.revision);
    for key in [&a, &b] {
        let kv = must_get(s, key).await;
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.version),
            (res.revision, res.revision, 1),
            "{key}"
        );
    }
    assert_eq!(s.get(&c).await.unwrap(), None);
}

async fn noop_txn_does_not_bump_revision(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("noop");
    let k = format!("{p}k");
    s.put(&k, b"v".to_vec()).await.unwrap();
    let before = s.current_revision().await.unwrap();

    // Compare fails and the failure branch is empty.
    let res = txn(
        s,
        Txn::new().when(Compare::absent(&k)).then(Op::put(&k, "w")),
    )
    .await;
    assert!(!res.succeeded);
    assert_eq!(
        res.revision, before,
        "a txn that writes nothing keeps the revision"
    );

    // Only deletes of missing keys.
    let res = txn(
        s,
        Txn::new()
            .then(Op::delete(format!("{p}missing")))
            .then(Op::delete_prefix(format!("{p}none/"))),
    )
    .await;
    assert!(res.succeeded);
    assert_eq!(
        res.revision, before,
        "deleting only missing keys writes nothing"
    );
    assert_eq!(s.current_revision().await.unwrap(), before);
}

async fn cas_on_mod_revision(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("cas");
    let k = format!("{p}k");
    let r1 = s.put(&k, b"v1".to_vec()).await.unwrap();

    let ok = txn(
        s,
        Txn::new()
            .when(Compare::mod_revision(&k, CompareOp::Equal, r1))
            .then(Op::put(&k, "v2")),
    )
    .await;
    assert!(ok.succeeded, "CAS on the current mod revision succeeds");
    assert_eq!(ok.revision, r1 + 1);

    let stale = txn(
        s,
        Txn::new()
            .when(Compare::mod_revision(&k, CompareOp::Equal, r1))
            .then(Op::put(&k, "v3")),
    )
    .await;
    assert!(!stale.succeeded, "CAS on a stale mod revision fails");
    assert_eq!(stale.revision, ok.revision, "a failed CAS writes nothing");
    let kv = must_get(s, &k).await;
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision, kv.version),
        (&b"v2"[..], ok.revision, 2)
    );

    // Ordering compares on the mod revision.
    let lt = txn(
        s,
        Txn::new().when(Compare::mod_revision(&k, CompareOp::Less, ok.revision + 1)),
    )
    .await;
    assert!(lt.succeeded);
    let gt = txn(
        s,
        Txn::new().when(Compare::mod_revision(&k, CompareOp::Greater, ok.revision)),
    )
    .await;
    assert!(!gt.succeeded);
    let ne = txn(
        s,
        Txn::new().when(Compare::mod_revision(&k, CompareOp::NotEqual, r1)),
    )
    .await;
    assert!(ne.succeeded);
}

async fn absent_and_present_compares(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("presence");
    let k = format!("{p}k");

    let res = txn(
        s,
        Txn::new().when(Compare::present(&k)).then(Op::put(&k, "x")),
    )
    .await;
    assert!(!res.succeeded, "present() fails on a missing key");
    assert_eq!(s.get(&k).await.unwrap(), None);

    let created = txn(
        s,
        Txn::new()
            .when(Compare::absent(&k))
            .then(Op::put(&k, "first")),
    )
    .await;
    assert!(created.succeeded, "absent() holds on a missing key");

    let again = txn(
        s,
        Txn::new()
            .when(Compare::absent(&k))
            .then(Op::put(&k, "second")),
    )
    .await;
    assert!(!again.succeeded, "absent() fails once the key exists");
    assert_eq!(value_of(s, &k).await.as_deref(), Some("first"));

    let res = txn(
        s,
        Txn::new()
            .when(Compare::present(&k))
            .then(Op::put(&k, "third")),
    )
    .await;
    assert!(res.succeeded, "present() holds on an existing key");
    assert_eq!(value_of(s, &k).await.as_deref(), Some("third"));

    // A deleted key is absent again.
    s.delete(&k).await.unwrap();
    let res = txn(
        s,
        Txn::new()
            .when(Compare::absent(&k))
            .then(Op::put(&k, "fourth")),
    )
    .await;
    assert!(res.succeeded, "absent() holds after a delete");
}

async fn value_version_and_create_revision_compares(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("targets");
    let k = format!("{p}k");
    let missing = format!("{p}missing");
    let r1 = s.put(&k, b"one".to_vec()).await.unwrap();
    s.put(&k, b"two".to_vec()).await.unwrap();

    let holds = |c: Compare| async move { txn(s, Txn::new().when(c)).await.succeeded };
    assert!(holds(Compare::value(&k, CompareOp::Equal, "two")).await);
    assert!(!holds(Compare::value(&k, CompareOp::Equal, "one")).await);
    assert!(holds(Compare::value(&k, CompareOp::NotEqual, "one")).await);
    assert!(
        holds(Compare::value(&k, CompareOp::Greater, "tw")).await,
        "values compare as bytes"
    );
    assert!(holds(Compare::value(&k, CompareOp::Less, "twp")).await);
    // etcd: any value compare on a missing key fails, NotEqual included.
    assert!(!holds(Compare::value(&missing, CompareOp::Equal, "")).await);
    assert!(
        !holds(Compare::value(&missing, CompareOp::NotEqual, "x")).await,
        "value != x on a missing key fails (etcd)"
    );

    assert!(holds(Compare::version(&k, CompareOp::Equal, 2)).await);
    assert!(holds(Compare::version(&k, CompareOp::Greater, 1)).await);
    assert!(
        holds(Compare::version(&missing, CompareOp::Equal, 0)).await,
        "a missing key has version 0"
    );

    assert!(
        holds(Compare::create_revision(&k, CompareOp::Equal, r1)).await,
        "create revision survives updates"
    );
    assert!(!holds(Compare::create_revision(&k, CompareOp::NotEqual, r1)).await);
    assert!(holds(Compare::create_revision(&missing, CompareOp::Equal, 0)).await);

    // Several compares: all must hold.
    let both = Txn::new()
        .when(Compare::version(&k, CompareOp::Equal, 2))
        .when(Compare::value(&k, CompareOp::Equal, "one"));
    assert!(!txn(s, both).await.succeeded);
}

async fn multi_key_txn_is_all_or_nothing(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("atomic");
    let (a, b, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let ra = s.put(&a, b"a0".to_vec()).await.unwrap();
    let rb = s.put(&b, b"b0".to_vec()).await.unwrap();
    s.put(&b, b"b1".to_vec()).await.unwrap(); // b's rb is now stale
    let before = s.current_revision().await.unwrap();

    let update = |rb: Revision| {
        Txn::new()
            .when(Compare::mod_revision(&a, CompareOp::Equal, ra))
            .when(Compare::mod_revision(&b, CompareOp::Equal, rb))
            .then(Op::put(&a, "a2"))
            .then(Op::put(&b, "b2"))
            .then(Op::put(&c, "c2"))
    };
    let res = txn(s, update(rb)).await;
    assert!(!res.succeeded, "one stale compare fails the whole txn");
    assert_eq!(res.revision, before);
    assert_eq!(value_of(s, &a).await.as_deref(), Some("a0"));
    assert_eq!(value_of(s, &b).await.as_deref(), Some("b1"));
    assert_eq!(
        value_of(s, &c).await,
        None,
        "nothing of a failed txn is applied"
    );

    let rb = must_get(s, &b).await.mod_revision;
    let res = txn(s, update(rb)).await;
    assert!(res.succeeded);
    assert_eq!(res.revision, before + 1);
    for (key, val) in [(&a, "a2"), (&b, "b2"), (&c, "c2")] {
        let kv = must_get(s, key).await;
        assert_eq!(
            (kv.value.as_slice(), kv.mod_revision),
            (val.as_bytes(), res.revision),
            "{key}"
        );
    }
}

async fn failure_branch_runs_atomically(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("orelse");
    let (k, f1, f2) = (format!("{p}k"), format!("{p}f1"), format!("{p}f2"));
    s.put(&k, b"taken".to_vec()).await.unwrap();
    s.put(&f2, b"to-delete".to_vec()).await.unwrap();
    let before = s.current_revision().await.unwrap();

    let res = txn(
        s,
        Txn::new()
            .when(Compare::absent(&k))
            .then(Op::put(&k, "mine"))
            .or_else(Op::put(&f1, "fallback"))
            .or_else(Op::delete(&f2)),
    )
    .await;
    assert!(!res.succeeded, "the compare failed");
    assert_eq!(
        res.revision,
        before + 1,
        "the failure branch wrote, in one revision"
    );
    assert_eq!(
        value_of(s, &k).await.as_deref(),
        Some("taken"),
        "the success branch did not run"
    );
    let kv = must_get(s, &f1).await;
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"fallback"[..], res.revision)
    );
    assert_eq!(s.get(&f2).await.unwrap(), None);
}

async fn large_txn_applies_atomically(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("large");
    // As many operations as the backend says one transaction takes (etcd's stock 128;
    // 1,000 where there is no limit) commit as one, at one revision.
    let n = s.max_txn_ops().min(1000) - 1;
    let mut t = Txn::new()
        .when(Compare::absent(format!("{p}marker")))
        .then(Op::put(format!("{p}marker"), "m"));
    for i in 0..n {
        t = t.then(Op::put(format!("{p}obj/{i:04}"), format!("value {i}")));
    }
    let res = txn(s, t).await;
    assert!(res.succeeded);
    let list = s.list(&format!("{p}obj/"), None).await.unwrap();
    assert_eq!(list.kvs.len(), n);
    assert!(list.kvs.iter().all(|kv| kv.mod_revision == res.revision));
}

async fn delete_prefix(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("delprefix");
    let dir = format!("{p}dir/");
    for key in ["a", "b", "sub/c"] {
        s.put(&format!("{dir}{key}"), b"x".to_vec()).await.unwrap();
    }
    // Keys that share the prefix's text but not the prefix.
    let sibling = format!("{p}dir"); // the prefix without its trailing slash
    let lookalike = format!("{p}dir-2/a");
    s.put(&sibling, b"keep".to_vec()).await.unwrap();
    s.put(&lookalike, b"keep".to_vec()).await.unwrap();
    let before = s.current_revision().await.unwrap();

    let res = txn(s, Txn::new().then(Op::delete_prefix(&dir))).await;
    assert!(res.succeeded);
    assert_eq!(
        res.revision,
        before + 1,
        "one revision for the whole prefix"
    );
    assert!(s.list(&dir, None).await.unwrap().kvs.is_empty());
    assert_eq!(value_of(s, &sibling).await.as_deref(), Some("keep"));
    assert_eq!(value_of(s, &lookalike).await.as_deref(), Some("keep"));
}

async fn list_prefix_is_sorted_and_scoped(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("list");
    let inside = ["b", "a/2", "c", "a/1", "a"];
    for key in inside {
        s.put(&format!("{p}{key}"), key.as_bytes().to_vec())
            .await
            .unwrap();
    }
    s.put(&p, b"the prefix itself".to_vec()).await.unwrap();
    let outside = p.trim_end_matches('/').to_owned();
    s.put(&outside, b"outside".to_vec()).await.unwrap();
    s.put(&format!("{outside}0/x"), b"outside".to_vec())
        .await
        .unwrap();

    let list = s.list(&p, None).await.unwrap();
    let keys: Vec<&str> = list.kvs.iter().map(|kv| kv.key.as_str()).collect();
    let want: Vec<String> = ["", "a", "a/1", "a/2", "b", "c"]
        .iter()
        .map(|k| format!("{p}{k}"))
        .collect();
    assert_eq!(keys, want, "keys starting with the prefix, sorted by key");
    assert_eq!(list.revision, s.current_revision().await.unwrap());
    let a1 = list.kvs.iter().find(|kv| kv.key.ends_with("a/1")).unwrap();
    assert_eq!(a1.value, b"a/1");
}

async fn list_at_past_revision(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("mvcc");
    let (a, b, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    // A write first, so that "before a" is a real revision (0 would mean "current").
    s.put(
        &format!("{}-outside", p.trim_end_matches('/')),
        b"x".to_vec(),
    )
    .await
    .unwrap();
    let r1 = s.put(&a, b"a1".to_vec()).await.unwrap();
    let r2 = s.put(&b, b"b1".to_vec()).await.unwrap();
    let r3 = s.put(&a, b"a2".to_vec()).await.unwrap();
    s.delete(&b).await.unwrap();
    let r4 = s.current_revision().await.unwrap();
    s.put(&c, b"c1".to_vec()).await.unwrap();

    let at = |rev: Revision| {
        let p = p.clone();
        async move {
            let list = s.list(&p, Some(rev)).await.unwrap();
            assert_eq!(
                list.revision, rev,
                "a list at a past revision reports that revision"
            );
            list.kvs
                .into_iter()
                .map(|kv| {
                    (
                        kv.key,
                        String::from_utf8(kv.value).unwrap(),
                        kv.mod_revision,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(at(r1 - 1).await, vec![], "before anything was written");
    assert_eq!(
        at(r2).await,
        vec![(a.clone(), "a1".into(), r1), (b.clone(), "b1".into(), r2)],
        "the old value and the since-deleted key"
    );
    assert_eq!(
        at(r3).await,
        vec![(a.clone(), "a2".into(), r3), (b.clone(), "b1".into(), r2)]
    );
    assert_eq!(
        at(r4).await,
        vec![(a.clone(), "a2".into(), r3)],
        "b deleted at r4"
    );
    let now = s.list(&p, None).await.unwrap();
    assert_eq!(
        now.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        vec![a.as_str(), c.as_str()]
    );

    // The past version keeps its own bookkeeping.
    let past = s.list(&a, Some(r1)).await.unwrap();
    assert_eq!((past.kvs[0].create_revision, past.kvs[0].version), (r1, 1));
}

async fn list_at_future_revision_fails(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("future");
    s.put(&format!("{p}k"), b"v".to_vec()).await.unwrap();
    let cur = s.current_revision().await.unwrap();
    match s.list(&p, Some(cur + 10)).await {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (cur + 10, cur))
        }
        other => panic!("list at a future revision: expected FutureRevision, got {other:?}"),
    }
    // The current revision itself is not in the future.
    assert_eq!(s.list(&p, Some(cur)).await.unwrap().kvs.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Watches

async fn watch_replays_then_follows(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("watch");
    let (a, b, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let outside = format!("{}-outside/x", p.trim_end_matches('/'));

    let r1 = s.put(&a, b"a1".to_vec()).await.unwrap();
    let r2 = s.put(&b, b"b1".to_vec()).await.unwrap();
    s.put(&outside, b"nope".to_vec()).await.unwrap();
    s.delete(&a).await.unwrap();
    let r3 = s.current_revision().await.unwrap();
    let pair = txn(
        s,
        Txn::new().then(Op::put(&a, "a2")).then(Op::put(&c, "c1")),
    )
    .await
    .revision;

    // Replay from the past, in revision order, deletes included.
    let mut w = s.watch(&p, r1).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_put(&ev, &a, "a1", r1);
    assert_eq!((ev.kv.create_revision, ev.kv.version), (r1, 1));
    assert_put(&next_event(&mut w).await, &b, "b1", r2);
    assert_delete(&next_event(&mut w).await, &a, r3);
    // Both puts of one txn, at its one revision.
    let (e1, e2) = (next_event(&mut w).await, next_event(&mut w).await);
    let mut got = [
        (e1.kv.key.clone(), e1.revision()),
        (e2.kv.key.clone(), e2.revision()),
    ];
    got.sort();
    assert_eq!(got, [(a.clone(), pair), (c.clone(), pair)]);

    // Then live changes, deletes included; a key outside the prefix is not delivered (it
    // would come before the next inside event).
    s.put(&outside, b"still nope".to_vec()).await.unwrap();
    let r5 = s.put(&b, b"b2".to_vec()).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_put(&ev, &b, "b2", r5);
    assert_eq!(
        (ev.kv.create_revision, ev.kv.version),
        (r2, 2),
        "a watched put carries the key's bookkeeping"
    );
    s.delete(&c).await.unwrap();
    let r6 = s.current_revision().await.unwrap();
    assert_delete(&next_event(&mut w).await, &c, r6);
    let r7 = txn(s, Txn::new().then(Op::delete_prefix(&p)))
        .await
        .revision;
    let (e1, e2) = (next_event(&mut w).await, next_event(&mut w).await);
    let mut deleted = [e1.kv.key.clone(), e2.kv.key.clone()];
    deleted.sort();
    assert_eq!(deleted, [a.clone(), b.clone()]);
    assert_delete(&e1, &e1.kv.key, r7);
    assert_delete(&e2, &e2.kv.key, r7);

    // A second watch from a middle revision starts there.
    let mut w2 = s.watch(&p, r3).await.unwrap();
    assert_delete(&next_event(&mut w2).await, &a, r3);
}

async fn watch_from_zero_starts_now(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("watchnow");
    s.put(&format!("{p}before"), b"old".to_vec()).await.unwrap();
    let mut w = s.watch(&p, 0).await.unwrap();
    // Written right after `watch` returned: must be seen, and nothing older.
    let r = s.put(&format!("{p}after"), b"new".to_vec()).await.unwrap();
    assert_put(&next_event(&mut w).await, &format!("{p}after"), "new", r);
}

async fn compacted_history_fails_watch_and_list(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("compact");
    let keys: Vec<String> = (1..=4).map(|i| format!("{p}k{i}")).collect();
    let mut revs = Vec::new();
    for key in &keys {
        revs.push(s.put(key, b"v".to_vec()).await.unwrap());
    }
    let (r1, r2, r3, r4) = (revs[0], revs[1], revs[2], revs[3]);
    s.compact(r3).await.unwrap();

    // Older than the compaction revision: gone, with a clear error naming both revisions.
    let (requested, compacted) = expect_watch_compacted(s, &p, r2).await;
    assert_eq!(
        (requested, compacted),
        (r2, r3),
        "watch from {r2} after compacting at {r3}"
    );
    let (requested, compacted) = expect_watch_compacted(s, &p, r1).await;
    assert_eq!((requested, compacted), (r1, r3));
    match s.list(&p, Some(r2)).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (r2, r3)),
        other => panic!("list at compacted revision {r2}: expected Compacted, got {other:?}"),
    }
    let msg = s.list(&p, Some(r1)).await.unwrap_err().to_string();
    assert!(
        msg.contains("compacted"),
        "the error says what happened: {msg}"
    );

    // The compaction revision itself is still readable and watchable (etcd's rule: only
    // revisions below it are gone).
    let list = s.list(&p, Some(r3)).await.unwrap();
    assert_eq!(
        list.kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        keys[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut w = s.watch(&p, r3).await.unwrap();
    assert_put(&next_event(&mut w).await, &keys[2], "v", r3);
    assert_put(&next_event(&mut w).await, &keys[3], "v", r4);

    // Current state is untouched by compaction.
    assert_eq!(s.list(&p, None).await.unwrap().kvs.len(), 4);
}

// ---------------------------------------------------------------------------------------
// Leases

async fn lease_expiry_deletes_keys(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("expiry");
    let k = format!("{p}k");
    let mut w = s.watch(&p, 0).await.unwrap();

    let granted_at = Instant::now();
    let lease = s.grant_lease(Duration::from_secs(1)).await.unwrap();
    // etcd raises TTLs to 1.5 × its election timeout; the test server's 0.5 s allows 1 s.
    assert_eq!(
        lease.ttl,
        Duration::from_secs(1),
        "a 1 s lease is granted as 1 s"
    );
    let r = txn(
        s,
        Txn::new().then(Op::put_with_lease(&k, "alive", lease.id)),
    )
    .await
    .revision;
    let kv = must_get(s, &k).await;
    assert_eq!(kv.lease, Some(lease.id));
    assert_put(&next_event(&mut w).await, &k, "alive", r);

    // Shortly before the TTL the key must still be there...
    tokio::time::sleep(
        (lease.ttl - Duration::from_millis(300)).saturating_sub(granted_at.elapsed()),
    )
    .await;
    assert!(
        s.get(&k).await.unwrap().is_some(),
        "{k} vanished before its lease's TTL ({:?})",
        granted_at.elapsed()
    );
    // ...and gone soon after it (etcd checks expiry every 0.5 s, so allow slack).
    let took = wait_until_gone(s, &k, granted_at, lease.ttl + Duration::from_secs(3)).await;
    assert!(
        took >= lease.ttl - Duration::from_millis(300),
        "expired after {took:?}"
    );

    let ev = next_event(&mut w).await;
    assert_eq!(
        (ev.kind, ev.kv.key.as_str()),
        (EventKind::Delete, k.as_str()),
        "the watch sees the expiry: {ev:?}"
    );
    match s.keep_alive(lease.id).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease.id),
        other => panic!("keep_alive of an expired lease: expected LeaseNotFound, got {other:?}"),
    }
}

async fn keep_alive_keeps_key_beyond_ttl(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("keepalive");
    let k = format!("{p}k");
    let granted_at = Instant::now();
    let lease = s.grant_lease(Duration::from_millis(1)).await.unwrap();
    assert_eq!(
        lease.ttl,
        Duration::from_secs(1),
        "TTLs round up to whole seconds, at least 1 s"
    );
    txn(
        s,
        Txn::new().then(Op::put_with_lease(&k, "alive", lease.id)),
    )
    .await;

    while granted_at.elapsed() < lease.ttl * 5 / 2 {
        tokio::time::sleep(lease.ttl / 4).await;
        let ttl = s.keep_alive(lease.id).await.unwrap();
        assert_eq!(ttl, lease.ttl, "keep_alive returns the lease's TTL");
    }
    assert!(
        s.get(&k).await.unwrap().is_some(),
        "{k} expired although kept alive"
    );
    // Left alone, it expires, and the next keep-alive (etcd: over the stream the earlier
    // ones kept open) says so.
    let last = Instant::now();
    wait_until_gone(s, &k, last, lease.ttl + Duration::from_secs(3)).await;
    match s.keep_alive(lease.id).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease.id),
        other => panic!("keep_alive once expired: expected LeaseNotFound, got {other:?}"),
    }
}

async fn revoke_deletes_keys(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("revoke");
    let (k1, k2, free) = (format!("{p}k1"), format!("{p}k2"), format!("{p}free"));
    let lease = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    txn(
        s,
        Txn::new()
            .then(Op::put_with_lease(&k1, "1", lease.id))
            .then(Op::put_with_lease(&k2, "2", lease.id)),
    )
    .await;
    s.put(&free, b"3".to_vec()).await.unwrap();
    let mut w = s.watch(&p, 0).await.unwrap();

    s.revoke_lease(lease.id).await.unwrap();
    assert_eq!(
        s.get(&k1).await.unwrap(),
        None,
        "revoke deletes the lease's keys at once"
    );
    assert_eq!(s.get(&k2).await.unwrap(), None);
    assert!(
        s.get(&free).await.unwrap().is_some(),
        "keys without the lease stay"
    );
    let (e1, e2) = (next_event(&mut w).await, next_event(&mut w).await);
    assert_eq!((e1.kind, e2.kind), (EventKind::Delete, EventKind::Delete));
    assert_eq!(
        e1.revision(),
        e2.revision(),
        "one revision for all of the lease's keys"
    );

    assert!(
        matches!(s.keep_alive(lease.id).await, Err(StoreError::LeaseNotFound(id)) if id == lease.id)
    );
    match s
        .txn(Txn::new().then(Op::put_with_lease(&k1, "again", lease.id)))
        .await
    {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease.id),
        other => panic!("put with a revoked lease: expected LeaseNotFound, got {other:?}"),
    }
}

async fn put_with_dead_lease_fails(fx: Fixture) {
    let s = &*fx.store;
    let p = prefix("deadlease");
    let k = format!("{p}k");
    let never_granted = 0x0bad_1ea5e;
    let before = s.current_revision().await.unwrap();
    match s
        .txn(
            Txn::new()
                .then(Op::put(format!("{p}other"), "x"))
                .then(Op::put_with_lease(&k, "v", never_granted)),
        )
        .await
    {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, never_granted),
        other => panic!("put with an unknown lease: expected LeaseNotFound, got {other:?}"),
    }
    assert_eq!(
        s.current_revision().await.unwrap(),
        before,
        "nothing of the txn was applied"
    );
    assert_eq!(s.get(&format!("{p}other")).await.unwrap(), None);
    assert!(matches!(
        s.keep_alive(never_granted).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Concurrency: two handles (two SQLite connections, two etcd clients) on one store

async fn racing_cas_one_winner_per_round(fx: Fixture) {
    let s1 = fx.store.clone();
    let s2 = fx.open_another().await;
    let k = format!("{}counter", prefix("race"));
    s1.put(&k, b"0".to_vec()).await.unwrap();

    for round in 1..=20u32 {
        // Both read the same revision, then both try to swap it.
        let seen = must_get(&*s1, &k).await;
        assert_eq!(
            must_get(&*s2, &k).await.mod_revision,
            seen.mod_revision,
            "both handles see the same state"
        );
        let cas = |s: Arc<dyn Store>, who: &'static str| {
            let k = k.clone();
            async move {
                let t = Txn::new()
                    .when(Compare::mod_revision(
                        &k,
                        CompareOp::Equal,
                        seen.mod_revision,
                    ))
                    .then(Op::put(&k, format!("{round}:{who}")));
                s.txn(t).await.unwrap().succeeded
            }
        };
        let (w1, w2) = tokio::join!(
            tokio::spawn(cas(s1.clone(), "one")),
            tokio::spawn(cas(s2.clone(), "two"))
        );
        let (w1, w2) = (w1.unwrap(), w2.unwrap());
        assert!(
            w1 ^ w2,
            "round {round}: exactly one CAS must win (one: {w1}, two: {w2})"
        );
        let winner = if w1 { "one" } else { "two" };
        assert_eq!(value_of(&*s2, &k).await, Some(format!("{round}:{winner}")));
    }
    assert_eq!(must_get(&*s1, &k).await.version, 21);
}

async fn racing_creates_one_winner(fx: Fixture) {
    let s1 = fx.store.clone();
    let s2 = fx.open_another().await;
    let p = prefix("create-race");
    for round in 0..20 {
        let k = format!("{p}{round}");
        let create = |s: Arc<dyn Store>, who: &'static str| {
            let k = k.clone();
            async move {
                s.txn(Txn::new().when(Compare::absent(&k)).then(Op::put(&k, who)))
                    .await
                    .unwrap()
                    .succeeded
            }
        };
        let (w1, w2) = tokio::join!(
            tokio::spawn(create(s1.clone(), "one")),
            tokio::spawn(create(s2.clone(), "two"))
        );
        let (w1, w2) = (w1.unwrap(), w2.unwrap());
        assert!(
            w1 ^ w2,
            "round {round}: exactly one create must win (one: {w1}, two: {w2})"
        );
        assert_eq!(
            value_of(&*s1, &k).await.as_deref(),
            Some(if w1 { "one" } else { "two" })
        );
    }
}

async fn concurrent_increments_lose_nothing(fx: Fixture) {
    let stores = [fx.store.clone(), fx.open_another().await];
    let k = format!("{}counter", prefix("incr"));
    stores[0].put(&k, b"0".to_vec()).await.unwrap();

    // 20 tasks over two handles, each adds one with a read-CAS-retry loop.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = stores[i % 2].clone();
            let k = k.clone();
            tokio::spawn(async move {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 200, "increment {i} starved");
                    let kv = must_get(&*s, &k).await;
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let t = Txn::new()
                        .when(Compare::mod_revision(&k, CompareOp::Equal, kv.mod_revision))
                        .then(Op::put(&k, (n + 1).to_string()));
                    if s.txn(t).await.unwrap().succeeded {
                        return;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let kv = must_get(&*stores[1], &k).await;
    assert_eq!(kv.value, b"20", "every successful CAS counted once");
    assert_eq!(kv.version, 21);
}

// ---------------------------------------------------------------------------------------
// etcd only: what has no SQLite counterpart

mod etcd_only {
    use super::*;
    use omtd_test_support::etcd::EtcdCluster;

    #[tokio::test]
    async fn open_from_store_url() {
        let server = tokio::task::spawn_blocking(EtcdServer::start)
            .await
            .unwrap();
        let url: omtd::store::StoreUrl = server.url().parse().unwrap();
        let store = omtd::store::open(&url).await.unwrap();
        assert_eq!(store.backend(), "etcd");
        store.put("/url/k", b"v".to_vec()).await.unwrap();
        assert!(store.get("/url/k").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn watch_ends_with_unavailable_when_etcd_dies() {
        let mut server = tokio::task::spawn_blocking(EtcdServer::start)
            .await
            .unwrap();
        let store = EtcdStore::connect(&server.endpoints()).await.unwrap();
        let mut w = store.watch("/dies/", 0).await.unwrap();
        let r = store.put("/dies/k", b"v".to_vec()).await.unwrap();
        assert_put(&next_event(&mut w).await, "/dies/k", "v", r);

        server.kill();
        match tokio::time::timeout(Duration::from_secs(20), w.next()).await {
            Ok(Some(Err(StoreError::Unavailable(msg)))) => {
                assert!(
                    msg.contains(&server.endpoint()),
                    "names the endpoint: {msg}"
                )
            }
            other => panic!("expected Unavailable after etcd died, got {other:?}"),
        }
        assert!(
            matches!(
                tokio::time::timeout(Duration::from_secs(5), w.next()).await,
                Ok(None)
            ),
            "then ends"
        );
        match tokio::time::timeout(Duration::from_secs(20), store.get("/dies/k")).await {
            Ok(Err(StoreError::Unavailable(msg))) => {
                assert!(msg.contains(&server.endpoint()), "{msg}")
            }
            other => panic!("expected Unavailable from a get on a dead etcd, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_member_cluster_survives_losing_one() {
        let mut cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(3))
            .await
            .unwrap();
        let store = EtcdStore::connect(&cluster.endpoints()).await.unwrap();
        let r1 = store.put("/cluster/k", b"1".to_vec()).await.unwrap();
        let mut w = store.watch("/cluster/", r1).await.unwrap();
        assert_put(&next_event(&mut w).await, "/cluster/k", "1", r1);

        cluster.kill_member(0);
        // If that was the leader, writes in flight during the election time out (etcd answers
        // "request timed out", Unavailable to us): retry until a new leader takes them.
        let started = Instant::now();
        let r2 = loop {
            match store.put("/cluster/k", b"2".to_vec()).await {
                Ok(rev) => break rev,
                Err(StoreError::Unavailable(_)) if started.elapsed() < Duration::from_secs(25) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!(
                    "put after losing one member of three ({:?} in): {e}",
                    started.elapsed()
                ),
            }
        };
        // From then on the client keeps the dead member in rotation and the store must route
        // around it (a request that could not connect is resent), so nothing may fail.
        let mut last = r2;
        for i in 0..30 {
            let rev = store
                .put("/cluster/k", i.to_string().into_bytes())
                .await
                .unwrap_or_else(|e| panic!("put {i} after the failover: {e}"));
            assert!(rev > last);
            last = rev;
            let kv = store
                .get("/cluster/k")
                .await
                .unwrap_or_else(|e| panic!("get {i}: {e}"));
            assert_eq!(kv.map(|kv| kv.mod_revision), Some(rev));
        }
    }
}
