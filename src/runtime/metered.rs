//! A [`Store`] that times every call into the operator's metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::metrics::{Metrics, StoreOp};
use crate::store::{
    KeyValue, Lease, LeaseId, ListResult, Result, Revision, Store, Txn, TxnResult, WatchStream,
};

/// Wraps a store; every call is observed in `omtd_store_operation_duration_seconds`.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner, metrics })
    }

    async fn timed<T>(&self, op: StoreOp, call: impl Future<Output = Result<T>>) -> Result<T> {
        let start = Instant::now();
        let result = call.await;
        self.metrics.store_op(op, result.is_ok(), start.elapsed());
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.timed(StoreOp::CurrentRevision, self.inner.current_revision())
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.timed(StoreOp::Get, self.inner.get(key)).await
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        self.timed(StoreOp::List, self.inner.list(prefix, revision))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.timed(StoreOp::Txn, self.inner.txn(txn)).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        // Times the setup only: a watch stream lives as long as its watcher.
        self.timed(StoreOp::Watch, self.inner.watch(prefix, from_revision))
            .await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        self.timed(StoreOp::GrantLease, self.inner.grant_lease(ttl))
            .await
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.timed(StoreOp::KeepAlive, self.inner.keep_alive(id))
            .await
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.timed(StoreOp::RevokeLease, self.inner.revoke_lease(id))
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.timed(StoreOp::Compact, self.inner.compact(revision))
            .await
    }
}
