//! `apply` and `delete` as plans: pure functions from (what is stored, what is asked) to a
//! list of changes plus diagnostics, and one all-or-nothing transaction that carries them out
//! only if nothing it touches changed since it was read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use omtd_controllers::removal::DELETING_ANNOTATION;
use omtd_crds::validate::{has_errors, validate_set};
use omtd_crds::{Diagnostic, Kind, Object, ObjectKey, Severity};

use super::repo::{encode, ObjectsAt, Repo, RepoError, Stored};
use super::staged::{self, StagedError, StagedWrite};
use crate::store::{Compare, CompareOp, Op, Revision, StoreError, Txn};

/// The annotation naming the source (file, directory or `--source`) that last applied an
/// object. `apply --prune` deletes only objects whose source is its own.
pub const SOURCE_ANNOTATION: &str = "omtd/source";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Pruned,
    Deleted,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Pruned => "pruned",
            Action::Deleted => "deleted",
        })
    }
}

/// One object's fate in a plan.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: ObjectKey,
    pub action: Action,
    /// As stored now (with status), if it exists.
    pub before: Option<Object>,
    /// As it will be stored, if it will exist.
    pub after: Option<Object>,
    /// The spec key's revision when read (0: absent), checked again at write time.
    pub read_revision: Revision,
}

/// What an apply or delete would do.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Findings on the state as it would be after the plan; errors block it.
    pub diagnostics: Vec<Diagnostic>,
}

impl Plan {
    /// One stored object changed to `after` by a command that edits it in place (an
    /// annotation set by `delete` or `debug`): no validation needed, the references stay.
    /// Unchanged when `after` equals what is stored.
    pub fn edit_of(key: &ObjectKey, stored: &Stored, after: Object) -> Plan {
        let action = if after == stored.object {
            Action::Unchanged
        } else {
            Action::Configured
        };
        Plan {
            changes: vec![Change {
                key: key.clone(),
                action,
                before: Some(stored.object.clone()),
                after: Some(after),
                read_revision: stored.mod_revision,
            }],
            diagnostics: Vec::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }

    pub fn is_noop(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::Unchanged)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Recorded in [`SOURCE_ANNOTATION`]; what `--prune` compares against.
    pub source: String,
    pub prune: bool,
}

/// Plans an apply of `desired` over `snapshot`. Pure: no I/O.
pub fn plan_apply(snapshot: &ObjectsAt, desired: Vec<Object>, opts: &ApplyOptions) -> Plan {
    let mut changes = Vec::new();
    let mut desired_keys = BTreeSet::new();
    let mut after_state: BTreeMap<ObjectKey, Object> = snapshot
        .objects
        .iter()
        .map(|(k, s)| (k.clone(), s.object.clone()))
        .collect();
    // Objects given twice in one apply are left for validation to report; both enter the
    // validated set so the duplicate is seen.
    let mut duplicates = Vec::new();

    for mut obj in desired {
        normalize_input(&mut obj, &opts.source);
        let key = obj.key();
        if !desired_keys.insert(key.clone()) {
            duplicates.push(obj);
            continue;
        }
        let stored = snapshot.objects.get(&key);
        // A removal in progress is omtd's, not the manifest's: re-applying the node's
        // manifest (as every GitOps run does) must not cancel it. Like Kubernetes'
        // deletionTimestamp, only `omtd delete` sets it.
        if let Some(v) = stored.and_then(|s| s.object.meta().annotations.get(DELETING_ANNOTATION)) {
            obj.meta_mut()
                .annotations
                .insert(DELETING_ANNOTATION.to_owned(), v.clone());
        }
        let (action, generation) = match stored {
            None => (Action::Created, 1),
            Some(s) => {
                let old = &s.object;
                let spec_changed = old.spec_value() != obj.spec_value();
                let meta_changed = old.meta().labels != obj.meta().labels
                    || old.meta().annotations != obj.meta().annotations;
                let generation = old.meta().generation + i64::from(spec_changed);
                if spec_changed || meta_changed {
                    (Action::Configured, generation)
                } else {
                    (Action::Unchanged, generation)
                }
            }
        };
        obj.meta_mut().generation = generation;
        if let Some(s) = stored {
            // Keep what omtd owns, so `after` reads like the stored object will.
            obj.set_status(s.object.status().cloned());
            obj.meta_mut().resource_version = s.object.meta().resource_version.clone();
        }
        after_state.insert(key.clone(), obj.clone());
        changes.push(Change {
            key,
            action,
            before: stored.map(|s| s.object.clone()),
            after: Some(obj),
            read_revision: stored.map_or(0, |s| s.mod_revision),
        });
    }

    if opts.prune {
        for (key, stored) in &snapshot.objects {
            let owned =
                stored.object.meta().annotations.get(SOURCE_ANNOTATION) == Some(&opts.source);
            if owned && !desired_keys.contains(key) {
                after_state.remove(key);
                changes.push(Change {
                    key: key.clone(),
                    action: Action::Pruned,
                    before: Some(stored.object.clone()),
                    after: None,
                    read_revision: stored.mod_revision,
                });
            }
        }
    }

    let mut validated: Vec<Object> = after_state.into_values().collect();
    validated.extend(duplicates);
    Plan {
        changes,
        diagnostics: validate_set(&validated),
    }
}

/// Plans deleting `keys` together: one transaction, all or nothing (`None` when one is not
/// stored). Refused (as an error diagnostic) when the deletion would break a reference
/// that holds today, e.g. deleting a credential a worker uses, unless the worker goes in
/// the same plan.
pub fn plan_delete(snapshot: &ObjectsAt, keys: &[ObjectKey]) -> Option<Plan> {
    let mut changes = Vec::with_capacity(keys.len());
    for key in keys {
        let stored = snapshot.objects.get(key)?;
        changes.push(Change {
            key: key.clone(),
            action: Action::Deleted,
            before: Some(stored.object.clone()),
            after: None,
            read_revision: stored.mod_revision,
        });
    }
    let before: Vec<Object> = snapshot
        .objects
        .values()
        .map(|s| s.object.clone())
        .collect();
    let after: Vec<Object> = before
        .iter()
        .filter(|o| !keys.contains(&o.key()))
        .cloned()
        .collect();
    let already: BTreeSet<String> = validate_set(&before)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    let diagnostics = validate_set(&after)
        .into_iter()
        .filter(|d| d.severity == Severity::Error && !already.contains(&d.to_string()))
        .collect();
    Some(Plan {
        changes,
        diagnostics,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("the plan has validation errors")]
    Invalid,
    /// Another writer changed one of the objects after it was read: read again and replan.
    #[error("another writer changed these objects while this one was being applied")]
    Conflict,
    /// An apply too big for one transaction could not be staged (another holds the lock,
    /// or an interrupted one cannot be rolled back).
    #[error(transparent)]
    Staged(StagedError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl From<StoreError> for ExecuteError {
    fn from(e: StoreError) -> Self {
        ExecuteError::Repo(RepoError::Store(e))
    }
}

impl From<StagedError> for ExecuteError {
    fn from(e: StagedError) -> Self {
        match e {
            StagedError::Conflict => ExecuteError::Conflict,
            StagedError::Store(e) => e.into(),
            e => ExecuteError::Staged(e),
        }
    }
}

/// Writes a plan all or nothing, conditioned on every touched object being as it was read:
/// in one transaction when it fits the store's limit, otherwise staged (`staged`: readers
/// see none of it until all of it is written). Returns the new store revision (None when
/// there was nothing to write).
pub async fn execute(repo: &Repo, plan: &Plan) -> Result<Option<Revision>, ExecuteError> {
    execute_within(repo, plan, repo.store.max_txn_ops()).await
}

/// [`execute`] with transactions of at most `limit` compares and operations.
pub async fn execute_within(
    repo: &Repo,
    plan: &Plan,
    limit: usize,
) -> Result<Option<Revision>, ExecuteError> {
    if plan.has_errors() {
        return Err(ExecuteError::Invalid);
    }
    let writes = writes_of(repo, plan);
    if writes.is_empty() {
        return Ok(None);
    }
    let compares: usize = writes.iter().map(|w| w.compares.len()).sum();
    let ops: usize = writes.iter().map(|w| w.ops.len()).sum();
    // One more compare: no staged apply may be under way (its keys read as before it).
    if compares < limit && ops <= limit {
        let mut txn = Txn::new().when(Compare::absent(repo.keys.apply_lock()));
        for w in writes {
            txn.compares.extend(w.compares);
            txn.success.extend(w.ops);
        }
        let res = repo.store.txn(txn).await?;
        if !res.succeeded {
            return Err(
                match staged::recover(repo.store.as_ref(), &repo.keys).await {
                    // An interrupted apply rolled back now: what was read is stale, replan.
                    Ok(_) => ExecuteError::Conflict,
                    Err(e) => e.into(),
                },
            );
        }
        return Ok(Some(res.revision));
    }
    if staged::recover(repo.store.as_ref(), &repo.keys)
        .await?
        .is_some()
    {
        return Err(ExecuteError::Conflict);
    }
    Ok(Some(
        staged::commit(&repo.store, &repo.keys, writes, limit).await?,
    ))
}

/// Each changed object's write: its spec put (or its spec and status deletes), guarded by
/// the spec's revision as read.
fn writes_of(repo: &Repo, plan: &Plan) -> Vec<StagedWrite> {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| {
            let spec_key = repo.keys.spec(c.key.kind, &c.key.name);
            let guard = Compare::mod_revision(spec_key.clone(), CompareOp::Equal, c.read_revision);
            let ops = match &c.after {
                Some(obj) => vec![Op::put(spec_key, encode(obj))],
                None => vec![
                    Op::delete(spec_key),
                    Op::delete(repo.keys.status(c.key.kind, &c.key.name)),
                ],
            };
            StagedWrite {
                compares: vec![guard],
                ops,
            }
        })
        .collect()
}

/// Clears what the user may not set (status, generation, resourceVersion) and records the
/// source. Values given for them in a manifest are ignored, as kubectl ignores status.
fn normalize_input(obj: &mut Object, source: &str) {
    obj.set_status(None);
    let meta = obj.meta_mut();
    meta.generation = 0;
    meta.resource_version = None;
    meta.annotations
        .insert(SOURCE_ANNOTATION.to_owned(), source.to_owned());
}

/// Kinds in the order changes are printed: referenced kinds first.
pub fn sort_changes(changes: &mut [Change]) {
    let rank = |k: Kind| Kind::ALL.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    changes.sort_by(|a, b| (rank(a.key.kind), &a.key.name).cmp(&(rank(b.key.kind), &b.key.name)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::repo::Stored;
    use omtd_crds::manifest;

    fn objs(yaml: &str) -> Vec<Object> {
        manifest::parse(yaml).unwrap()
    }

    const TWO: &str = "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: a}\nspec: {address: 10.0.0.1, roles: [editor]}\n---\napiVersion: omtd/v1\nkind: Node\nmetadata: {name: b}\nspec: {address: 10.0.0.2, roles: [monitor]}\n";

    fn stored(plan: &Plan) -> ObjectsAt {
        let mut snap = ObjectsAt::default();
        for (i, c) in plan.changes.iter().enumerate() {
            if let Some(o) = &c.after {
                snap.objects.insert(
                    c.key.clone(),
                    Stored {
                        object: o.clone(),
                        mod_revision: i as i64 + 1,
                    },
                );
            }
        }
        snap
    }

    fn opts(source: &str, prune: bool) -> ApplyOptions {
        ApplyOptions {
            source: source.into(),
            prune,
        }
    }

    #[test]
    fn create_then_unchanged_then_configured_bumps_generation_on_spec_only() {
        let p1 = plan_apply(&ObjectsAt::default(), objs(TWO), &opts("s", false));
        assert!(p1.changes.iter().all(|c| c.action == Action::Created));
        assert_eq!(p1.changes[0].after.as_ref().unwrap().meta().generation, 1);
        let snap = stored(&p1);
        let p2 = plan_apply(&snap, objs(TWO), &opts("s", false));
        assert!(p2.is_noop());
        let changed = TWO.replace("10.0.0.2", "10.0.0.9");
        let p3 = plan_apply(&snap, objs(&changed), &opts("s", false));
        let b = p3.changes.iter().find(|c| c.key.name == "b").unwrap();
        assert_eq!(b.action, Action::Configured);
        assert_eq!(b.after.as_ref().unwrap().meta().generation, 2);
        let labels = TWO.replace("metadata: {name: a}", "metadata: {name: a, labels: {x: y}}");
        let p4 = plan_apply(&snap, objs(&labels), &opts("s", false));
        let a = p4.changes.iter().find(|c| c.key.name == "a").unwrap();
        assert_eq!(a.action, Action::Configured);
        assert_eq!(
            a.after.as_ref().unwrap().meta().generation,
            1,
            "labels are not spec"
        );
    }

    #[test]
    fn reapplying_keeps_a_removal_in_progress() {
        let snap = stored(&plan_apply(
            &ObjectsAt::default(),
            objs(TWO),
            &opts("s", false),
        ));
        let mut snap = snap;
        let key = ObjectKey {
            kind: Kind::Node,
            name: "a".into(),
        };
        if let Some(s) = snap.objects.get_mut(&key) {
            s.object
                .meta_mut()
                .annotations
                .insert(DELETING_ANNOTATION.into(), "true".into());
        }
        let p = plan_apply(&snap, objs(TWO), &opts("s", false));
        let a = p.changes.iter().find(|c| c.key == key).unwrap();
        assert_eq!(a.action, Action::Unchanged);
        assert_eq!(
            a.after
                .as_ref()
                .unwrap()
                .meta()
                .annotations
                .get(DELETING_ANNOTATION)
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn prune_only_touches_own_source() {
        let snap = stored(&plan_apply(
            &ObjectsAt::default(),
            objs(TWO),
            &opts("team-a", false),
        ));
        let only_a = TWO.split("---\n").next().unwrap();
        let p = plan_apply(&snap, objs(only_a), &opts("team-b", true));
        assert!(
            p.changes.iter().all(|c| c.action != Action::Pruned),
            "b belongs to team-a"
        );
        let p = plan_apply(&snap, objs(only_a), &opts("team-a", true));
        let pruned: Vec<_> = p
            .changes
            .iter()
            .filter(|c| c.action == Action::Pruned)
            .map(|c| c.key.to_string())
            .collect();
        assert_eq!(pruned, vec!["node/b"]);
    }

    #[test]
    fn delete_refuses_to_break_a_reference() {
        let yaml = "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: m}\nspec: {address: 10.0.0.1, roles: [manager]}\n---\napiVersion: omtd/v1\nkind: Node\nmetadata: {name: w}\nspec: {address: 10.0.0.2, roles: [worker], credential: w}\n---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: w}\nspec: {principal: w, secret: {value: s}, use: mesos-agent}\n";
        let snap = stored(&plan_apply(
            &ObjectsAt::default(),
            objs(yaml),
            &opts("s", false),
        ));
        let key = |kind, name: &str| ObjectKey {
            kind,
            name: name.into(),
        };
        let p = plan_delete(&snap, &[key(Kind::Credential, "w")]).unwrap();
        assert!(p.has_errors());
        let p = plan_delete(&snap, &[key(Kind::Node, "w")]).unwrap();
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        // The worker and its credential together break nothing.
        let both = [key(Kind::Credential, "w"), key(Kind::Node, "w")];
        let p = plan_delete(&snap, &both).unwrap();
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        assert_eq!(p.changes.len(), 2);
        assert!(plan_delete(&snap, &[key(Kind::Node, "zz")]).is_none());
        assert!(plan_delete(&snap, &[key(Kind::Node, "w"), key(Kind::Node, "zz")]).is_none());
    }
}
