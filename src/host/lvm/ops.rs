//! The runbook's "add disk space": pvcreate → vgcreate/vgextend → lvcreate/lvextend →
//! resize2fs. Each step observes first and acts only on what differs, so re-running the
//! whole sequence after a crash at any point picks up where it stopped.
//!
//! Never forced: no `-y`, `-f` or `-ff` anywhere. Whatever lvm2 would ask about (a
//! signature on a new LV, say) is answered "no" by the closed stdin, and the step fails
//! with lvm2's reason instead of destroying anything.

use super::{Lvm, LvmError, LvmState, Pv};
use crate::host::HostChange;

/// Where a device stands relative to the volume group it should join.
enum Membership {
    NotPv,
    Orphan,
    InVg,
}

fn membership(state: &LvmState, vg: &str, device: &str) -> Result<Membership, LvmError> {
    match state.pv(device) {
        None => Ok(Membership::NotPv),
        Some(Pv { vg: None, .. }) => Ok(Membership::Orphan),
        Some(Pv { vg: Some(v), .. }) if v == vg => Ok(Membership::InVg),
        Some(Pv {
            vg: Some(other), ..
        }) => Err(LvmError::InOtherVg {
            device: device.to_owned(),
            vg: vg.to_owned(),
            other: other.clone(),
        }),
    }
}

impl Lvm {
    /// Makes `device` a PV, only when both signature probes (`blkid -p`, `wipefs -n`) find
    /// it blank. Unchanged when it already is a PV.
    pub fn pvcreate(&self, device: &str) -> Result<HostChange, LvmError> {
        if self.pvs()?.iter().any(|p| p.name == device) {
            return Ok(HostChange::Unchanged);
        }
        self.pvcreate_blank(device)?;
        Ok(HostChange::Changed)
    }

    /// pvcreate after the two probes; the caller knows the device is not a PV yet.
    fn pvcreate_blank(&self, device: &str) -> Result<(), LvmError> {
        let sig = self.fs.probe(device)?;
        if !sig.is_blank() {
            tracing::warn!(device, found = %sig, "refusing pvcreate: device not blank");
            return Err(LvmError::PvcreateRefused {
                device: device.to_owned(),
                found: sig.to_string(),
            });
        }
        self.change(self.cmd("pvcreate").arg(device))
    }

    /// Creates volume group `vg` on `device` (pvcreate first, safely, if needed).
    /// Unchanged when `vg` exists and holds `device`; an error when it exists without it.
    pub fn vgcreate(&self, vg: &str, device: &str) -> Result<HostChange, LvmError> {
        let state = self.pvs_and_vgs()?;
        let member = membership(&state, vg, device)?;
        if state.vg(vg).is_some() {
            return match member {
                Membership::InVg => Ok(HostChange::Unchanged),
                _ => Err(LvmError::VgExists {
                    vg: vg.to_owned(),
                    device: device.to_owned(),
                }),
            };
        }
        if let Membership::NotPv = member {
            self.pvcreate_blank(device)?;
        }
        self.change(self.cmd("vgcreate").args([vg, device]))?;
        Ok(HostChange::Changed)
    }

    /// Adds `device` to the existing group `vg` (pvcreate first, safely, if needed).
    pub fn vgextend(&self, vg: &str, device: &str) -> Result<HostChange, LvmError> {
        let state = self.pvs_and_vgs()?;
        let member = membership(&state, vg, device)?;
        if state.vg(vg).is_none() {
            return Err(LvmError::VgNotFound { vg: vg.to_owned() });
        }
        match member {
            Membership::InVg => return Ok(HostChange::Unchanged),
            Membership::NotPv => self.pvcreate_blank(device)?,
            Membership::Orphan => {}
        }
        self.change(self.cmd("vgextend").args([vg, device]))?;
        Ok(HostChange::Changed)
    }

    /// Desired state "`device` is a PV of `vg`": vgcreate when the group does not exist
    /// yet, vgextend when it does, nothing when it already holds the device.
    pub fn add_device(&self, vg: &str, device: &str) -> Result<HostChange, LvmError> {
        let exists = self.vgs()?.iter().any(|v| v.name == vg);
        if exists {
            self.vgextend(vg, device)
        } else {
            self.vgcreate(vg, device)
        }
    }

    /// Creates `vg/lv` on all the group's free extents (`lvcreate -l 100%FREE`).
    /// Unchanged when it exists (use [`Lvm::grow_lv`] to take new free space).
    pub fn lvcreate(&self, vg: &str, lv: &str) -> Result<HostChange, LvmError> {
        let (vgs, lvs) = (self.vgs()?, self.lvs()?);
        if lvs.iter().any(|l| l.vg == vg && l.name == lv) {
            return Ok(HostChange::Unchanged);
        }
        let group = vgs
            .iter()
            .find(|v| v.name == vg)
            .ok_or_else(|| LvmError::VgNotFound { vg: vg.to_owned() })?;
        if group.free_count == 0 {
            return Err(LvmError::NoFreeExtents { vg: vg.to_owned() });
        }
        self.change(self.cmd("lvcreate").args(["-l", "100%FREE", "-n", lv, vg]))?;
        Ok(HostChange::Changed)
    }

    /// Grows `vg/lv` over every free extent of the group (`lvextend -l +100%FREE`), then
    /// its ext filesystem online (`resize2fs`). The filesystem is grown even when the LV
    /// already was, which finishes a run that stopped between the two.
    pub fn grow_lv(&self, vg: &str, lv: &str) -> Result<HostChange, LvmError> {
        let (vgs, lvs) = (self.vgs()?, self.lvs()?);
        let volume = lvs
            .iter()
            .find(|l| l.vg == vg && l.name == lv)
            .ok_or_else(|| LvmError::LvNotFound {
                vg: vg.to_owned(),
                lv: lv.to_owned(),
            })?;
        let free = vgs
            .iter()
            .find(|v| v.name == vg)
            .map_or(0, |v| v.free_count);
        let mut outcome = HostChange::Unchanged;
        if free > 0 {
            self.change(
                self.cmd("lvextend")
                    .args(["-l", "+100%FREE"])
                    .arg(&volume.path),
            )?;
            outcome = HostChange::Changed;
        }
        Ok(outcome.or(self.fs.grow(&volume.path)?))
    }

    /// PVs and VGs (no LVs: not needed, and `lvs` is the slowest report).
    pub(super) fn pvs_and_vgs(&self) -> Result<LvmState, LvmError> {
        Ok(LvmState {
            pvs: self.pvs()?,
            vgs: self.vgs()?,
            lvs: Vec::new(),
        })
    }
}
