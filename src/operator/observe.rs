//! What the pure controllers read, built from the runtime's snapshot and the latest probe
//! results: [`Desired`] from the objects, [`Observed`] from reports, plans, agent leases
//! and probes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use omtd_controllers::{Desired, Observed};
use omtd_crds::plan::{PlanSlice, Report};
use tokio::time::Instant;

use super::mirror::Mirror;
use super::probes::ProbeResults;
use crate::runtime::Snapshot;
use crate::store::Revision;

/// The records with their statuses, cluster defaults applied.
pub fn desired(snapshot: &Snapshot) -> Desired {
    Desired::from_objects(snapshot.objects.values().map(|s| &s.object))
}

/// The last [`Desired`] built, under the `objects_revision` it was built at: the four
/// controllers wake together on a change and read the same objects, so they share one
/// build rather than each copying every record.
#[derive(Debug, Default)]
pub struct DesiredCache {
    latest: Mutex<Option<(Revision, Arc<Desired>)>>,
}

impl DesiredCache {
    pub fn get(&self, snapshot: &Snapshot) -> Arc<Desired> {
        let rev = snapshot.objects_revision;
        if rev == 0 {
            // Not a state read from a store (a hand-made one): nothing to key it by.
            return Arc::new(desired(snapshot));
        }
        {
            let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, d)) = latest.as_ref().filter(|(at, _)| *at == rev) {
                tracing::trace!(revision = at, "desired state from the cache");
                return Arc::clone(d);
            }
        }
        // Built outside the lock: another controller's pass is not held up by this one.
        let built = Arc::new(desired(snapshot));
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep the newest: a pass on an older snapshot must not evict it.
        if latest.as_ref().is_none_or(|(at, _)| *at < rev) {
            *latest = Some((rev, Arc::clone(&built)));
        }
        built
    }
}

/// The owned maps of [`Observed`], kept from one pass to the next so that a pass copies
/// only the reports and slices that changed since (see [`super::mirror`]).
#[derive(Debug, Default)]
pub struct ObservedMaps {
    reports: Mirror<Report, Report>,
    plans: Mirror<PlanSlice, BTreeMap<String, PlanSlice>>,
    digests: Mirror<BTreeMap<String, String>, BTreeMap<String, String>>,
}

impl ObservedMaps {
    /// What the shell measured, for `controller`, with the maps brought up to date and
    /// moved in; hand the result back with [`ObservedMaps::restore`] after the pass. `now`
    /// is the wall-clock time for statuses; `mono` is this process's monotonic clock,
    /// against which agent heartbeats were recorded.
    ///
    /// `plans` holds only `controller`'s own stored slices: a controller reads its own
    /// previous slice (the credentials controller holds a rotated secret back with it) and
    /// never another's, and copying every controller's slice of every node on every pass was
    /// a quarter of a pass's cost at a thousand nodes.
    pub fn observed(
        &mut self,
        snapshot: &Snapshot,
        controller: &str,
        probes: &ProbeResults,
        now: SystemTime,
        mono: Instant,
    ) -> Observed {
        self.reports.sync(snapshot.reports.iter(), Report::clone);
        let own = snapshot
            .plans
            .iter()
            .filter_map(|(node, slices)| Some((node, slices.get(controller)?)));
        self.plans.sync(own, |slice: &PlanSlice| {
            [(controller.to_owned(), slice.clone())].into()
        });
        self.digests
            .sync(snapshot.plan_digests.iter(), BTreeMap::clone);
        Observed {
            now,
            reports: std::mem::take(&mut self.reports.owned),
            agents: snapshot.agent_liveness(mono),
            mesos: probes.mesos.clone(),
            zookeeper: probes.zookeeper.clone(),
            prometheus_targets: probes.prometheus_targets.clone(),
            plans: std::mem::take(&mut self.plans.owned),
            plan_digests: std::mem::take(&mut self.digests.owned),
        }
    }

    /// Takes the maps back from a pass's `Observed`.
    pub fn restore(&mut self, observed: Observed) {
        self.reports.owned = observed.reports;
        self.plans.owned = observed.plans;
        self.digests.owned = observed.plan_digests;
    }
}
