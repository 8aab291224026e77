//! Reading what `omtd status` needs, all at one store revision: objects with statuses,
//! reports and agent heartbeats. The only I/O of the status model.

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::plan::{PlanSlice, Report};
use omtd_crds::plan_manifest::MANIFEST_KEY;

use omtd_crds::ObjectKey;

use crate::resources::staged::{Held, View};
use crate::resources::{ObjectsAt, Repo, RepoError, Stored};
use crate::runtime::Snapshot;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Specs joined with statuses; its `revision` is the one everything was read at.
    pub objects: ObjectsAt,
    /// Reports by node: parsed, or why not.
    pub reports: BTreeMap<String, Result<Report, String>>,
    /// The stored plan slices' digests: node → controller → `PlanSlice::digest` (an
    /// unreadable slice has none). A report is about the current plan when it names them.
    pub plans: BTreeMap<String, BTreeMap<String, String>>,
    /// Nodes whose agent heartbeat key exists.
    pub agents: BTreeSet<String>,
    /// An operator holds the leader key: its controllers are expected to have reported on
    /// every Node, Credential and Volume before the cluster counts as converged.
    pub operator: bool,
    /// Objects whose spec or status record does not parse (`node/x` → why): pending as
    /// Unreadable, whatever the operator keeps in force for them.
    pub unreadable: BTreeMap<String, String>,
    /// A staged apply holding the store's apply lock (its writes hidden from the operator).
    pub staged: Option<Held>,
}

/// Reads objects, reports and heartbeats at one revision, so they agree with each other.
pub async fn read(repo: &Repo) -> Result<Inputs, StatusError> {
    let (objects, unreadable, staged) = read_objects(repo).await?;
    let at = Some(objects.revision);
    let report_prefix = repo.keys.reports();
    let reports = repo
        .store
        .list(&report_prefix, at)
        .await?
        .kvs
        .into_iter()
        .filter_map(|kv| {
            let node = kv.key.strip_prefix(&report_prefix)?.to_owned();
            let parsed = serde_json::from_slice::<Report>(&kv.value).map_err(|e| e.to_string());
            Some((node, parsed))
        })
        .collect();
    let plan_prefix = repo.keys.plans();
    let mut plans: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for kv in repo.store.list(&plan_prefix, at).await?.kvs {
        let Some((node, controller)) = kv
            .key
            .strip_prefix(&plan_prefix)
            .and_then(|rest| rest.split_once('/'))
            .filter(|(_, name)| *name != MANIFEST_KEY)
        else {
            continue; // a node's plan manifest, not a slice
        };
        let digest = serde_json::from_slice::<PlanSlice>(&kv.value)
            .map(|s| s.digest())
            .unwrap_or_default();
        plans
            .entry(node.to_owned())
            .or_default()
            .insert(controller.to_owned(), digest);
    }
    let lease_prefix = repo.keys.agent_leases();
    let agents = repo
        .store
        .list(&lease_prefix, at)
        .await?
        .kvs
        .into_iter()
        .filter_map(|kv| kv.key.strip_prefix(&lease_prefix).map(str::to_owned))
        .collect();
    let operator = !repo
        .store
        .list(&repo.keys.leader(), at)
        .await?
        .kvs
        .is_empty();
    Ok(Inputs {
        objects,
        reports,
        plans,
        agents,
        operator,
        unreadable,
        staged,
    })
}

impl Inputs {
    /// The same inputs from a watched cache instead of a read of everything: what a
    /// process that follows the store anyway (the bench, waiting for 10,000 nodes) uses,
    /// where listing every record, report and slice each second was itself most of the
    /// store's load. A staged apply's writes are held back by the cache until its release.
    pub fn from_snapshot(keys: &crate::resources::Keys, snapshot: &Snapshot) -> Inputs {
        let (objects, unreadable) = objects_of(keys, snapshot, snapshot.revision);
        Inputs {
            objects,
            reports: snapshot
                .reports
                .iter()
                .map(|(node, r)| (node.clone(), Ok(Report::clone(r))))
                .collect(),
            plans: snapshot
                .plan_digests
                .iter()
                .map(|(node, digests)| (node.clone(), BTreeMap::clone(digests)))
                .collect(),
            agents: snapshot.agents.keys().cloned().collect(),
            operator: snapshot.raw.contains_key(&keys.leader()),
            unreadable,
            staged: None,
        }
    }
}

/// Specs joined with statuses at one revision, and the specs that do not parse (object →
/// why, the value never shown). Parsed as the operator's runtime parses them, so a record
/// it holds as unreadable shows here as such instead of failing the whole status.
async fn read_objects(
    repo: &Repo,
) -> Result<(ObjectsAt, BTreeMap<String, String>, Option<Held>), StatusError> {
    let view = View::read(repo.store.as_ref(), &repo.keys).await?;
    let specs = view
        .list(repo.store.as_ref(), &repo.keys, &repo.keys.specs())
        .await?;
    let revision = specs.revision;
    let statuses = view
        .list(repo.store.as_ref(), &repo.keys, &repo.keys.statuses())
        .await?;
    let kvs = statuses.kvs.into_iter().chain(specs.kvs).collect();
    let parsed = Snapshot::from_list(&repo.keys, kvs, revision, &Snapshot::default());
    let (objects, unreadable) = objects_of(&repo.keys, &parsed, revision);
    Ok((objects, unreadable, view.held))
}

/// A parsed state's objects at `revision`, and its specs that do not parse (object → why).
fn objects_of(
    keys: &crate::resources::Keys,
    parsed: &Snapshot,
    revision: crate::store::Revision,
) -> (ObjectsAt, BTreeMap<String, String>) {
    let unreadable = parsed
        .unreadable
        .iter()
        .filter_map(|(key, why)| {
            let (kind, name) = keys.parse_object_key(key)?;
            let object = ObjectKey { kind, name }.to_string();
            Some((object, format!("{key} cannot be parsed: {why}")))
        })
        .collect();
    let objects = parsed
        .objects
        .iter()
        .map(|(id, stored)| (id.clone(), Stored::clone(stored)))
        .collect();
    let objects = ObjectsAt {
        objects,
        revision,
        ..Default::default()
    };
    (objects, unreadable)
}
