//! What every SQLite call site shares: the lock wait, and how a rusqlite error becomes a
//! [`StoreError`] naming what the store was doing. Below both the schema and the queries.

use std::time::Duration;

use rusqlite::ErrorCode;

use super::{Result, StoreError};

/// How long a writer waits for another connection (often another process) to release the
/// write lock before giving up with `Unavailable`. Write transactions are short, so reaching
/// this means something is stuck.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Attaches what the store was doing to a rusqlite error. The context names keys at most,
/// never values: values may be secrets.
pub(super) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| match e.sqlite_error_code() {
            // Only reached after the busy timeout: another process holds the write lock.
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(format!(
                "SQLite store busy while {what}: another connection held the lock for more than {} s",
                BUSY_TIMEOUT.as_secs()
            )),
            _ => StoreError::Backend(format!("SQLite error while {what}: {e}")),
        })
    }
}
