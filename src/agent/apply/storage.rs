//! Volumes and filesystems: PVs joining their group, LVs filling it, filesystems made on
//! blank devices only, PVs leaving (pvmove, vgreduce, pvremove) only when the rest has room
//! and the agent is in touch with the store. LVM is only looked at in full passes; light
//! passes carry the last full pass's reports. A pvmove's progress goes to the pass's
//! progress sink as it advances, so the agent can report it before the step ends.

use std::collections::BTreeMap;

use omtd_crds::plan::{Ensure, ResourceState};
use serde::Serialize;

use super::{Pass, ResourceOutcome, Scope};
use crate::agent::drivers::{Result, StorageOutcome};
use crate::agent::memory::spec_hash;
use crate::agent::merge::id;

impl Pass<'_> {
    pub(super) fn storage(&mut self) {
        if self.scope == Scope::Light {
            let keep: Vec<_> = self.mem.storage_reports.clone();
            self.out.resources.extend(keep);
            return;
        }
        let first = self.out.resources.len();
        let plan = self.plan;
        for spec in plan
            .physical_volumes
            .iter()
            .filter(|p| p.ensure == Ensure::Present)
        {
            let may_destroy = self.may_destroy;
            self.storage_step(id::pv(spec), spec, |h, progress| {
                h.storage.ensure_pv(spec, may_destroy, progress)
            });
        }
        let before_lvs = self.out.changes;
        for spec in &plan.logical_volumes {
            self.storage_step(id::lv(spec), spec, |h, _| h.storage.ensure_lv(spec));
        }
        if self.out.changes > before_lvs {
            self.refresh_pv_facts(first);
        }
        for spec in &plan.filesystems {
            self.storage_step(id::fs(spec), spec, |h, _| h.storage.ensure_filesystem(spec));
        }
        for spec in plan
            .physical_volumes
            .iter()
            .filter(|p| p.ensure == Ensure::Absent)
        {
            let may_destroy = self.may_destroy;
            self.storage_step(id::pv(spec), spec, |h, progress| {
                h.storage.ensure_pv(spec, may_destroy, progress)
            });
        }
        // Device UUIDs for fstab, looked up once per full pass.
        self.mem.uuids.clear();
        for m in plan.mounts.iter() {
            if crate::agent::drivers::linux::fstab::is_device(&m.source) {
                if let Ok(Some(u)) = self.host.storage.device_uuid(&m.source) {
                    self.mem.uuids.insert(m.source.clone(), u);
                }
            }
        }
        self.mem.storage_reports = self.out.resources[first..].to_vec();
    }

    /// Reads the present PVs' facts again after an LV grew over them in this pass: the
    /// storage controller decides whether a PV may leave its group on `pv_free`, and the
    /// values read before the LV grew would promise room that is gone.
    fn refresh_pv_facts(&mut self, first: usize) {
        let plan = self.plan;
        for spec in plan
            .physical_volumes
            .iter()
            .filter(|p| p.ensure == Ensure::Present)
        {
            let rid = id::pv(spec);
            let fresh = self
                .host
                .storage
                .ensure_pv(spec, self.may_destroy, &mut |_| {});
            let Ok(StorageOutcome::Unchanged { observed }) = fresh else {
                continue; // anything else is a change or a problem the next pass reports
            };
            if let Some(r) = self.out.resources[first..].iter_mut().find(|r| r.id == rid) {
                r.observed = observed.into_iter().collect();
            }
        }
    }

    fn storage_step<T: Serialize>(
        &mut self,
        rid: String,
        spec: &T,
        step: impl FnOnce(
            &mut crate::agent::drivers::Host,
            &mut (dyn FnMut(u8) + Send),
        ) -> Result<StorageOutcome>,
    ) {
        let corrective = self.is_corrective(&rid, spec_hash(spec));
        if self.mem.failed.contains_key(&rid) {
            if let Err(pause) = self.may_touch(&rid, corrective) {
                return self.backing_off(rid, pause, ResourceState::Failed);
            }
        }
        let host = &mut *self.host;
        let progress = &mut *self.progress;
        let stepped = step(host, &mut |percent| progress(&rid, percent));
        let outcome = match stepped {
            Ok(StorageOutcome::Unchanged { observed }) => {
                ResourceOutcome::InSync(observed.into_iter().collect())
            }
            Ok(StorageOutcome::Changed { what, observed }) => {
                tracing::info!(resource = %rid, %what, "storage changed");
                ResourceOutcome::Changed {
                    observed: observed.into_iter().collect::<BTreeMap<_, _>>(),
                }
            }
            Ok(StorageOutcome::Progressing { percent, message }) => {
                ResourceOutcome::Progressing(Some(percent), message)
            }
            Ok(StorageOutcome::Refused { reason }) => {
                tracing::warn!(resource = %rid, %reason, "storage step refused");
                ResourceOutcome::Refused(reason)
            }
            Err(e) => ResourceOutcome::Failed(e.to_string()),
        };
        self.record(rid, spec, corrective, outcome);
    }
}
