//! SQLite-specific behaviour: several stores (as several processes would) on one file,
//! write-lock races, expiry without writers, reopening, and the file checks. The generic
//! semantics are covered by the conformance suite in `tests/store_conformance.rs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tempfile::TempDir;

use super::watch::{CHANNEL_CAPACITY, REVISIONS_PER_FETCH};
use super::*;

fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("omtd.db");
    (dir, path)
}

async fn next_event(stream: &mut WatchStream, within: Duration) -> WatchEvent {
    tokio::time::timeout(within, stream.next())
        .await
        .expect("no watch event in time")
        .expect("watch stream ended")
        .expect("watch failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_writes_of_another_store_on_the_same_file_quickly() {
    let (_dir, path) = temp_db();
    let writer = SqliteStore::open(&path).unwrap();
    let watcher = SqliteStore::open(&path).unwrap();
    let mut stream = watcher.watch("/p/", 0).await.unwrap();
    // Let the poller take its first look so the timing below measures polling only.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let rev = writer
            .put("/p/k", format!("v{i}").into_bytes())
            .await
            .unwrap();
        // From the commit: the write's own fsync is not the watch's latency.
        let started = Instant::now();
        let event = next_event(&mut stream, Duration::from_secs(2)).await;
        worst = worst.max(started.elapsed());
        assert_eq!(event.kind, EventKind::Put);
        assert_eq!(event.kv.key, "/p/k");
        assert_eq!(event.kv.value, format!("v{i}").into_bytes());
        assert_eq!(event.revision(), rev);
        assert_eq!(event.kv.version, i + 1);
    }
    writer.put("/other", b"x".to_vec()).await.unwrap();
    let rev = writer.put("/p/j", b"y".to_vec()).await.unwrap();
    assert!(writer.delete("/p/k").await.unwrap());
    let put = next_event(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(
        (put.kind, put.kv.key.as_str(), put.revision()),
        (EventKind::Put, "/p/j", rev)
    );
    let delete = next_event(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(delete.kind, EventKind::Delete);
    assert_eq!(
        delete.kv,
        KeyValue {
            key: "/p/k".into(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev + 1,
            version: 0,
            lease: None
        }
    );
    assert!(
        worst < Duration::from_millis(100),
        "slowest delivery took {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cas_creates_from_two_stores_exactly_one_wins() {
    let (_dir, path) = temp_db();
    let a = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Arc::new(SqliteStore::open(&path).unwrap());
    for round in 0..50 {
        let key = format!("/race/{round}");
        let create = |who: &str| {
            Txn::new()
                .when(Compare::absent(key.clone()))
                .then(Op::put(key.clone(), who))
        };
        let (ra, rb) = tokio::join!(a.txn(create("a")), b.txn(create("b")));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra.succeeded ^ rb.succeeded,
            "round {round}: a {ra:?}, b {rb:?}"
        );
        let winner = if ra.succeeded { "a" } else { "b" };
        let kv = a.get(&key).await.unwrap().unwrap();
        assert_eq!(kv.value, winner.as_bytes());
        assert_eq!(kv.version, 1);
    }
    // One revision per winning create, none for the losers.
    assert_eq!(b.current_revision().await.unwrap(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_deletes_keys_and_is_watched_with_nobody_writing() {
    let (_dir, path) = temp_db();
    let owner = SqliteStore::open(&path).unwrap();
    let watcher = SqliteStore::open(&path).unwrap();
    let lease = owner.grant_lease(Duration::from_millis(300)).await.unwrap();
    assert_eq!(
        lease.ttl,
        Duration::from_secs(1),
        "TTLs round up to whole seconds"
    );
    owner
        .txn(
            Txn::new()
                .then(Op::put_with_lease("/l/a", "1", lease.id))
                .then(Op::put_with_lease("/l/b", "2", lease.id)),
        )
        .await
        .unwrap();
    let kept = owner.put("/l/c", b"3".to_vec()).await.unwrap();
    let mut stream = watcher.watch("/l/", kept + 1).await.unwrap();
    let started = Instant::now();

    // Nobody calls the store from here on: only the watcher's poller can expire the lease.
    let first = next_event(&mut stream, Duration::from_secs(3)).await;
    let second = next_event(&mut stream, Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "expired after {elapsed:?}, before its TTL"
    );
    for (event, key) in [(&first, "/l/a"), (&second, "/l/b")] {
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(event.kv.key, key);
        assert_eq!(
            event.revision(),
            kept + 1,
            "a lease's keys go in one revision"
        );
        assert_eq!((event.kv.create_revision, event.kv.version), (0, 0));
    }
    let list = owner.list("/l/", None).await.unwrap();
    assert_eq!(
        list.kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/l/c"]
    );
    assert_eq!(list.revision, kept + 1);
    assert!(
        matches!(owner.keep_alive(lease.id).await, Err(StoreError::LeaseNotFound(id)) if id == lease.id)
    );
    assert!(matches!(
        owner
            .txn(Txn::new().then(Op::put_with_lease("/l/d", "4", lease.id)))
            .await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_expire_due_leases_without_a_watcher() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let rev = store
        .txn(Txn::new().then(Op::put_with_lease("/k", "v", lease.id)))
        .await
        .unwrap()
        .revision;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A keep-alive pushes the expiry out again.
    assert_eq!(
        store.keep_alive(lease.id).await.unwrap(),
        Duration::from_secs(1)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.get("/k").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.get("/k").await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), rev + 1);
}

#[tokio::test]
async fn reopening_keeps_data_revision_and_history() {
    let (_dir, path) = temp_db();
    let (first, second);
    {
        let store = SqliteStore::open(&path).unwrap();
        first = store.put("/a", b"1".to_vec()).await.unwrap();
        second = store.put("/a", b"2".to_vec()).await.unwrap();
        store.put("/b", b"x".to_vec()).await.unwrap();
        assert!(store.delete("/b").await.unwrap());
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), second + 2);
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (&b"2"[..], first, second, 2)
    );
    let old = store.list("/", Some(second + 1)).await.unwrap();
    assert_eq!(
        old.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        ["/a", "/b"]
    );
    assert_eq!(store.put("/c", b"3".to_vec()).await.unwrap(), second + 3);
}

#[tokio::test]
async fn compaction_keeps_what_lists_after_it_need() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    store.put("/a", b"1".to_vec()).await.unwrap(); // 1
    store.put("/b", b"1".to_vec()).await.unwrap(); // 2
    store.put("/a", b"2".to_vec()).await.unwrap(); // 3
    store.put("/d", b"1".to_vec()).await.unwrap(); // 4
    store.delete("/b").await.unwrap(); // 5
    store.delete("/d").await.unwrap(); // 6
    store.put("/c", b"1".to_vec()).await.unwrap(); // 7
    store.compact(5).await.unwrap();

    let keys = |list: ListResult| {
        list.kvs
            .into_iter()
            .map(|kv| (kv.key, kv.mod_revision))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.list("/", Some(5)).await.unwrap()),
        [("/a".into(), 3), ("/d".into(), 4)]
    );
    assert_eq!(
        keys(store.list("/", Some(6)).await.unwrap()),
        [("/a".to_string(), 3)]
    );
    assert_eq!(
        keys(store.list("/", Some(7)).await.unwrap()),
        [("/a".into(), 3), ("/c".into(), 7)]
    );
    assert!(matches!(
        store.list("/", Some(4)).await,
        Err(StoreError::Compacted {
            requested: 4,
            compacted: 5
        })
    ));
    assert!(matches!(
        store.compact(5).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.compact(8).await,
        Err(StoreError::FutureRevision {
            requested: 8,
            current: 7
        })
    ));

    // Only the entries lists at 5 or later can need are left: /a@3, /d@4, and 5.. on.
    let rows: Vec<(Vec<u8>, i64)> = {
        let conn = store.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT key, revision FROM log ORDER BY revision")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    let rows: Vec<(&[u8], i64)> = rows.iter().map(|(k, r)| (k.as_slice(), *r)).collect();
    assert_eq!(
        rows,
        [
            (&b"/a"[..], 3),
            (b"/d", 4),
            (b"/b", 5),
            (b"/d", 6),
            (b"/c", 7)
        ]
    );

    // A watch from the compaction revision replays everything from it.
    let mut stream = store.watch("/", 5).await.unwrap();
    let revisions: Vec<_> = [
        next_event(&mut stream, Duration::from_secs(2)).await,
        next_event(&mut stream, Duration::from_secs(2)).await,
        next_event(&mut stream, Duration::from_secs(2)).await,
    ]
    .iter()
    .map(|e| (e.kind, e.revision()))
    .collect();
    assert_eq!(
        revisions,
        [
            (EventKind::Delete, 5),
            (EventKind::Delete, 6),
            (EventKind::Put, 7)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_overtaken_by_compaction_ends_with_compacted() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let total = CHANNEL_CAPACITY as i64 + 2 * REVISIONS_PER_FETCH;
    for i in 0..total {
        store
            .put(&format!("/k/{}", i % 7), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    let mut stream = store.watch("/k/", 1).await.unwrap();
    // Give the poller time to fill the buffer and block on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.compact(total).await.unwrap();

    let mut expected = 1;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("watch stalled")
        {
            Some(Ok(event)) => {
                assert_eq!(event.revision(), expected, "events in order, none skipped");
                expected += 1;
            }
            Some(Err(StoreError::Compacted {
                requested,
                compacted,
            })) => {
                assert_eq!((requested, compacted), (expected, total));
                break;
            }
            other => panic!("unexpected watch item {other:?}"),
        }
    }
    assert!(expected < total, "the watcher should have fallen behind");
    assert!(
        stream.next().await.is_none(),
        "the stream ends after Compacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_watch_stream_stops_its_poller() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let a = store.watch("/a/", 0).await.unwrap();
    let b = store.watch("/b/", 0).await.unwrap();
    assert_eq!(store.live_watches(), 2);
    assert_eq!(store.hub.poller_count(), 1);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(1);
    while store.live_watches() > 1 {
        assert!(
            Instant::now() < deadline,
            "a dropped stream still holds its slot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(b);
    // The poller lingers one tick for a watcher that comes back at once, then stops.
    let deadline = Instant::now() + Duration::from_secs(1) + 2 * hub::TICK;
    while store.live_watches() > 0 || store.hub.poller_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the poller still runs after every stream was dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_watch_from_before_the_compaction_fails_at_once() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..3 {
        store.put("/k", vec![i]).await.unwrap();
    }
    store.compact(2).await.unwrap();
    assert!(matches!(
        store.watch("/", 1).await,
        Err(StoreError::Compacted {
            requested: 1,
            compacted: 2
        })
    ));
    assert!(store.watch("/", 2).await.is_ok());
}

#[tokio::test]
async fn transactions_writing_a_key_twice_are_rejected_like_etcd() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let twice = Txn::new().then(Op::put("/k", "1")).then(Op::put("/k", "2"));
    let covered = Txn::new()
        .then(Op::put("/p/k", "1"))
        .then(Op::delete_prefix("/p/"));
    // Checked even for the branch that would not run.
    let other_branch = Txn::new()
        .when(Compare::absent("/x"))
        .or_else(Op::delete("/k"))
        .or_else(Op::put("/k", "1"));
    for txn in [twice, covered, other_branch] {
        let err = store.txn(txn).await.unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
    }
    assert!(store.txn(Txn::new().then(Op::put("", "v"))).await.is_err());
    // Overlapping deletes are fine.
    let ok = Txn::new()
        .then(Op::delete_prefix("/p/"))
        .then(Op::delete("/p/k"))
        .then(Op::put("/q", "1"));
    assert_eq!(store.txn(ok).await.unwrap().revision, 1);
}

#[tokio::test]
async fn a_file_with_a_newer_schema_is_refused() {
    let (_dir, path) = temp_db();
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE name = 'schema_version'",
        [schema::SCHEMA_VERSION + 1],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path)
        .err()
        .expect("newer schema accepted");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("newer") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
}

#[test]
fn bad_paths_and_foreign_files_give_config_errors_naming_the_path() {
    let (dir, _) = temp_db();
    let missing = dir.path().join("no-such-dir").join("omtd.db");
    let foreign = dir.path().join("other.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough to have a header",
    )
    .unwrap();
    for path in [missing, foreign, text] {
        let err = SqliteStore::open(&path).err().expect("opened a bad path");
        assert!(matches!(err, StoreError::Config(_)), "{path:?}: {err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

/// Set (to the store's path) in the environment of the child process that
/// `racing_cas_and_watch_across_processes` starts.
const CHILD_DB_ENV: &str = "OMTD_SQLITE_TEST_CHILD_DB";
const RACE_ROUNDS: usize = 50;

fn race_create(round: usize, who: &str) -> Txn {
    let key = format!("/race/{round}");
    Txn::new()
        .when(Compare::absent(key.clone()))
        .then(Op::put(key, who))
}

/// The other process of `racing_cas_and_watch_across_processes`; does nothing unless started
/// by it.
#[test]
#[ignore = "run as a child process by racing_cas_and_watch_across_processes"]
fn child_process_racer() {
    let Ok(path) = std::env::var(CHILD_DB_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(Path::new(&path)).unwrap();
        store.put("/ready", b"child".to_vec()).await.unwrap();
        // Poll rather than watch: the start must be as close to the parent's as can be.
        while store.get("/go").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut wins = 0;
        for round in 0..RACE_ROUNDS {
            if store
                .txn(race_create(round, "child"))
                .await
                .unwrap()
                .succeeded
            {
                wins += 1;
            }
        }
        println!("CHILD_WINS={wins}");
    });
}

/// Real processes, not just two connections: SQLite's locking between processes (POSIX
/// locks on the file and the -shm) is another code path than between connections of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cas_and_watch_across_processes() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let mut ready = store.watch("/ready", 0).await.unwrap();
    let mut races = store.watch("/race/", 0).await.unwrap();
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::sqlite::tests::child_process_racer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &path)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Start racing once the child is about to: both go through the same keys in order.
    next_event(&mut ready, Duration::from_secs(30)).await;
    store.put("/go", b"parent".to_vec()).await.unwrap();
    let mut wins = 0;
    for round in 0..RACE_ROUNDS {
        if store
            .txn(race_create(round, "parent"))
            .await
            .unwrap()
            .succeeded
        {
            wins += 1;
        }
    }
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {stdout}");
    let child_wins: usize = stdout
        .lines()
        .find_map(|line| Some(line.split_once("CHILD_WINS=")?.1))
        .unwrap_or_else(|| panic!("child did not report: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        wins + child_wins,
        RACE_ROUNDS,
        "exactly one create per key wins"
    );
    eprintln!("parent won {wins}, child won {child_wins}");

    // The watch saw every create, whichever process made it, once.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..RACE_ROUNDS {
        let event = next_event(&mut races, Duration::from_secs(2)).await;
        assert_eq!((event.kind, event.kv.version), (EventKind::Put, 1));
        let who = String::from_utf8(event.kv.value.clone()).unwrap();
        assert!(who == "parent" || who == "child", "{who}");
        assert!(
            seen.insert(event.kv.key.clone()),
            "{} created twice",
            event.kv.key
        );
    }
}

/// The threads of this process now.
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A transaction putting `key_suffix` under each of `watches` prefixes `/n/{i}/`.
fn put_under_every_prefix(watches: usize, key_suffix: &str) -> Txn {
    (0..watches).fold(Txn::new(), |txn, i| {
        txn.then(Op::put(format!("/n/{i}/{key_suffix}"), i.to_string()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watches_cost_one_poller_and_each_sees_only_its_own_events() {
    const WATCHES: usize = 1000;
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let threads_before = thread_count();
    let mut streams = Vec::with_capacity(WATCHES);
    for i in 0..WATCHES {
        streams.push(store.watch(&format!("/n/{i}/"), 0).await.unwrap());
    }
    assert_eq!(store.live_watches(), WATCHES);
    assert_eq!(store.hub.poller_count(), 1, "one poller serves every watch");
    // A thread per watch, as before, would be a thousand more. (Other tests run alongside:
    // leave them room.)
    let threads = thread_count();
    assert!(
        threads < threads_before + 100,
        "{threads} threads with {WATCHES} watches, {threads_before} before"
    );

    // One revision for every prefix, a few for some, one outside them all, and a last one
    // for every prefix: each watch must see exactly its own, in order.
    let first = store
        .txn(put_under_every_prefix(WATCHES, "a"))
        .await
        .unwrap()
        .revision;
    let mut some = std::collections::BTreeMap::new();
    for i in (0..WATCHES).step_by(97) {
        let rev = store
            .put(&format!("/n/{i}/b"), b"b".to_vec())
            .await
            .unwrap();
        some.insert(i, rev);
    }
    store.put("/n/elsewhere", b"x".to_vec()).await.unwrap();
    store.put("/n/1000/a", b"x".to_vec()).await.unwrap();
    let last = store
        .txn(put_under_every_prefix(WATCHES, "z"))
        .await
        .unwrap()
        .revision;
    let started = Instant::now();
    for (i, stream) in streams.iter_mut().enumerate() {
        let mut seen = Vec::new();
        loop {
            let event = next_event(stream, Duration::from_secs(5)).await;
            seen.push((event.kv.key.clone(), event.revision()));
            if event.revision() >= last {
                break;
            }
        }
        let mut expected = vec![(format!("/n/{i}/a"), first)];
        if let Some(rev) = some.get(&i) {
            expected.push((format!("/n/{i}/b"), *rev));
        }
        expected.push((format!("/n/{i}/z"), last));
        assert_eq!(seen, expected, "watch {i}");
    }
    eprintln!(
        "{WATCHES} watches on one poller: read every watch's events in {:?}",
        started.elapsed()
    );

    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(2);
    while store.live_watches() > 0 || store.hub.poller_count() > 0 {
        assert!(Instant::now() < deadline, "the poller outlived its watches");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_one_file_share_one_poller_and_wake_it_directly() {
    let (dir, path) = temp_db();
    let a = SqliteStore::open(&path).unwrap();
    // Another spelling of the same path.
    let b = SqliteStore::open(&dir.path().join(".").join("omtd.db")).unwrap();
    assert!(Arc::ptr_eq(&a.hub, &b.hub), "one hub per file");
    let mut wa = a.watch("/x/", 0).await.unwrap();
    let mut wb = b.watch("/x/", 0).await.unwrap();
    assert_eq!(a.hub.poller_count(), 1);
    let rev = b.put("/x/k", b"v".to_vec()).await.unwrap();
    for stream in [&mut wa, &mut wb] {
        assert_eq!(
            next_event(stream, Duration::from_secs(2)).await.revision(),
            rev
        );
    }
    // A different file, a different hub.
    let (_other_dir, other) = temp_db();
    let c = SqliteStore::open(&other).unwrap();
    assert!(!Arc::ptr_eq(&a.hub, &c.hub));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stores_commit_reaches_a_watch_through_the_file_at_once() {
    let (_dir, path) = temp_db();
    // The watcher's poller looks only when woken (its tick is an hour) and the writer's
    // commits do not wake it directly, as with another process: only the file event can
    // bring them in time.
    let watcher = SqliteStore::open_unshared(&path, Duration::from_secs(3600)).unwrap();
    let writer = SqliteStore::open(&path).unwrap();
    assert!(!Arc::ptr_eq(&watcher.hub, &writer.hub));
    let mut stream = watcher.watch("/p/", 0).await.unwrap();
    // Let the poller start watching the directory.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut latencies = Vec::new();
    for i in 0..20 {
        let rev = writer
            .put("/p/k", format!("v{i}").into_bytes())
            .await
            .unwrap();
        // From the commit: the write's own fsync is not the watch's latency.
        let started = Instant::now();
        let event = next_event(&mut stream, Duration::from_secs(5)).await;
        latencies.push(started.elapsed());
        assert_eq!(event.revision(), rev);
        assert_eq!(event.kv.value, format!("v{i}").into_bytes());
        // Commits at varied moments of the poller's settling (see `poller.rs`).
        tokio::time::sleep(Duration::from_millis(i % 7)).await;
    }
    latencies.sort();
    let (p50, max) = (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    eprintln!("another store's commit to the watch, through inotify: p50 {p50:?}, max {max:?}");
    assert!(
        max < Duration::from_millis(200),
        "slowest delivery took {max:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_does_not_hold_up_a_fast_one_and_later_gets_everything() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let start = store.current_revision().await.unwrap() + 1;
    let mut slow = store.watch("/s/", 0).await.unwrap();
    let mut fast = store.watch("/s/", 0).await.unwrap();
    // Enough to fill the slow watcher's buffer twice over.
    let total = 2 * CHANNEL_CAPACITY + 10;
    let mut worst = Duration::ZERO;
    for i in 0..total {
        let rev = store.put("/s/k", i.to_string().into_bytes()).await.unwrap();
        let started = Instant::now();
        let event = next_event(&mut fast, Duration::from_secs(2)).await;
        worst = worst.max(started.elapsed());
        assert_eq!(event.revision(), rev);
    }
    eprintln!("fast watcher beside a stalled one: slowest event {worst:?}");
    assert!(
        worst < Duration::from_millis(200),
        "the fast watcher waited {worst:?} for an event"
    );

    // The slow one, read at last, has missed nothing and repeats nothing.
    for (i, expected) in (start..).take(total).enumerate() {
        let event = next_event(&mut slow, Duration::from_secs(2)).await;
        assert_eq!(event.revision(), expected);
        assert_eq!(event.kv.value, i.to_string().into_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_from_the_past_join_the_live_fan_out_without_gap_or_repeat() {
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    for i in 0..50 {
        store.put("/j/k", vec![i]).await.unwrap();
    }
    let writer = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            let mut last = 0;
            for i in 0..150 {
                last = store.put("/j/k", vec![i]).await.unwrap();
            }
            last
        }
    });
    // Each joins while the writes go on, some far behind the fan-out, some at its edge.
    let mut watches = Vec::new();
    for from in [1, 20, 45, 0, 60, 0] {
        watches.push((from, store.watch("/j/", from).await.unwrap()));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let last = writer.await.unwrap();
    for (from, mut stream) in watches {
        let first = next_event(&mut stream, Duration::from_secs(2)).await;
        if from > 0 {
            assert_eq!(first.revision(), from, "a watch from {from} starts there");
        }
        let mut expected = first.revision();
        while expected < last {
            expected += 1;
            let event = next_event(&mut stream, Duration::from_secs(2)).await;
            assert_eq!(event.revision(), expected, "watch from {from}");
        }
    }
}

/// A refresh is written without an fsync (the store's most frequent write), but every
/// other commit on the connection stays synced: `synchronous` is FULL again after it, for
/// a live lease and for an expired one alike.
#[test]
fn a_refresh_leaves_the_connection_synced() {
    let (_dir, path) = temp_db();
    super::perms::create_private(&path).unwrap();
    let mut conn = super::schema::connect(&path).unwrap();
    super::schema::init(&mut conn, &path).unwrap();
    let synchronous = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(synchronous(&conn), 2, "FULL from the start");
    let now = 1_000_000;
    let id = super::lease::grant_lease(&mut conn, 2, now).unwrap();
    assert_eq!(
        super::lease::keep_alive(&mut conn, id, now + 1_000).unwrap(),
        2
    );
    assert_eq!(synchronous(&conn), 2, "FULL after refreshing a live lease");
    // Past its new expiry (now + 1 s + 2 s): gone, and said so.
    assert!(matches!(
        super::lease::keep_alive(&mut conn, id, now + 3_000),
        Err(StoreError::LeaseNotFound(gone)) if gone == id
    ));
    assert_eq!(synchronous(&conn), 2, "FULL after an expired one");
}
