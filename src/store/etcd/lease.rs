//! Leases: granting (whole seconds, rounded up), one keep-alive refresh, revoking.

use std::time::Duration;

use super::client::{deadline, CallError, EtcdStore};
use super::grpc::is_lease_not_found;
use crate::store::{Lease, LeaseId, Result, StoreError};

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
        // etcd-client opens the keep-alive stream with one refresh and reads its answer itself,
        // failing on a TTL of 0 (lease not found) but keeping the TTL to itself; a second
        // refresh on the same stream tells us the TTL. Dropping the keeper closes the stream.
        let (mut keeper, mut responses) = match self
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
        deadline(keeper.keep_alive())
            .await
            .map_err(|e| self.fail(&what, e))?;
        match deadline(responses.message()).await {
            Ok(Some(resp)) if resp.ttl() > 0 => Ok(Duration::from_secs(resp.ttl().unsigned_abs())),
            Ok(Some(_)) => Err(StoreError::LeaseNotFound(id)),
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
        match self.send(request).await {
            Ok(_) => Ok(()),
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(id)),
            Err(e) => Err(self.fail(format_args!("revoke lease {id}"), e)),
        }
    }
}
