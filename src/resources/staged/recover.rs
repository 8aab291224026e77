//! Rolling back a staged apply that did not finish, from the store's own history.

use std::collections::BTreeMap;

use super::{parse_progress, Held, Progress, StagedError, StoredLock};
use crate::resources::Keys;
use crate::store::{Compare, CompareOp, KeyValue, Op, Revision, Store, StoreError, Txn};

/// An interrupted apply that was rolled back.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub by: String,
    pub started: String,
    /// Keys put back as they were before it.
    pub restored: usize,
}

/// Rolls back an interrupted staged apply (its lock without its holder), if there is one.
/// `Busy` when a live apply holds the lock; `Unrecoverable` when the history it needs is
/// compacted (the lock then stays, and its writes stay hidden).
pub async fn recover(store: &dyn Store, keys: &Keys) -> Result<Option<Recovered>, StagedError> {
    let listed = store.list(&keys.applies(), None).await?;
    let Some(held) = Held::from_kvs(keys, &listed.kvs) else {
        return Ok(None);
    };
    if held.holder_alive {
        return Err(StagedError::Busy {
            by: held.lock.lock.by,
            started: held.lock.lock.started,
            changes: held.lock.lock.changes,
        });
    }
    let progress_prefix = keys.apply_progress();
    let written: Vec<(Revision, Progress)> = listed
        .kvs
        .iter()
        .filter(|kv| kv.key.starts_with(&progress_prefix))
        .map(|kv| {
            // A record that does not parse names no key to restore: those keys keep the
            // interrupted apply's values. Said loudly, as it is the one case that is not
            // all or nothing.
            let p = parse_progress(&kv.value).unwrap_or_else(|| {
                tracing::warn!(key = %kv.key, "an interrupted apply's progress record does not parse; its keys are not rolled back");
                Progress::default()
            });
            (kv.mod_revision, p)
        })
        .collect();
    let restored = rollback(store, keys, &held.lock, &written, store.max_txn_ops()).await?;
    tracing::warn!(by = %held.lock.lock.by, started = %held.lock.lock.started, restored, "rolled back an interrupted apply");
    Ok(Some(Recovered {
        by: held.lock.lock.by,
        started: held.lock.lock.started,
        restored,
    }))
}

/// Puts every key the chunks in `written` (revision, record) wrote back as it was at the
/// lock's base revision, then releases the lock. A key written since by someone else is
/// theirs and stays. Returns how many keys were restored.
pub(super) async fn rollback(
    store: &dyn Store,
    keys: &Keys,
    lock: &StoredLock,
    written: &[(Revision, Progress)],
    limit: usize,
) -> Result<usize, StagedError> {
    let at = |prefix: String, revision: Option<Revision>| async move {
        let specs = store.list(&prefix, revision).await;
        specs.map(|l| {
            l.kvs
                .into_iter()
                .map(|kv| (kv.key.clone(), kv))
                .collect::<BTreeMap<String, KeyValue>>()
        })
    };
    let unrecoverable = |e: StoreError| match e {
        StoreError::Compacted { .. } => StagedError::Unrecoverable {
            by: lock.lock.by.clone(),
            started: lock.lock.started.clone(),
            base: lock.base,
            lock: keys.apply_lock(),
        },
        e => e.into(),
    };
    let mut before = at(keys.specs(), Some(lock.base))
        .await
        .map_err(unrecoverable)?;
    before.extend(
        at(keys.statuses(), Some(lock.base))
            .await
            .map_err(unrecoverable)?,
    );
    let mut now = at(keys.specs(), None).await?;
    now.extend(at(keys.statuses(), None).await?);

    let mut restores: Vec<(Compare, Op)> = Vec::new();
    for (revision, progress) in written {
        let ours_put = progress
            .put
            .iter()
            .filter(|k| now.get(*k).map(|kv| kv.mod_revision) == Some(*revision));
        let ours_delete = progress.delete.iter().filter(|k| !now.contains_key(*k));
        for key in ours_put.chain(ours_delete) {
            let current = now.get(key).map_or(0, |kv| kv.mod_revision);
            let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, current);
            match before.get(key) {
                Some(kv) => restores.push((guard, Op::put(key.clone(), kv.value.clone()))),
                None if current != 0 => restores.push((guard, Op::delete(key.clone()))),
                None => {}
            }
        }
    }
    let restored = restores.len();
    let ours = Compare::create_revision(keys.apply_lock(), CompareOp::Equal, lock.create_revision);
    for part in restores.chunks(limit.saturating_sub(1).max(1)) {
        let mut txn = Txn::new().when(ours.clone());
        for (guard, op) in part {
            txn.compares.push(guard.clone());
            txn.success.push(op.clone());
        }
        if !store.txn(txn).await?.succeeded {
            // Someone wrote one of these keys meanwhile, or took the lock: look again.
            return Err(StagedError::Conflict);
        }
    }
    let released = store
        .txn(
            Txn::new()
                .when(ours)
                .then(Op::delete(keys.apply_lock()))
                .then(Op::delete(keys.apply_holder()))
                .then(Op::delete_prefix(keys.apply_progress())),
        )
        .await?;
    if !released.succeeded {
        return Err(StagedError::Conflict);
    }
    Ok(restored)
}
