//! The runbook's "reduce disk space": move a PV's data away (pvmove), take it out of its
//! group (vgreduce), and wipe its label (pvremove) — refused when the data has nowhere to go.
//!
//! Level-triggered: [`plan_removal`] looks at what lvm2 reports now and names the next
//! step, so a crash at any point resumes (PV already out of the group → pvremove; not a PV
//! any more → done; pvmove interrupted → pvmove again, which lvm2 resumes).
//!
//! The two safety rules (DESIGN.md §6):
//! - pvmove only when the group's OTHER allocatable PVs have at least as many free extents
//!   as this PV has allocated; otherwise refuse with the room missing, before any command.
//! - never vgreduce a PV that holds extents: re-read right before, refuse if any remain
//!   (and lvm2's own "still in use" check stays as a last guard).

use serde::Serialize;

use super::error::human_bytes;
use super::{Lvm, LvmError, LvmState};
use crate::host::command::CommandError;
use crate::host::HostChange;

/// The next step of removing a PV from a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalStep {
    /// Not a PV (any more): nothing to do.
    Done,
    /// A PV in no group: wipe the label.
    Pvremove,
    /// In the group, holding no extents: take it out.
    Vgreduce,
    /// In the group, holding `extents`: move them (resuming a move lvm2 left in flight
    /// when `resume`).
    Pvmove { extents: u64, resume: bool },
}

/// Decides the next removal step from observed state, or refuses. Pure: the sim driver
/// and the controllers can use the same arithmetic. `pvmove_in_flight` says whether
/// lvm2 shows an unfinished pvmove off `device` (its destination extents are already
/// allocated on the other PVs, so the room check would wrongly fail on resume).
pub fn plan_removal(
    state: &LvmState,
    vg: &str,
    device: &str,
    pvmove_in_flight: bool,
) -> Result<RemovalStep, LvmError> {
    let Some(pv) = state.pv(device) else {
        return Ok(RemovalStep::Done);
    };
    match pv.vg.as_deref() {
        None => return Ok(RemovalStep::Pvremove),
        Some(v) if v != vg => {
            return Err(LvmError::InOtherVg {
                device: device.to_owned(),
                vg: vg.to_owned(),
                other: v.to_owned(),
            })
        }
        Some(_) => {}
    }
    let others: Vec<_> = state.pvs_in(vg).filter(|p| p.name != device).collect();
    if others.is_empty() {
        return Err(LvmError::FinalPv {
            device: device.to_owned(),
            vg: vg.to_owned(),
        });
    }
    let allocated = pv.pe_alloc_count;
    if allocated == 0 {
        return Ok(RemovalStep::Vgreduce);
    }
    if pvmove_in_flight {
        return Ok(RemovalStep::Pvmove {
            extents: allocated,
            resume: true,
        });
    }
    // Only allocatable, present PVs can take the data.
    let others_free: u64 = others
        .iter()
        .filter(|p| p.allocatable && !p.missing)
        .map(|p| p.free_extents())
        .sum();
    if others_free < allocated {
        let extent_size = state
            .vg(vg)
            .map(|v| v.extent_size)
            .filter(|s| *s > 0)
            // Without the VG row, derive it from the PV itself.
            .or_else(|| pv.size.checked_div(pv.pe_count))
            .unwrap_or(0);
        return Err(LvmError::RemovalNoRoom {
            device: device.to_owned(),
            vg: vg.to_owned(),
            allocated,
            others_free,
            need: human_bytes((allocated - others_free).saturating_mul(extent_size)),
        });
    }
    Ok(RemovalStep::Pvmove {
        extents: allocated,
        resume: false,
    })
}

/// One progress line of `pvmove -i N`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PvmoveProgress {
    pub device: String,
    /// Copied so far, 0.0..=100.0.
    pub percent: f64,
}

/// Parses `  /dev/vdd: Moved: 42.00%` (lvm2 prints it every `-i` seconds).
pub fn parse_progress(line: &str) -> Option<PvmoveProgress> {
    let (device, rest) = line.trim().split_once(": Moved: ")?;
    let percent: f64 = rest.trim().strip_suffix('%')?.trim().parse().ok()?;
    Some(PvmoveProgress {
        device: device.trim().to_owned(),
        percent: percent.clamp(0.0, 100.0),
    })
}

impl Lvm {
    /// Removes `device` from `vg` and wipes its PV label: pvmove (with progress) when it
    /// holds extents, vgreduce, pvremove. Refuses, changing nothing, when the other PVs
    /// lack room, when it is the group's last PV, or when it is in another group.
    /// `Unchanged` when the device is not a PV to begin with.
    pub fn remove_pv(
        &self,
        vg: &str,
        device: &str,
        on_progress: &mut (dyn FnMut(PvmoveProgress) + Send),
    ) -> Result<HostChange, LvmError> {
        let mut state = self.pvs_and_vgs()?;
        let mut step = self.next_step(&state, vg, device)?;
        if step == RemovalStep::Done {
            return Ok(HostChange::Unchanged);
        }
        if let RemovalStep::Pvmove { extents, resume } = step {
            tracing::info!(device, vg, extents, resume, "moving extents off PV");
            self.pvmove(device, on_progress)?;
            // Re-read right before vgreduce: never trust that the move emptied it.
            state = self.pvs_and_vgs()?;
            step = plan_removal(&state, vg, device, false)?;
            if let RemovalStep::Pvmove { extents, .. } = step {
                return Err(LvmError::StillAllocated {
                    device: device.to_owned(),
                    vg: vg.to_owned(),
                    allocated: extents,
                });
            }
        }
        if step == RemovalStep::Vgreduce {
            // The plan says Vgreduce only on 0 allocated extents; checked again here, on the
            // latest read, because this is the rule that loses data if it is ever wrong.
            let allocated = state.pv(device).map_or(0, |p| p.pe_alloc_count);
            if allocated > 0 {
                return Err(LvmError::StillAllocated {
                    device: device.to_owned(),
                    vg: vg.to_owned(),
                    allocated,
                });
            }
            self.change(self.cmd("vgreduce").args([vg, device]))?;
            step = RemovalStep::Pvremove;
        }
        if step == RemovalStep::Pvremove {
            self.change(self.cmd("pvremove").arg(device))?;
        }
        Ok(HostChange::Changed)
    }

    /// The next step; asks lvm2 about an in-flight pvmove only when the PV holds data.
    fn next_step(&self, state: &LvmState, vg: &str, device: &str) -> Result<RemovalStep, LvmError> {
        let step = plan_removal(state, vg, device, false);
        let may_be_resuming = matches!(
            &step,
            Err(LvmError::RemovalNoRoom { .. }) | Ok(RemovalStep::Pvmove { .. })
        );
        if !may_be_resuming {
            return step;
        }
        let in_flight = self
            .segments()?
            .iter()
            .any(|s| s.vg == vg && s.is_pvmove() && s.uses_pv(device));
        plan_removal(state, vg, device, in_flight)
    }

    /// `pvmove -i 1 DEVICE`, handing each progress line to `on_progress`. lvm2's
    /// "No data to move" (exit 5) is success: the PV is already empty.
    fn pvmove(
        &self,
        device: &str,
        on_progress: &mut (dyn FnMut(PvmoveProgress) + Send),
    ) -> Result<(), LvmError> {
        let c = self.cmd("pvmove").args(["-i", "1", device]);
        tracing::info!(command = %c, "lvm change");
        let out = self.runner.run_streaming(&c, &mut |line| {
            if let Some(p) = parse_progress(line) {
                tracing::debug!(device = %p.device, percent = p.percent, "pvmove progress");
                on_progress(p);
            }
        })?;
        if out.success() {
            return Ok(());
        }
        if out.code == Some(5)
            && format!("{}{}", out.stdout, out.stderr).contains("No data to move")
        {
            tracing::info!(device, "pvmove: no data to move");
            return Ok(());
        }
        Err(CommandError::failed(&c, &out).into())
    }
}
