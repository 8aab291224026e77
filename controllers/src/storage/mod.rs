//! The storage controller: the NFS store (exports on the executor, mounts on its clients)
//! and the Volume records (the runbook's "mount a volume", "add disk space", "reduce disk
//! space").
//!
//! - Exports: `<executor>/database` to every member worker, `<executor>/tools` to the
//!   editor, `rw,sync,no_subtree_check,no_root_squash`. Mounts: each worker mounts the
//!   database share at the same path, the editor mounts tools at `<editor>/tools`; NFS,
//!   `defaults 0 0`. A retiring worker unmounts once stopped and loses its export at
//!   cleanup.
//! - A Volume in a volume group, present: PV in the group (pvcreate + vgextend), the
//!   group's LV grown over all free extents (lvextend, the filesystem grown with it), the
//!   filesystem (made only on a blank device) and its mount (fstab by UUID, `defaults 0 2`).
//!   Progress is read back from the agent's report into the Volume's status: `step`,
//!   `percent`, `Progressing`, `Ready`.
//! - A Volume in a group, absent: its used extents must fit in the free extents of the
//!   group's other PVs. If not, it is refused with the numbers and what would make it
//!   possible, and nothing is planned; else the PV is planned absent (pvmove, vgreduce,
//!   pvremove by the agent, which checks room again). While a removal is pending the LV
//!   stops growing, so a disk added to make room stays free for the move.
//! - A Volume without a group: the device carries the filesystem, mounted by UUID with
//!   `errors=remount-ro 0 1` (the runbook's line).

mod nfs;
mod progress;
mod pv_removal;
mod volume;

use std::collections::BTreeMap;

use omtd_crds::plan::{ExportSpec, PlanSlice};
use omtd_crds::Kind;
use omtd_crds::Volume;

use crate::declaration::{condition, Declaration, Owned, Plans, Reports, Wakes};
use crate::desired::Desired;
use crate::health::ClusterHealth;
use crate::memo::Memo;
use crate::observed::Observed;
use crate::output::{slice_of, Intent, Reconciled};
use crate::settings::Settings;

pub use pv_removal::{PvRemovalRecord, RemovalState};

pub const NAME: &str = "storage";

/// exports(5) options of both shares (the runbook's).
pub const EXPORT_OPTIONS: &str = "rw,sync,no_subtree_check,no_root_squash";

/// Key of a Volume's current step in its status (`done` when none is left).
pub const STEP_KEY: &str = "step";
/// Key of a Volume's progress in percent in its status.
pub const PERCENT_KEY: &str = "percent";
/// Key of a Volume's removal record in its status.
pub const REMOVAL_KEY: &str = "pvRemoval";

/// What this controller owns and what wakes it.
pub const DECLARATION: Declaration = Declaration {
    name: NAME,
    owns: &[Owned {
        kind: Kind::Volume,
        conditions: &[condition::READY, condition::PROGRESSING],
        status_keys: &[STEP_KEY, PERCENT_KEY, REMOVAL_KEY],
    }],
    reasons: &[
        reason::AGENT_REFUSED,
        reason::DONE,
        reason::MOVING,
        reason::PROGRESSING,
        reason::READY,
        reason::REFUSED,
        reason::REMOVAL_REFUSED,
        reason::REMOVED,
        reason::STEP_FAILED,
        reason::STEP_IN_PROGRESS,
        reason::STEP_REFUSED,
    ],
    // No probe; only the reports of nodes that hold a Volume (PV facts, step progress).
    wakes: Wakes {
        reports: Reports::VolumeHolders,
        heartbeats: true,
        probes: false,
        plans: Plans::Own,
        labels: false,
    },
};

/// The reasons of the conditions this controller sets.
pub mod reason {
    pub const AGENT_REFUSED: &str = "AgentRefused";
    pub const DONE: &str = "Done";
    pub const MOVING: &str = "Moving";
    pub const PROGRESSING: &str = "Progressing";
    pub const READY: &str = "Ready";
    pub const REFUSED: &str = "Refused";
    pub const REMOVAL_REFUSED: &str = "RemovalRefused";
    pub const REMOVED: &str = "Removed";
    pub const STEP_FAILED: &str = "StepFailed";
    pub const STEP_IN_PROGRESS: &str = "StepInProgress";
    pub const STEP_REFUSED: &str = "StepRefused";
}

pub fn reconcile(desired: &Desired, observed: &Observed, settings: &Settings) -> Reconciled {
    reconcile_with(&mut State::default(), desired, observed, settings)
}

/// What the storage controller keeps between passes (see [`crate::memo`]): the executor's
/// `/etc/exports` entries as an indexed set, one per client under the print of what the
/// entry reads. Mounts and Volumes are derived anew on every pass: the Volumes read the
/// agents' reports, and a mount is no dearer to derive than its print.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Each worker's database export, keyed by node name; `None` for a worker past its
    /// cleanup (no export, but asked for, so that its phase is printed).
    database: Memo<Option<ExportSpec>>,
    /// The editor's tools export, keyed by node name.
    tools: Memo<ExportSpec>,
}

impl State {
    /// How many export entries were derived (not taken from the state) since it was made.
    pub fn exports_derived(&self) -> u64 {
        self.database.derived() + self.tools.derived()
    }
}

/// [`reconcile`] with the state kept from the last pass: the same outcome as from scratch.
pub fn reconcile_with(
    state: &mut State,
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Reconciled {
    let mut out = Intent::default();
    let health = ClusterHealth::assess(desired, observed, settings);
    let mut slices: BTreeMap<String, PlanSlice> = BTreeMap::new();

    nfs::nfs(state, desired, &mut slices);

    // Volumes, by (node, volume group); plain devices under an empty group name.
    let mut groups: BTreeMap<(&str, &str), Vec<&Volume>> = BTreeMap::new();
    for v in desired.volumes.values() {
        let vg = v.spec.volume_group.as_deref().unwrap_or("");
        groups
            .entry((v.spec.node.as_str(), vg))
            .or_default()
            .push(v);
    }
    for ((node, vg), volumes) in groups {
        if desired.node(node).is_none() {
            continue; // validation reports the dangling reference
        }
        let held = health.is_lost(node) || health.mass_loss;
        let s = slice(&mut slices, node);
        if vg.is_empty() {
            for v in volumes {
                volume::plain_device(desired, observed, held, v, s, &mut out);
            }
        } else {
            volume::volume_group(desired, observed, held, vg, &volumes, s, &mut out);
        }
    }
    if volumes_in_flight(&out) {
        out.requeue(std::time::Duration::from_secs(10));
    }

    slices.retain(|_, s| !is_empty(s));
    out.slices = slices;
    Ok(out)
}

pub(super) fn slice<'a>(
    slices: &'a mut BTreeMap<String, PlanSlice>,
    node: &str,
) -> &'a mut PlanSlice {
    slice_of(slices, node, NAME)
}

fn is_empty(s: &PlanSlice) -> bool {
    s.physical_volumes.is_empty()
        && s.logical_volumes.is_empty()
        && s.filesystems.is_empty()
        && s.mounts.is_empty()
        && s.exports.is_empty()
        && s.files.is_empty()
}

fn volumes_in_flight(out: &Intent) -> bool {
    out.statuses.values().any(|s| {
        s.condition(condition::PROGRESSING)
            .is_some_and(|c| c.status == omtd_crds::ConditionStatus::True)
    })
}
