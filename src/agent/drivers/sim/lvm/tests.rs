use super::*;
use crate::agent::drivers::Storage;

const GIB: u64 = 1024 * 1024 * 1024;

fn pv(device: &str, ensure: Ensure) -> PhysicalVolumeSpec {
    PhysicalVolumeSpec {
        device: device.into(),
        volume_group: "nfsstore".into(),
        ensure,
    }
}

fn lv() -> LogicalVolumeSpec {
    LogicalVolumeSpec {
        volume_group: "nfsstore".into(),
        name: "nfs_logical".into(),
        grow_to_fill: true,
    }
}

#[test]
fn add_disk_space_grows_lv_and_filesystem() {
    let sim = SimHost::new();
    let mut s = sim.clone();
    sim.add_device("/dev/vdb", GIB);
    sim.add_device("/dev/vdc", GIB);
    assert!(matches!(
        s.ensure_pv(&pv("/dev/vdb", Ensure::Present), true, &mut |_| {})
            .unwrap(),
        StorageOutcome::Changed { .. }
    ));
    s.ensure_lv(&lv()).unwrap();
    let fs = FilesystemSpec {
        device: "/dev/nfsstore/nfs_logical".into(),
        fstype: "ext4".into(),
    };
    s.ensure_filesystem(&fs).unwrap();
    assert!(s.device_uuid(&fs.device).unwrap().is_some());
    s.ensure_pv(&pv("/dev/vdc", Ensure::Present), true, &mut |_| {})
        .unwrap();
    assert!(matches!(
        s.ensure_lv(&lv()).unwrap(),
        StorageOutcome::Changed { .. }
    ));
    let st = sim.state();
    assert_eq!(st.devices[&fs.device].fs_size, 2 * GIB);
    drop(st);
    // Idempotent.
    assert!(matches!(
        s.ensure_lv(&lv()).unwrap(),
        StorageOutcome::Unchanged { .. }
    ));
    assert!(matches!(
        s.ensure_filesystem(&fs).unwrap(),
        StorageOutcome::Unchanged { .. }
    ));
}

#[test]
fn pv_removal_refused_without_room_and_nothing_changes() {
    let sim = SimHost::new();
    let mut s = sim.clone();
    sim.add_device("/dev/vdb", GIB);
    sim.add_device("/dev/vdc", GIB);
    s.ensure_pv(&pv("/dev/vdb", Ensure::Present), true, &mut |_| {})
        .unwrap();
    s.ensure_pv(&pv("/dev/vdc", Ensure::Present), true, &mut |_| {})
        .unwrap();
    // The LV takes every extent of both PVs: PFree 0 everywhere (the runbook's case).
    s.ensure_lv(&lv()).unwrap();
    let before = sim.state().vgs.clone();
    match s
        .ensure_pv(&pv("/dev/vdc", Ensure::Absent), true, &mut |_| {})
        .unwrap()
    {
        StorageOutcome::Refused { reason } => {
            assert!(reason.contains("no extents available"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(sim.state().vgs, before, "a refusal changes nothing");
    assert_eq!(sim.pv_extents("/dev/vdc"), Some((256, 0)));
}

/// An LV filling /dev/vdb, and /dev/vdc not yet in the group: the host and its driver.
fn lv_on_vdb() -> (SimHost, SimHost) {
    let sim = SimHost::new();
    let mut s = sim.clone();
    sim.add_device("/dev/vdb", GIB);
    sim.add_device("/dev/vdc", GIB);
    s.ensure_pv(&pv("/dev/vdb", Ensure::Present), true, &mut |_| {})
        .unwrap();
    s.ensure_lv(&LogicalVolumeSpec {
        grow_to_fill: false,
        ..lv()
    })
    .unwrap();
    (sim, s)
}

#[test]
fn pv_removal_moves_extents_when_there_is_room() {
    let (sim, mut s) = lv_on_vdb();
    // The LV fills vdb; vdc joins empty. Now shrink the LV's placement by moving vdb away:
    s.ensure_pv(&pv("/dev/vdc", Ensure::Present), true, &mut |_| {})
        .unwrap();
    // Not while the store is lost.
    assert!(matches!(
        s.ensure_pv(&pv("/dev/vdb", Ensure::Absent), false, &mut |_| {})
            .unwrap(),
        StorageOutcome::Progressing { .. }
    ));
    match s
        .ensure_pv(&pv("/dev/vdb", Ensure::Absent), true, &mut |_| {})
        .unwrap()
    {
        StorageOutcome::Changed { what, .. } => {
            assert_eq!(
                what,
                "pvmove /dev/vdb, vgreduce nfsstore /dev/vdb, pvremove /dev/vdb"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.pv_extents("/dev/vdc"), Some((256, 0)));
    assert_eq!(sim.pv_extents("/dev/vdb"), None);
    assert_eq!(sim.state().devices["/dev/vdb"].signature, None);
    // The last PV never goes.
    assert!(matches!(
        s.ensure_pv(&pv("/dev/vdc", Ensure::Absent), true, &mut |_| {})
            .unwrap(),
        StorageOutcome::Refused { .. }
    ));
}

#[test]
fn pvmove_reports_progress_and_resumes_after_a_kill() {
    let (sim, mut s) = lv_on_vdb();
    s.ensure_pv(&pv("/dev/vdc", Ensure::Present), true, &mut |_| {})
        .unwrap();
    sim.set_pvmove_pace(8, std::time::Duration::ZERO);
    sim.interrupt_pvmove_at(50);
    let mut seen = Vec::new();
    let e = s
        .ensure_pv(&pv("/dev/vdb", Ensure::Absent), true, &mut |p| seen.push(p))
        .unwrap_err();
    assert!(e.to_string().contains("killed at 50%"), "{e}");
    assert_eq!(seen, [12, 25, 37], "progress up to the kill");
    // Half the data moved, none lost; the PV is still in the group.
    assert_eq!(sim.pv_extents("/dev/vdb"), Some((256, 128)));
    assert_eq!(sim.pv_extents("/dev/vdc"), Some((256, 128)));
    // Re-run: the move resumes from where it was, then vgreduce and pvremove.
    let mut seen = Vec::new();
    let out = s
        .ensure_pv(&pv("/dev/vdb", Ensure::Absent), true, &mut |p| seen.push(p))
        .unwrap();
    assert!(matches!(out, StorageOutcome::Changed { .. }), "{out:?}");
    assert_eq!(seen, [62, 75, 87, 100]);
    assert_eq!(sim.pv_extents("/dev/vdb"), None);
    assert_eq!(sim.pv_extents("/dev/vdc"), Some((256, 0)));
    assert!(sim.state().pvmoves_in_flight.is_empty());
}

#[test]
fn fill_disk_leaves_no_room() {
    let (sim, mut s) = lv_on_vdb();
    s.ensure_pv(&pv("/dev/vdc", Ensure::Present), true, &mut |_| {})
        .unwrap();
    sim.fill_disk("nfsstore");
    assert!(matches!(
        s.ensure_pv(&pv("/dev/vdb", Ensure::Absent), true, &mut |_| {})
            .unwrap(),
        StorageOutcome::Refused { .. }
    ));
}

#[test]
fn signatures_are_never_overwritten() {
    let sim = SimHost::new();
    let mut s = sim.clone();
    sim.add_device_with_signature("/dev/vdd", GIB, "ext4");
    let before = sim.state().devices.clone();
    assert!(matches!(
        s.ensure_pv(&pv("/dev/vdd", Ensure::Present), true, &mut |_| {})
            .unwrap(),
        StorageOutcome::Refused { .. }
    ));
    assert!(matches!(
        s.ensure_filesystem(&FilesystemSpec {
            device: "/dev/vdd".into(),
            fstype: "xfs".into()
        })
        .unwrap(),
        StorageOutcome::Refused { .. }
    ));
    assert_eq!(sim.state().devices, before);
    assert!(sim.state().vgs.is_empty());
}
