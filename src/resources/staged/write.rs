//! Writing a staged apply: lock, chunks, release (see the module above).

use std::sync::Arc;

use super::recover::rollback;
use super::{ApplyLock, Progress, StagedError, StoredLock, HOLDER_TTL};
use crate::resources::Keys;
use crate::store::{Compare, CompareOp, LeaseId, Op, Revision, Store, Txn};

/// One object's change: the compares guarding it and its writes (for a deleted object,
/// its spec and its status).
#[derive(Debug, Clone)]
pub struct StagedWrite {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

/// Writes `writes` as one staged apply in transactions of at most `limit` compares and
/// operations each. Returns the revision of the release, at which the whole apply became
/// visible. On a conflict, or when the store fails part way, what was written is rolled
/// back (when the store lets it; otherwise the next apply does).
pub async fn commit(
    store: &Arc<dyn Store>,
    keys: &Keys,
    writes: Vec<StagedWrite>,
    limit: usize,
) -> Result<Revision, StagedError> {
    let chunks = chunk(writes, limit)?;
    let lease = store.grant_lease(HOLDER_TTL).await?;
    let keep_alive = tokio::spawn(keep_alive(Arc::clone(store), lease.id));
    let result = locked(store.as_ref(), keys, chunks, lease.id, limit).await;
    keep_alive.abort();
    // Revoking also ends the holder at once when the apply failed and left its lock: the
    // next apply then rolls it back without waiting for the lease to run out.
    if let Err(e) = store.revoke_lease(lease.id).await {
        tracing::debug!(error = %e, "could not revoke the apply's lease; it expires by itself");
    }
    result
}

async fn locked(
    store: &dyn Store,
    keys: &Keys,
    chunks: Vec<Vec<StagedWrite>>,
    lease: LeaseId,
    limit: usize,
) -> Result<Revision, StagedError> {
    let lock_key = keys.apply_lock();
    let lock = ApplyLock {
        by: applier(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        changes: chunks.iter().map(Vec::len).sum(),
    };
    let value = serde_json::to_vec(&lock).map_err(|e| {
        crate::store::StoreError::Backend(format!("cannot encode the apply lock: {e}"))
    })?;
    let taken = store
        .txn(
            Txn::new()
                .when(Compare::absent(lock_key.clone()))
                .then(Op::put(lock_key.clone(), value))
                .then(Op::put_with_lease(keys.apply_holder(), Vec::new(), lease)),
        )
        .await?;
    if !taken.succeeded {
        return Err(busy(store, keys).await);
    }
    let mine = taken.revision;
    tracing::info!(
        changes = lock.changes,
        chunks = chunks.len(),
        "staged apply: lock taken"
    );
    let ours = Compare::create_revision(lock_key.clone(), CompareOp::Equal, mine);
    let mut written = Vec::new();
    for (n, chunk) in chunks.into_iter().enumerate() {
        let progress = progress_of(&chunk);
        let record = serde_json::to_vec(&progress).unwrap_or_default();
        let mut txn = Txn::new()
            .when(ours.clone())
            .then(Op::put(format!("{}{n:06}", keys.apply_progress()), record));
        for w in chunk {
            txn.compares.extend(w.compares);
            txn.success.extend(w.ops);
        }
        let res = match store.txn(txn).await {
            Ok(res) => res,
            Err(e) => {
                undo(store, keys, mine, &written, limit).await;
                return Err(e.into());
            }
        };
        if !res.succeeded {
            undo(store, keys, mine, &written, limit).await;
            return Err(StagedError::Conflict);
        }
        written.push((res.revision, progress));
    }
    let released = store
        .txn(
            Txn::new()
                .when(ours)
                .then(Op::delete(lock_key))
                .then(Op::delete(keys.apply_holder()))
                .then(Op::delete_prefix(keys.apply_progress())),
        )
        .await?;
    if !released.succeeded {
        // Another apply saw this one as interrupted and rolled it back.
        return Err(StagedError::Conflict);
    }
    tracing::info!(revision = released.revision, "staged apply: released");
    Ok(released.revision)
}

/// Rolls back this apply's own chunks after a failure, best effort: when the store is
/// gone the lock stays, and the next apply rolls it back.
async fn undo(
    store: &dyn Store,
    keys: &Keys,
    mine: Revision,
    written: &[(Revision, Progress)],
    limit: usize,
) {
    let lock = StoredLock {
        lock: ApplyLock {
            by: applier(),
            started: String::new(),
            changes: 0,
        },
        create_revision: mine,
        base: mine - 1,
    };
    match rollback(store, keys, &lock, written, limit).await {
        Ok(restored) => tracing::info!(restored, "staged apply: rolled back its own writes"),
        Err(e) => {
            tracing::warn!(error = %e, "staged apply: could not roll back; the next apply will")
        }
    }
}

/// The error for a lock some other apply holds.
async fn busy(store: &dyn Store, keys: &Keys) -> StagedError {
    match store.get(&keys.apply_lock()).await {
        Ok(Some(kv)) => {
            let held = StoredLock::from_kv(&kv);
            StagedError::Busy {
                by: held.lock.by,
                started: held.lock.started,
                changes: held.lock.changes,
            }
        }
        // Released in between: replanning is all it takes.
        Ok(None) => StagedError::Conflict,
        Err(e) => e.into(),
    }
}

async fn keep_alive(store: Arc<dyn Store>, lease: LeaseId) {
    loop {
        tokio::time::sleep(HOLDER_TTL / 3).await;
        if let Err(e) = store.keep_alive(lease).await {
            tracing::warn!(error = %e, "staged apply: cannot keep its lease alive");
        }
    }
}

/// Packs writes in order into transactions: each carries the lock compare and the
/// progress put besides its writes, within `limit` compares and `limit` operations.
fn chunk(writes: Vec<StagedWrite>, limit: usize) -> Result<Vec<Vec<StagedWrite>>, StagedError> {
    let room = limit.saturating_sub(1);
    let mut chunks: Vec<Vec<StagedWrite>> = Vec::new();
    let (mut compares, mut ops) = (0, 0);
    for w in writes {
        if w.compares.len() > room || w.ops.len() > room {
            return Err(crate::store::StoreError::Config(format!(
                "one object's change needs {} operations; the store allows {limit} in a transaction",
                w.ops.len().max(w.compares.len()) + 1
            ))
            .into());
        }
        let fits = chunks.last().is_some()
            && compares + w.compares.len() <= room
            && ops + w.ops.len() <= room;
        if !fits {
            chunks.push(Vec::new());
            (compares, ops) = (0, 0);
        }
        compares += w.compares.len();
        ops += w.ops.len();
        if let Some(last) = chunks.last_mut() {
            last.push(w);
        }
    }
    Ok(chunks)
}

fn progress_of(chunk: &[StagedWrite]) -> Progress {
    let mut p = Progress::default();
    for op in chunk.iter().flat_map(|w| &w.ops) {
        match op {
            Op::Put { key, .. } => p.put.push(key.clone()),
            Op::Delete { key } => p.delete.push(key.clone()),
            Op::DeletePrefix { prefix } => p.delete.push(prefix.clone()),
        }
    }
    p
}

/// Who is applying, for the lock: host and process.
fn applier() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into());
    format!("omtd pid {} on {host}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(n: usize) -> StagedWrite {
        StagedWrite {
            compares: vec![Compare::absent(format!("/k{n}"))],
            ops: vec![Op::put(format!("/k{n}"), "v")],
        }
    }

    #[test]
    fn chunks_stay_within_the_limit_counting_the_lock_and_progress() {
        let chunks = chunk((0..300).map(write).collect(), 128).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [127, 127, 46]
        );
        let order: Vec<String> = chunks
            .iter()
            .flatten()
            .map(|w| match &w.ops[0] {
                Op::Put { key, .. } => key.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            order,
            (0..300).map(|n| format!("/k{n}")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_deleted_object_keeps_its_two_deletes_in_one_chunk() {
        let del = StagedWrite {
            compares: vec![Compare::present("/s")],
            ops: vec![Op::delete("/s"), Op::delete("/st")],
        };
        let mut writes: Vec<StagedWrite> = (0..126).map(write).collect();
        writes.push(del);
        let chunks = chunk(writes, 128).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1][0].ops.len(), 2);
        let p = progress_of(&chunks[1]);
        assert_eq!(p.delete, ["/s", "/st"]);
    }
}
