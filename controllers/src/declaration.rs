//! What each controller owns and what wakes it, as data beside its `reconcile` (each
//! controller's `DECLARATION`). The runtime merges statuses by [`Declaration::owns`] and
//! picks the changes worth a reconcile by [`Declaration::wakes`]; nothing else names the
//! controllers' parts, so a part added here is merged and woken for by the same table.
//!
//! Several controllers write conditions on one object; each starts from the stored status
//! and replaces only what it owns, and the runtime merges by the same parts when it writes
//! (it holds the newest stored status). The `accepted` check (`src/runtime/accepted.rs`)
//! owns the Node's `Accepted` and `Unreadable` conditions; it is not a pure controller and
//! declares its part there.

use omtd_crds::Kind;

/// Condition types the controllers set.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const AGENTS_REACHABLE: &str = "AgentsReachable";
    pub const LEADER_ELECTED: &str = "LeaderElected";
    pub const MESOS_CONNECTED: &str = "MesosConnected";
    pub const RECOVERY: &str = "Recovery";
    pub const REGISTRY_READY: &str = "RegistryReady";
    pub const CHRONOS_READY: &str = "ChronosReady";
    pub const PROMETHEUS_TARGETS_READY: &str = "PrometheusTargetsReady";
}

/// One object kind's part of a status a controller owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub kind: Kind,
    /// Condition types (only this controller sets them on this kind).
    pub conditions: &'static [&'static str],
    /// Keys of `status` (beside the conditions) only this controller writes.
    pub status_keys: &'static [&'static str],
}

/// Which agent reports a controller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reports {
    /// Every node's.
    All,
    /// Only the manager's (a Node record with the manager role).
    Manager,
    /// Only those of nodes a Volume record is on.
    VolumeHolders,
}

/// Which stored plan slices a controller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// Its own slices: it puts them back if someone else wrote them.
    Own,
    /// Every controller's slices (the node controller: a node is Ready only on a report
    /// about all of them).
    All,
}

/// What wakes a controller besides any record or status change (every controller here
/// looks at the whole cluster and reads the others' recorded progress in statuses). Leader
/// changes, events and other keys wake none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wakes {
    pub reports: Reports,
    /// Agent heartbeats (liveness).
    pub heartbeats: bool,
    /// Probe answers (Mesos master, ZooKeeper, Prometheus, the registry, Chronos).
    pub probes: bool,
    pub plans: Plans,
    /// Whether a change of a record's labels alone can change what it plans. Only the node
    /// controller reads labels (they become the workers' scrape-target labels); a relabel
    /// wakes no other (`tests/labels.rs` checks their outputs ignore labels).
    pub labels: bool,
}

/// One controller's ownership and triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    /// Its name, as in `plans/<node>/<name>`.
    pub name: &'static str,
    pub owns: &'static [Owned],
    /// Every condition reason it may set.
    pub reasons: &'static [&'static str],
    pub wakes: Wakes,
}
