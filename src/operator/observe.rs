//! What the pure controllers read, built from the runtime's snapshot and the latest probe
//! results: [`Desired`] from the objects, [`Observed`] from reports, plans, agent leases
//! and probes.

use std::time::SystemTime;

use omtd_controllers::{Desired, Observed};
use tokio::time::Instant;

use super::probes::ProbeResults;
use crate::runtime::Snapshot;

/// The records with their statuses, cluster defaults applied.
pub fn desired(snapshot: &Snapshot) -> Desired {
    Desired::from_objects(snapshot.objects.values().map(|s| &s.object))
}

/// What the shell measured. `now` is the wall-clock time for statuses; `mono` is this
/// process's monotonic clock, against which agent heartbeats were recorded.
pub fn observed(
    snapshot: &Snapshot,
    probes: &ProbeResults,
    now: SystemTime,
    mono: Instant,
) -> Observed {
    Observed {
        now,
        reports: snapshot.reports.clone(),
        agents: snapshot.agent_liveness(mono),
        mesos: probes.mesos.clone(),
        zookeeper: probes.zookeeper.clone(),
        prometheus_targets: probes.prometheus_targets.clone(),
        plans: snapshot.plans.clone(),
    }
}
