//! What the SQLite file keeps at rest: its mode, and that compaction leaves no old value in
//! the main file or the WAL (a rotated secret's old value must be gone).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;

use super::*;

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("omtd.db");
    (dir, path)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the main file and of the WAL (empty if there is none).
fn file_bytes(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let main = std::fs::read(path).expect("read the store file");
    let wal = std::fs::read(sibling(path, "-wal")).unwrap_or_default();
    (main, wal)
}

fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

#[tokio::test]
async fn the_file_wal_and_shm_are_private() {
    // Under the usual umask (022) SQLite alone would make all three 0644. (The umask is not
    // widened here: it is the whole test process's, and other tests create files.)
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    store.put("/k", b"v".to_vec()).await.unwrap();
    for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn an_existing_world_readable_store_is_tightened() {
    let (_dir, path) = temp_db();
    drop(SqliteStore::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open_existing(&path).unwrap();
    store.put("/k", b"v".to_vec()).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&sibling(&path, "-wal")), 0o600);
}

#[test]
fn opening_a_missing_store_to_read_says_so_and_creates_nothing() {
    let (_dir, path) = temp_db();
    let err = SqliteStore::open_existing(&path)
        .err()
        .expect("opened a missing store");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("omtd apply") && text.contains("--store"),
        "{text}"
    );
    assert!(!path.exists());
}

const KEY: &str = "/omtd/default/spec/credential/chronos";
const OLD: &[u8] = b"old-secret-Zq8xWv3kLm";
const NEW: &[u8] = b"new-secret-Pt5rYb9cHs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_leaves_no_rotated_secret_in_the_file_or_the_wal() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let first = store.put(KEY, OLD.to_vec()).await.unwrap();
    // The check below can see a value: before compaction the old one is in the file.
    checkpoint(&path);
    assert!(contains(&file_bytes(&path).0, OLD));

    let rotated = store.put(KEY, NEW.to_vec()).await.unwrap();
    store.compact(rotated).await.unwrap();
    checkpoint(&path);
    let (main, wal) = file_bytes(&path);
    assert!(
        !contains(&main, OLD),
        "the old secret is still in the store file"
    );
    assert!(!contains(&wal, OLD), "the old secret is still in the WAL");
    assert!(contains(&main, NEW));

    let kv = store.get(KEY).await.unwrap().expect("the current value");
    assert_eq!(kv.value, NEW);
    expect_compacted(&store, first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compacts_itself_beyond_its_revision_window() {
    let (_dir, path) = temp_db();
    let retention = Retention {
        age: Duration::from_secs(3600),
        revisions: 5,
    };
    let store = SqliteStore::open_with_retention(&path, retention).unwrap();
    let value = |i: usize| format!("rotated-secret-{i:03}-Kd7");
    let mut last = 0;
    for i in 0..20 {
        last = store.put(KEY, value(i).into_bytes()).await.unwrap();
    }
    // Every revision more than 5 behind the last one is compacted.
    expect_compacted(&store, last - 6).await;
    let kept = store.list(KEY, Some(last - 5)).await.unwrap();
    assert_eq!(kept.kvs.len(), 1);
    checkpoint(&path);
    let (main, wal) = file_bytes(&path);
    for i in 0..10 {
        let old = value(i);
        assert!(
            !contains(&main, old.as_bytes()),
            "{old} is still in the file"
        );
        assert!(!contains(&wal, old.as_bytes()), "{old} is still in the WAL");
    }
    assert_eq!(
        store.get(KEY).await.unwrap().unwrap().value,
        value(19).as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_store_is_compacted_by_age_at_a_lease_renewal() {
    let (_dir, path) = temp_db();
    let retention = Retention {
        age: Duration::from_secs(1),
        revisions: 10_000,
    };
    let store = SqliteStore::open_with_retention(&path, retention).unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let first = store.put(KEY, OLD.to_vec()).await.unwrap();
    store.put(KEY, NEW.to_vec()).await.unwrap();
    // No write after the rotation: only the renewals of a long-running process. Ages are
    // known from samples (one per age / 60 at most), so the rotation's revision is known to
    // be old a little after the age.
    let start = std::time::Instant::now();
    while store.list("/", Some(first)).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not compacted by age"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.keep_alive(lease.id).await.unwrap();
    }
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "compacted before the age"
    );
    expect_compacted(&store, first).await;
    checkpoint(&path);
    let (main, wal) = file_bytes(&path);
    assert!(!contains(&main, OLD) && !contains(&wal, OLD));
    assert_eq!(store.get(KEY).await.unwrap().unwrap().value, NEW);
}

/// A watch and a list from `revision` fail with `Compacted`.
async fn expect_compacted(store: &SqliteStore, revision: Revision) {
    assert!(matches!(
        store.list("/", Some(revision)).await,
        Err(StoreError::Compacted { .. })
    ));
    match store.watch("/", revision).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(mut stream) => {
            let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
            assert!(
                matches!(first, Ok(Some(Err(StoreError::Compacted { .. })))),
                "{first:?}"
            );
        }
    }
}
