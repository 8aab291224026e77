//! The cluster epoch: a random id under `epoch`, made by the operator when it first finds
//! none and again by `omtd epoch renew` after the store was restored from a snapshot (which
//! brings back lower fencing tokens than agents have seen). Agents compare (epoch, token):
//! a newer epoch's leader is followed, a deposed leader of the same epoch is not.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::{Compare, Op, Store, StoreError, Txn};

use super::Keys;

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("the system has no randomness to make a cluster epoch from: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new epoch id: creation time (unix milliseconds, 16 hex digits, so later ids sort
/// after earlier ones) and 64 random bits.
pub fn new_epoch(now: SystemTime) -> Result<String, EpochError> {
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| EpochError::Random(e.to_string()))?;
    Ok(format!("{millis:016x}-{:016x}", u64::from_be_bytes(random)))
}

/// The stored epoch, if any (unreadable bytes count as none: the operator never
/// overwrites one, `renew` replaces it).
pub async fn current(store: &dyn Store, keys: &Keys) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(&keys.epoch())
        .await?
        .and_then(|kv| String::from_utf8(kv.value).ok()))
}

/// Creates the epoch if there is none yet (`guard`: the writer's fence, so only the leader
/// does). Returns the epoch now stored.
pub async fn ensure(
    store: &dyn Store,
    keys: &Keys,
    guard: Compare,
) -> Result<Option<String>, EpochError> {
    if let Some(e) = current(store, keys).await? {
        return Ok(Some(e));
    }
    let epoch = new_epoch(SystemTime::now())?;
    let txn = Txn::new()
        .when(guard)
        .when(Compare::absent(keys.epoch()))
        .then(Op::put(keys.epoch(), epoch.clone().into_bytes()));
    store.txn(txn).await?;
    Ok(current(store, keys).await?)
}

/// Replaces the epoch with a new one (`omtd epoch renew`): the next leader's plans are
/// followed by every agent, whatever tokens they saw before the restore.
pub async fn renew(store: &dyn Store, keys: &Keys) -> Result<String, EpochError> {
    let epoch = new_epoch(SystemTime::now())?;
    store.put(&keys.epoch(), epoch.clone().into_bytes()).await?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omtd_crds::plan_manifest::newer_epoch;
    use std::time::Duration;

    #[test]
    fn later_epochs_sort_after_earlier_ones_and_ids_differ() {
        let t = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let a = new_epoch(t).unwrap();
        let b = new_epoch(t + Duration::from_millis(1)).unwrap();
        assert!(newer_epoch(&b, &a) && !newer_epoch(&a, &b));
        assert_ne!(new_epoch(t).unwrap(), new_epoch(t).unwrap());
        assert!(newer_epoch(&a, ""), "any epoch is newer than none");
    }
}
