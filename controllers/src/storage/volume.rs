//! A Volume's plan: a plain device, or a PV in a volume group with its LV, filesystem and
//! mount.

use omtd_crds::plan::{
    Ensure, FilesystemSpec, LogicalVolumeSpec, MountSpec, PhysicalVolumeSpec, PlanSlice,
};
use omtd_crds::{Filesystem, Volume, VolumeState};

use super::progress::progress_status;
use super::pv_removal::{decide_removal, removal_status, RemovalState};
use crate::desired::Desired;
use crate::observed::Observed;
use crate::output::Intent;

fn fstype(f: Filesystem) -> &'static str {
    match f {
        Filesystem::Ext4 => "ext4",
    }
}

/// A step of a volume's procedure and the report resource that shows it.
pub(super) struct VolumeStep {
    pub name: &'static str,
    pub id: String,
}

/// "Mount a volume": the device itself carries the filesystem.
pub(super) fn plain_device(
    desired: &Desired,
    observed: &Observed,
    held: bool,
    v: &Volume,
    s: &mut PlanSlice,
    out: &mut Intent,
) {
    let spec = &v.spec;
    let mut steps = Vec::new();
    if let Some(fs) = spec.filesystem {
        if spec.state == VolumeState::Present {
            s.filesystems.push(FilesystemSpec {
                device: spec.device.clone(),
                fstype: fstype(fs).into(),
            });
            steps.push(VolumeStep {
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
            steps.push(VolumeStep {
                name: "mount",
                id: format!("mount:{mp}"),
            });
        }
    }
    progress_status(desired, observed, v, &steps, out);
}

/// "Add disk space" and "reduce disk space" for one volume group on one node.
pub(super) fn volume_group(
    desired: &Desired,
    observed: &Observed,
    held: bool,
    vg: &str,
    volumes: &[&Volume],
    s: &mut PlanSlice,
    out: &mut Intent,
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
        shared_steps.push(VolumeStep {
            name: "lv",
            id: format!("lv:{vg}/{lv_name}"),
        });
        let device = format!("/dev/{vg}/{lv_name}");
        if let Some(fs) = fs {
            s.filesystems.push(FilesystemSpec {
                device: device.clone(),
                fstype: fstype(*fs).into(),
            });
            shared_steps.push(VolumeStep {
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
                shared_steps.push(VolumeStep {
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
        let mut steps = vec![VolumeStep {
            name: "pv",
            id: format!("pv:{}", v.spec.device),
        }];
        steps.extend(shared_steps.iter().map(|st| VolumeStep {
            name: st.name,
            id: st.id.clone(),
        }));
        progress_status(desired, observed, v, &steps, out);
    }
    // Keep the PV list in a stable order: present ones in record order, then absent ones.
    s.physical_volumes.sort_by_key(|p| p.ensure);
}
