//! Volumes and filesystems: PVs joining their group, LVs filling it, filesystems made on
//! blank devices only, PVs leaving (pvmove, vgreduce, pvremove) only when the rest has room
//! and the agent is in touch with the store. LVM is only looked at in full passes; light
//! passes carry the last full pass's reports.

use std::collections::BTreeMap;

use omtd_crds::plan::{Ensure, ResourceState};
use serde::Serialize;

use super::{Outcome, Pass, Scope};
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
            self.storage_step(id::pv(spec), spec, |h| {
                h.storage.ensure_pv(spec, may_destroy)
            });
        }
        for spec in &plan.logical_volumes {
            self.storage_step(id::lv(spec), spec, |h| h.storage.ensure_lv(spec));
        }
        for spec in &plan.filesystems {
            self.storage_step(id::fs(spec), spec, |h| h.storage.ensure_filesystem(spec));
        }
        for spec in plan
            .physical_volumes
            .iter()
            .filter(|p| p.ensure == Ensure::Absent)
        {
            let may_destroy = self.may_destroy;
            self.storage_step(id::pv(spec), spec, |h| {
                h.storage.ensure_pv(spec, may_destroy)
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

    fn storage_step<T: Serialize>(
        &mut self,
        rid: String,
        spec: &T,
        step: impl FnOnce(&mut crate::agent::drivers::Host) -> Result<StorageOutcome>,
    ) {
        let corrective = self.is_corrective(&rid, spec_hash(spec));
        if self.mem.failed.contains(&rid) {
            if let Err(pause) = self.may_touch(&rid, corrective) {
                return self.backing_off(rid, pause, ResourceState::Failed);
            }
        }
        let outcome = match step(self.host) {
            Ok(StorageOutcome::Unchanged { observed }) => {
                Outcome::InSync(observed.into_iter().collect())
            }
            Ok(StorageOutcome::Changed { what, observed }) => {
                tracing::info!(resource = %rid, %what, "storage changed");
                Outcome::Changed {
                    observed: observed.into_iter().collect::<BTreeMap<_, _>>(),
                }
            }
            Ok(StorageOutcome::Progressing { percent, message }) => {
                Outcome::Progressing(Some(percent), message)
            }
            Ok(StorageOutcome::Refused { reason }) => {
                tracing::warn!(resource = %rid, %reason, "storage step refused");
                Outcome::Refused(reason)
            }
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.record(rid, spec, corrective, outcome);
    }
}
