//! Writing outcomes: only what differs from the store, each write fenced on leadership.
//!
//! A reconcile's plan slices and statuses go in one transaction that holds only the keys
//! whose serialized bytes differ from what the cache saw, conditioned on
//! - the leader key still being the one this process created (its create revision is the
//!   fencing token): a deposed leader's late write fails instead of landing;
//! - every written key being as the cache saw it: a write never overwrites a change this
//!   process has not seen (the reconcile runs again on the new state instead);
//! - a status's object still existing: no status outlives its object.
//!
//! A steady cluster therefore costs no writes at all. Events go in a second transaction,
//! fenced the same way, because they are attached to a lease that may have expired.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::controller::Outcome;
pub use super::error::WriteError;
use super::events::{EventRecorder, EventWrite};
use super::metrics::Metrics;
use super::snapshot::Snapshot;
use crate::resources::Keys;
use crate::store::{Compare, CompareOp, Op, Revision, Store, StoreError, Txn};

use omtd_crds::plan::PlanSlice;
use omtd_crds::plan_manifest::{PlanManifest, MANIFEST_KEY};
use omtd_crds::{Kind, ObjectKey, Status};

/// The most compares, and the most operations, one write transaction carries: under
/// etcd's default `--max-txn-ops` ([`crate::store::etcd::DEFAULT_MAX_TXN_OPS`]).
pub const MAX_TXN_OPS: usize = 100;

/// One key's write (or a released object's two deletes) and the compares guarding it.
struct Change {
    compares: Vec<Compare>,
    ops: Vec<Op>,
}

/// Whether `stored` is `wanted` as this term's writer would store it (owner `controller`,
/// fencing token `token`). Every field is named, so a new one cannot be forgotten here.
fn same_slice(stored: &PlanSlice, wanted: &PlanSlice, controller: &str, token: Revision) -> bool {
    let PlanSlice {
        controller: stored_controller,
        fencing_token,
        files,
        services,
        physical_volumes,
        logical_volumes,
        filesystems,
        mounts,
        exports,
        containers,
    } = stored;
    stored_controller == controller
        && *fencing_token == token
        && *files == wanted.files
        && *services == wanted.services
        && *physical_volumes == wanted.physical_volumes
        && *logical_volumes == wanted.logical_volumes
        && *filesystems == wanted.filesystems
        && *mounts == wanted.mounts
        && *exports == wanted.exports
        && *containers == wanted.containers
}

/// A node's stored manifest, parsed, and the revision it was read at.
type ParsedManifest = (Revision, Option<Arc<PlanManifest>>);

/// Writes for one leadership term.
pub struct Writer {
    store: Arc<dyn Store>,
    keys: Keys,
    token: Revision,
    metrics: Arc<Metrics>,
    events: Arc<EventRecorder>,
    /// The controllers that plan nodes: each node's manifest waits for all of them.
    planners: BTreeSet<String>,
    /// Each node's stored manifest as last parsed, under the revision it was read at.
    manifests: std::sync::Mutex<HashMap<String, ParsedManifest>>,
}

impl Writer {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        token: Revision,
        metrics: Arc<Metrics>,
        events: Arc<EventRecorder>,
    ) -> Self {
        Writer {
            store,
            keys,
            token,
            metrics,
            events,
            planners: BTreeSet::new(),
            manifests: Default::default(),
        }
    }

    /// The controllers whose slices make up a node's plan (see `Controller::plans_nodes`).
    pub fn with_planners<'a>(mut self, planners: impl IntoIterator<Item = &'a str>) -> Self {
        self.planners = planners.into_iter().map(str::to_owned).collect();
        self
    }

    pub fn token(&self) -> Revision {
        self.token
    }

    /// The condition every write carries: "I still hold the leader key I created".
    pub fn fence(&self) -> Compare {
        Compare::create_revision(self.keys.leader(), CompareOp::Equal, self.token)
    }

    /// The transaction carrying the parts of `outcome` that differ from `snapshot`, or
    /// `None` when nothing differs. Pure, so "no write when converged" is testable alone.
    pub fn diff(&self, controller: &str, snapshot: &Snapshot, outcome: &Outcome) -> Option<Txn> {
        self.diff_merged(controller, snapshot, snapshot, outcome)
    }

    /// Like [`Writer::diff`], with the statuses of kinds in `outcome.owned` merged into
    /// `latest` (the cache as it is at write time, newer than the `read` snapshot the
    /// reconcile ran on): another controller's write to a shared status since `read` is
    /// kept instead of failing this write as a conflict.
    pub fn diff_merged(
        &self,
        controller: &str,
        read: &Snapshot,
        latest: &Snapshot,
        outcome: &Outcome,
    ) -> Option<Txn> {
        let changes = self.changes(controller, read, latest, outcome);
        self.pack(changes, usize::MAX).into_iter().next()
    }

    /// The writes `outcome` needs, each with the compares that guard it.
    fn changes(
        &self,
        controller: &str,
        read: &Snapshot,
        latest: &Snapshot,
        outcome: &Outcome,
    ) -> Vec<Change> {
        let mut changes = self.plan_changes(controller, read, latest, outcome);
        changes.extend(self.status_changes(read, latest, outcome));
        changes.extend(self.delete_changes(read, outcome));
        changes
    }

    /// The slices of `outcome` that differ from the stored ones, against `read`.
    fn plan_changes(
        &self,
        controller: &str,
        read: &Snapshot,
        latest: &Snapshot,
        outcome: &Outcome,
    ) -> Vec<Change> {
        let snapshot = read;
        let mut changes = Vec::new();
        // Per node: this controller's slice as it will be stored (`None`: no slice), and
        // the change writing it, if any. The node's manifest joins that change below.
        let mut decided: BTreeMap<String, (Option<String>, Option<Change>)> = BTreeMap::new();
        for (node, slice) in &outcome.plans {
            // The key and its stored bytes are looked up only for a slice that differs
            // from the parsed stored one (nearly none): each is a string format and a
            // lookup among every key of the cluster.
            let stored_at = || {
                let key = self.keys.plan(node, controller);
                let (stored, read_revision) = snapshot.stored(&key);
                let unchanged = Compare::mod_revision(key.clone(), CompareOp::Equal, read_revision);
                (key, stored, unchanged)
            };
            match slice {
                Some(slice) => {
                    // A cluster-wide controller hands back every node's slice and nearly all
                    // are as stored: comparing with the parsed stored slice skips cloning
                    // and serializing those (the parse of bytes this writer serialized is
                    // equal exactly when the bytes are).
                    let as_stored = read
                        .plans
                        .get(node)
                        .and_then(|slices| slices.get(controller))
                        .filter(|stored| same_slice(stored, slice, controller, self.token));
                    if let Some(stored) = as_stored {
                        let digest = read
                            .plan_digests
                            .get(node)
                            .and_then(|d| d.get(controller).cloned())
                            .unwrap_or_else(|| stored.digest());
                        decided.insert(node.clone(), (Some(digest), None));
                        continue;
                    }
                    let (key, stored, unchanged) = stored_at();
                    let mut slice = slice.clone();
                    slice.controller = controller.to_owned();
                    slice.fencing_token = self.token;
                    let bytes = match serde_json::to_vec(&slice) {
                        Ok(b) => b,
                        // Plain data always serializes; skip rather than write garbage.
                        Err(_) => continue,
                    };
                    let change = (stored != Some(bytes.as_slice())).then(|| Change {
                        compares: vec![unchanged],
                        ops: vec![Op::put(key, bytes)],
                    });
                    decided.insert(node.clone(), (Some(slice.digest()), change));
                }
                // Hold: while the node's spec record is unreadable, a controller that
                // finds no node (no last good version, e.g. unreadable since start-up)
                // would remove its slices; unreadable is not deleted, so they stay until a
                // readable spec or a readable delete is seen.
                None if read.held_node(&self.keys, node) => {}
                None => {
                    let (key, stored, unchanged) = stored_at();
                    let change = stored.is_some().then(|| Change {
                        compares: vec![unchanged],
                        ops: vec![Op::delete(key)],
                    });
                    decided.insert(node.clone(), (None, change));
                }
            }
        }
        if self.planners.contains(controller) {
            self.manifests(controller, read, latest, &mut decided);
        }
        changes.extend(decided.into_values().filter_map(|(_, change)| change));
        changes
    }

    /// The statuses of `outcome` that differ from the stored ones: owned parts merged into
    /// `latest`, whole statuses against `read`.
    fn status_changes(&self, read: &Snapshot, latest: &Snapshot, outcome: &Outcome) -> Vec<Change> {
        let snapshot = read;
        let mut changes = Vec::new();
        for (object, status) in &outcome.statuses {
            if outcome.delete.contains(object) {
                continue; // deleted below; a transaction may not write one key twice
            }
            let key = self.keys.status(object.kind, &object.name);
            let (base, status) = match outcome.owned.iter().find(|p| p.kind == object.kind) {
                Some(parts) => {
                    let Some(current) = latest.objects.get(object) else {
                        continue; // the object is gone: no status outlives it
                    };
                    // As with slices: equal to the parsed stored status, equal bytes, so
                    // the (many) statuses as stored are neither merged nor serialized.
                    let stored = current.object.status();
                    if stored.is_some_and(|s| parts.unchanged(s, status))
                        && latest.raw.contains_key(&key)
                    {
                        continue;
                    }
                    let merged = parts.merge(stored.unwrap_or(&Status::default()), status);
                    (latest, std::borrow::Cow::Owned(merged))
                }
                None => {
                    let stored = snapshot.objects.get(object).and_then(|o| o.object.status());
                    if stored == Some(status) && snapshot.raw.contains_key(&key) {
                        continue;
                    }
                    (snapshot, std::borrow::Cow::Borrowed(status))
                }
            };
            let Ok(bytes) = serde_json::to_vec(status.as_ref()) else {
                continue;
            };
            let (stored, read_revision) = base.stored(&key);
            if stored != Some(bytes.as_slice()) {
                changes.push(Change {
                    compares: vec![
                        Compare::present(self.keys.spec(object.kind, &object.name)),
                        Compare::mod_revision(key.clone(), CompareOp::Equal, read_revision),
                    ],
                    ops: vec![Op::put(key, bytes)],
                });
            }
        }
        changes
    }

    /// The finished removals of `outcome` (spec and status), refused if the spec changed
    /// since `read`.
    fn delete_changes(&self, read: &Snapshot, outcome: &Outcome) -> Vec<Change> {
        let snapshot = read;
        let mut changes = Vec::new();
        for object in &outcome.delete {
            let spec = self.keys.spec(object.kind, &object.name);
            let (stored, read_revision) = snapshot.stored(&spec);
            // An unreadable record is never deleted on the strength of its last good
            // version: whoever changed it has not been read yet.
            if stored.is_none() || read.unreadable.contains_key(&spec) {
                continue;
            }
            changes.push(Change {
                compares: vec![Compare::mod_revision(
                    spec.clone(),
                    CompareOp::Equal,
                    read_revision,
                )],
                ops: vec![
                    Op::delete(spec),
                    Op::delete(self.keys.status(object.kind, &object.name)),
                ],
            });
        }
        changes
    }

    /// Adds to each node's change the manifest that names this controller's decision for
    /// it (see `omtd_crds::plan_manifest`), in the same transaction as the slice. Every
    /// node with a readable spec gets this controller's entry, `None` where it plans
    /// nothing, so an agent can tell "nothing wanted" from "not decided yet". The other
    /// controllers' entries are taken from `latest` (like shared statuses), so two
    /// controllers deciding at once conflict only when their writes overlap.
    fn manifests(
        &self,
        controller: &str,
        read: &Snapshot,
        latest: &Snapshot,
        decided: &mut BTreeMap<String, (Option<String>, Option<Change>)>,
    ) {
        let nodes: BTreeSet<&str> = read
            .objects
            .keys()
            .filter(|k| k.kind == Kind::Node)
            .map(|k| k.name.as_str())
            .chain(read.plans.keys().map(String::as_str))
            .collect();
        let epoch = latest
            .stored(&self.keys.epoch())
            .0
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
            .to_owned();
        {
            // Parsed manifests of nodes gone since: dropped, so the cache stays the cluster's
            // size (checked by count first: nearly every pass has nothing to drop).
            let mut parsed = self
                .manifests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if parsed.len() > nodes.len() {
                parsed.retain(|node, _| nodes.contains(node.as_str()));
            }
        }
        for node in nodes {
            if read.held_node(&self.keys, node) {
                continue; // unreadable is not deleted: the manifest stays as it is
            }
            let entry = decided.entry(node.to_owned()).or_insert((None, None));
            let key = self.keys.plan(node, MANIFEST_KEY);
            let (stored, revision) = latest.stored(&key);
            let current = self.parsed_manifest(node, stored, revision);
            // A lookup, not a scan: this runs for every node on every pass.
            let gone = !read.objects.contains_key(&ObjectKey {
                kind: Kind::Node,
                name: node.to_owned(),
            });
            // Nearly every node's manifest already says what this pass decided: tell so
            // without copying it.
            if !gone
                && current.as_deref().is_some_and(|m| {
                    m.epoch == epoch
                        && m.fencing_token == self.token
                        && m.controllers == self.planners
                        && m.slices.keys().all(|c| self.planners.contains(c))
                        && m.slices.get(controller) == Some(&entry.0)
                })
            {
                continue;
            }
            let current = current.as_deref().cloned();
            let mut manifest = current.clone().unwrap_or_default();
            manifest.epoch.clone_from(&epoch);
            manifest.fencing_token = self.token;
            manifest.controllers.clone_from(&self.planners);
            manifest.slices.retain(|c, _| self.planners.contains(c));
            manifest
                .slices
                .insert(controller.to_owned(), entry.0.clone());
            // A node whose record is gone (released, or deleted by hand) and that no
            // controller plans anything on any more loses its manifest rather than getting
            // a complete empty plan: its agent then holds the host as it is, instead of
            // removing everything it manages (the smallest step: stop managing it).
            let op = if gone && manifest.slices.values().all(Option::is_none) {
                if stored.is_none() {
                    continue;
                }
                Op::delete(key.clone())
            } else {
                if current.as_ref() == Some(&manifest) {
                    continue;
                }
                let Ok(bytes) = serde_json::to_vec(&manifest) else {
                    continue;
                };
                Op::put(key.clone(), bytes)
            };
            let change = entry.1.get_or_insert_with(|| Change {
                compares: Vec::new(),
                ops: Vec::new(),
            });
            change
                .compares
                .push(Compare::mod_revision(key, CompareOp::Equal, revision));
            change.ops.push(op);
        }
    }

    /// The manifest stored for `node` (`bytes` at `revision`), parsed once per revision:
    /// every pass of every planner reads every node's manifest.
    fn parsed_manifest(
        &self,
        node: &str,
        bytes: Option<&[u8]>,
        revision: Revision,
    ) -> Option<Arc<PlanManifest>> {
        let bytes = bytes?;
        let mut parsed = self
            .manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, m)) = parsed.get(node) {
            if *at == revision {
                return m.clone();
            }
        }
        let manifest = serde_json::from_slice::<PlanManifest>(bytes)
            .ok()
            .map(Arc::new);
        parsed.insert(node.to_owned(), (revision, manifest.clone()));
        manifest
    }

    /// Fenced transactions carrying `changes`, each with at most `limit` compares and
    /// `limit` operations (a change is never split from its compares).
    fn pack(&self, changes: Vec<Change>, limit: usize) -> Vec<Txn> {
        let mut txns = Vec::new();
        let mut txn = Txn::new().when(self.fence());
        for c in changes {
            let full = txn.compares.len() + c.compares.len() > limit
                || txn.success.len() + c.ops.len() > limit;
            if full && !txn.success.is_empty() {
                txns.push(std::mem::replace(&mut txn, Txn::new().when(self.fence())));
            }
            txn.compares.extend(c.compares);
            txn.success.extend(c.ops);
        }
        if !txn.success.is_empty() {
            txns.push(txn);
        }
        txns
    }

    /// Writes what differs. Returns the store revision after the last write, or `None`
    /// when there was nothing to write.
    pub async fn write(
        &self,
        controller: &str,
        snapshot: &Snapshot,
        outcome: &Outcome,
        now: SystemTime,
    ) -> Result<Option<Revision>, WriteError> {
        self.write_merged(controller, snapshot, snapshot, outcome, now)
            .await
    }

    /// Writes what differs, shared statuses merged into `latest` (see
    /// [`Writer::diff_merged`]).
    pub async fn write_merged(
        &self,
        controller: &str,
        snapshot: &Snapshot,
        latest: &Snapshot,
        outcome: &Outcome,
        now: SystemTime,
    ) -> Result<Option<Revision>, WriteError> {
        let mut revision = None;
        // Bounded transactions (etcd refuses more than --max-txn-ops, 128 by default, in
        // one): a cluster-wide controller's first reconcile writes a slice and a status
        // per node. Each batch is fenced on its own; if a later one fails, the earlier
        // ones stand, which is fine: every key is right by itself, and the reconcile runs
        // again for the rest.
        let changes = self.changes(controller, snapshot, latest, outcome);
        for txn in self.pack(changes, MAX_TXN_OPS) {
            revision = Some(self.commit(txn).await?);
        }
        if !outcome.events.is_empty() {
            let writes = self.events.plan(snapshot, controller, &outcome.events, now);
            if let Some(rev) = self.write_events(&writes).await? {
                revision = Some(rev);
            }
        }
        Ok(revision)
    }

    /// Writes event records in transactions under etcd's op limit (each write is one
    /// compare and one put, next to the fence): a cluster-wide controller's first pass
    /// notes a flip for each of thousands of nodes, and one transaction of them all was
    /// refused whole.
    async fn write_events(&self, writes: &[EventWrite]) -> Result<Option<Revision>, WriteError> {
        let mut revision = None;
        for chunk in writes.chunks(MAX_TXN_OPS - 1) {
            if let Some(rev) = self.write_event_txn(chunk).await? {
                revision = Some(rev);
            }
        }
        Ok(revision)
    }

    async fn write_event_txn(&self, writes: &[EventWrite]) -> Result<Option<Revision>, WriteError> {
        if writes.is_empty() {
            return Ok(None);
        }
        // A lease that expired between two writes is replaced once.
        for attempt in 0..2 {
            let lease = self.events.lease().await?;
            let mut txn = Txn::new().when(self.fence());
            for w in writes {
                let Ok(bytes) = serde_json::to_vec(&w.event) else {
                    continue;
                };
                txn = txn
                    .when(Compare::mod_revision(
                        w.key.clone(),
                        CompareOp::Equal,
                        w.read_revision,
                    ))
                    .then(Op::put_with_lease(w.key.clone(), bytes, lease));
            }
            match self.commit(txn).await {
                Ok(rev) => {
                    for _ in writes {
                        self.metrics.event_recorded();
                    }
                    return Ok(Some(rev));
                }
                Err(WriteError::Store(StoreError::LeaseNotFound(_))) if attempt == 0 => {
                    self.events.forget_lease().await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Commits a fenced transaction, telling a lost leadership from a conflict.
    async fn commit(&self, txn: Txn) -> Result<Revision, WriteError> {
        let result = self.store.txn(txn).await?;
        if result.succeeded {
            self.metrics.wrote();
            return Ok(result.revision);
        }
        // Which compare failed? Only the leader key tells leadership from a conflict.
        match self.store.get(&self.keys.leader()).await? {
            Some(kv) if kv.create_revision == self.token => Err(WriteError::Conflict),
            _ => Err(WriteError::Fenced { token: self.token }),
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
