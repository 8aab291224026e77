//! Reading the change log for watches: the queries the hub's poller (`poller.rs`) runs, on
//! its own connection, for the live fan-out and for a watch's catch-up.

use rusqlite::{params, Connection, Row};

use super::context::Context;
use super::db::{key_from_blob, meta_get, KeyRange};
use super::schema::{META_COMPACTED, META_REVISION};
use super::{EventKind, KeyValue, Result, Revision, WatchEvent};

/// Revisions read from the log at once: bounds the poller's memory on a long replay, and
/// how long one catch-up read keeps the other watches waiting.
pub(super) const REVISIONS_PER_FETCH: i64 = 128;

/// Events buffered in a watch's channel. When it is full the watch falls out of the live
/// fan-out and catches up from the log once its reader makes room (see `slot.rs`).
pub(super) const CHANNEL_CAPACITY: usize = 256;

/// What a read of the log found.
pub(super) enum Fetched {
    /// Events with revisions from the requested one up to `next - 1`, in order.
    Events {
        events: Vec<WatchEvent>,
        next: Revision,
        caught_up: bool,
    },
    /// The requested revision was compacted away (the compaction revision is given): the
    /// watcher must relist.
    Compacted(Revision),
}

/// Which keys, and up to which revision, a read of the log covers.
pub(super) struct Span<'r> {
    /// `None`: every key (the live fan-out reads each revision once for all watches).
    pub(super) range: Option<&'r KeyRange>,
    pub(super) from: Revision,
    /// The last revision to read at most (a catch-up stops where the live fan-out is).
    pub(super) until: Revision,
}

/// Reads the log entries of `span`, at most [`REVISIONS_PER_FETCH`] revisions of them (never
/// part of a revision), in revision order.
pub(super) fn fetch_events(conn: &mut Connection, span: &Span<'_>) -> Result<Fetched> {
    let what = "reading the change log";
    let tx = conn.transaction().ctx(what)?;
    let current = meta_get(&tx, META_REVISION)?;
    let compacted = meta_get(&tx, META_COMPACTED)?;
    let from = span.from;
    if from < compacted {
        return Ok(Fetched::Compacted(compacted));
    }
    let last = current.min(span.until);
    if from > last {
        return Ok(Fetched::Events {
            events: Vec::new(),
            next: from,
            caught_up: true,
        });
    }
    let upto = last.min(from.saturating_add(REVISIONS_PER_FETCH - 1));
    let events = match span.range {
        Some(range) => {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT revision, key, deleted, value, create_revision, version, lease FROM log
                     WHERE revision >= ?1 AND revision <= ?2 AND key >= ?3 AND key < ?4
                     ORDER BY revision, sub",
                )
                .ctx(what)?;
            let rows = stmt
                .query_map(params![from, upto, range.start, range.end], event_from_row)
                .ctx(what)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(what)?
        }
        None => {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT revision, key, deleted, value, create_revision, version, lease FROM log
                     WHERE revision >= ?1 AND revision <= ?2 ORDER BY revision, sub",
                )
                .ctx(what)?;
            let rows = stmt
                .query_map(params![from, upto], event_from_row)
                .ctx(what)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(what)?
        }
    };
    Ok(Fetched::Events {
        events,
        next: upto + 1,
        caught_up: upto == last,
    })
}

/// Reads a row of `log` columns: revision, key, deleted, value, create_revision, version,
/// lease.
fn event_from_row(row: &Row<'_>) -> rusqlite::Result<WatchEvent> {
    let revision: Revision = row.get(0)?;
    let key = key_from_blob(row.get(1)?)?;
    Ok(if row.get::<_, bool>(2)? {
        WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
                lease: None,
            },
        }
    } else {
        WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key,
                value: row.get(3)?,
                create_revision: row.get(4)?,
                mod_revision: revision,
                version: row.get(5)?,
                lease: row.get(6)?,
            },
        }
    })
}

/// SQLite's counter of commits made by other connections to the file: the poller's cheap
/// "did anything change?" check (it reads the shared memory, not the file).
pub(super) fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
        .ctx("checking for changes")
}
