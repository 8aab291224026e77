//! Leases: granting (whole seconds, rounded up), one keep-alive refresh, revoking.
//!
//! A refresh goes over a keep-alive stream kept open per lease: opening one per refresh
//! (a stream, etcd-client's own first refresh, ours, a reset on close) cost a 2-core etcd
//! all its CPU at 10,000 agents renewing every few seconds, and the stream resets tripped
//! h2's guard against reset floods, which closes the whole connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use etcd_client as ec;

use super::client::{deadline, CallError, EtcdStore};
use super::grpc::is_lease_not_found;
use crate::store::{Lease, LeaseId, Result, StoreError};

/// One lease's open keep-alive stream: the sender of refreshes and their answers. Behind
/// an async lock so two refreshes of one lease never read each other's answer.
type Keeper = Arc<tokio::sync::Mutex<(ec::LeaseKeeper, ec::LeaseKeepAliveStream)>>;

/// The open keep-alive streams of a connection, by lease.
#[derive(Default, Clone)]
pub(super) struct Keepers(Arc<Mutex<HashMap<LeaseId, Keeper>>>);

impl Keepers {
    fn lock(&self) -> MutexGuard<'_, HashMap<LeaseId, Keeper>> {
        // Inserts and removes cannot panic half-way.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: LeaseId) -> Option<Keeper> {
        self.lock().get(&id).cloned()
    }

    fn forget(&self, id: LeaseId) {
        self.lock().remove(&id);
    }
}

/// What one refresh on an open stream learnt.
enum Refreshed {
    Alive(Duration),
    NotFound,
}

/// One refresh on an open stream: send, read the answer.
async fn refresh_on(keeper: &Keeper) -> std::result::Result<Option<Refreshed>, CallError> {
    let mut stream = keeper.lock().await;
    let (sender, responses) = &mut *stream;
    deadline(sender.keep_alive()).await?;
    Ok(match deadline(responses.message()).await? {
        Some(resp) if resp.ttl() > 0 => Some(Refreshed::Alive(Duration::from_secs(
            resp.ttl().unsigned_abs(),
        ))),
        Some(_) => Some(Refreshed::NotFound),
        None => None,
    })
}

impl EtcdStore {
    pub(super) async fn grant(&self, ttl: Duration) -> Result<Lease> {
        // etcd leases are whole seconds: round up so a lease never lives shorter than asked.
        let secs = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0))
            .max(1);
        let secs = i64::try_from(secs)
            .map_err(|_| StoreError::Config(format!("lease TTL {ttl:?} is too long")))?;
        let resp = self
            .send(|| {
                let mut lease = self.lease.clone();
                async move { lease.grant(secs, None).await }
            })
            .await
            .map_err(|e| self.fail("grant a lease", e))?;
        if !resp.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd at {}: grant a lease: {}",
                self.endpoints,
                resp.error()
            )));
        }
        // etcd may raise the TTL to its minimum (1.5 × election timeout): report what it chose.
        let granted = u64::try_from(resp.ttl()).unwrap_or(secs.unsigned_abs());
        Ok(Lease {
            id: resp.id(),
            ttl: Duration::from_secs(granted),
        })
    }

    pub(super) async fn refresh(&self, id: LeaseId) -> Result<Duration> {
        let what = format!("keep lease {id} alive");
        if let Some(keeper) = self.keepers.get(id) {
            match refresh_on(&keeper).await {
                Ok(Some(Refreshed::Alive(ttl))) => return Ok(ttl),
                Ok(Some(Refreshed::NotFound)) => {
                    self.keepers.forget(id);
                    return Err(StoreError::LeaseNotFound(id));
                }
                // The stream ended or failed (etcd restarted, the connection dropped): open
                // a new one below, which also tells whether the lease still exists.
                Ok(None) | Err(_) => self.keepers.forget(id),
            }
        }
        // etcd-client opens the keep-alive stream with one refresh and reads its answer itself,
        // failing on a TTL of 0 (lease not found) but keeping the TTL to itself; a second
        // refresh on the same stream tells us the TTL. The stream is kept for the next one.
        let (keeper, responses) = match self
            .send(|| {
                let mut lease = self.lease.clone();
                async move { lease.keep_alive(id).await }
            })
            .await
        {
            Ok(pair) => pair,
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => {
                return Err(StoreError::LeaseNotFound(id))
            }
            Err(e) => return Err(self.fail(&what, e)),
        };
        let keeper: Keeper = Arc::new(tokio::sync::Mutex::new((keeper, responses)));
        match refresh_on(&keeper).await {
            Ok(Some(Refreshed::Alive(ttl))) => {
                self.keepers.lock().insert(id, keeper);
                Ok(ttl)
            }
            Ok(Some(Refreshed::NotFound)) => Err(StoreError::LeaseNotFound(id)),
            Ok(None) => Err(StoreError::Unavailable(format!(
                "etcd at {}: {what}: stream closed",
                self.endpoints
            ))),
            Err(e) => Err(self.fail(&what, e)),
        }
    }

    pub(super) async fn revoke(&self, id: LeaseId) -> Result<()> {
        let request = || {
            let mut lease = self.lease.clone();
            async move { lease.revoke(id).await }
        };
        // The stream of a revoked lease has nothing left to refresh.
        self.keepers.forget(id);
        match self.send(request).await {
            Ok(_) => Ok(()),
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(id)),
            Err(e) => Err(self.fail(format_args!("revoke lease {id}"), e)),
        }
    }
}
