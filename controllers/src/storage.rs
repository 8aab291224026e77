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

use std::collections::BTreeMap;

use omtd_crds::plan::{
    Ensure, ExportSpec, FilesystemSpec, LogicalVolumeSpec, MountSpec, PhysicalVolumeSpec,
    PlanSlice, ResourceReport, ResourceState,
};
use omtd_crds::{Filesystem, Role, Volume, VolumeState};
use serde::{Deserialize, Serialize};

use crate::desired::{volume_key, Desired};
use crate::error::Error;
use crate::health::Health;
use crate::observed::Observed;
use crate::output::{not_true, Cond, Output, StatusEdit};
use crate::removal::RemovalPhase;
use crate::render::bytes;
use crate::settings::Settings;

pub const NAME: &str = "storage";

/// exports(5) options of both shares (the runbook's).
pub const EXPORT_OPTIONS: &str = "rw,sync,no_subtree_check,no_root_squash";

/// Key of a Volume's removal record in its status.
pub const REMOVAL_KEY: &str = "pvRemoval";

pub fn reconcile(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Result<Output, Error> {
    let mut out = Output::default();
    let health = Health::assess(desired, observed, settings);
    let mut slices: BTreeMap<String, PlanSlice> = BTreeMap::new();

    nfs(desired, &mut slices);

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
                plain_device(desired, observed, held, v, s, &mut out);
            }
        } else {
            volume_group(desired, observed, held, vg, &volumes, s, &mut out);
        }
    }
    if volumes_in_flight(&out) {
        out.requeue(std::time::Duration::from_secs(10));
    }

    slices.retain(|_, s| !is_empty(s));
    out.slices = slices;
    Ok(out)
}

fn slice<'a>(slices: &'a mut BTreeMap<String, PlanSlice>, node: &str) -> &'a mut PlanSlice {
    slices.entry(node.to_owned()).or_insert_with(|| PlanSlice {
        controller: NAME.to_owned(),
        ..Default::default()
    })
}

fn is_empty(s: &PlanSlice) -> bool {
    s.physical_volumes.is_empty()
        && s.logical_volumes.is_empty()
        && s.filesystems.is_empty()
        && s.mounts.is_empty()
        && s.exports.is_empty()
        && s.files.is_empty()
}

fn volumes_in_flight(out: &Output) -> bool {
    out.statuses.values().any(|s| {
        s.condition("Progressing")
            .is_some_and(|c| c.status == omtd_crds::ConditionStatus::True)
    })
}

/// `host:/path` for an NFS source, with brackets around an IPv6 address.
fn nfs_source(host: &str, path: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{path}")
    } else {
        format!("{host}:{path}")
    }
}

fn nfs_mount(source: String, target: String, ensure: Ensure) -> MountSpec {
    MountSpec {
        source,
        target,
        fstype: "nfs".into(),
        options: "defaults".into(),
        dump: 0,
        pass: 0,
        ensure,
    }
}

/// Exports on the executor and the clients' mounts.
fn nfs(desired: &Desired, slices: &mut BTreeMap<String, PlanSlice>) {
    let Some(executor) = desired.executor() else {
        return;
    };
    let ex_name = executor.metadata.name.clone();
    let ex_addr = executor.spec.address.clone();
    let db = desired.database_path();
    let tools = desired.tools_path();
    let mut exports = Vec::new();
    for w in desired.member_workers(RemovalPhase::Cleanup) {
        exports.push(ExportSpec {
            path: db.clone(),
            client: w.spec.address.clone(),
            options: EXPORT_OPTIONS.into(),
        });
    }
    for w in desired.workers() {
        let name = &w.metadata.name;
        if *name == ex_name {
            continue;
        }
        let ensure = match desired.removal_phase(name) {
            Some(p) if p >= RemovalPhase::Stopping => Ensure::Absent,
            _ => Ensure::Present,
        };
        slice(slices, name)
            .mounts
            .push(nfs_mount(nfs_source(&ex_addr, &db), db.clone(), ensure));
    }
    if let Some(editor) = desired.editor() {
        exports.push(ExportSpec {
            path: tools.clone(),
            client: editor.spec.address.clone(),
            options: EXPORT_OPTIONS.into(),
        });
        if editor.metadata.name != ex_name && desired.has_role(&editor.metadata.name, Role::Editor)
        {
            slice(slices, &editor.metadata.name).mounts.push(nfs_mount(
                nfs_source(&ex_addr, &tools),
                format!("{}/tools", desired.spec.paths.editor),
                Ensure::Present,
            ));
        }
    }
    slice(slices, &ex_name).exports.extend(exports);
}

fn fstype(f: Filesystem) -> &'static str {
    match f {
        Filesystem::Ext4 => "ext4",
    }
}

/// A step of a volume's procedure and the report resource that shows it.
struct Step {
    name: &'static str,
    id: String,
}

/// "Mount a volume": the device itself carries the filesystem.
fn plain_device(
    desired: &Desired,
    observed: &Observed,
    held: bool,
    v: &Volume,
    s: &mut PlanSlice,
    out: &mut Output,
) {
    let spec = &v.spec;
    let mut steps = Vec::new();
    if let Some(fs) = spec.filesystem {
        if spec.state == VolumeState::Present {
            s.filesystems.push(FilesystemSpec {
                device: spec.device.clone(),
                fstype: fstype(fs).into(),
            });
            steps.push(Step {
                name: "filesystem",
                id: format!("fs:{}", spec.device),
            });
        }
        if let Some(mp) = &spec.mount_point {
            // Unmounting is not destructive, but it is a change under a lost host's feet.
            let ensure = match spec.state {
                VolumeState::Absent if !held => Ensure::Absent,
                _ => Ensure::Present,
            };
            s.mounts.push(MountSpec {
                source: spec.device.clone(),
                target: mp.clone(),
                fstype: fstype(fs).into(),
                options: "errors=remount-ro".into(),
                dump: 0,
                pass: 1,
                ensure,
            });
            steps.push(Step {
                name: "mount",
                id: format!("mount:{mp}"),
            });
        }
    }
    progress_status(desired, observed, v, &steps, out);
}

/// "Add disk space" and "reduce disk space" for one volume group on one node.
fn volume_group(
    desired: &Desired,
    observed: &Observed,
    held: bool,
    vg: &str,
    volumes: &[&Volume],
    s: &mut PlanSlice,
    out: &mut Output,
) {
    let present: Vec<&Volume> = volumes
        .iter()
        .copied()
        .filter(|v| v.spec.state == VolumeState::Present)
        .collect();
    let absent: Vec<&Volume> = volumes
        .iter()
        .copied()
        .filter(|v| v.spec.state == VolumeState::Absent)
        .collect();

    // Removals first: whether one is pending decides whether the LV may grow.
    let mut removal_pending = false;
    for v in &absent {
        let decision = decide_removal(observed, held, vg, v, &present);
        removal_pending |= decision.record.phase != RemovalState::Removed;
        if decision.plan_absent || decision.keep_present {
            s.physical_volumes.push(PhysicalVolumeSpec {
                device: v.spec.device.clone(),
                volume_group: vg.to_owned(),
                ensure: if decision.plan_absent {
                    Ensure::Absent
                } else {
                    Ensure::Present
                },
            });
        }
        removal_status(desired, observed, v, &decision, out);
    }

    // The group's logical volume, from the present volumes that name it.
    let lv = present.iter().find_map(|v| {
        v.spec
            .logical_volume
            .as_ref()
            .map(|lv| (lv.clone(), v.spec.filesystem, v.spec.mount_point.clone()))
    });
    let mut shared_steps = Vec::new();
    if let Some((lv_name, fs, mount_point)) = &lv {
        s.logical_volumes.push(LogicalVolumeSpec {
            volume_group: vg.to_owned(),
            name: lv_name.clone(),
            grow_to_fill: !removal_pending,
        });
        shared_steps.push(Step {
            name: "lv",
            id: format!("lv:{vg}/{lv_name}"),
        });
        let device = format!("/dev/{vg}/{lv_name}");
        if let Some(fs) = fs {
            s.filesystems.push(FilesystemSpec {
                device: device.clone(),
                fstype: fstype(*fs).into(),
            });
            shared_steps.push(Step {
                name: "filesystem",
                id: format!("fs:{device}"),
            });
            if let Some(mp) = mount_point {
                s.mounts.push(MountSpec {
                    source: device.clone(),
                    target: mp.clone(),
                    fstype: fstype(*fs).into(),
                    options: "defaults".into(),
                    dump: 0,
                    pass: 2,
                    ensure: Ensure::Present,
                });
                shared_steps.push(Step {
                    name: "mount",
                    id: format!("mount:{mp}"),
                });
            }
        }
    }
    for v in &present {
        s.physical_volumes.push(PhysicalVolumeSpec {
            device: v.spec.device.clone(),
            volume_group: vg.to_owned(),
            ensure: Ensure::Present,
        });
        let mut steps = vec![Step {
            name: "pv",
            id: format!("pv:{}", v.spec.device),
        }];
        steps.extend(shared_steps.iter().map(|st| Step {
            name: st.name,
            id: st.id.clone(),
        }));
        progress_status(desired, observed, v, &steps, out);
    }
    // Keep the PV list in a stable order: present ones in record order, then absent ones.
    s.physical_volumes.sort_by_key(|p| p.ensure);
}

/// Where a PV's removal stands, recorded in the Volume's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemovalState {
    /// Not enough room on the other PVs: nothing planned.
    Refused,
    /// Planned absent: the agent moves the extents, then vgreduce and pvremove.
    Moving,
    /// Out of the group.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovalRecord {
    pub phase: RemovalState,
}

struct RemovalDecision {
    record: RemovalRecord,
    plan_absent: bool,
    /// Refused for lack of room: the PV stays planned as it is, so the agent keeps
    /// reporting its facts and a disk added later is seen to make room (a PV left out of
    /// the plan would no longer be reported, and look like one never seen).
    keep_present: bool,
    /// Ready/Progressing reason and message.
    reason: &'static str,
    message: String,
    percent: u8,
}

/// A PV's facts from the agent's report: (size, free) in bytes.
fn pv_facts(r: &ResourceReport) -> Option<(u64, u64)> {
    let num = |k: &str| r.observed.get(k)?.trim().parse::<u64>().ok();
    Some((num("pv_size")?, num("pv_free")?))
}

fn decide_removal(
    observed: &Observed,
    held: bool,
    vg: &str,
    v: &Volume,
    present: &[&Volume],
) -> RemovalDecision {
    let node = v.spec.node.as_str();
    let dev = v.spec.device.as_str();
    let stored = v
        .status
        .as_ref()
        .and_then(|s| s.extra.get(REMOVAL_KEY))
        .and_then(|x| serde_json::from_value::<RemovalRecord>(x.clone()).ok())
        .map(|r| r.phase);
    let report = observed.resource(node, &format!("pv:{dev}"));

    if matches!(stored, Some(RemovalState::Moving | RemovalState::Removed)) {
        // Already handed to the agent: keep it there and read back how it goes.
        let (phase, reason, message, percent) = match report {
            Some(r) if r.state == ResourceState::Converged && pv_facts(r).is_none() => (
                RemovalState::Removed,
                "Removed",
                format!(
                    "{dev} is out of {vg} (pvmove, vgreduce, pvremove done): the device \
                     can be detached"
                ),
                100,
            ),
            Some(r) if r.state == ResourceState::Progressing => (
                RemovalState::Moving,
                "Moving",
                format!(
                    "pvmove {dev}: {}% moved{}",
                    r.percent.unwrap_or(0),
                    if r.message.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", r.message)
                    }
                ),
                r.percent.unwrap_or(0),
            ),
            Some(r)
                if matches!(
                    r.state,
                    ResourceState::Refused | ResourceState::Failed | ResourceState::Conflict
                ) =>
            {
                (
                    RemovalState::Moving,
                    "AgentRefused",
                    format!("the agent on {node} did not remove {dev}: {}", r.message),
                    0,
                )
            }
            _ if stored == Some(RemovalState::Removed) => (
                RemovalState::Removed,
                "Removed",
                format!("{dev} is out of {vg}"),
                100,
            ),
            _ => (
                RemovalState::Moving,
                "Moving",
                format!("waiting for the agent on {node} to move {dev}'s extents"),
                0,
            ),
        };
        return RemovalDecision {
            record: RemovalRecord { phase },
            plan_absent: true,
            keep_present: false,
            reason,
            message,
            percent,
        };
    }

    let refused = |message: String| RemovalDecision {
        record: RemovalRecord {
            phase: RemovalState::Refused,
        },
        plan_absent: false,
        keep_present: false,
        reason: "RemovalRefused",
        message,
        percent: 0,
    };
    if held {
        return refused(format!(
            "not started: the agent on {node} is lost (or most agents are), and omtd plans \
             nothing destructive until it is back"
        ));
    }
    let Some((size, free)) = report.and_then(pv_facts) else {
        // No facts (never reported as a PV of the group): hand it to the agent, which
        // removes nothing without room and says why.
        return RemovalDecision {
            record: RemovalRecord {
                phase: RemovalState::Moving,
            },
            plan_absent: true,
            keep_present: false,
            reason: "Moving",
            message: format!("{dev} handed to the agent on {node} for removal from {vg}"),
            percent: 0,
        };
    };
    let used = size.saturating_sub(free);
    let room: u64 = present
        .iter()
        .filter_map(|o| observed.resource(node, &format!("pv:{}", o.spec.device)))
        .filter_map(pv_facts)
        .map(|(_, f)| f)
        .sum();
    if used > room {
        let lv = present
            .iter()
            .chain(std::iter::once(&v))
            .find_map(|o| o.spec.logical_volume.clone())
            .unwrap_or_else(|| "the logical volume".into());
        let mut decision = refused(format!(
            "cannot remove {dev} from {vg}: its {} of data must move to the other physical \
             volumes of {vg}, which have {} free (VFree {}). To make it possible, add a \
             Volume with at least {} to {vg} on {node} (omtd stops growing {lv} while a \
             removal is pending, so the new space stays free for the move), or shrink the \
             filesystem and {lv} first (ext4 shrinks only unmounted)",
            bytes(used),
            bytes(room),
            if room == 0 {
                "0".to_owned()
            } else {
                bytes(room)
            },
            bytes(used - room),
        ));
        decision.keep_present = true;
        return decision;
    }
    RemovalDecision {
        record: RemovalRecord {
            phase: RemovalState::Moving,
        },
        plan_absent: true,
        keep_present: false,
        reason: "Moving",
        message: format!(
            "moving {} from {dev} to the other physical volumes of {vg} ({} free)",
            bytes(used),
            bytes(room)
        ),
        percent: 0,
    }
}

fn removal_status(
    desired: &Desired,
    observed: &Observed,
    v: &Volume,
    d: &RemovalDecision,
    out: &mut Output,
) {
    let mut edit = StatusEdit::new(desired, volume_key(&v.metadata.name), observed.now);
    edit.extra(REMOVAL_KEY, serde_json::to_value(&d.record).ok());
    edit.extra("step", Some("pvmove".into()));
    edit.extra("percent", Some(d.percent.into()));
    match d.record.phase {
        RemovalState::Removed => {
            edit.set(Cond::yes("Ready", d.reason, d.message.clone()));
            edit.set(Cond::no("Progressing", "Done", "nothing left to do"));
            edit.extra("step", Some("done".into()));
        }
        RemovalState::Refused => {
            edit.set(Cond::no("Ready", d.reason, d.message.clone()));
            edit.set(Cond::no("Progressing", "Refused", d.message.clone()));
        }
        RemovalState::Moving => {
            edit.set(Cond::no("Ready", d.reason, d.message.clone()));
            edit.set(Cond::yes("Progressing", d.reason, d.message.clone()));
        }
    }
    edit.finish(out, |c| {
        c.reason == "RemovalRefused" || c.reason == "AgentRefused"
    });
}

/// Ready/Progressing, step and percent of a present volume, from the agent's report.
fn progress_status(
    desired: &Desired,
    observed: &Observed,
    v: &Volume,
    steps: &[Step],
    out: &mut Output,
) {
    let node = v.spec.node.as_str();
    let mut edit = StatusEdit::new(desired, volume_key(&v.metadata.name), observed.now);
    edit.extra(REMOVAL_KEY, None);
    let total = steps.len().max(1) as u32;
    let mut done = 0u32;
    let mut current: Option<(&Step, Option<&ResourceReport>)> = None;
    for st in steps {
        let r = observed.resource(node, &st.id);
        if r.is_some_and(|r| r.state == ResourceState::Converged) {
            done += 1;
        } else {
            current = Some((st, r));
            break;
        }
    }
    match current {
        None => {
            edit.extra("step", Some("done".into()));
            edit.extra("percent", Some(100.into()));
            edit.set(Cond::yes(
                "Ready",
                "Ready",
                match v.spec.state {
                    VolumeState::Present => "every step is done",
                    VolumeState::Absent => "unmounted",
                },
            ));
            edit.set(Cond::no("Progressing", "Done", "nothing left to do"));
        }
        Some((st, r)) => {
            let step_pct = r.and_then(|r| r.percent).unwrap_or(0) as u32;
            let percent = (done * 100 + step_pct) / total;
            edit.extra("step", Some(st.name.into()));
            edit.extra("percent", Some(percent.into()));
            match r.map(|r| (r.state, r.message.as_str())) {
                Some((
                    state @ (ResourceState::Failed
                    | ResourceState::Refused
                    | ResourceState::Conflict
                    | ResourceState::CrashLooping),
                    msg,
                )) => {
                    let reason = if state == ResourceState::Refused {
                        "StepRefused"
                    } else {
                        "StepFailed"
                    };
                    let message = format!("step {} ({}) is {state:?}: {msg}", st.name, st.id);
                    edit.set(Cond::no("Ready", reason, message.clone()));
                    edit.set(Cond::no("Progressing", reason, message));
                }
                _ => {
                    let message = format!(
                        "step {} of {} ({}): {}",
                        done + 1,
                        steps.len(),
                        st.name,
                        if r.is_some() {
                            "in progress"
                        } else {
                            "waiting for the agent's report"
                        }
                    );
                    edit.set(Cond::no("Ready", "Progressing", message.clone()));
                    edit.set(Cond::yes("Progressing", "StepInProgress", message));
                }
            }
        }
    }
    edit.finish(out, |c| {
        not_true(c) && (c.reason == "StepFailed" || c.reason == "StepRefused")
    });
}
