//! What a controller sees: every key of the cluster as last seen by the reflector, and the
//! typed views controllers need (objects with their statuses, plan slices, reports, agents).
//!
//! The reflector updates one `Snapshot` in place change by change and hands out `Arc`s of
//! it; a reconcile holds one consistent state (one store revision) however long it runs.
//! So the reflector copies the snapshot whenever a reconcile still holds the previous one:
//! the maps are persistent (`imbl::OrdMap`: a copy shares the tree, an update copies one
//! path) and every value sits behind an `Arc`, so that copy costs O(1) and a change
//! O(log n), instead of duplicating every record, slice and report (at a thousand nodes, a
//! deep copy per watched batch was a seventh of the operator's CPU).

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use omtd_controllers::AgentLiveness;
use omtd_crds::plan::{PlanSlice, Report};
use omtd_crds::plan_manifest::MANIFEST_KEY;
use omtd_crds::{Kind, Object, ObjectKey, Status};
use tokio::time::Instant;

use super::event_record::Event;
use crate::resources::repo::decode;
use crate::resources::{Keys, Stored};
use crate::store::sealed::sealed_value_problem;
use crate::store::{KeyValue, Revision};

/// A key of the cluster, parsed by what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Spec(ObjectKey),
    Status(ObjectKey),
    Plan {
        node: String,
        controller: String,
    },
    Report(String),
    Agent(String),
    Leader,
    Event,
    /// Anything else under the cluster prefix (the path after the prefix).
    Other(String),
    /// Something outside the store changed (a probe result); the name says what. Never
    /// parsed from a key: the operator announces it through the manager's notifier.
    External(String),
}

impl Changed {
    /// Parses a full store key; `None` for a key outside the cluster's prefix.
    pub fn parse(keys: &Keys, key: &str) -> Option<Changed> {
        let rest = key.strip_prefix(keys.prefix())?;
        let object = |rest: &str| -> Option<ObjectKey> {
            let (kind, name) = rest.split_once('/')?;
            let kind = Kind::ALL.into_iter().find(|k| k.lower() == kind)?;
            Some(ObjectKey {
                kind,
                name: name.to_owned(),
            })
        };
        let parsed = if let Some(r) = rest.strip_prefix("spec/") {
            object(r).map(Changed::Spec)
        } else if let Some(r) = rest.strip_prefix("status/") {
            object(r).map(Changed::Status)
        } else if let Some(r) = rest.strip_prefix("plans/") {
            // A node's plan manifest is the writer's own record (read from `raw`), not a
            // slice.
            r.split_once('/')
                .filter(|(_, name)| *name != MANIFEST_KEY)
                .map(|(node, controller)| Changed::Plan {
                    node: node.to_owned(),
                    controller: controller.to_owned(),
                })
        } else if let Some(r) = rest.strip_prefix("reports/") {
            Some(Changed::Report(r.to_owned()))
        } else if let Some(r) = rest.strip_prefix("leases/agents/") {
            Some(Changed::Agent(r.to_owned()))
        } else if rest == "leader" {
            Some(Changed::Leader)
        } else if rest.starts_with("events/") {
            Some(Changed::Event)
        } else {
            None
        };
        Some(parsed.unwrap_or_else(|| Changed::Other(rest.to_owned())))
    }
}

/// A parse error with every quoted fragment (`"..."`, `` `...` ``) blanked out: serde's
/// messages quote pieces of the value (`invalid type: string "..."`), and a record that does
/// not parse may hold a secret, so only the error's shape and position are shown.
pub fn redact(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let mut open: Option<char> = None;
    for c in error.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

/// The cluster as last seen.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The store revision this state is at.
    pub revision: Revision,
    /// The revision of the last change to any spec (a put or a delete) this state holds:
    /// two snapshots with the same `specs_revision` hold the same specs, so what is derived
    /// from the specs alone (whole-state validation) can be cached under it.
    pub specs_revision: Revision,
    /// Likewise for any spec or status: what is derived from the objects with their
    /// statuses (the controllers' `Desired`) can be cached under it.
    pub objects_revision: Revision,
    /// Every key under the cluster prefix, as stored: what the writer compares against.
    pub raw: OrdMap<String, Arc<KeyValue>>,
    /// Specs joined with their statuses.
    pub objects: OrdMap<ObjectKey, Arc<Stored>>,
    /// Plan slices by node, then by controller.
    pub plans: OrdMap<String, BTreeMap<String, Arc<PlanSlice>>>,
    /// Each node's slices' digests (`PlanSlice::digest`), by controller: computed once per
    /// slice write, so the node controller can tell a report of the current plan from one
    /// of an older plan without hashing every slice on every pass.
    pub plan_digests: OrdMap<String, Arc<BTreeMap<String, String>>>,
    pub reports: OrdMap<String, Arc<Report>>,
    /// Agents whose heartbeat key is present, with when this process saw it appear or
    /// change (its own monotonic clock: never a time written by another host).
    pub agents: OrdMap<String, Instant>,
    /// Agents whose heartbeat key is gone, with when this process last knew it present
    /// (saw it vanish, or found it missing at its first list while the node had a report).
    /// Kept after the key is gone: a lost agent is told by how long it has been gone.
    pub agents_gone: BTreeMap<String, Instant>,
    /// Event records by key, parsed (the event recorder looks repeats up here).
    pub events: OrdMap<String, Arc<Event>>,
    /// The keys of `events` by the object they are about: a repeat is looked up among
    /// one object's few events, not every event of the cluster (at a cold start each of
    /// 10,000 nodes' notes scanned 10,000 records).
    pub events_by_object: OrdMap<String, OrdSet<String>>,
    /// Keys whose values do not parse, with why (a controller may report them).
    pub unreadable: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Stored> {
        self.objects
            .get(&ObjectKey {
                kind,
                name: name.to_owned(),
            })
            .map(|s| &**s)
    }

    /// The objects of one kind: a range of the map (keys order by kind first), so asking
    /// for the few Volumes of a 10,000-node cluster does not walk its Nodes.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Stored> {
        let first = ObjectKey {
            kind,
            name: String::new(),
        };
        self.objects
            .range(first..)
            .take_while(move |(key, _)| key.kind == kind)
            .map(|(_, s)| &**s)
    }

    /// Every object of the desired state (with statuses), for whole-state validation.
    pub fn all_objects(&self) -> Vec<Object> {
        self.objects.values().map(|s| s.object.clone()).collect()
    }

    /// Each agent's heartbeat as the controllers read it, measured at `now` on this
    /// process's monotonic clock.
    pub fn agent_liveness(&self, now: Instant) -> BTreeMap<String, AgentLiveness> {
        let present = self.agents.iter().map(|(node, seen)| {
            let liveness = AgentLiveness {
                lease_present: true,
                since_heartbeat: now.saturating_duration_since(*seen),
            };
            (node.clone(), liveness)
        });
        let gone = self.agents_gone.iter().map(|(node, last)| {
            let liveness = AgentLiveness {
                lease_present: false,
                since_heartbeat: now.saturating_duration_since(*last),
            };
            (node.clone(), liveness)
        });
        gone.chain(present).collect()
    }

    /// The bytes stored at `key` and their mod revision (0: absent).
    pub fn stored(&self, key: &str) -> (Option<&[u8]>, Revision) {
        match self.raw.get(key) {
            Some(kv) => (Some(kv.value.as_slice()), kv.mod_revision),
            None => (None, 0),
        }
    }

    /// Records a put (`Some`) or a delete (`None`) of `key` at `revision`.
    pub(crate) fn apply(
        &mut self,
        keys: &Keys,
        key: &str,
        kv: Option<KeyValue>,
        revision: Revision,
    ) {
        self.revision = self.revision.max(revision);
        self.unreadable.remove(key);
        match &kv {
            Some(kv) => {
                self.raw.insert(key.to_owned(), Arc::new(kv.clone()));
            }
            None => {
                self.raw.remove(key);
            }
        }
        let Some(changed) = Changed::parse(keys, key) else {
            return;
        };
        let value = kv.as_ref().map(|kv| kv.value.as_slice());
        if matches!(changed, Changed::Spec(_)) {
            self.specs_revision = self.specs_revision.max(revision);
        }
        if matches!(changed, Changed::Spec(_) | Changed::Status(_)) {
            self.objects_revision = self.objects_revision.max(revision);
        }
        match changed {
            Changed::Spec(id) => self.apply_spec(keys, key, id, kv),
            Changed::Status(id) => {
                let status = self.parse_status(key);
                if let Some(stored) = self.objects.get_mut(&id) {
                    Arc::make_mut(stored).object.set_status(status);
                }
            }
            Changed::Plan { node, controller } => self.apply_plan(key, node, controller, value),
            Changed::Report(node) => match value.map(serde_json::from_slice::<Report>) {
                Some(Ok(report)) => {
                    self.reports.insert(node, Arc::new(report));
                }
                Some(Err(e)) => {
                    self.reports.remove(&node);
                    self.unreadable.insert(key.to_owned(), e.to_string());
                }
                None => {
                    self.reports.remove(&node);
                }
            },
            Changed::Agent(node) => match value {
                Some(_) => {
                    self.agents_gone.remove(&node);
                    self.agents.insert(node, Instant::now());
                }
                None => {
                    // The lease was there until now: the grace period runs from here.
                    if self.agents.remove(&node).is_some() {
                        self.agents_gone.insert(node, Instant::now());
                    }
                }
            },
            Changed::Event => {
                self.forget_event(key);
                // An unreadable record is not a repeat of anything; it expires by itself.
                if let Some(Ok(event)) = value.map(serde_json::from_slice::<Event>) {
                    self.events_by_object
                        .entry(event.object.clone())
                        .or_default()
                        .insert(key.to_owned());
                    self.events.insert(key.to_owned(), Arc::new(event));
                }
            }
            Changed::Leader | Changed::Other(_) | Changed::External(_) => {}
        }
    }

    /// Drops the event record `key` and its index entry.
    fn forget_event(&mut self, key: &str) {
        let Some(old) = self.events.remove(key) else {
            return;
        };
        if let Some(keys) = self.events_by_object.get_mut(&old.object) {
            keys.remove(key);
            if keys.is_empty() {
                self.events_by_object.remove(&old.object);
            }
        }
    }

    /// The stored events about `object`, oldest key first.
    pub fn events_about<'a>(
        &'a self,
        object: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Event)> {
        self.events_by_object
            .get(object)
            .into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|key| self.events.get(key).map(|e| (key, &**e)))
    }

    /// A spec put or delete: the object (with its stored status) in force, or the key
    /// marked unreadable.
    fn apply_spec(&mut self, keys: &Keys, key: &str, id: ObjectKey, kv: Option<KeyValue>) {
        match kv {
            Some(kv) => match decode(key, &kv.value) {
                Ok(mut object) => {
                    object.meta_mut().resource_version = Some(kv.mod_revision.to_string());
                    let status_key = keys.status(id.kind, &id.name);
                    let status = self.parse_status(&status_key);
                    object.set_status(status);
                    self.objects.insert(
                        id,
                        Arc::new(Stored {
                            object,
                            mod_revision: kv.mod_revision,
                        }),
                    );
                }
                // Unreadable is not deleted (a record of a newer omtd, a hand edit): the
                // last good version stays in force, so controllers plan for it as
                // before; with none, the writer holds what depends on it (see
                // `Snapshot::held_node`). Only a readable delete removes the object.
                Err(e) => {
                    self.unreadable
                        .insert(key.to_owned(), redact(&e.to_string()));
                }
            },
            None => {
                self.objects.remove(&id);
            }
        }
    }

    /// A plan slice put or delete, and the node's slice digests after it.
    fn apply_plan(&mut self, key: &str, node: String, controller: String, value: Option<&[u8]>) {
        // A slice still sealed (this process lacks its key) says which key, not what JSON
        // makes of an envelope; a slice holds secrets, so a parse error is redacted.
        let parsed = value.map(|v| match sealed_value_problem(v) {
            Some(problem) => Err(problem),
            None => serde_json::from_slice::<PlanSlice>(v).map_err(|e| redact(&e.to_string())),
        });
        let slices = self.plans.entry(node.clone()).or_default();
        match parsed {
            Some(Ok(slice)) => {
                slices.insert(controller, Arc::new(slice));
            }
            Some(Err(why)) => {
                slices.remove(&controller);
                self.unreadable.insert(key.to_owned(), why);
            }
            None => {
                slices.remove(&controller);
            }
        }
        let digests: BTreeMap<String, String> = slices
            .iter()
            .map(|(c, s)| (c.clone(), s.digest()))
            .collect();
        if slices.is_empty() {
            self.plans.remove(&node);
            self.plan_digests.remove(&node);
        } else {
            self.plan_digests.insert(node, Arc::new(digests));
        }
    }

    /// Whether `node`'s spec record is stored but unreadable: nothing may be deleted on its
    /// account (its plan slices, the object) until a readable version or a delete is seen.
    pub fn held_node(&self, keys: &Keys, node: &str) -> bool {
        // Asked for every node on every pass: no key to make when nothing is unreadable.
        !self.unreadable.is_empty() && self.unreadable.contains_key(&keys.spec(Kind::Node, node))
    }

    /// The status stored at `status_key`; an unreadable one counts as none (and is noted).
    fn parse_status(&mut self, status_key: &str) -> Option<Status> {
        let kv = self.raw.get(status_key)?;
        match serde_json::from_slice::<Status>(&kv.value) {
            Ok(s) => Some(s),
            Err(e) => {
                self.unreadable
                    .insert(status_key.to_owned(), redact(&e.to_string()));
                None
            }
        }
    }

    /// A snapshot of a full list, keeping when agents were first seen from `previous`.
    pub(crate) fn from_list(
        keys: &Keys,
        kvs: Vec<KeyValue>,
        revision: Revision,
        previous: &Snapshot,
    ) -> Snapshot {
        let mut snap = Snapshot::default();
        // Statuses first, so that a spec finds its status when it is decoded.
        let (statuses, others): (Vec<_>, Vec<_>) = kvs
            .into_iter()
            .partition(|kv| matches!(Changed::parse(keys, &kv.key), Some(Changed::Status(_))));
        for kv in statuses.into_iter().chain(others) {
            let key = kv.key.clone();
            snap.apply(keys, &key, Some(kv), revision);
        }
        for (node, seen) in &previous.agents {
            if let Some(now) = snap.agents.get_mut(node) {
                let unchanged = previous
                    .raw
                    .get(&keys.agent_lease(node))
                    .map(|kv| kv.mod_revision)
                    == snap
                        .raw
                        .get(&keys.agent_lease(node))
                        .map(|kv| kv.mod_revision);
                if unchanged {
                    *now = *seen;
                }
            }
        }
        // Leases that are gone: keep when they were last known present; one that vanished
        // while the watch was down vanished "now" as far as this process can tell.
        let now = Instant::now();
        for (node, last) in &previous.agents_gone {
            if !snap.agents.contains_key(node) {
                snap.agents_gone.insert(node.clone(), *last);
            }
        }
        for node in previous.agents.keys() {
            if !snap.agents.contains_key(node) {
                snap.agents_gone.insert(node.clone(), now);
            }
        }
        // This process's first look: an agent that reported before but holds no lease now
        // is gone as of now, so an operator started while a host is dead still sees it lost
        // once the grace period passes (rather than "never seen" forever).
        if previous.revision == 0 {
            for node in snap.reports.keys() {
                if !snap.agents.contains_key(node) {
                    snap.agents_gone.insert(node.clone(), now);
                }
            }
        }
        // An unreadable spec keeps the last good version this process had before the
        // relist (with its status as stored now), as `apply` does for a watched change.
        let unreadable_specs: Vec<ObjectKey> = snap
            .unreadable
            .keys()
            .filter_map(|key| match Changed::parse(keys, key) {
                Some(Changed::Spec(id)) => Some(id),
                _ => None,
            })
            .collect();
        for id in unreadable_specs {
            let Some(good) = previous.objects.get(&id) else {
                continue;
            };
            let mut good = Stored::clone(good);
            let status = snap.parse_status(&keys.status(id.kind, &id.name));
            good.object.set_status(status);
            snap.objects.insert(id, Arc::new(good));
        }
        snap.revision = revision;
        // A relist may have missed deletes: everything derived from specs is recomputed.
        snap.specs_revision = revision;
        snap.objects_revision = revision;
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: None,
        }
    }

    #[test]
    fn parses_keys_and_joins_status_with_spec() {
        let keys = Keys::for_cluster("c");
        assert_eq!(
            Changed::parse(&keys, "/omtd/c/plans/n1/storage"),
            Some(Changed::Plan {
                node: "n1".into(),
                controller: "storage".into()
            })
        );
        assert_eq!(Changed::parse(&keys, "/omtd/d/leader"), None);
        assert_eq!(
            Changed::parse(&keys, "/omtd/c/x/y"),
            Some(Changed::Other("x/y".into()))
        );
        let spec = r#"{"apiVersion":"omtd/v1","kind":"Node","metadata":{"name":"a","generation":1},"spec":{"address":"10.0.0.1","roles":["manager"]}}"#;
        let status = r#"{"observedGeneration":1}"#;
        let snap = Snapshot::from_list(
            &keys,
            vec![
                kv("/omtd/c/spec/node/a", spec, 2),
                kv("/omtd/c/status/node/a", status, 3),
                kv("/omtd/c/spec/node/bad", "{", 4),
            ],
            4,
            &Snapshot::default(),
        );
        let a = snap.get(Kind::Node, "a").unwrap();
        assert_eq!(a.object.status().unwrap().observed_generation, 1);
        assert!(snap.unreadable.contains_key("/omtd/c/spec/node/bad"));
        let mut snap = snap;
        snap.apply(&keys, "/omtd/c/status/node/a", None, 5);
        assert!(snap.get(Kind::Node, "a").unwrap().object.status().is_none());
        assert_eq!(snap.revision, 5);
    }

    #[test]
    fn an_unreadable_spec_keeps_its_last_good_version_and_hides_its_value() {
        let keys = Keys::for_cluster("c");
        let key = "/omtd/c/spec/node/a";
        let spec = r#"{"apiVersion":"omtd/v1","kind":"Node","metadata":{"name":"a","generation":1},"spec":{"address":"10.0.0.1","roles":["manager"]}}"#;
        let mut snap = Snapshot::default();
        snap.apply(&keys, key, Some(kv(key, spec, 2)), 2);
        let secret = r#"{"apiVersion":"omtd/v1","kind":"Node","metadata":{"name":"a"},"spec":{"address":["s3cret"]}}"#;
        snap.apply(&keys, key, Some(kv(key, secret, 3)), 3);
        assert!(
            snap.get(Kind::Node, "a").is_some(),
            "last good version kept"
        );
        assert!(snap.held_node(&keys, "a"));
        assert!(
            !snap.unreadable[key].contains("s3cret"),
            "{}",
            snap.unreadable[key]
        );
        // A relist while still unreadable keeps it too; a readable delete removes it.
        let relisted = Snapshot::from_list(&keys, vec![kv(key, secret, 3)], 4, &snap);
        assert!(relisted.get(Kind::Node, "a").is_some());
        let mut snap = relisted;
        snap.apply(&keys, key, None, 5);
        assert!(snap.get(Kind::Node, "a").is_none());
        assert!(!snap.held_node(&keys, "a"));
    }

    #[test]
    fn a_vanished_lease_is_remembered_with_when_it_went() {
        let keys = Keys::for_cluster("c");
        let lease = "/omtd/c/leases/agents/n1";
        let report = r#"{"node":"n2","converged":true}"#;
        // First look: n2 reported before but holds no lease now, so it is gone as of now.
        let mut snap = Snapshot::from_list(
            &keys,
            vec![kv(lease, "{}", 2), kv("/omtd/c/reports/n2", report, 3)],
            3,
            &Snapshot::default(),
        );
        assert!(snap.agents.contains_key("n1"));
        assert!(snap.agents_gone.contains_key("n2"));
        snap.apply(&keys, lease, None, 4);
        assert!(!snap.agents.contains_key("n1"));
        let gone_at = snap.agents_gone["n1"];
        let later = gone_at + std::time::Duration::from_secs(30);
        let live = snap.agent_liveness(later);
        assert_eq!(
            live["n1"],
            AgentLiveness {
                lease_present: false,
                since_heartbeat: std::time::Duration::from_secs(30)
            }
        );
        // A relist keeps when it went; a lease back clears it.
        let relisted = Snapshot::from_list(&keys, vec![], 5, &snap);
        assert_eq!(relisted.agents_gone.get("n1"), Some(&gone_at));
        let mut back = relisted;
        back.apply(&keys, lease, Some(kv(lease, "{}", 6)), 6);
        assert!(!back.agents_gone.contains_key("n1"));
        assert!(back.agent_liveness(later)["n1"].lease_present);
    }
}
