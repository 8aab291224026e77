//! The four pure controllers (`omtd_controllers::{node, storage, credentials,
//! leader_guard}`) as runtime controllers.
//!
//! Each looks at the whole cluster at once (a node's plan depends on every other node: the
//! master's credentials list every worker, the executor exports to each of them), so each
//! has one work key, [`CLUSTER_KEY`], and any change it reads wakes it. The queue folds a
//! burst of changes into one reconcile, and an unchanged outcome writes nothing.
//!
//! A reconcile: snapshot → `Desired` (shared by the four while the objects are unchanged)
//! and `Observed` (reports, its own stored slices, agent heartbeats on this process's
//! monotonic clock, the latest probe answers; copied from the last pass's maps, only what
//! changed) → the pure function → `Outcome` (slices, statuses merged by the parts this
//! controller owns, events, the records to release) — plus, for the node controller, the
//! Mesos maintenance it wants, handed to the maintenance loop. The writer skips every
//! slice and status equal to the stored one without serializing it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use omtd_controllers::{self as pure, Intent, Settings};
use omtd_crds::plan::PlanSlice;
use omtd_crds::{Kind, ObjectKey};
use tokio::time::Instant;

use super::maintenance::MaintenanceWanted;
use super::mirror::Pool;
use super::observe::{DesiredCache, ObservedMaps};
use super::probes::SharedProbes;
use crate::runtime::{
    Changed, Controller, EventNote, Outcome, ReconcileError, Reconciled, Snapshot, StatusParts,
    WorkKey,
};

/// The one work key of each of these controllers.
pub const CLUSTER_KEY: &str = "cluster";

/// One pure controller, wired to the runtime.
pub struct PureController {
    name: &'static str,
    settings: Arc<Settings>,
    probes: Arc<SharedProbes>,
    /// Where the node controller's wanted Mesos maintenance goes.
    maintenance: Option<Arc<MaintenanceWanted>>,
    desired: Arc<DesiredCache>,
    /// This controller's `Observed` maps between passes.
    observed: Pool<ObservedMaps>,
    /// What the pure controller derived on its last pass (slices, aggregate files), so a
    /// pass re-renders only what changed (`omtd_controllers::memo`).
    kept: Pool<pure::Kept>,
    /// For a controller that does not read labels: each record as it last read it, labels
    /// left out, so a relabel alone does not wake it.
    seen: Mutex<HashMap<ObjectKey, u64>>,
}

/// What the four controllers share: their settings and where probe answers and wanted
/// maintenance live.
#[derive(Clone)]
pub struct Wiring {
    pub settings: Arc<Settings>,
    pub probes: Arc<SharedProbes>,
    pub maintenance: Arc<MaintenanceWanted>,
    /// The `Desired` the four controllers share while the objects are unchanged.
    pub desired: Arc<DesiredCache>,
}

impl Wiring {
    pub fn new(settings: Settings) -> Wiring {
        Wiring {
            settings: Arc::new(settings),
            probes: SharedProbes::new(),
            maintenance: MaintenanceWanted::new(),
            desired: Arc::default(),
        }
    }

    /// node, storage, credentials, leader-guard.
    pub fn controllers(&self) -> Vec<PureController> {
        let make = |name, maintenance| PureController {
            name,
            settings: Arc::clone(&self.settings),
            probes: Arc::clone(&self.probes),
            maintenance,
            desired: Arc::clone(&self.desired),
            observed: Pool::default(),
            kept: Pool::default(),
            seen: Mutex::default(),
        };
        vec![
            make(pure::node::NAME, Some(Arc::clone(&self.maintenance))),
            make(pure::storage::NAME, None),
            make(pure::credentials::NAME, None),
            make(pure::leader_guard::NAME, None),
        ]
    }
}

/// The status parts each controller owns, from its declaration
/// (`omtd_controllers::declaration`).
pub fn owned_parts(controller: &str) -> Vec<StatusParts> {
    pure::declaration(controller).map_or_else(Vec::new, |d| {
        d.owns
            .iter()
            .map(|o| StatusParts::new(o.kind, o.conditions, o.status_keys))
            .collect()
    })
}

impl PureController {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The pure function's output for `snapshot` (no side effect): also what `omtd plan`
    /// runs.
    pub fn output(
        &self,
        snapshot: &Snapshot,
        now: SystemTime,
        mono: Instant,
    ) -> Result<Intent, pure::Error> {
        let desired = self.desired.get(snapshot);
        let mut maps = self.observed.take();
        let observed = maps.observed(snapshot, self.name, &self.probes.get(), now, mono);
        let mut kept = self.kept.take();
        let out = pure::reconcile_kept(self.name, &mut kept, &desired, &observed, &self.settings)
            .unwrap_or_else(|| Err(pure::Error::UnknownController(self.name.to_owned())));
        self.kept.give(kept);
        maps.restore(observed);
        self.observed.give(maps);
        out
    }
}

/// Turns a pure output into what the runtime writes. Released objects lose their slices
/// of this controller at once (the other controllers drop theirs on their next look).
pub fn outcome(controller: &str, out: Intent, snapshot: &Snapshot) -> Outcome {
    let has_stored = |node: &str| {
        snapshot
            .plans
            .get(node)
            .is_some_and(|s| s.contains_key(controller))
    };
    let released: Vec<&str> = out
        .release
        .iter()
        .filter(|k| k.kind == Kind::Node)
        .map(|k| k.name.as_str())
        .collect();
    // A stored slice of a node this controller no longer plans anything on goes.
    let mut plans: Vec<(String, Option<PlanSlice>)> = snapshot
        .plans
        .keys()
        .filter(|node| has_stored(node) && !out.slices.contains_key(node.as_str()))
        .map(|node| (node.clone(), None))
        .collect();
    // The slices move out of the output (no copy); the writer skips those as stored.
    for (node, slice) in out.slices {
        if !released.contains(&node.as_str()) {
            plans.push((node, Some(slice)));
        } else if has_stored(&node) {
            plans.push((node, None));
        }
    }
    let events = out
        .events
        .into_iter()
        .map(|e| EventNote {
            object: e.object.to_string(),
            type_: e.type_,
            reason: e.reason,
            message: e.message,
        })
        .collect();
    Outcome {
        plans,
        statuses: out.statuses.into_iter().collect(),
        owned: owned_parts(controller),
        delete: out.release,
        events,
        requeue_after: out.requeue_after,
        wake: Vec::new(),
    }
}

/// Whether `node` is a Node record with the manager role.
fn is_manager(snapshot: &Snapshot, node: &str) -> bool {
    let key = omtd_crds::ObjectKey {
        kind: Kind::Node,
        name: node.to_owned(),
    };
    snapshot.objects.get(&key).is_some_and(|s| match &s.object {
        omtd_crds::Object::Node(n) => n.spec.roles.contains(&omtd_crds::Role::Manager),
        _ => false,
    })
}

/// Whether a Volume record is on `node`.
fn has_volume(snapshot: &Snapshot, node: &str) -> bool {
    snapshot.of_kind(Kind::Volume).any(|s| match &s.object {
        omtd_crds::Object::Volume(v) => v.spec.node == node,
        _ => false,
    })
}

impl PureController {
    /// Whether the record `id` differs, labels aside, from when this controller last saw it
    /// (always true the first time, and for a record that is gone).
    fn read_differently(&self, id: &ObjectKey, snapshot: &Snapshot) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(stored) = snapshot.objects.get(id) else {
            seen.remove(id);
            return true;
        };
        let print = unlabelled_print(&stored.object);
        seen.insert(id.clone(), print) != Some(print)
    }
}

/// A digest of a record as a controller that ignores labels reads it: without its labels,
/// its status and its resource version (which every write moves).
fn unlabelled_print(object: &omtd_crds::Object) -> u64 {
    let mut bare = object.clone();
    bare.set_status(None);
    let meta = bare.meta_mut();
    meta.labels.clear();
    meta.resource_version = None;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // Serialising a record cannot fail; an empty print only costs a wake.
    serde_json::to_vec(&bare)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl Controller for PureController {
    fn name(&self) -> &'static str {
        self.name
    }

    /// Every pure controller's slices are part of each node's plan.
    fn plans_nodes(&self) -> bool {
        true
    }

    fn all_keys(&self, _snapshot: &Snapshot) -> Vec<WorkKey> {
        vec![CLUSTER_KEY.to_owned()]
    }

    fn keys_for(&self, changed: &Changed, snapshot: &Snapshot) -> Vec<WorkKey> {
        use pure::declaration::{Plans, Reports};
        let Some(wakes) = pure::declaration(self.name).map(|d| d.wakes) else {
            return Vec::new();
        };
        // What each controller reads is declared beside it (`DECLARATION.wakes`).
        let wake = match changed {
            // Cluster-wide controllers: any record or status (they read each other's
            // recorded progress) can change what they plan.
            Changed::Spec(id) => wakes.labels || self.read_differently(id, snapshot),
            Changed::Status(_) => true,
            Changed::Report(node) => match wakes.reports {
                Reports::All => true,
                Reports::Manager => is_manager(snapshot, node),
                Reports::VolumeHolders => has_volume(snapshot, node),
            },
            Changed::Agent(_) => wakes.heartbeats,
            Changed::External(_) => wakes.probes,
            // Its own slice changed: put it back if someone else wrote it (its own writes
            // cost one reconcile that writes nothing).
            Changed::Plan { controller, .. } => match wakes.plans {
                Plans::Own => controller == self.name,
                Plans::All => true,
            },
            Changed::Leader | Changed::Event | Changed::Other(_) => false,
        };
        if wake {
            vec![CLUSTER_KEY.to_owned()]
        } else {
            Vec::new()
        }
    }

    fn reconcile(&self, key: &str, snapshot: &Snapshot, now: SystemTime) -> Reconciled {
        if key != CLUSTER_KEY {
            return Err(ReconcileError::UnknownKey {
                controller: self.name,
                key: key.to_owned(),
                expected: CLUSTER_KEY,
            });
        }
        // The controllers' errors name credentials and problems, never secrets.
        let out = self.output(snapshot, now, Instant::now())?;
        if let Some(wanted) = &self.maintenance {
            wanted.publish(out.maintenance.clone());
        }
        let outcome = outcome(self.name, out, snapshot);
        tracing::debug!(
            slices = outcome.plans.len(),
            statuses = outcome.statuses.len(),
            release = outcome.delete.len(),
            requeue = ?outcome.requeue_after,
            "planned"
        );
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Keys;
    use crate::store::KeyValue;

    fn snapshot_of(yaml: &str) -> (Keys, Snapshot) {
        let keys = Keys::for_cluster("t");
        let mut snapshot = Snapshot::default();
        for (i, obj) in omtd_crds::manifest::parse(yaml)
            .expect("manifest")
            .into_iter()
            .enumerate()
        {
            let key = keys.spec(obj.kind(), obj.name());
            let kv = KeyValue {
                key: key.clone(),
                value: serde_json::to_vec(&obj).expect("json"),
                create_revision: i as i64 + 1,
                mod_revision: i as i64 + 1,
                version: 1,
                lease: None,
            };
            snapshot.apply(&keys, &key, Some(kv), i as i64 + 1);
        }
        (keys, snapshot)
    }

    /// A relabel wakes only the node controller (the one that reads labels); a change of
    /// anything else in the record wakes every controller.
    #[test]
    fn a_relabel_wakes_only_what_reads_labels() {
        let node = |labels: &str, address: &str| {
            format!("apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: w{labels}}}\nspec: {{address: {address}, roles: [worker]}}\n")
        };
        let wiring = Wiring::new(Settings::default());
        let id = ObjectKey {
            kind: Kind::Node,
            name: "w".into(),
        };
        let changed = Changed::Spec(id);
        let woken = |yaml: String| -> Vec<&'static str> {
            let (_, snapshot) = snapshot_of(&yaml);
            wiring
                .controllers()
                .iter()
                .filter(|c| !c.keys_for(&changed, &snapshot).is_empty())
                .map(|c| c.name())
                .collect()
        };
        // Each `controllers()` is a fresh set: keep one set across the changes instead.
        let controllers = wiring.controllers();
        let step = |yaml: String| -> Vec<&'static str> {
            let (_, snapshot) = snapshot_of(&yaml);
            controllers
                .iter()
                .filter(|c| !c.keys_for(&changed, &snapshot).is_empty())
                .map(|c| c.name())
                .collect()
        };
        let all = vec![
            pure::node::NAME,
            pure::storage::NAME,
            pure::credentials::NAME,
            pure::leader_guard::NAME,
        ];
        assert_eq!(step(node("", "10.0.0.5")), all, "first sight wakes all");
        assert_eq!(
            step(node(", labels: {rack: a}", "10.0.0.5")),
            [pure::node::NAME],
            "a relabel"
        );
        assert_eq!(
            step(node(", labels: {rack: a}", "10.0.0.6")),
            all,
            "a new address"
        );
        assert_eq!(
            woken(node("", "10.0.0.6")),
            all,
            "a fresh set knows nothing yet"
        );
    }

    /// What wakes each controller: a change it cannot read costs no reconcile.
    #[test]
    fn controllers_wake_only_for_what_they_read() {
        let (_, snapshot) = snapshot_of(
            "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: m}\nspec: {address: 10.0.0.1, roles: [manager]}\n---\n\
             apiVersion: omtd/v1\nkind: Node\nmetadata: {name: e}\nspec: {address: 10.0.0.2, roles: [executor]}\n---\n\
             apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: v}\nspec: {node: e, device: /dev/vdb, filesystem: ext4, mountPoint: /mnt/v}\n",
        );
        let wiring = Wiring::new(Settings::default());
        let by_name: std::collections::BTreeMap<&str, PureController> = wiring
            .controllers()
            .into_iter()
            .map(|c| (c.name(), c))
            .collect();
        let wakes = |controller: &str, changed: Changed| {
            !by_name[controller].keys_for(&changed, &snapshot).is_empty()
        };
        let report = |n: &str| Changed::Report(n.to_owned());
        // (controller, change, wakes?)
        let table = [
            (pure::credentials::NAME, report("m"), true),
            (pure::credentials::NAME, report("e"), false),
            (pure::credentials::NAME, Changed::Agent("m".into()), false),
            (
                pure::credentials::NAME,
                Changed::External("probes".into()),
                false,
            ),
            (pure::storage::NAME, report("e"), true),
            (pure::storage::NAME, report("m"), false),
            (pure::storage::NAME, Changed::Agent("m".into()), true),
            (
                pure::storage::NAME,
                Changed::External("probes".into()),
                false,
            ),
            (pure::node::NAME, report("m"), true),
            (
                pure::leader_guard::NAME,
                Changed::External("probes".into()),
                true,
            ),
            (
                pure::node::NAME,
                Changed::Plan {
                    node: "e".into(),
                    controller: pure::storage::NAME.into(),
                },
                true,
            ),
            (
                pure::storage::NAME,
                Changed::Plan {
                    node: "e".into(),
                    controller: pure::node::NAME.into(),
                },
                false,
            ),
        ];
        for (i, (controller, changed, want)) in table.into_iter().enumerate() {
            assert_eq!(
                wakes(controller, changed.clone()),
                want,
                "row {i}: {controller} {changed:?}"
            );
        }
    }
}
