//! Unit tests of PV removal on exact command lines (fake runner): the refusals, pvmove
//! with progress, and resuming after a crash at any point.

use super::testing::*;
use super::*;
use crate::host::command::Output;
use crate::host::HostChange;

#[test]
fn removal_is_refused_with_the_runbook_numbers_and_nothing_runs_after_the_checks() {
    let (r, lvm) = fake_lvm();
    runbook_full(&r);
    r.on(
        SEGMENTS,
        Output::ok(segments_json(&[
            ("nfsstore", "nfs_logical", "-wi-ao----", "/dev/vdb(0)"),
            ("nfsstore", "nfs_logical", "-wi-ao----", "/dev/vdc(0)"),
            ("nfsstore", "nfs_logical", "-wi-ao----", "/dev/vdd(0)"),
        ])),
    );
    let mut progress = Vec::new();
    let e = lvm
        .remove_pv("nfsstore", "/dev/vdd", &mut |p| progress.push(p))
        .unwrap_err();
    assert!(e.is_refusal());
    assert_eq!(
        e.to_string(),
        "cannot remove /dev/vdd from nfsstore: it holds 51200 extents and the other PVs have \
         0 free; add a disk of at least 200 GiB (plus about 1 MiB for LVM metadata) to \
         nfsstore first, or shrink the filesystem and its LV (ext4 shrinks only unmounted)"
    );
    // Only the checks ran: reports, no pvmove, vgreduce or pvremove.
    assert_eq!(r.lines(), [PVS, VGS, SEGMENTS]);
    assert!(progress.is_empty());
}

#[test]
fn room_counts_only_allocatable_present_pvs_and_names_the_gap() {
    let mut state = LvmState {
        pvs: report::pvs(
            &report::parse_json(
                report::ReportKind::Pv,
                &pvs_json(&[
                    ("/dev/vdb", "nfsstore", 100, 60),
                    ("/dev/vdc", "nfsstore", 100, 90),
                    ("/dev/vdd", "nfsstore", 100, 50),
                ]),
            )
            .unwrap(),
        )
        .unwrap(),
        vgs: Vec::new(),
        lvs: Vec::new(),
    };
    // 40 + 10 free elsewhere = 50 needed: exactly enough.
    assert_eq!(
        plan_removal(&state, "nfsstore", "/dev/vdd", false).unwrap(),
        RemovalStep::Pvmove {
            extents: 50,
            resume: false
        }
    );
    // vdc made non-allocatable (pvchange -x n): 40 < 50, 10 extents (40 MiB) short.
    state.pvs[1].allocatable = false;
    let e = plan_removal(&state, "nfsstore", "/dev/vdd", false).unwrap_err();
    assert!(e.to_string().contains("the other PVs have 40 free"), "{e}");
    assert!(e.to_string().contains("at least 40 MiB"), "{e}");
    // Resuming an interrupted pvmove skips the room check.
    assert_eq!(
        plan_removal(&state, "nfsstore", "/dev/vdd", true).unwrap(),
        RemovalStep::Pvmove {
            extents: 50,
            resume: true
        }
    );
}

#[test]
fn removal_with_room_moves_with_progress_then_vgreduce_then_pvremove() {
    let (r, lvm) = fake_lvm();
    // Before: vdd holds 51200 extents; a new 250 GiB vde has room.
    r.on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "nfsstore", 97280, 97280),
            ("/dev/vdd", "nfsstore", 51200, 51200),
            ("/dev/vde", "nfsstore", 64000, 0),
        ])),
    )
    // After the move.
    .on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "nfsstore", 97280, 97280),
            ("/dev/vdd", "nfsstore", 51200, 0),
            ("/dev/vde", "nfsstore", 64000, 51200),
        ])),
    )
    .on(VGS, Output::ok(vgs_json(&[("nfsstore", 212480, 12800)])))
    .on(
        SEGMENTS,
        Output::ok(segments_json(&[(
            "nfsstore",
            "nfs_logical",
            "-wi-ao----",
            "/dev/vdd(0)",
        )])),
    )
    .on(
        "pvmove -i 1 /dev/vdd",
        Output::ok(
            "  /dev/vdd: Moved: 0.00%\n  /dev/vdd: Moved: 42.00%\n  /dev/vdd: Moved: 100.00%\n",
        ),
    )
    .on("vgreduce nfsstore /dev/vdd", Output::exit(0))
    .on("pvremove /dev/vdd", Output::exit(0));
    let mut progress = Vec::new();
    let out = lvm
        .remove_pv("nfsstore", "/dev/vdd", &mut |p| progress.push(p.percent))
        .unwrap();
    assert_eq!(out, HostChange::Changed);
    assert_eq!(progress, [0.0, 42.0, 100.0]);
    assert_eq!(
        r.lines(),
        [
            PVS,
            VGS,
            SEGMENTS,
            "pvmove -i 1 /dev/vdd",
            PVS,
            VGS,
            "vgreduce nfsstore /dev/vdd",
            "pvremove /dev/vdd"
        ]
    );
    never_forced(&r);
}

#[test]
fn pvmove_no_data_to_move_exit_5_is_success() {
    let (r, lvm) = fake_lvm();
    r.on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "vg", 10, 0),
            ("/dev/vdd", "vg", 10, 3),
        ])),
    )
    .on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "vg", 10, 0),
            ("/dev/vdd", "vg", 10, 0),
        ])),
    )
    .on(VGS, Output::ok(vgs_json(&[("vg", 20, 17)])))
    .on(SEGMENTS, Output::ok(segments_json(&[])))
    .on(
        "pvmove -i 1 /dev/vdd",
        Output::exit(5).with_stderr("  No data to move for vg.\n"),
    )
    .on("vgreduce vg /dev/vdd", Output::exit(0))
    .on("pvremove /dev/vdd", Output::exit(0));
    lvm.remove_pv("vg", "/dev/vdd", &mut |_| {}).unwrap();
    assert_eq!(
        changes(&r),
        [
            "pvmove -i 1 /dev/vdd",
            "vgreduce vg /dev/vdd",
            "pvremove /dev/vdd"
        ]
    );
}

#[test]
fn a_failed_pvmove_stops_before_vgreduce() {
    let (r, lvm) = fake_lvm();
    r.on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "vg", 10, 0),
            ("/dev/vdd", "vg", 10, 3),
        ])),
    )
    .on(VGS, Output::ok(vgs_json(&[("vg", 20, 17)])))
    .on(SEGMENTS, Output::ok(segments_json(&[])))
    .on(
        "pvmove -i 1 /dev/vdd",
        Output::exit(5).with_stderr("  No extents available for allocation.\n"),
    );
    let e = lvm.remove_pv("vg", "/dev/vdd", &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("No extents available"), "{e}");
    assert!(!e.is_refusal());
    assert_eq!(changes(&r), ["pvmove -i 1 /dev/vdd"]);
}

#[test]
fn never_vgreduce_a_pv_that_still_holds_extents_after_pvmove() {
    let (r, lvm) = fake_lvm();
    let pvs = pvs_json(&[("/dev/vdb", "vg", 10, 0), ("/dev/vdd", "vg", 10, 3)]);
    // pvmove "succeeds" but the re-read still shows 3 extents (something allocated).
    r.on(PVS, Output::ok(pvs))
        .on(VGS, Output::ok(vgs_json(&[("vg", 20, 17)])))
        .on(SEGMENTS, Output::ok(segments_json(&[])))
        .on("pvmove -i 1 /dev/vdd", Output::exit(0));
    let e = lvm.remove_pv("vg", "/dev/vdd", &mut |_| {}).unwrap_err();
    assert!(
        matches!(e, LvmError::StillAllocated { allocated: 3, .. }),
        "{e}"
    );
    assert!(e.is_refusal());
    assert_eq!(changes(&r), ["pvmove -i 1 /dev/vdd"]);
}

#[test]
fn removal_resumes_after_a_crash_at_any_point() {
    // Crash after vgreduce: an orphan PV is only pvremoved.
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[("/dev/vdd", "", 0, 0)])))
        .on(VGS, Output::ok(vgs_json(&[("vg", 10, 0)])))
        .on("pvremove /dev/vdd", Output::exit(0));
    assert_eq!(
        lvm.remove_pv("vg", "/dev/vdd", &mut |_| {}).unwrap(),
        HostChange::Changed
    );
    assert_eq!(changes(&r), ["pvremove /dev/vdd"]);

    // Crash after pvremove (or never a PV): done, nothing runs.
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[])))
        .on(VGS, Output::ok(vgs_json(&[])));
    assert_eq!(
        lvm.remove_pv("vg", "/dev/vdd", &mut |_| {}).unwrap(),
        HostChange::Unchanged
    );
    assert!(changes(&r).is_empty());

    // Crash during pvmove: the move's mirror already holds the destination extents, so the
    // others look full; lvm2 shows the in-flight move and pvmove is simply run again.
    let (r, lvm) = fake_lvm();
    r.on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "vg", 10, 10),
            ("/dev/vdd", "vg", 10, 10),
        ])),
    )
    .on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "vg", 10, 10),
            ("/dev/vdd", "vg", 10, 0),
        ])),
    )
    .on(VGS, Output::ok(vgs_json(&[("vg", 20, 0)])))
    .on(
        SEGMENTS,
        Output::ok(segments_json(&[
            ("vg", "[pvmove0]", "p-C-aom---", "/dev/vdd(0)"),
            ("vg", "lv", "-wI-ao----", "pvmove0(0)"),
        ])),
    )
    .on(
        "pvmove -i 1 /dev/vdd",
        Output::ok("  /dev/vdd: Moved: 100.00%\n"),
    )
    .on("vgreduce vg /dev/vdd", Output::exit(0))
    .on("pvremove /dev/vdd", Output::exit(0));
    lvm.remove_pv("vg", "/dev/vdd", &mut |_| {}).unwrap();
    assert_eq!(
        changes(&r),
        [
            "pvmove -i 1 /dev/vdd",
            "vgreduce vg /dev/vdd",
            "pvremove /dev/vdd"
        ]
    );
}

#[test]
fn the_last_pv_of_a_group_is_not_removed() {
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[("/dev/vdb", "vg", 10, 0)])))
        .on(VGS, Output::ok(vgs_json(&[("vg", 10, 10)])));
    let e = lvm.remove_pv("vg", "/dev/vdb", &mut |_| {}).unwrap_err();
    assert!(matches!(e, LvmError::FinalPv { .. }), "{e}");
    assert!(changes(&r).is_empty());
}
