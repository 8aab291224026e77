//! Reads (the current revision, a key, a prefix at a revision) and compaction, and the
//! conversion of etcd's key-values to the store's.

use std::time::Duration;

use etcd_client as ec;

use super::client::{CallError, EtcdStore};
use super::grpc::{is_compacted, is_future_revision};
use crate::store::{KeyValue, ListResult, Result, Revision, StoreError};

/// How long to look for the compacted revision when a read failed for compaction.
const COMPACT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl EtcdStore {
    pub(super) async fn read_revision(&self) -> Result<Revision> {
        // Any key will do: the header carries the store revision. Count-only keeps it cheap.
        let resp = self
            .send(|| {
                let mut kv = self.kv.clone();
                async move {
                    kv.get("\0", Some(ec::GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await
            .map_err(|e| self.fail("read the current revision", e))?;
        header_revision(resp.header())
    }

    pub(super) async fn read_key(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .send(|| {
                let mut kv = self.kv.clone();
                async move { kv.get(key, None).await }
            })
            .await
            .map_err(|e| self.fail(format_args!("get {key:?}"), e))?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    pub(super) async fn read_prefix(
        &self,
        prefix: &str,
        revision: Option<Revision>,
    ) -> Result<ListResult> {
        let mut opts = ec::GetOptions::new().with_prefix();
        if let Some(rev) = revision {
            opts = opts.with_revision(rev);
        }
        let request = || {
            let mut kv = self.kv.clone();
            let opts = opts.clone();
            async move { kv.get(prefix, Some(opts)).await }
        };
        match self.send(request).await {
            Ok(resp) => {
                let kvs = resp
                    .kvs()
                    .iter()
                    .map(convert_kv)
                    .collect::<Result<Vec<_>>>()?;
                // The header revision is the store's current one even for a read in the past.
                let revision = match revision {
                    Some(rev) if rev > 0 => rev,
                    _ => header_revision(resp.header())?,
                };
                Ok(ListResult { kvs, revision })
            }
            Err(CallError::Etcd(e)) if is_compacted(&e) => {
                let requested = revision.unwrap_or_default();
                let compacted = self.compacted_revision(prefix, requested + 1).await;
                Err(StoreError::Compacted {
                    requested,
                    compacted,
                })
            }
            Err(CallError::Etcd(e)) if is_future_revision(&e) => {
                let current = self.read_revision().await?;
                Err(StoreError::FutureRevision {
                    requested: revision.unwrap_or_default(),
                    current,
                })
            }
            Err(e) => Err(self.fail(format_args!("list {prefix:?}"), e)),
        }
    }

    pub(super) async fn compact_to(&self, revision: Revision) -> Result<()> {
        let request = || {
            let mut kv = self.kv.clone();
            async move { kv.compact(revision, None).await }
        };
        match self.send(request).await {
            Ok(_) => Ok(()),
            // History before `revision` is already gone: the caller got what it asked for.
            Err(CallError::Etcd(e)) if is_compacted(&e) => Ok(()),
            Err(CallError::Etcd(e)) if is_future_revision(&e) => {
                let current = self.read_revision().await?;
                Err(StoreError::FutureRevision {
                    requested: revision,
                    current,
                })
            }
            Err(e) => Err(self.fail(format_args!("compact at revision {revision}"), e)),
        }
    }

    /// The oldest revision etcd still keeps, after a read was refused for compaction.
    ///
    /// etcd's "compacted" error does not say up to where; a watch from revision 1 does (its
    /// cancel response carries the compact revision). If that fails too, `fallback` is the
    /// best we know.
    async fn compacted_revision(&self, key: &str, fallback: Revision) -> Revision {
        let probe = async {
            let mut client = self.watch.clone();
            let opts = ec::WatchOptions::new().with_prefix().with_start_revision(1);
            let mut stream = client.watch(key, Some(opts)).await.ok()?;
            loop {
                let resp = stream.message().await.ok()??;
                if resp.compact_revision() != 0 {
                    return Some(resp.compact_revision());
                }
                // Events instead of a compaction notice: history from 1 is there after all
                // (a race with a restore); stop looking.
                if !resp.events().is_empty() || resp.canceled() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(COMPACT_PROBE_TIMEOUT, probe).await {
            Ok(Some(rev)) => rev,
            _ => fallback,
        }
    }
}

pub(super) fn header_revision(header: Option<&ec::ResponseHeader>) -> Result<Revision> {
    header
        .map(ec::ResponseHeader::revision)
        .ok_or_else(|| StoreError::Backend("etcd answered without a response header".into()))
}

pub(super) fn key_string(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|_| {
        StoreError::Backend(format!(
            "etcd holds a key that is not UTF-8: {:?}",
            String::from_utf8_lossy(key)
        ))
    })
}

pub(super) fn convert_kv(kv: &ec::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(kv.key())?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}
