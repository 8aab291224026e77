//! Sim LVM and filesystems with extent arithmetic: a PV holds `size / EXTENT_SIZE` extents,
//! LVs take extents from PVs, and a PV can only leave its group when the other PVs have
//! room for the extents it holds (pvmove), exactly the refusal the runbook's example needs.
//! mkfs and pvcreate refuse a device with any signature.

use omtd_crds::plan::{Ensure, FilesystemSpec, LogicalVolumeSpec, PhysicalVolumeSpec};

use super::{SimHost, SimState, SimVg};
use crate::agent::drivers::{DriverError, Result, Storage, StorageOutcome};

/// LVM's default physical extent size, 4 MiB.
pub const EXTENT_SIZE: u64 = 4 * 1024 * 1024;

const LVM_SIGNATURE: &str = "LVM2_member";

/// Extents of `device` used by LVs of `vg`.
pub fn used_on(vg: &SimVg, device: &str) -> u64 {
    vg.lvs.values().filter_map(|segs| segs.get(device)).sum()
}

fn free_on(vg: &SimVg, device: &str) -> u64 {
    vg.pvs.get(device).copied().unwrap_or(0) - used_on(vg, device)
}

fn vg_free(vg: &SimVg) -> u64 {
    vg.pvs.keys().map(|d| free_on(vg, d)).sum()
}

/// Give `lv` up to `want` free extents taken from the PVs (in name order, skipping
/// `except`); returns how many it got.
fn allocate(vg: &mut SimVg, lv: &str, mut want: u64, except: Option<&str>) -> u64 {
    let mut got = 0;
    let devices: Vec<String> = vg.pvs.keys().cloned().collect();
    for d in devices {
        if want == 0 {
            break;
        }
        if Some(d.as_str()) == except {
            continue;
        }
        let take = free_on(vg, &d).min(want);
        if take > 0 {
            *vg.lvs
                .entry(lv.to_owned())
                .or_default()
                .entry(d.clone())
                .or_default() += take;
            want -= take;
            got += take;
        }
    }
    got
}

fn lv_extents(vg: &SimVg, lv: &str) -> u64 {
    vg.lvs.get(lv).map(|s| s.values().sum()).unwrap_or(0)
}

/// Resize the LV's device (and grow its filesystem online, as `lvextend -r` does).
fn sync_lv_device(st: &mut SimState, vg_name: &str, lv: &str) {
    let extents = st
        .vgs
        .get(vg_name)
        .map(|vg| lv_extents(vg, lv))
        .unwrap_or(0);
    let dev = st
        .devices
        .entry(format!("/dev/{vg_name}/{lv}"))
        .or_default();
    dev.size = extents * EXTENT_SIZE;
    if dev.signature.is_some() && dev.signature.as_deref() != Some(LVM_SIGNATURE) {
        dev.fs_size = dev.size;
    }
}

/// Fault: a `filler` LV takes every free extent of the group.
pub fn fill(st: &mut SimState, vg_name: &str) {
    if let Some(vg) = st.vgs.get_mut(vg_name) {
        let free = vg_free(vg);
        allocate(vg, "filler", free, None);
        sync_lv_device(st, vg_name, "filler");
    }
}

fn pv_observed(vg: &SimVg, device: &str) -> Vec<(String, String)> {
    let total = vg.pvs.get(device).copied().unwrap_or(0);
    let used = used_on(vg, device);
    vec![
        ("pv_size".into(), (total * EXTENT_SIZE).to_string()),
        ("pv_free".into(), ((total - used) * EXTENT_SIZE).to_string()),
        ("pv_pe_count".into(), total.to_string()),
        ("pv_pe_alloc_count".into(), used.to_string()),
    ]
}

impl SimHost {
    fn pv_present(&self, spec: &PhysicalVolumeSpec) -> Result<StorageOutcome> {
        let mut st = self.state();
        let dev = st
            .devices
            .get(&spec.device)
            .cloned()
            .ok_or_else(|| DriverError::Other(format!("device {} not found", spec.device)))?;
        if let Some(vg) = st.vgs.get(&spec.volume_group) {
            if vg.pvs.contains_key(&spec.device) {
                return Ok(StorageOutcome::Unchanged {
                    observed: pv_observed(vg, &spec.device),
                });
            }
        }
        if let Some(other) = st
            .vgs
            .iter()
            .find(|(_, vg)| vg.pvs.contains_key(&spec.device))
            .map(|(n, _)| n.clone())
        {
            return Ok(StorageOutcome::Refused {
                reason: format!(
                    "{} is already a physical volume of volume group {other}",
                    spec.device
                ),
            });
        }
        if let Some(sig) = &dev.signature {
            return Ok(StorageOutcome::Refused {
                reason: format!(
                    "{} carries a {sig} signature: pvcreate refused, nothing was changed",
                    spec.device
                ),
            });
        }
        let extents = dev.size / EXTENT_SIZE;
        if let Some(d) = st.devices.get_mut(&spec.device) {
            d.signature = Some(LVM_SIGNATURE.into());
        }
        let created = !st.vgs.contains_key(&spec.volume_group);
        let vg = st.vgs.entry(spec.volume_group.clone()).or_default();
        vg.pvs.insert(spec.device.clone(), extents);
        let observed = pv_observed(vg, &spec.device);
        let what = format!(
            "pvcreate {}, {} {} {}",
            spec.device,
            if created { "vgcreate" } else { "vgextend" },
            spec.volume_group,
            spec.device
        );
        st.log.push(what.clone());
        Ok(StorageOutcome::Changed { what, observed })
    }

    fn pv_absent(
        &self,
        spec: &PhysicalVolumeSpec,
        may_destroy: bool,
        progress: &mut (dyn FnMut(u8) + Send),
    ) -> Result<StorageOutcome> {
        let mut st = self.state();
        let Some(vg) = st.vgs.get(&spec.volume_group) else {
            return Ok(StorageOutcome::Unchanged { observed: vec![] });
        };
        if !vg.pvs.contains_key(&spec.device) {
            return Ok(StorageOutcome::Unchanged { observed: vec![] });
        }
        if !may_destroy {
            return Ok(StorageOutcome::Progressing {
                percent: 0,
                message: "waiting for the store before removing a physical volume".into(),
            });
        }
        if vg.pvs.len() == 1 {
            return Ok(StorageOutcome::Refused {
                reason: format!(
                    "{} is the last physical volume of {}: can't remove final physical volume",
                    spec.device, spec.volume_group
                ),
            });
        }
        let used = used_on(vg, &spec.device);
        let room = vg_free(vg) - free_on(vg, &spec.device);
        if used > room {
            return Ok(StorageOutcome::Refused {
                reason: format!(
                    "removing {} needs room for its {used} used extents on the other physical \
                     volumes of {}, which have {room} free: no extents available for allocation",
                    spec.device, spec.volume_group
                ),
            });
        }
        let mut what = Vec::new();
        if used > 0 {
            // A move left in flight by a crash resumes against the extent count it started
            // with, so its percent continues rather than restarting at 0.
            let total = *st
                .pvmoves_in_flight
                .entry(spec.device.clone())
                .or_insert(used);
            let pace = st.pvmove_pace;
            drop(st);
            self.pvmove(spec, total, pace, progress)?;
            what.push(format!("pvmove {}", spec.device));
            st = self.state();
        }
        let Some(vg) = st.vgs.get_mut(&spec.volume_group) else {
            return Ok(StorageOutcome::Unchanged { observed: vec![] });
        };
        // Never vgreduce a PV that still holds extents, whatever happened during the move.
        let left = used_on(vg, &spec.device);
        if left > 0 {
            return Err(DriverError::Other(format!(
                "{} still holds {left} extents after pvmove: not removed from {}",
                spec.device, spec.volume_group
            )));
        }
        vg.pvs.remove(&spec.device);
        vg.lvs.retain(|_, segs| {
            segs.retain(|_, n| *n > 0);
            !segs.is_empty()
        });
        if let Some(d) = st.devices.get_mut(&spec.device) {
            d.signature = None;
        }
        what.push(format!("vgreduce {} {}", spec.volume_group, spec.device));
        what.push(format!("pvremove {}", spec.device));
        let what = what.join(", ");
        st.log.push(what.clone());
        Ok(StorageOutcome::Changed {
            what,
            observed: vec![],
        })
    }

    /// Move the device's extents to the other PVs in `pace.steps` steps, calling `progress`
    /// after each with the percent of `total` copied. The lock is released between steps,
    /// as lvm2 lets other commands run during a move.
    fn pvmove(
        &self,
        spec: &PhysicalVolumeSpec,
        total: u64,
        pace: super::PvmovePace,
        progress: &mut (dyn FnMut(u8) + Send),
    ) -> Result<()> {
        let device = spec.device.as_str();
        let chunk = total.div_ceil(u64::from(pace.steps.max(1))).max(1);
        loop {
            let percent = {
                let mut st = self.state();
                let interrupt = st.pvmove_interrupt_at;
                let vg = st.vgs.get_mut(&spec.volume_group).ok_or_else(|| {
                    DriverError::Other(format!(
                        "volume group {} vanished during pvmove",
                        spec.volume_group
                    ))
                })?;
                let left = used_on(vg, device);
                if left == 0 {
                    st.pvmoves_in_flight.remove(device);
                    return Ok(());
                }
                let moved = move_extents(vg, device, chunk.min(left));
                if moved == 0 {
                    return Err(DriverError::Other(format!(
                        "pvmove {device}: no extents available for allocation"
                    )));
                }
                let percent = percent_moved(total, used_on(vg, device));
                if interrupt.is_some_and(|at| percent >= at) {
                    st.pvmove_interrupt_at = None;
                    st.log.push(format!("pvmove {device} killed at {percent}%"));
                    return Err(DriverError::Other(format!(
                        "pvmove {device} was killed at {percent}%"
                    )));
                }
                percent
            };
            progress(percent);
            if !pace.step_delay.is_zero() {
                std::thread::sleep(pace.step_delay);
            }
        }
    }
}

/// Move up to `n` of the device's extents (LV by LV) to the other PVs; returns how many
/// moved. An extent is only taken off the device once it has a place elsewhere.
fn move_extents(vg: &mut SimVg, device: &str, mut n: u64) -> u64 {
    let mut moved = 0;
    let lvs: Vec<String> = vg.lvs.keys().cloned().collect();
    for lv in lvs {
        if n == 0 {
            break;
        }
        let on_dev = vg
            .lvs
            .get(&lv)
            .and_then(|s| s.get(device))
            .copied()
            .unwrap_or(0);
        let got = allocate(vg, &lv, on_dev.min(n), Some(device));
        if let Some(seg) = vg.lvs.get_mut(&lv).and_then(|s| s.get_mut(device)) {
            *seg -= got;
        }
        n -= got;
        moved += got;
    }
    moved
}

/// Whole percent of `total` no longer on the device.
fn percent_moved(total: u64, left: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    let done = total.saturating_sub(left);
    // done <= total, so the result is at most 100 and fits.
    u8::try_from(done * 100 / total).unwrap_or(100)
}

impl Storage for SimHost {
    fn ensure_pv(
        &mut self,
        spec: &PhysicalVolumeSpec,
        may_destroy: bool,
        progress: &mut (dyn FnMut(u8) + Send),
    ) -> Result<StorageOutcome> {
        match spec.ensure {
            Ensure::Present => self.pv_present(spec),
            Ensure::Absent => self.pv_absent(spec, may_destroy, progress),
        }
    }

    fn ensure_lv(&mut self, spec: &LogicalVolumeSpec) -> Result<StorageOutcome> {
        let mut st = self.state();
        let vg = st.vgs.get_mut(&spec.volume_group).ok_or_else(|| {
            DriverError::Other(format!("volume group {} not found", spec.volume_group))
        })?;
        let exists = vg.lvs.contains_key(&spec.name);
        let free = vg_free(vg);
        let mut what = None;
        if !exists {
            if free == 0 {
                return Err(DriverError::Other(format!(
                    "volume group {} has no free extents for {}",
                    spec.volume_group, spec.name
                )));
            }
            allocate(vg, &spec.name, free, None);
            what = Some(format!(
                "lvcreate -l 100%FREE -n {} {}",
                spec.name, spec.volume_group
            ));
        } else if spec.grow_to_fill && free > 0 {
            allocate(vg, &spec.name, free, None);
            what = Some(format!(
                "lvextend -r -l +100%FREE {}/{}",
                spec.volume_group, spec.name
            ));
        }
        let extents = lv_extents(vg, &spec.name);
        sync_lv_device(&mut st, &spec.volume_group, &spec.name);
        let observed = vec![("lv_size".into(), (extents * EXTENT_SIZE).to_string())];
        Ok(match what {
            Some(what) => {
                st.log.push(what.clone());
                StorageOutcome::Changed { what, observed }
            }
            None => StorageOutcome::Unchanged { observed },
        })
    }

    fn ensure_filesystem(&mut self, spec: &FilesystemSpec) -> Result<StorageOutcome> {
        let mut st = self.state();
        let id = st.next_id();
        let dev = st
            .devices
            .get_mut(&spec.device)
            .ok_or_else(|| DriverError::Other(format!("device {} not found", spec.device)))?;
        match dev.signature.as_deref() {
            Some(sig) if sig == spec.fstype => Ok(StorageOutcome::Unchanged {
                observed: fs_observed(dev),
            }),
            Some(sig) => Ok(StorageOutcome::Refused {
                reason: format!(
                    "{} carries a {sig} signature: mkfs.{} refused, nothing was changed",
                    spec.device, spec.fstype
                ),
            }),
            None => {
                dev.signature = Some(spec.fstype.clone());
                dev.uuid = Some(format!("sim-uuid-{id}"));
                dev.fs_size = dev.size;
                let observed = fs_observed(dev);
                let what = format!("mkfs.{} {}", spec.fstype, spec.device);
                st.log.push(what.clone());
                Ok(StorageOutcome::Changed { what, observed })
            }
        }
    }

    fn device_uuid(&mut self, device: &str) -> Result<Option<String>> {
        Ok(self.state().devices.get(device).and_then(|d| {
            d.signature
                .as_deref()
                .filter(|s| *s != LVM_SIGNATURE)
                .and(d.uuid.clone())
        }))
    }
}

fn fs_observed(dev: &super::SimDevice) -> Vec<(String, String)> {
    let mut v = vec![("fs_size".to_owned(), dev.fs_size.to_string())];
    if let Some(u) = &dev.uuid {
        v.push(("uuid".into(), u.clone()));
    }
    v
}

#[cfg(test)]
mod tests;
