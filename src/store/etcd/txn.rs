//! Transactions: the compares (fencing token, revisions) and operations of a [`Txn`] in
//! etcd's terms, and errors that name keys, never values.

use etcd_client as ec;

use super::client::{CallError, EtcdStore};
use super::grpc::is_lease_not_found;
use super::kv::header_revision;
use crate::store::{Compare, CompareOp, CompareTarget, Op, Result, StoreError, Txn, TxnResult};

impl EtcdStore {
    pub(super) async fn commit(&self, txn: Txn) -> Result<TxnResult> {
        let what = describe_txn(&txn);
        // etcd names no lease in its "lease not found"; report the first one the txn uses.
        let first_lease = txn
            .success
            .iter()
            .chain(&txn.failure)
            .find_map(|op| match op {
                Op::Put {
                    lease: Some(id), ..
                } => Some(*id),
                _ => None,
            });
        let compares: Vec<ec::Compare> = txn.compares.into_iter().map(to_etcd_compare).collect();
        let success: Vec<ec::TxnOp> = txn.success.into_iter().map(to_etcd_op).collect();
        let failure: Vec<ec::TxnOp> = txn.failure.into_iter().map(to_etcd_op).collect();
        let request = ec::Txn::new()
            .when(compares)
            .and_then(success)
            .or_else(failure);
        let send = || {
            let mut kv = self.kv.clone();
            let request = request.clone();
            async move { kv.txn(request).await }
        };
        match self.send(send).await {
            Ok(resp) => Ok(TxnResult {
                succeeded: resp.succeeded(),
                revision: header_revision(resp.header())?,
            }),
            Err(CallError::Etcd(e)) if is_lease_not_found(&e) => {
                Err(StoreError::LeaseNotFound(first_lease.unwrap_or(0)))
            }
            Err(e) => Err(self.fail(what, e)),
        }
    }
}

fn to_etcd_compare(c: Compare) -> ec::Compare {
    let op = match c.op {
        CompareOp::Equal => ec::CompareOp::Equal,
        CompareOp::NotEqual => ec::CompareOp::NotEqual,
        CompareOp::Less => ec::CompareOp::Less,
        CompareOp::Greater => ec::CompareOp::Greater,
    };
    match c.target {
        CompareTarget::ModRevision(rev) => ec::Compare::mod_revision(c.key, op, rev),
        CompareTarget::CreateRevision(rev) => ec::Compare::create_revision(c.key, op, rev),
        CompareTarget::Version(v) => ec::Compare::version(c.key, op, v),
        CompareTarget::Value(v) => ec::Compare::value(c.key, op, v),
    }
}

fn to_etcd_op(op: Op) -> ec::TxnOp {
    match op {
        Op::Put { key, value, lease } => ec::TxnOp::put(
            key,
            value,
            lease.map(|id| ec::PutOptions::new().with_lease(id)),
        ),
        Op::Delete { key } => ec::TxnOp::delete(key, None),
        // etcd-client computes the range end for the prefix.
        Op::DeletePrefix { prefix } => {
            ec::TxnOp::delete(prefix, Some(ec::DeleteOptions::new().with_prefix()))
        }
    }
}

/// A txn for error messages: its size and first key, no values.
fn describe_txn(txn: &Txn) -> String {
    let first_key = txn
        .compares
        .first()
        .map(|c| c.key.as_str())
        .or_else(|| {
            txn.success
                .iter()
                .chain(&txn.failure)
                .next()
                .map(|op| match op {
                    Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
                    Op::DeletePrefix { prefix } => prefix.as_str(),
                })
        })
        .unwrap_or("");
    format!(
        "txn ({} compares, {}+{} ops, first key {first_key:?})",
        txn.compares.len(),
        txn.success.len(),
        txn.failure.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_description_names_keys_not_values() {
        let txn = Txn::new()
            .when(Compare::absent("/k"))
            .then(Op::put("/k", "s3cret"));
        let d = describe_txn(&txn);
        assert!(d.contains("/k") && !d.contains("s3cret"), "{d}");
    }
}
