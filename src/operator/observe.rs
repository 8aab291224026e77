//! What the pure controllers read, built from the runtime's snapshot and the latest probe
//! results: [`Desired`] from the objects, [`Observed`] from reports, plans, agent leases
//! and probes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use imbl::ordmap::DiffItem;
use imbl::OrdMap;
use omtd_controllers::{Desired, Observed};
use omtd_crds::plan::{PlanSlice, Report};
use omtd_crds::{Kind, ObjectKey};
use tokio::time::Instant;

use super::mirror::Mirror;
use super::probes::ProbeResults;
use crate::resources::Stored;
use crate::runtime::Snapshot;
use crate::store::Revision;

/// The records with their statuses, cluster defaults applied.
pub fn desired(snapshot: &Snapshot) -> Desired {
    Desired::from_objects(snapshot.objects.values().map(|s| &s.object))
}

/// The last [`Desired`] built, under the `objects_revision` it was built at: the four
/// controllers wake together on a change and read the same objects, so they share one
/// build rather than each copying every record. A newer revision patches the last build
/// with the objects that differ (the snapshot's persistent map tells them apart without
/// visiting the shared rest), so a relabel copies one record, not every one.
#[derive(Debug, Default)]
pub struct DesiredCache {
    latest: Mutex<Option<Built>>,
}

#[derive(Debug)]
struct Built {
    at: Revision,
    desired: Arc<Desired>,
    /// The objects it was built from.
    from: OrdMap<ObjectKey, Arc<Stored>>,
}

impl DesiredCache {
    pub fn get(&self, snapshot: &Snapshot) -> Arc<Desired> {
        let rev = snapshot.objects_revision;
        if rev == 0 {
            // Not a state read from a store (a hand-made one): nothing to key it by.
            return Arc::new(desired(snapshot));
        }
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        match latest.as_mut() {
            Some(built) if built.at == rev => {
                tracing::trace!(revision = rev, "desired state from the cache");
                Arc::clone(&built.desired)
            }
            // A pass on an older snapshot: built for it alone, the newest kept.
            Some(built) if built.at > rev => Arc::new(desired(snapshot)),
            Some(built) => {
                built.patch(snapshot);
                Arc::clone(&built.desired)
            }
            None => {
                let built = latest.insert(Built {
                    at: rev,
                    desired: Arc::new(desired(snapshot)),
                    from: snapshot.objects.clone(),
                });
                Arc::clone(&built.desired)
            }
        }
    }
}

impl Built {
    /// Brings the build up to `snapshot`'s objects, copying only those that differ. A
    /// change of a Cluster record rebuilds it all (which Cluster is in force depends on
    /// every one of them). A build a pass still reads is left to it: the patch goes into a
    /// copy, which shares every record (`Desired`'s maps are persistent).
    fn patch(&mut self, snapshot: &Snapshot) {
        let changed: Vec<DiffItem<'_, '_, ObjectKey, Arc<Stored>>> =
            self.from.diff(&snapshot.objects).collect();
        let cluster_changed = changed.iter().any(|item| match item {
            DiffItem::Add(k, _) | DiffItem::Remove(k, _) | DiffItem::Update { new: (k, _), .. } => {
                k.kind == Kind::Cluster
            }
        });
        if cluster_changed {
            self.desired = Arc::new(desired(snapshot));
        } else {
            let d = Arc::make_mut(&mut self.desired);
            for item in changed {
                match item {
                    DiffItem::Add(_, stored)
                    | DiffItem::Update {
                        new: (_, stored), ..
                    } => {
                        d.insert(&stored.object);
                    }
                    DiffItem::Remove(key, _) => d.remove(key),
                }
            }
        }
        self.from = snapshot.objects.clone();
        self.at = snapshot.objects_revision;
    }
}

/// The owned maps of [`Observed`], kept from one pass to the next so that a pass copies
/// only the reports and slices that changed since (see [`super::mirror`]).
#[derive(Debug, Default)]
pub struct ObservedMaps {
    reports: Mirror<Arc<Report>, Report>,
    plans: Mirror<BTreeMap<String, Arc<PlanSlice>>, BTreeMap<String, PlanSlice>>,
    digests: Mirror<Arc<BTreeMap<String, String>>, BTreeMap<String, String>>,
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
        self.reports
            .sync(&snapshot.reports, |r: &Arc<Report>| Some(Report::clone(r)));
        self.plans.sync(&snapshot.plans, |slices| {
            let own = slices.get(controller)?;
            Some([(controller.to_owned(), PlanSlice::clone(own))].into())
        });
        self.digests.sync(
            &snapshot.plan_digests,
            |d: &Arc<BTreeMap<String, String>>| Some(BTreeMap::clone(d)),
        );
        Observed {
            now,
            reports: self.reports.take(),
            agents: snapshot.agent_liveness(mono),
            mesos: probes.mesos.clone(),
            zookeeper: probes.zookeeper.clone(),
            prometheus_targets: probes.prometheus_targets.clone(),
            registry: probes.registry.clone(),
            chronos_ping: probes.chronos_ping.clone(),
            plans: self.plans.take(),
            plan_digests: self.digests.take(),
        }
    }

    /// Takes the maps back from a pass's `Observed`.
    pub fn restore(&mut self, observed: Observed) {
        self.reports.give_back(observed.reports);
        self.plans.give_back(observed.plans);
        self.digests.give_back(observed.plan_digests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Keys;
    use crate::store::KeyValue;

    fn node(name: &str, address: &str, labels: &str) -> Vec<u8> {
        let yaml = format!(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n\
             spec: {{address: {address}, roles: [worker]}}\n"
        );
        let obj = omtd_crds::manifest::parse(&yaml).expect("manifest");
        serde_json::to_vec(&obj[0]).expect("json")
    }

    fn put(snapshot: &mut Snapshot, keys: &Keys, name: &str, value: Option<Vec<u8>>, rev: i64) {
        let key = keys.spec(Kind::Node, name);
        let kv = value.map(|value| KeyValue {
            key: key.clone(),
            value,
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: None,
        });
        snapshot.apply(keys, &key, kv, rev);
    }

    /// A patched build is the build from scratch, whatever changed: a relabel, a new
    /// record, a deleted one, and a change while a pass still reads the last build.
    #[test]
    fn a_patched_desired_state_is_the_one_built_from_scratch() {
        let keys = Keys::for_cluster("t");
        let mut snapshot = Snapshot::default();
        for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
            put(
                &mut snapshot,
                &keys,
                n,
                Some(node(n, "10.0.0.1", "")),
                i as i64 + 1,
            );
        }
        let cache = DesiredCache::default();
        let same = |cache: &DesiredCache, snapshot: &Snapshot| {
            let got = cache.get(snapshot);
            assert_eq!(format!("{:?}", got), format!("{:?}", desired(snapshot)));
            got
        };
        let first = same(&cache, &snapshot);
        assert!(
            Arc::ptr_eq(&first, &cache.get(&snapshot)),
            "one build per revision"
        );
        drop(first);
        put(
            &mut snapshot,
            &keys,
            "b",
            Some(node("b", "10.0.0.1", "rack: r1")),
            4,
        );
        put(
            &mut snapshot,
            &keys,
            "d",
            Some(node("d", "10.0.0.4", "")),
            5,
        );
        put(&mut snapshot, &keys, "a", None, 6);
        let patched = same(&cache, &snapshot);
        assert_eq!(
            patched.nodes.keys().collect::<Vec<_>>(),
            ["b", "c", "d"],
            "added and removed"
        );
        // Still read by a pass: patched in a copy, not under the reader.
        let held = Arc::clone(&patched);
        put(
            &mut snapshot,
            &keys,
            "c",
            Some(node("c", "10.0.0.9", "")),
            7,
        );
        let rebuilt = same(&cache, &snapshot);
        assert_eq!(held.nodes["c"].spec.address, "10.0.0.1");
        assert_eq!(rebuilt.nodes["c"].spec.address, "10.0.0.9");
    }
}
