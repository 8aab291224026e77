//! Kubernetes-like events under `events/<time>-<seq>`.
//!
//! An event that repeats (same object, type, reason, message and source) is not written
//! again: the existing record's `count` and `lastSeen` move instead. Records expire through
//! leases: each write attaches the record to a lease granted with the event TTL and never
//! renewed, and a fresh lease is taken once the current one has used a tenth of its TTL, so a
//! record lives between 90% and 100% of the TTL after its last occurrence, and the store
//! removes it by itself even when no operator runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::Instant;

pub use super::event_record::Event;
use super::event_record::EventNote;
use super::snapshot::Snapshot;
use crate::resources::Keys;
use crate::store::{LeaseId, Revision, Store, StoreError};

/// How long an event is kept after it last happened, by default (Kubernetes keeps 1 h).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// One record to write: the key, the record, and the key's mod revision when read (0: new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWrite {
    pub key: String,
    pub event: Event,
    pub read_revision: Revision,
}

/// Records events of one operator process.
pub struct EventRecorder {
    store: Arc<dyn Store>,
    keys: Keys,
    ttl: Duration,
    /// The lease new writes attach to, and when it was granted (this process's clock).
    lease: Mutex<Option<(LeaseId, Instant)>>,
    seq: AtomicU64,
}

impl EventRecorder {
    pub fn new(store: Arc<dyn Store>, keys: Keys, ttl: Duration) -> Self {
        EventRecorder {
            store,
            keys,
            ttl,
            lease: Mutex::new(None),
            seq: AtomicU64::new(0),
        }
    }

    /// The records to write for `notes`: updates of repeated events, new records otherwise.
    pub fn plan(
        &self,
        snapshot: &Snapshot,
        source: &str,
        notes: &[EventNote],
        now: SystemTime,
    ) -> Vec<EventWrite> {
        let stamp = humantime::format_rfc3339_nanos(now).to_string();
        let prefix = self.keys.events();
        let mut writes: Vec<EventWrite> = Vec::new();
        // Where each note's write is, so a repeat is found at once (an outcome may hold a
        // note for each of thousands of nodes).
        let mut written: HashMap<&EventNote, usize> = HashMap::new();
        for note in notes {
            // The same note twice in one outcome counts twice.
            if let Some(w) = written.get(note).and_then(|i| writes.get_mut(*i)) {
                w.event.count += 1;
                continue;
            }
            written.insert(note, writes.len());
            // The snapshot keeps the events parsed: parsing every record for every note
            // made a thousand nodes' first Accepted events cost O(nodes²) parses.
            let existing = snapshot
                .events_about(&note.object)
                .find_map(|(key, event)| {
                    let read_revision = snapshot.raw.get(key)?.mod_revision;
                    event
                        .same_as(source, note)
                        .then(|| (key.clone(), Event::clone(event), read_revision))
                });
            let write = match existing {
                Some((key, mut event, read_revision)) => {
                    event.count += 1;
                    event.last_seen = stamp.clone();
                    EventWrite {
                        key,
                        event,
                        read_revision,
                    }
                }
                None => {
                    let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                    EventWrite {
                        key: format!("{prefix}{stamp}-{seq:06}"),
                        event: Event {
                            object: note.object.clone(),
                            type_: note.type_,
                            reason: note.reason.clone(),
                            message: note.message.clone(),
                            source: source.to_owned(),
                            count: 1,
                            first_seen: stamp.clone(),
                            last_seen: stamp.clone(),
                        },
                        read_revision: 0,
                    }
                }
            };
            writes.push(write);
        }
        writes
    }

    /// The lease to attach records to now, granting a fresh one when due.
    pub async fn lease(&self) -> Result<LeaseId, StoreError> {
        let mut current = self.lease.lock().await;
        let refresh_after = (self.ttl / 10).max(Duration::from_secs(1));
        if let Some((id, granted)) = *current {
            if granted.elapsed() < refresh_after {
                return Ok(id);
            }
        }
        let granted_at = Instant::now();
        let lease = self.store.grant_lease(self.ttl).await?;
        *current = Some((lease.id, granted_at));
        Ok(lease.id)
    }

    /// Forgets the current lease (it expired under us): the next write takes a fresh one.
    pub async fn forget_lease(&self) {
        *self.lease.lock().await = None;
    }
}

/// Every event record of the cluster, oldest first by last occurrence.
pub async fn list(store: &dyn Store, keys: &Keys) -> Result<Vec<Event>, StoreError> {
    let list = store.list(&keys.events(), None).await?;
    let mut events: Vec<Event> = list
        .kvs
        .iter()
        .filter_map(|kv| match serde_json::from_slice(&kv.value) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "skipping an unreadable event record");
                None
            }
        })
        .collect();
    events.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
    Ok(events)
}
