//! The host layer the agent's `linux` driver is built on: running programs
//! ([`command`]), LVM ([`lvm`]) and filesystems ([`fs`]).
//!
//! Everything here is a library with no loop of its own: the agent decides when to observe
//! and what to apply; these modules make each step exact and safe. Every step is
//! idempotent (observe, then act only on what differs), refuses with a typed error when it
//! could lose data, and changes nothing when it refuses.

pub mod command;
pub mod fs;
pub mod lvm;

/// Whether a step changed the host (for the agent's change counters and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostChange {
    Changed,
    Unchanged,
}

impl HostChange {
    pub fn changed(self) -> bool {
        self == HostChange::Changed
    }

    /// Changed when either was.
    pub fn or(self, other: HostChange) -> HostChange {
        if self.changed() || other.changed() {
            HostChange::Changed
        } else {
            HostChange::Unchanged
        }
    }
}
