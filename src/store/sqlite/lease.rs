//! Leases: grant, keep-alive, revoke, and expiry by wall-clock time stored in the file.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::context::Context;
use super::db::Writer;
use super::{LeaseId, Result, StoreError};

/// Revokes a lease inside a write transaction: its keys are deleted in one new revision
/// (none if it had no keys). Returns whether the lease existed.
fn revoke(conn: &Connection, id: LeaseId) -> Result<bool> {
    let what = format!("revoking lease {id}");
    if conn
        .execute("DELETE FROM leases WHERE id = ?1", [id])
        .ctx(&what)?
        == 0
    {
        return Ok(false);
    }
    let keys = {
        let mut stmt = conn
            .prepare_cached("SELECT key FROM kv WHERE lease = ?1 ORDER BY key")
            .ctx(&what)?;
        let rows = stmt
            .query_map([id], |row| row.get::<_, Vec<u8>>(0))
            .ctx(&what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&what)?
    };
    let mut writer = Writer::new(conn)?;
    for key in &keys {
        writer.delete(key)?;
    }
    writer.finish()?;
    tracing::debug!(
        lease = id,
        keys = keys.len(),
        "lease ended; deleted its keys"
    );
    Ok(true)
}

/// Revokes every lease whose expiry has passed, oldest first, each in its own revision as
/// etcd does. Must run inside a write transaction.
pub(super) fn sweep_expired(conn: &Connection, now_ms: i64) -> Result<usize> {
    let what = "finding expired leases";
    let ids = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM leases WHERE expires_at_ms <= ?1 ORDER BY expires_at_ms, id",
            )
            .ctx(what)?;
        let rows = stmt
            .query_map([now_ms], |row| row.get::<_, LeaseId>(0))
            .ctx(what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(what)?
    };
    for id in &ids {
        tracing::debug!(lease = id, "lease expired");
        revoke(conn, *id)?;
    }
    Ok(ids.len())
}

/// Expires due leases, if any. Reads call it first so that expiry happens even when nobody
/// writes; the check is one indexed lookup, and the write lock is taken only when a lease
/// is due. Returns whether anything expired.
pub(super) fn sweep_if_due(conn: &mut Connection, now_ms: i64) -> Result<bool> {
    let due: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM leases WHERE expires_at_ms <= ?1)",
            [now_ms],
            |row| row.get(0),
        )
        .ctx("checking for expired leases")?;
    if !due {
        return Ok(false);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("starting a lease sweep")?;
    let expired = sweep_expired(&tx, now_ms)?;
    tx.commit().ctx("committing a lease sweep")?;
    Ok(expired > 0)
}

pub(super) fn grant_lease(conn: &mut Connection, ttl_secs: i64, now_ms: i64) -> Result<LeaseId> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("starting a lease grant")?;
    sweep_expired(&tx, now_ms)?;
    // AUTOINCREMENT: an ID is never reused, so a holder of a revoked lease cannot
    // accidentally refresh somebody else's.
    tx.execute(
        "INSERT INTO leases (ttl_secs, expires_at_ms) VALUES (?1, ?2)",
        params![
            ttl_secs,
            now_ms.saturating_add(ttl_secs.saturating_mul(1000))
        ],
    )
    .ctx("granting a lease")?;
    let id = tx.last_insert_rowid();
    tx.commit().ctx("committing a lease grant")?;
    Ok(id)
}

/// Refreshes a lease; returns its TTL in seconds.
pub(super) fn keep_alive(conn: &mut Connection, id: LeaseId, now_ms: i64) -> Result<i64> {
    let what = format!("refreshing lease {id}");
    if let Some(ttl) = refresh_live(conn, id, now_ms, &what)? {
        return Ok(ttl);
    }
    // Unknown or past its expiry: sweep first (a lease past its expiry is gone even if
    // nobody has noticed yet), durably, then try once more.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(&what)?;
    sweep_expired(&tx, now_ms)?;
    let ttl: Option<i64> = tx
        .query_row(
            "UPDATE leases SET expires_at_ms = ?2 + ttl_secs * 1000 WHERE id = ?1 RETURNING ttl_secs",
            params![id, now_ms],
            |row| row.get(0),
        )
        .optional()
        .ctx(&what)?;
    tx.commit().ctx(&what)?;
    ttl.ok_or(StoreError::LeaseNotFound(id))
}

/// Moves a live lease's expiry, without syncing the log to disk: `None` when the lease is
/// unknown or expired. A refresh is the store's most frequent write (10,000 agents renew
/// 3,000 times a second), and an fsync each capped them at a few hundred a second, with
/// every other write queued behind. Losing one on a power cut only moves the expiry back:
/// the holders, on the same machine, are gone too; the next synced commit syncs it anyway.
/// (etcd does not write keep-alives to its log either.)
fn refresh_live(
    conn: &mut Connection,
    id: LeaseId,
    now_ms: i64,
    what: &str,
) -> Result<Option<i64>> {
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx(what)?;
    let ttl = conn
        .query_row(
            "UPDATE leases SET expires_at_ms = ?2 + ttl_secs * 1000 \
             WHERE id = ?1 AND expires_at_ms > ?2 RETURNING ttl_secs",
            params![id, now_ms],
            |row| row.get(0),
        )
        .optional()
        .ctx(what);
    // Every other commit on this connection stays synced, whatever the refresh did.
    conn.pragma_update(None, "synchronous", super::schema::SYNCHRONOUS)
        .ctx(what)?;
    ttl
}

pub(super) fn revoke_lease(conn: &mut Connection, id: LeaseId, now_ms: i64) -> Result<()> {
    let what = format!("revoking lease {id}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(&what)?;
    sweep_expired(&tx, now_ms)?;
    let existed = revoke(&tx, id)?;
    // Commit even when the lease is unknown: the sweep above may have expired others.
    tx.commit().ctx(&what)?;
    if existed {
        Ok(())
    } else {
        Err(StoreError::LeaseNotFound(id))
    }
}
