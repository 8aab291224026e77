//! Mounts: omtd's fstab lines (device mounts by UUID), the mount point, and the mount.
//! Owned lines the plan no longer has are removed only when the plan is complete; an
//! `absent` mount is unmounted only while the agent is in touch with the store.

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::plan::{Ensure, MountSpec, ResourceState};

use super::{Pass, ResourceOutcome};
use crate::agent::drivers::linux::fstab;
use crate::agent::memory::spec_hash;
use crate::agent::merge::id;

impl Pass<'_> {
    pub(super) fn mounts(&mut self) {
        let plan = self.plan;
        if plan.mounts.is_empty() && plan.complete {
            // Still drop owned lines of mounts that left the plan.
            if let Ok(cur) = self.host.mounts.owned_entries() {
                if !cur.is_empty() && self.host.mounts.write_owned_entries(&[]).is_ok() {
                    self.count_change(false);
                }
            }
            return;
        }
        let current = match self.host.mounts.owned_entries() {
            Ok(c) => c,
            Err(e) => {
                for m in &plan.mounts {
                    let c = self.is_corrective(&id::mount(m), spec_hash(m));
                    self.record(id::mount(m), m, c, ResourceOutcome::Failed(e.to_string()));
                }
                return;
            }
        };
        let current_for = |target: &str| {
            current
                .iter()
                .find(|l| fstab::target(l).as_deref() == Some(target))
                .cloned()
        };
        // The owned lines wanted, and mounts that cannot be written yet.
        let mut wanted: Vec<String> = Vec::new();
        let mut unresolved: BTreeMap<String, String> = BTreeMap::new();
        for m in plan.mounts.iter().filter(|m| m.ensure == Ensure::Present) {
            if fstab::is_device(&m.source) {
                match self.mem.uuids.get(&m.source) {
                    Some(u) => wanted.push(fstab::line(m, Some(u))),
                    None => {
                        unresolved.insert(
                            id::mount(m),
                            format!("{} has no filesystem UUID yet", m.source),
                        );
                        wanted.extend(current_for(&m.target));
                    }
                }
            } else {
                wanted.push(fstab::line(m, None));
            }
        }
        if !plan.complete {
            let planned: BTreeSet<&str> = plan.mounts.iter().map(|m| m.target.as_str()).collect();
            for l in &current {
                if fstab::target(l).is_none_or(|t| !planned.contains(t.as_str()))
                    && !wanted.contains(l)
                {
                    wanted.push(l.clone());
                }
            }
        }
        let mut fstab_error = None;
        let mut rewritten: BTreeSet<String> = BTreeSet::new();
        let same = super::same_lines(plan.complete, &wanted, &current);
        if !same {
            let before: BTreeSet<&String> = current.iter().collect();
            match self.host.mounts.write_owned_entries(&wanted) {
                Ok(()) => {
                    rewritten = wanted
                        .iter()
                        .filter(|l| !before.contains(l))
                        .filter_map(|l| fstab::target(l))
                        .collect();
                    if rewritten.is_empty() {
                        // Only removals (or order): still a change of the host.
                        self.count_change(false);
                    }
                }
                Err(e) => fstab_error = Some(e.to_string()),
            }
        }
        for m in &plan.mounts {
            let rid = id::mount(m);
            if let Some(msg) = &fstab_error {
                let c = self.is_corrective(&rid, spec_hash(m));
                self.record(
                    rid,
                    m,
                    c,
                    ResourceOutcome::Failed(format!("/etc/fstab: {msg}")),
                );
                continue;
            }
            if let Some(msg) = unresolved.remove(&rid) {
                let c = self.is_corrective(&rid, spec_hash(m));
                self.record(rid, m, c, ResourceOutcome::Failed(msg));
                continue;
            }
            let line_changed = rewritten.contains(&m.target);
            self.mount(m, rid, line_changed);
        }
    }

    fn mount(&mut self, m: &MountSpec, rid: String, line_changed: bool) {
        let corrective = self.is_corrective(&rid, spec_hash(m));
        let mounted = match self.host.mounts.is_mounted(&m.target) {
            Ok(b) => b,
            Err(e) => return self.record_failure(rid, m, corrective, &e),
        };
        let act = match m.ensure {
            Ensure::Present => !mounted,
            Ensure::Absent => mounted,
        };
        if !act {
            let outcome = if line_changed {
                ResourceOutcome::Changed {
                    observed: BTreeMap::new(),
                }
            } else {
                ResourceOutcome::InSync(BTreeMap::new())
            };
            return self.record(rid, m, corrective, outcome);
        }
        if m.ensure == Ensure::Absent && !self.may_destroy {
            return self.record(
                rid,
                m,
                corrective,
                ResourceOutcome::Progressing(
                    None,
                    "waiting for the store before unmounting".into(),
                ),
            );
        }
        if let Err(pause) = self.may_touch(&rid, corrective) {
            return self.backing_off(rid, pause, ResourceState::Failed);
        }
        let r = match m.ensure {
            Ensure::Present => self.host.mounts.mount(&m.target),
            Ensure::Absent => self.host.mounts.unmount(&m.target),
        };
        match r {
            Ok(()) => {
                tracing::info!(target = %m.target, ensure = ?m.ensure, corrective, "mount changed");
                self.record(
                    rid,
                    m,
                    corrective,
                    ResourceOutcome::Changed {
                        observed: BTreeMap::new(),
                    },
                )
            }
            Err(e) => self.record_failure(rid, m, corrective, &e),
        }
    }
}
