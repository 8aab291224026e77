//! The store's operations on one SQLite connection, synchronous. `mod.rs` runs them on
//! blocking threads; the watch poller calls them directly from its own thread.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::context::Context;
use super::schema::{META_COMPACTED, META_REVISION};
use super::{KeyValue, LeaseId, ListResult, Result, Revision, StoreError};

/// Wall-clock milliseconds since the Unix epoch. Lease expiry uses the wall clock because
/// several processes on one machine share the file, and the wall clock is what they share.
pub(super) fn now_ms() -> Result<i64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StoreError::Backend("system clock is set before 1970".into()))?;
    i64::try_from(since.as_millis())
        .map_err(|_| StoreError::Backend("system clock is out of range".into()))
}

/// The keys starting with a prefix, as a half-open byte range `[start, end)`.
#[derive(Debug, Clone)]
pub(super) struct KeyRange {
    pub(super) start: Vec<u8>,
    pub(super) end: Vec<u8>,
}

impl KeyRange {
    pub(super) fn prefix(prefix: &str) -> Self {
        let start = prefix.as_bytes().to_vec();
        let mut end = start.clone();
        // etcd's prefix end: drop trailing 0xff bytes, increment the last byte left.
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return Self { start, end };
            }
        }
        // Empty prefix: every key. 0xff never occurs in UTF-8, so every stored key (they all
        // come from `&str`) sorts below it, which keeps the query a plain indexed range.
        Self {
            start,
            end: vec![0xff],
        }
    }

    pub(super) fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && key < self.end.as_slice()
    }
}

pub(super) fn key_from_blob(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Reads a row of `kv` columns: key, value, create_revision, mod_revision, version, lease.
fn kv_from_row(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_from_blob(row.get(0)?)?,
        value: row.get(1)?,
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        version: row.get(4)?,
        lease: row.get(5)?,
    })
}

pub(super) fn meta_get(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
        row.get(0)
    })
    .optional()
    .ctx("reading the meta table")?
    .ok_or_else(|| {
        StoreError::Backend(format!(
            "the store file has no {name} in its meta table; it is damaged"
        ))
    })
}

pub(super) fn meta_set(conn: &Connection, name: &str, value: i64) -> Result<()> {
    conn.execute(
        "UPDATE meta SET value = ?2 WHERE name = ?1",
        params![name, value],
    )
    .ctx("updating the meta table")?;
    Ok(())
}

/// The current revision and the compacted revision, read in one snapshot.
pub(super) fn revisions(conn: &mut Connection) -> Result<(Revision, Revision)> {
    let tx = conn.transaction().ctx("starting a read")?;
    let current = meta_get(&tx, META_REVISION)?;
    let compacted = meta_get(&tx, META_COMPACTED)?;
    Ok((current, compacted))
}

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    conn.query_row(
        "SELECT key, value, create_revision, mod_revision, version, lease FROM kv WHERE key = ?1",
        [key.as_bytes()],
        kv_from_row,
    )
    .optional()
    .ctx(&format!("reading key {key:?}"))
}

pub(super) fn list(
    conn: &mut Connection,
    prefix: &str,
    revision: Option<Revision>,
) -> Result<ListResult> {
    let range = KeyRange::prefix(prefix);
    // One read transaction: the revision checks and the rows come from the same snapshot.
    let tx = conn.transaction().ctx("starting a read")?;
    let current = meta_get(&tx, META_REVISION)?;
    let compacted = meta_get(&tx, META_COMPACTED)?;
    // As in etcd, a revision of 0 or less means "now".
    let at = revision.filter(|r| *r > 0).unwrap_or(current);
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    // etcd keeps the state at the compaction revision itself readable; only older fails.
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted,
        });
    }
    let what = format!("listing prefix {prefix:?}");
    let kvs = if at == current {
        let mut stmt = tx
            .prepare_cached(
                "SELECT key, value, create_revision, mod_revision, version, lease FROM kv
                 WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )
            .ctx(&what)?;
        let rows = stmt
            .query_map(params![range.start, range.end], kv_from_row)
            .ctx(&what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&what)?
    } else {
        // The state at `at`: for each key, its last log entry at or before `at`, unless
        // that entry is a delete. Compaction keeps exactly the entries this needs.
        let mut stmt = tx
            .prepare_cached(
                "SELECT l.key, l.value, l.create_revision, l.revision, l.version, l.lease FROM log l
                 WHERE l.key >= ?1 AND l.key < ?2 AND l.deleted = 0
                   AND l.revision = (SELECT MAX(m.revision) FROM log m
                                     WHERE m.key = l.key AND m.revision <= ?3)
                 ORDER BY l.key",
            )
            .ctx(&what)?;
        let rows = stmt
            .query_map(params![range.start, range.end, at], kv_from_row)
            .ctx(&what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&what)?
    };
    Ok(ListResult { kvs, revision: at })
}

/// Applies the writes of one revision: every change gets the next revision and a sub index
/// (its order within the revision, which watches replay); the revision is only bumped if
/// something changed.
pub(super) struct Writer<'c> {
    conn: &'c Connection,
    current: Revision,
    sub: i64,
}

impl<'c> Writer<'c> {
    pub(super) fn new(conn: &'c Connection) -> Result<Self> {
        Ok(Self {
            conn,
            current: meta_get(conn, META_REVISION)?,
            sub: 0,
        })
    }

    fn revision(&self) -> Revision {
        self.current + 1
    }

    pub(super) fn put(&mut self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<()> {
        let what = format!("writing key {key:?}");
        // etcd's lease ID 0 means "no lease".
        let lease = lease.filter(|id| *id != 0);
        if let Some(id) = lease {
            let exists: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM leases WHERE id = ?1)",
                    [id],
                    |row| row.get(0),
                )
                .ctx(&what)?;
            if !exists {
                return Err(StoreError::LeaseNotFound(id));
            }
        }
        let previous: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT create_revision, version FROM kv WHERE key = ?1",
                [key.as_bytes()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .ctx(&what)?;
        let revision = self.revision();
        let (create_revision, version) = match previous {
            Some((created, version)) => (created, version + 1),
            None => (revision, 1),
        };
        self.conn
            .execute(
                "INSERT INTO kv (key, value, create_revision, mod_revision, version, lease)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision,
                     version = excluded.version, lease = excluded.lease",
                params![key.as_bytes(), value, create_revision, revision, version, lease],
            )
            .ctx(&what)?;
        self.log(
            key.as_bytes(),
            false,
            value,
            create_revision,
            version,
            lease,
            &what,
        )
    }

    /// Deletes one key; returns whether it existed.
    pub(super) fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let what = format!("deleting key {:?}", String::from_utf8_lossy(key));
        let deleted = self
            .conn
            .execute("DELETE FROM kv WHERE key = ?1", [key])
            .ctx(&what)?;
        if deleted == 0 {
            return Ok(false);
        }
        self.log(key, true, &[], 0, 0, None, &what)?;
        Ok(true)
    }

    pub(super) fn delete_range(&mut self, range: &KeyRange) -> Result<()> {
        let what = "listing keys to delete";
        let keys = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key")
                .ctx(what)?;
            let rows = stmt
                .query_map(params![range.start, range.end], |row| {
                    row.get::<_, Vec<u8>>(0)
                })
                .ctx(what)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(what)?
        };
        for key in keys {
            debug_assert!(range.contains(&key));
            self.delete(&key)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
    fn log(
        &mut self,
        key: &[u8],
        deleted: bool,
        value: &[u8],
        create_revision: Revision,
        version: i64,
        lease: Option<LeaseId>,
        what: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO log (revision, sub, key, deleted, value, create_revision, version, lease)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![self.revision(), self.sub, key, deleted, value, create_revision, version, lease],
            )
            .ctx(what)?;
        self.sub += 1;
        Ok(())
    }

    /// Records the new revision if anything changed; returns the store's revision after.
    pub(super) fn finish(self) -> Result<Revision> {
        if self.sub == 0 {
            return Ok(self.current);
        }
        meta_set(self.conn, META_REVISION, self.revision())?;
        Ok(self.revision())
    }
}

pub(super) fn compact(conn: &mut Connection, revision: Revision) -> Result<()> {
    let what = format!("compacting to revision {revision}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(&what)?;
    let current = meta_get(&tx, META_REVISION)?;
    let compacted = meta_get(&tx, META_COMPACTED)?;
    // etcd: "required revision is a future revision" / "required revision has been compacted".
    if revision > current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision <= compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    // Keep every entry at or after `revision` (watches from `revision` replay them) and,
    // for each key, the last entry before it when that is a put: a list at any kept
    // revision needs the key's value as of then. Deletes before `revision` go, as do puts
    // that a later entry at or before `revision` supersedes.
    tx.execute(
        "DELETE FROM log WHERE revision < ?1 AND (deleted = 1 OR EXISTS (
             SELECT 1 FROM log later
             WHERE later.key = log.key AND later.revision > log.revision AND later.revision <= ?1))",
        [revision],
    )
    .ctx(&what)?;
    meta_set(&tx, META_COMPACTED, revision)?;
    tx.commit().ctx(&what)
}
