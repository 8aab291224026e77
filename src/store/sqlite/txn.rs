//! Compare-and-swap transactions.

use std::cmp::Ordering;
use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::context::Context;
use super::db::{KeyRange, Writer};
use super::lease::sweep_expired;
use super::{Compare, CompareOp, CompareTarget, Op, Result, StoreError, Txn, TxnResult};

/// Rejects what etcd rejects before running a transaction: an empty key, and a branch that
/// writes one key twice (two puts, or a put and a delete covering it): "duplicate key given
/// in txn request". Both branches are checked, whichever runs.
fn check_ops(ops: &[Op]) -> Result<()> {
    let mut puts = HashSet::new();
    for op in ops {
        match op {
            Op::Put { key, .. } if key.is_empty() => return Err(empty_key()),
            Op::Put { key, .. } if !puts.insert(key.as_str()) => return Err(duplicate_key(key)),
            Op::Delete { key } if key.is_empty() => return Err(empty_key()),
            _ => {}
        }
    }
    for op in ops {
        let overlapping = match op {
            Op::Delete { key } => puts.get(key.as_str()).copied(),
            Op::DeletePrefix { prefix } => puts
                .iter()
                .copied()
                .find(|k| k.starts_with(prefix.as_str())),
            Op::Put { .. } => None,
        };
        if let Some(key) = overlapping {
            return Err(duplicate_key(key));
        }
    }
    Ok(())
}

fn empty_key() -> StoreError {
    StoreError::Backend("a transaction names an empty key (etcd: key is not provided)".into())
}

fn duplicate_key(key: &str) -> StoreError {
    StoreError::Backend(format!(
        "a transaction writes key {key:?} more than once (etcd: duplicate key given in txn request)"
    ))
}

pub(super) fn txn(conn: &mut Connection, txn: &Txn, now_ms: i64) -> Result<TxnResult> {
    check_ops(&txn.success)?;
    check_ops(&txn.failure)?;
    // IMMEDIATE takes the write lock up front, so two processes racing a CAS serialize:
    // the second sees the first's write when it evaluates its compares.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("starting a write transaction")?;
    sweep_expired(&tx, now_ms)?;
    let mut succeeded = true;
    for compare in &txn.compares {
        if !compare_holds(&tx, compare)? {
            succeeded = false;
            break;
        }
    }
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let mut writer = Writer::new(&tx)?;
    for op in ops {
        match op {
            Op::Put { key, value, lease } => writer.put(key, value, *lease)?,
            Op::Delete { key } => {
                writer.delete(key.as_bytes())?;
            }
            Op::DeletePrefix { prefix } => writer.delete_range(&KeyRange::prefix(prefix))?,
        }
    }
    let revision = writer.finish()?;
    tx.commit().ctx("committing a transaction")?;
    Ok(TxnResult {
        succeeded,
        revision,
    })
}

fn compare_holds(conn: &Connection, compare: &Compare) -> Result<bool> {
    let current = conn
        .query_row(
            "SELECT value, create_revision, mod_revision, version FROM kv WHERE key = ?1",
            [compare.key.as_bytes()],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()
        .ctx(&format!("comparing key {:?}", compare.key))?;
    // A missing key has revisions and version 0; a value compare on a missing key fails
    // whatever the operator (etcd: "nil == empty string in grpc; no way to represent missing
    // value"), so NotEqual fails too.
    let ordering = match (&compare.target, current) {
        (CompareTarget::Value(_), None) => return Ok(false),
        (CompareTarget::Value(want), Some((value, ..))) => value.as_slice().cmp(want.as_slice()),
        (CompareTarget::CreateRevision(want), cur) => cur.map_or(0, |c| c.1).cmp(want),
        (CompareTarget::ModRevision(want), cur) => cur.map_or(0, |c| c.2).cmp(want),
        (CompareTarget::Version(want), cur) => cur.map_or(0, |c| c.3).cmp(want),
    };
    Ok(match compare.op {
        CompareOp::Equal => ordering == Ordering::Equal,
        CompareOp::NotEqual => ordering != Ordering::Equal,
        CompareOp::Less => ordering == Ordering::Less,
        CompareOp::Greater => ordering == Ordering::Greater,
    })
}
