//! The agent's heartbeat: `leases/agents/<node>` attached to a lease kept alive every third
//! of its TTL. Keep-alives are not writes (the store's revision does not move); the key is
//! written again only when the lease was lost and granted anew.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Op, Store, StoreError, Txn};

/// Keep the heartbeat until `shutdown` turns true; then revoke the lease. `healthy` says
/// whether the last keep-alive reached the store.
pub async fn run(
    store: Arc<dyn Store>,
    key: String,
    value: Vec<u8>,
    ttl: Duration,
    healthy: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut lease = None;
    // A lease granted but whose key is not written yet (the put failed, e.g. a busy etcd):
    // the next try writes the key on it instead of granting another, so a store slow to
    // answer does not fill up with leases nobody holds (10,000 agents retrying each second).
    let mut granted: Option<crate::store::LeaseId> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let step = async {
            match lease {
                None => {
                    let id = match granted {
                        Some(id) => id,
                        None => store.grant_lease(ttl).await?.id,
                    };
                    granted = Some(id);
                    match store
                        .txn(Txn::new().then(Op::put_with_lease(&key, value.clone(), id)))
                        .await
                    {
                        Ok(_) => {
                            granted = None;
                            lease = Some(id);
                            Ok::<_, StoreError>(())
                        }
                        Err(e) => {
                            if matches!(e, StoreError::LeaseNotFound(_)) {
                                // Expired while the store was busy: grant anew next time.
                                granted = None;
                            }
                            Err(e)
                        }
                    }
                }
                Some(id) => match store.keep_alive(id).await {
                    Err(StoreError::LeaseNotFound(_)) => {
                        tracing::warn!("heartbeat lease expired: granting a new one");
                        lease = None;
                        Ok(())
                    }
                    other => other.map(|_| ()),
                },
            }
        };
        let wait = match step.await {
            Ok(()) => {
                healthy.store(true, Ordering::Relaxed);
                if lease.is_none() {
                    Duration::ZERO
                } else {
                    period
                }
            }
            Err(e) => {
                if healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "lost the store: keeping the host as it is");
                }
                period.min(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    if let Some(id) = lease.or(granted) {
        let _ = store.revoke_lease(id).await;
    }
}
