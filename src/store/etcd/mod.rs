//! etcd v3 backend: the production, distributed store.
//!
//! The [`Store`] trait was modelled on etcd v3, so this is mostly a mapping: revisions,
//! compares and watches are etcd's own. The parts that need care are:
//! - errors: etcd reports compaction, future revisions and missing leases as gRPC status
//!   codes with fixed messages; we turn them into [`StoreError`] variants, and everything
//!   transport-related into [`StoreError::Unavailable`] naming the endpoints;
//! - hangs: the client's balanced channel waits forever when no endpoint is reachable, so
//!   every request runs under our own deadline;
//! - watches: the server-side watch lives as long as its gRPC stream, so the stream we hand
//!   out owns it, and ends with an error on compaction, cancellation or a transport failure.
//!
//! Values never appear in errors or logs (they may be secrets); keys and prefixes do.
//!
//! Files by concern: `client` (connecting, one request under a deadline, failures as
//! [`StoreError`]), `grpc` (reading etcd's error codes), `kv` (reads, compaction),
//! `txn` (the fenced writes), `watch`, `lease`, `tls` (the files for `etcd+tls://`),
//! `auth` (users and roles: `omtd store secure`).

mod auth;
mod client;
mod grpc;
mod kv;
mod lease;
mod tls;
mod txn;
mod watch;

use std::time::Duration;

use async_trait::async_trait;

pub use auth::{Grant, Identity, Secured, ROOT_USER};
pub use client::EtcdStore;
pub use tls::EtcdTls;

use super::{Lease, LeaseId, ListResult, Result, Revision, Store, Txn, TxnResult, WatchStream};
use crate::store::KeyValue;

/// etcd's default `--max-txn-ops`: the most compares, and the most operations of each
/// branch, one transaction may carry.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

#[async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    fn max_txn_ops(&self) -> usize {
        // The server's limit is not readable by a client: assume the stock one, which every
        // etcd honours at least (a raised limit only makes staged applies rarer).
        DEFAULT_MAX_TXN_OPS
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.read_revision().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read_key(key).await
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        self.read_prefix(prefix, revision).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.commit(txn).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        self.open_watch(prefix, from_revision).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        self.grant(ttl).await
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.refresh(id).await
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.revoke(id).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.compact_to(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use std::time::Instant;

    #[tokio::test]
    async fn connect_to_a_dead_endpoint_fails_fast_with_unavailable() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let err = EtcdStore::connect(std::slice::from_ref(&endpoint))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
        match err {
            StoreError::Unavailable(msg) => {
                assert!(msg.contains(&endpoint), "message lacks the endpoint: {msg}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_without_endpoints_is_a_config_error() {
        assert!(matches!(
            EtcdStore::connect(&[]).await,
            Err(StoreError::Config(_))
        ));
    }
}
