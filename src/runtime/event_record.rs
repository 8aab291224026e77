//! What an event is: the note a reconcile asks to record, and the record as stored. Below
//! both the controller contract and the cache, which each name it.

use serde::{Deserialize, Serialize};

/// Normal or Warning: the controllers' type, stored as it is.
pub use omtd_controllers::EventType;

/// An event a reconcile wants recorded. Never put a secret in `message`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventNote {
    /// `node/node1.omtd`.
    pub object: String,
    pub type_: EventType,
    /// CamelCase, e.g. `Rejected`.
    pub reason: String,
    pub message: String,
}

/// One event record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `node/node1.omtd`.
    pub object: String,
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    /// The controller that recorded it.
    pub source: String,
    pub count: u64,
    /// RFC 3339.
    pub first_seen: String,
    pub last_seen: String,
}

impl Event {
    pub(super) fn same_as(&self, source: &str, note: &EventNote) -> bool {
        self.object == note.object
            && self.type_ == note.type_
            && self.reason == note.reason
            && self.message == note.message
            && self.source == source
    }
}
