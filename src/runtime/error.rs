//! Why a reconcile did not finish: each cause keeps its own error type, and
//! [`ReconcileError::category`] names the `result` label it is counted under.
//!
//! The write error lives here, below both the writer and the controller contract, so that
//! neither has to import the other to name it.

use crate::store::{Revision, StoreError};

use super::metrics::ReconcileResult;

/// Writing a reconcile's outcome failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Leadership was lost: the write was refused by the store.
    #[error("not the leader any more: the leader key is no longer the one created at revision {token}; the write was refused")]
    Fenced { token: Revision },
    /// A key changed after the cache saw it: the reconcile must run again on the new state.
    #[error(
        "a key this reconcile writes changed after it was read; it runs again on the new state"
    )]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failed reconcile: retried with per-key backoff (a conflict sooner, a fenced write
/// not at all: see the manager).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The work key is not one this controller hands out (a wiring bug, not bad data).
    #[error("{key:?} is not a key of the {controller} controller (its keys: {expected})")]
    UnknownKey {
        controller: &'static str,
        key: String,
        /// What its keys look like, for the log.
        expected: &'static str,
    },
    /// A pure controller cannot carry out the desired state as it stands (e.g. a
    /// credential it cannot render). Its errors name objects and problems, never secrets.
    #[error(transparent)]
    Controller(#[from] omtd_controllers::Error),
    /// The reconcile panicked; the runtime caught it on the blocking pool.
    #[error("the reconcile panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
    /// Writing the outcome failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Any other controller's own error (a controller outside this crate, a test's).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl ReconcileError {
    /// The `result` label this failure is counted under: a conflict (harmless, retried on
    /// the new state) apart from a store that failed the write, and both apart from a
    /// controller's own failure.
    pub fn category(&self) -> ReconcileResult {
        match self {
            ReconcileError::Write(WriteError::Fenced { .. }) => ReconcileResult::Fenced,
            ReconcileError::Write(WriteError::Conflict) => ReconcileResult::Conflict,
            ReconcileError::Write(WriteError::Store(_)) => ReconcileResult::WriteError,
            ReconcileError::UnknownKey { .. }
            | ReconcileError::Controller(_)
            | ReconcileError::Panicked(_)
            | ReconcileError::Other(_) => ReconcileResult::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_is_counted_apart_from_a_store_failure() {
        let conflict = ReconcileError::from(WriteError::Conflict);
        let store = ReconcileError::from(WriteError::Store(StoreError::Unavailable("down".into())));
        let fenced = ReconcileError::from(WriteError::Fenced { token: 7 });
        let other = ReconcileError::Other("no".into());
        assert_eq!(conflict.category().as_str(), "conflict");
        assert_eq!(store.category().as_str(), "write_error");
        assert_eq!(fenced.category().as_str(), "fenced");
        assert_eq!(other.category().as_str(), "error");
    }
}
