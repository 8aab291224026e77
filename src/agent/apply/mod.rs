//! One apply pass: observe the host, change what differs from the merged plan, in
//! dependency order — volumes → filesystems → mounts → files → exports → services →
//! containers — and say how every resource stands.
//!
//! Each change is classified: *intentional* when the resource's spec changed since the agent
//! last brought it there (or it is new), *corrective* when the spec is the same and the host
//! drifted. Corrective changes, and retries of failed changes, go through the repair
//! limiter; a resource in backoff is reported instead of touched.
//!
//! The pass is synchronous (drivers run commands); the agent runs it on a blocking thread.

mod containers;
mod exports;
mod files;
pub use files::satisfies as file_satisfies;
pub mod htpasswd;
mod mounts;
mod services;
mod stale_temps;
mod storage;
pub mod unmanaged;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use omtd_crds::plan::{ResourceReport, ResourceState};
use serde::Serialize;

use super::drivers::{DriverError, Host};
use super::memory::{spec_hash, Memory};
use super::merge::MergedPlan;
use super::repair_limit::RepairDecision;

/// How much of the host a pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything, LVM included: plan changes and the periodic resync.
    Full,
    /// Everything but LVM, which is slow to query and does not drift by itself: drift
    /// events and the service checks.
    Light,
}

/// The result of one pass.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// Every resource, sorted by id.
    pub resources: Vec<ResourceReport>,
    /// Changes made in this pass.
    pub changes: u64,
    /// Plan path → the fingerprint the file should have now (None: should not exist), for
    /// telling the agent's own writes from drift.
    pub expected_files: Vec<(String, Option<[u8; 32]>)>,
    /// When a resource in backoff may be repaired again.
    pub next_wake: Option<Instant>,
    /// Shared files the agent edits only in part (fstab, exports), with their fingerprint
    /// as the step that owns them left them. Taken right after that step, not after the
    /// pass: a hand edit made while the rest of the pass runs must still count as drift.
    pub snapshots: Vec<(std::path::PathBuf, Option<[u8; 32]>)>,
    /// Host paths omtd found and leaves alone (see [`unmanaged`]).
    pub unmanaged: Vec<String>,
}

/// What became of one resource.
pub(crate) enum ResourceOutcome {
    InSync(BTreeMap<String, String>),
    Changed { observed: BTreeMap<String, String> },
    Progressing(Option<u8>, String),
    Refused(String),
    Failed(String),
}

pub(crate) struct Pass<'a> {
    host: &'a mut Host,
    mem: &'a mut Memory,
    plan: &'a MergedPlan,
    scope: Scope,
    may_destroy: bool,
    now: Instant,
    out: PassOutcome,
    /// Files written in this pass → whether the write was corrective.
    changed_files: BTreeMap<String, bool>,
    /// Told (resource id, whole percent) while a long step (pvmove) advances.
    progress: &'a mut Progress<'a>,
}

/// Where a pass sends the progress of its long steps: (resource id, whole percent).
pub type Progress<'a> = dyn FnMut(&str, u8) + Send + 'a;

/// Run one pass.
pub fn run(
    host: &mut Host,
    mem: &mut Memory,
    plan: &MergedPlan,
    scope: Scope,
    may_destroy: bool,
) -> PassOutcome {
    run_with_progress(host, mem, plan, scope, may_destroy, &mut |_, _| {})
}

/// Run one pass, telling `progress` how its long steps advance while they run.
pub fn run_with_progress<'a>(
    host: &'a mut Host,
    mem: &'a mut Memory,
    plan: &'a MergedPlan,
    scope: Scope,
    may_destroy: bool,
    progress: &'a mut Progress<'a>,
) -> PassOutcome {
    let span = tracing::info_span!("apply_pass", ?scope, may_destroy);
    let _enter = span.enter();
    let mut pass = Pass {
        host,
        mem,
        plan,
        scope,
        may_destroy,
        now: Instant::now(),
        out: PassOutcome::default(),
        changed_files: BTreeMap::new(),
        progress,
    };
    pass.stale_temps();
    pass.storage();
    pass.mounts();
    let paths = pass.host.mounts.watch_paths();
    pass.snapshot(paths);
    pass.files();
    pass.exports();
    let paths = pass.host.exports.watch_paths();
    pass.snapshot(paths);
    pass.services();
    pass.containers();
    pass.unmanaged_sites();
    pass.finish()
}

impl Pass<'_> {
    fn finish(mut self) -> PassOutcome {
        let mut ids: BTreeSet<String> = self.out.resources.iter().map(|r| r.id.clone()).collect();
        for p in &self.plan.problems {
            if ids.insert(p.id.clone()) {
                self.out.resources.push(p.clone());
            }
        }
        self.mem.limiter.retain(|id| ids.contains(id));
        self.mem.converged.retain(|id, _| ids.contains(id));
        self.mem.failed.retain(|id, _| ids.contains(id));
        self.out.resources.sort_by(|a, b| a.id.cmp(&b.id));
        self.out.next_wake = self.mem.limiter.next_deadline();
        if self.out.changes > 0 {
            tracing::info!(changes = self.out.changes, "apply pass changed the host");
        }
        self.out
    }

    fn snapshot(&mut self, paths: Vec<std::path::PathBuf>) {
        for p in paths {
            let fp = crate::agent::drift::fingerprint_of(&p);
            self.out.snapshots.push((p, fp));
        }
    }

    /// Whether a change to `id` (whose spec hashes to `hash`) would repair drift.
    fn is_corrective(&self, id: &str, hash: u64) -> bool {
        self.mem.converged.get(id) == Some(&hash)
    }

    /// Ask the limiter before touching `id`; intentional first attempts always pass.
    fn may_touch(&mut self, id: &str, corrective: bool) -> Result<(), std::time::Duration> {
        if !corrective && !self.mem.failed.contains_key(id) {
            return Ok(());
        }
        match self.mem.limiter.allow(id, self.now) {
            RepairDecision::Allow => Ok(()),
            RepairDecision::Deny { pause } => Err(pause),
        }
    }

    /// Record what became of `id`.
    /// Records a resource whose observation or step failed, with the driver's message.
    fn record_failure<T: Serialize>(
        &mut self,
        id: String,
        spec: &T,
        corrective: bool,
        e: &DriverError,
    ) {
        self.record(id, spec, corrective, ResourceOutcome::Failed(e.to_string()));
    }

    /// Records a step that changed the host and observed nothing more.
    fn record_changed<T: Serialize>(&mut self, id: String, spec: &T, corrective: bool) {
        let outcome = ResourceOutcome::Changed {
            observed: BTreeMap::new(),
        };
        self.record(id, spec, corrective, outcome);
    }

    fn record<T: Serialize>(
        &mut self,
        id: String,
        spec: &T,
        corrective: bool,
        outcome: ResourceOutcome,
    ) {
        let hash = spec_hash(spec);
        let (state, message, percent, observed) = match outcome {
            ResourceOutcome::InSync(observed) => {
                self.mem.converged.insert(id.clone(), hash);
                self.mem.failed.remove(&id);
                self.mem.limiter.settle(&id, self.now);
                (ResourceState::Converged, String::new(), None, observed)
            }
            ResourceOutcome::Changed { observed } => {
                self.count_change(corrective);
                self.mem.converged.insert(id.clone(), hash);
                self.mem.failed.remove(&id);
                (ResourceState::Converged, String::new(), None, observed)
            }
            ResourceOutcome::Progressing(percent, message) => (
                ResourceState::Progressing,
                message,
                percent,
                BTreeMap::new(),
            ),
            ResourceOutcome::Refused(message) => {
                (ResourceState::Refused, message, None, BTreeMap::new())
            }
            ResourceOutcome::Failed(message) => {
                tracing::warn!(resource = %id, %message, "could not converge");
                self.mem.failed.insert(id.clone(), message.clone());
                (ResourceState::Failed, message, None, BTreeMap::new())
            }
        };
        self.out.resources.push(ResourceReport {
            id,
            state,
            message,
            percent,
            observed,
        });
    }

    fn count_change(&mut self, corrective: bool) {
        self.out.changes += 1;
        if corrective {
            self.mem.corrective += 1;
        } else {
            self.mem.intentional += 1;
        }
    }

    /// A resource left alone because its repairs are backing off: it keeps failing (say
    /// with what), or keeps drifting away after each repair.
    fn backing_off(&mut self, id: String, pause: std::time::Duration, state: ResourceState) {
        let pause = pause.as_secs().max(1);
        let message = match self.mem.failed.get(&id) {
            Some(error) => format!("keeps failing: {error}; next attempt in {pause} s"),
            None => format!("keeps drifting after repair: repairs backed off (pause {pause} s)"),
        };
        self.out.resources.push(ResourceReport {
            id,
            state,
            message,
            percent: None,
            observed: BTreeMap::new(),
        });
    }
}

/// Whether the owned lines of fstab or `/etc/exports` need no rewrite: a complete plan
/// wants exactly its lines in its order; an incomplete one only adds lines, so keeping the
/// rest in their place is no change.
fn same_lines(complete: bool, wanted: &[String], current: &[String]) -> bool {
    if complete {
        wanted == current
    } else {
        wanted.iter().collect::<BTreeSet<_>>() == current.iter().collect::<BTreeSet<_>>()
    }
}
