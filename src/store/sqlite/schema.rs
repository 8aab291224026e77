//! Opening the SQLite file: connection settings, schema creation and the schema version check.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::context::{Context, BUSY_TIMEOUT};
use super::{Result, StoreError};

/// The layout this build writes and understands. Bump it (and add a migration) whenever the
/// tables change, so an older omtd refuses a file it would misread instead of damaging it.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// Names of the rows of the `meta` table.
pub(super) const META_SCHEMA_VERSION: &str = "schema_version";
pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACTED: &str = "compact_revision";

/// `kv` holds the current state (what reads and compares look at); `log` holds every put and
/// delete with its revision (what watches and historical lists read); `leases` holds the
/// leases with their wall-clock expiry in milliseconds since the Unix epoch.
///
/// Keys are stored as BLOBs so that ordering and prefix ranges are plain byte comparisons,
/// as in etcd, and a prefix range's end (the prefix with its last byte incremented) can be
/// bound even when it is not valid UTF-8.
const SCHEMA: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE kv (
    key             BLOB PRIMARY KEY,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    lease           INTEGER
);
CREATE INDEX kv_by_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE log (
    revision        INTEGER NOT NULL,
    sub             INTEGER NOT NULL,
    key             BLOB NOT NULL,
    deleted         INTEGER NOT NULL,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    lease           INTEGER,
    PRIMARY KEY (revision, sub)
);
CREATE UNIQUE INDEX log_by_key ON log (key, revision);
CREATE TABLE leases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl_secs      INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX leases_by_expiry ON leases (expires_at_ms);
";

/// Opens a connection with the settings every connection to the file needs. The file must
/// exist: `SqliteStore::open` creates it with mode 0600 first, so SQLite never creates it
/// with the umask's mode (and the `-wal` and `-shm` files take the main file's mode).
/// How every commit is synced (`PRAGMA synchronous`): the WAL is fsynced on each. Only a
/// lease refresh is written without (`lease::refresh_live`), and puts this back after.
pub(super) const SYNCHRONOUS: &str = "FULL";

pub(super) fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, &e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, &e))?;
    // WAL lets readers (watch pollers in other processes) go on while one process writes.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| open_error(path, &e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "SQLite store {}: could not switch to WAL mode (journal mode is {mode}); \
             the file must be on a local filesystem",
            path.display()
        )));
    }
    // A committed write (a CAS that made this process leader, say) must survive a power
    // loss, as it would in etcd: fsync the WAL on every commit.
    conn.pragma_update(None, "synchronous", SYNCHRONOUS)
        .map_err(|e| open_error(path, &e))?;
    // Deleted and overwritten content (a rotated secret's old value, in `kv` and in the log
    // entries compaction drops) is zeroed in place rather than left in free space.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(|e| open_error(path, &e))?;
    Ok(conn)
}

/// Creates the tables in a new file, or checks that an existing file is an omtd store this
/// build understands.
pub(super) fn init(conn: &mut Connection, path: &Path) -> Result<()> {
    // IMMEDIATE: two processes opening a new file at once must not both create the tables.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| open_error(path, &e))?;
    let has_meta: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| open_error(path, &e))?;
    if has_meta {
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                [META_SCHEMA_VERSION],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| open_error(path, &e))?;
        match version {
            None => return Err(not_ours(path)),
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Config(format!(
                    "SQLite store {} has schema version {v}, newer than this omtd understands \
                     ({SCHEMA_VERSION}): it was written by a newer omtd; upgrade omtd to use it",
                    path.display()
                )))
            }
            Some(v) if v < 1 => return Err(not_ours(path)),
            Some(_) => {}
        }
    } else {
        let tables: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| open_error(path, &e))?;
        if tables > 0 {
            return Err(not_ours(path));
        }
        tx.execute_batch(SCHEMA).ctx("creating the store tables")?;
        for (name, value) in [
            (META_SCHEMA_VERSION, SCHEMA_VERSION),
            (META_REVISION, 0),
            (META_COMPACTED, 0),
        ] {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)",
                rusqlite::params![name, value],
            )
            .ctx("initialising the meta table")?;
        }
    }
    tx.commit().map_err(|e| open_error(path, &e))
}

fn not_ours(path: &Path) -> StoreError {
    StoreError::Config(format!(
        "{} is an SQLite file but not an omtd store; give the store a path of its own",
        path.display()
    ))
}

fn open_error(path: &Path, e: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => "; check that its directory exists and is writable",
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            "; the file and its directory must be writable (WAL mode creates -wal and -shm files beside it)"
        }
        Some(ErrorCode::NotADatabase) => "; the file exists but is not an SQLite database",
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; another process held the file locked for too long"
        }
        _ => "",
    };
    StoreError::Config(format!(
        "cannot open SQLite store {}: {e}{hint}",
        path.display()
    ))
}
