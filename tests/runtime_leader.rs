//! Leader election and fencing against real etcd and SQLite: one leader at a time, a fast
//! handover on resign, and a deposed leader's write refused by the store.

use std::sync::Arc;
use std::time::Duration;

use omtd::resources::Keys;
use omtd::runtime::events::EventRecorder;
use omtd::runtime::leader::{ElectionConfig, Elector, Leadership};
use omtd::runtime::writer::{WriteError, Writer};
use omtd::runtime::{Metrics, Outcome, Snapshot};
use omtd::store::Store;
use omtd_crds::plan::PlanSlice;
use omtd_test_support::poll;
use omtd_test_support::runtime::store;
use tokio::time::Instant;

fn elector(store: &Arc<dyn Store>, keys: &Keys, who: &str) -> Elector {
    Elector::spawn(
        Arc::clone(store),
        ElectionConfig {
            key: keys.leader(),
            identity: who.into(),
            ttl: Duration::from_secs(2),
            renew_every: Duration::from_millis(500),
        },
        Arc::new(Metrics::new()),
    )
}

fn writer(store: &Arc<dyn Store>, keys: &Keys, token: i64) -> Writer {
    let metrics = Arc::new(Metrics::new());
    let events = Arc::new(EventRecorder::new(
        Arc::clone(store),
        keys.clone(),
        Duration::from_secs(60),
    ));
    Writer::new(Arc::clone(store), keys.clone(), token, metrics, events)
}

fn slice_outcome(node: &str) -> Outcome {
    Outcome {
        plans: vec![(node.into(), Some(PlanSlice::default()))],
        ..Outcome::default()
    }
}

async fn role_of(e: &Elector, timeout: Duration, leader: bool) -> Option<i64> {
    let rx = e.watch();
    let _ = poll::within(timeout)
        .until(|| rx.borrow().token().is_some() == leader)
        .await;
    let role = *rx.borrow();
    role.token()
}

async fn fencing(backend: &str) {
    let (store, _guard) = store(backend).await;
    let keys = Keys::for_cluster("election");
    let a = elector(&store, &keys, "a");
    let t1 = role_of(&a, Duration::from_secs(5), true)
        .await
        .expect("a never became the leader");
    let b = elector(&store, &keys, "b");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        *b.watch().borrow(),
        Leadership::Follower,
        "{backend}: two leaders"
    );
    let held = store.get(&keys.leader()).await.unwrap().unwrap();
    assert_eq!(held.create_revision, t1);
    assert_eq!(held.value, b"a");

    // The leader writes; its slice carries its token.
    let wa = writer(&store, &keys, t1);
    wa.write(
        "probe",
        &Snapshot::default(),
        &slice_outcome("n1"),
        std::time::SystemTime::now(),
    )
    .await
    .expect("the leader's write");
    let slice: PlanSlice = serde_json::from_slice(
        &store
            .get(&keys.plan("n1", "probe"))
            .await
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    assert_eq!(
        (slice.controller.as_str(), slice.fencing_token),
        ("probe", t1)
    );

    // a's lease is lost (as when it hangs past its TTL): b takes over with a higher token.
    let Leadership::Leader { lease, .. } = *a.watch().borrow() else {
        panic!("a is not leading");
    };
    let lost_at = Instant::now();
    store.revoke_lease(lease).await.unwrap();
    let t2 = role_of(&b, Duration::from_secs(5), true)
        .await
        .expect("b never took over");
    eprintln!(
        "{backend}: b leads {:?} after a's lease went",
        lost_at.elapsed()
    );
    assert!(t2 > t1);

    // a's late write is refused by the store, not merely skipped by a.
    let before = store.get(&keys.plan("n2", "probe")).await.unwrap();
    match wa
        .write(
            "probe",
            &Snapshot::default(),
            &slice_outcome("n2"),
            std::time::SystemTime::now(),
        )
        .await
    {
        Err(WriteError::Fenced { token }) => assert_eq!(token, t1),
        other => panic!("{backend}: a deposed leader's write was not fenced: {other:?}"),
    }
    assert_eq!(store.get(&keys.plan("n2", "probe")).await.unwrap(), before);
    assert_eq!(
        role_of(&a, Duration::from_secs(3), false).await,
        None,
        "{backend}: a still thinks it leads"
    );

    // Resigning hands over at once (no waiting for the TTL).
    let resigned_at = Instant::now();
    b.resign().await;
    let t3 = role_of(&a, Duration::from_secs(5), true)
        .await
        .expect("a never took over after b resigned");
    let handover = resigned_at.elapsed();
    eprintln!("{backend}: handover after resign took {handover:?}");
    assert!(
        handover < Duration::from_millis(1500),
        "{backend}: {handover:?}"
    );
    assert!(t3 > t2);
    a.resign().await;
    assert_eq!(store.get(&keys.leader()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_deposed_write_is_fenced_etcd() {
    fencing("etcd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_deposed_write_is_fenced_sqlite() {
    fencing("sqlite").await;
}
