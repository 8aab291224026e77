//! Unit tests on exact command lines (fake runner). The steps that need device-mapper
//! (lvcreate, lvextend, pvmove, resize2fs of an LV) are proven here; the rest also runs
//! for real in `tests/lvm_loop.rs`.

use std::sync::Arc;

use super::testing::*;
use super::*;
use crate::host::command::{Output, RecordingRunner};
use crate::host::HostChange;

const BLKID_EXT4: &str = "/dev/vdd: UUID=\"2d03ac1d-00d1-4db8-a6ec-28322846edc4\" \
    VERSION=\"1.0\" BLOCK_SIZE=\"4096\" TYPE=\"ext4\" USAGE=\"filesystem\"\n";

#[test]
fn report_commands_are_exact_in_both_formats() {
    let r = Arc::new(RecordingRunner::new());
    r.on(
        PVS,
        Output::ok(pvs_json(&[("/dev/vdb", "nfsstore", 10, 0)])),
    );
    let lvm = Lvm::new(r.clone(), LvmOptions::default());
    assert_eq!(lvm.pvs().unwrap()[0].pe_count, 10);
    assert_eq!(lvm.format(), Some(ReportFormat::Json));
    assert_eq!(
        r.lines(),
        ["pvs --reportformat json --units b --nosuffix -o \
          pv_name,vg_name,pv_size,pv_free,pv_used,pv_pe_count,pv_pe_alloc_count,pv_attr"]
    );
    let env = &r.calls()[0].env;
    assert!(env.contains(&("LC_ALL".into(), "C".into())));

    let r = Arc::new(RecordingRunner::new());
    let cols = "vgs --noheadings --separator '|' --units b --nosuffix -o \
        vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count";
    r.on(cols, Output::ok("  nfsstore|8388608|0|4194304|2|0\n"));
    let lvm = Lvm::new(
        r.clone(),
        LvmOptions {
            format: Some(ReportFormat::Columns),
            ..Default::default()
        },
    );
    assert_eq!(lvm.vgs().unwrap()[0].extent_count, 2);
    assert_eq!(r.lines(), [cols]);
}

#[test]
fn old_lvm2_without_json_falls_back_to_columns_once() {
    let cols = "pvs --noheadings --separator '|' --units b --nosuffix -o \
        pv_name,vg_name,pv_size,pv_free,pv_used,pv_pe_count,pv_pe_alloc_count,pv_attr";
    // lvm2's getopt message for an option it does not know (same words as this machine's
    // lvm2 prints for `pvs --bogusopt`), exit 3.
    let r = Arc::new(RecordingRunner::new());
    r.on(
        PVS,
        Output::exit(3).with_stderr(
            "pvs: unrecognized option '--reportformat'\n  Error during parsing of command line.\n",
        ),
    )
    .on(
        cols,
        Output::ok("  /dev/vdb|nfsstore|8388608|0 |8388608|2|2|a--\n"),
    );
    let lvm = Lvm::new(r.clone(), LvmOptions::default());
    assert_eq!(lvm.pvs().unwrap()[0].pe_alloc_count, 2);
    assert_eq!(lvm.pvs().unwrap()[0].free, 0);
    assert_eq!(lvm.format(), Some(ReportFormat::Columns));
    // Detected once: the second call went straight to columns.
    assert_eq!(r.lines(), [PVS, cols, cols]);

    // Other words, but `lvm version` says it predates JSON.
    let r = Arc::new(RecordingRunner::new());
    r.on(PVS, Output::exit(3).with_stderr("  Invalid argument\n"))
        .on(
            "lvm version",
            Output::ok("  LVM version:     2.02.133(2) (2015-10-30)\n"),
        )
        .on(cols, Output::ok(""));
    let lvm = Lvm::new(r.clone(), LvmOptions::default());
    assert!(lvm.pvs().unwrap().is_empty());

    // A modern lvm2 failing for another reason: an error, not a silent switch.
    let r = Arc::new(RecordingRunner::new());
    r.on(PVS, Output::exit(5).with_stderr("  Some failure\n"))
        .on(
            "lvm version",
            Output::ok("  LVM version:     2.03.16(2) (2022-05-18)\n"),
        );
    let lvm = Lvm::new(r.clone(), LvmOptions::default());
    let e = lvm.pvs().unwrap_err();
    assert!(e.to_string().contains("Some failure"), "{e}");
    assert_eq!(lvm.format(), None);
}

#[test]
fn container_option_passes_the_no_udev_config_to_every_command() {
    let r = Arc::new(RecordingRunner::new());
    let line = format!(
        "vgs --config '{NO_UDEV_CONFIG}' --reportformat json --units b --nosuffix -o \
         vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count"
    );
    r.on(&line, Output::ok(vgs_json(&[])));
    let lvm = Lvm::new(r.clone(), LvmOptions::container());
    assert!(lvm.vgs().unwrap().is_empty());
    assert_eq!(r.lines(), [line]);
}

#[test]
fn pvcreate_runs_on_a_blank_device_without_force() {
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[])));
    blank(&r, "/dev/vdd");
    r.on(
        "pvcreate /dev/vdd",
        Output::ok("  Physical volume \"/dev/vdd\" successfully created.\n"),
    );
    assert_eq!(lvm.pvcreate("/dev/vdd").unwrap(), HostChange::Changed);
    assert_eq!(
        r.lines(),
        [
            PVS,
            "blkid -p /dev/vdd",
            "wipefs -n /dev/vdd",
            "pvcreate /dev/vdd"
        ]
    );
    never_forced(&r);

    // Already a PV: nothing runs but the report.
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[("/dev/vdd", "", 0, 0)])));
    assert_eq!(lvm.pvcreate("/dev/vdd").unwrap(), HostChange::Unchanged);
    assert_eq!(r.lines(), [PVS]);
}

#[test]
fn pvcreate_is_refused_when_either_probe_finds_a_signature() {
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[])))
        .on("blkid -p /dev/vdd", Output::ok(BLKID_EXT4))
        .on("wipefs -n /dev/vdd", Output::ok("DEVICE OFFSET TYPE UUID LABEL\nvdd 0x438 ext4 2d03ac1d-00d1-4db8-a6ec-28322846edc4\n"));
    let e = lvm.pvcreate("/dev/vdd").unwrap_err();
    assert!(e.is_refusal());
    let msg = e.to_string();
    assert!(msg.contains("refusing to pvcreate /dev/vdd"), "{msg}");
    assert!(msg.contains("TYPE=\"ext4\""), "{msg}");
    assert!(changes(&r).is_empty(), "{:?}", r.lines());

    // Only wipefs sees it (say a signature blkid does not know): still refused.
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[])))
        .on("blkid -p /dev/vdd", Output::exit(2))
        .on(
            "wipefs -n /dev/vdd",
            Output::ok("DEVICE OFFSET TYPE LABEL\nvdd 0x1fe dos\n"),
        );
    assert!(lvm.pvcreate("/dev/vdd").unwrap_err().is_refusal());
    assert!(changes(&r).is_empty());
}

#[test]
fn add_device_extends_an_existing_group_through_safe_pvcreate() {
    let (r, lvm) = fake_lvm();
    r.on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "nfsstore", 97280, 97280),
            ("/dev/vdc", "nfsstore", 81920, 81920),
        ])),
    )
    .on(VGS, Output::ok(vgs_json(&[("nfsstore", 179200, 0)])))
    .on("pvcreate /dev/vdd", Output::exit(0))
    .on("vgextend nfsstore /dev/vdd", Output::exit(0));
    blank(&r, "/dev/vdd");
    assert_eq!(
        lvm.add_device("nfsstore", "/dev/vdd").unwrap(),
        HostChange::Changed
    );
    assert_eq!(
        changes(&r),
        ["pvcreate /dev/vdd", "vgextend nfsstore /dev/vdd"]
    );
    never_forced(&r);
}

#[test]
fn add_device_creates_the_group_when_missing_and_is_idempotent() {
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[("/dev/vdb", "", 0, 0)])))
        .on(VGS, Output::ok(vgs_json(&[])))
        .on("vgcreate nfsstore /dev/vdb", Output::exit(0));
    assert_eq!(
        lvm.add_device("nfsstore", "/dev/vdb").unwrap(),
        HostChange::Changed
    );
    // Already a PV (orphan): no probes, no pvcreate.
    assert_eq!(changes(&r), ["vgcreate nfsstore /dev/vdb"]);
    assert!(!r.lines().iter().any(|l| l.starts_with("blkid")));

    let (r, lvm) = fake_lvm();
    r.on(
        PVS,
        Output::ok(pvs_json(&[("/dev/vdb", "nfsstore", 10, 0)])),
    )
    .on(VGS, Output::ok(vgs_json(&[("nfsstore", 10, 10)])));
    assert_eq!(
        lvm.add_device("nfsstore", "/dev/vdb").unwrap(),
        HostChange::Unchanged
    );
    assert_eq!(
        lvm.vgcreate("nfsstore", "/dev/vdb").unwrap(),
        HostChange::Unchanged
    );
    assert!(changes(&r).is_empty());
}

#[test]
fn a_pv_of_another_group_is_never_taken() {
    let (r, lvm) = fake_lvm();
    r.on(PVS, Output::ok(pvs_json(&[("/dev/vdb", "other", 10, 5)])))
        .on(
            VGS,
            Output::ok(vgs_json(&[("other", 10, 5), ("nfsstore", 10, 10)])),
        );
    let e = lvm.vgextend("nfsstore", "/dev/vdb").unwrap_err();
    assert!(e.is_refusal());
    assert!(e.to_string().contains("PV of volume group other"), "{e}");
    let e = lvm
        .remove_pv("nfsstore", "/dev/vdb", &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, LvmError::InOtherVg { .. }));
    assert!(changes(&r).is_empty());
}

#[test]
fn vgextend_and_vgcreate_say_what_to_do_instead() {
    let (r, lvm) = fake_lvm();
    r.on(
        PVS,
        Output::ok(pvs_json(&[("/dev/vdb", "nfsstore", 10, 0)])),
    )
    .on(VGS, Output::ok(vgs_json(&[("nfsstore", 10, 10)])));
    let e = lvm.vgextend("nope", "/dev/vdc").unwrap_err();
    assert!(e.to_string().contains("vgcreate nope"), "{e}");
    let e = lvm.vgcreate("nfsstore", "/dev/vdc").unwrap_err();
    assert!(matches!(e, LvmError::VgExists { .. }), "{e}");
    assert!(changes(&r).is_empty());
}

#[test]
fn lvcreate_takes_all_free_extents() {
    let (r, lvm) = fake_lvm();
    r.on(VGS, Output::ok(vgs_json(&[("nfsstore", 100, 100)])))
        .on(LVS, Output::ok(lvs_json(&[])))
        .on(
            "lvcreate -l 100%FREE -n nfs_logical nfsstore",
            Output::exit(0),
        );
    assert_eq!(
        lvm.lvcreate("nfsstore", "nfs_logical").unwrap(),
        HostChange::Changed
    );
    assert_eq!(
        changes(&r),
        ["lvcreate -l 100%FREE -n nfs_logical nfsstore"]
    );
    never_forced(&r);

    let (r, lvm) = fake_lvm();
    r.on(VGS, Output::ok(vgs_json(&[("nfsstore", 100, 0)])))
        .on(LVS, Output::ok(lvs_json(&[])));
    assert!(matches!(
        lvm.lvcreate("nfsstore", "nfs_logical"),
        Err(LvmError::NoFreeExtents { .. })
    ));
    assert!(changes(&r).is_empty());
}

#[test]
fn grow_lv_extends_then_resizes_online() {
    let (r, lvm) = fake_lvm();
    r.on(VGS, Output::ok(vgs_json(&[("nfsstore", 230400, 51200)])))
        .on(
            LVS,
            Output::ok(lvs_json(&[("nfsstore", "nfs_logical", 179200)])),
        )
        .on(
            "lvextend -l +100%FREE /dev/nfsstore/nfs_logical",
            Output::exit(0),
        )
        .on("blkid -p /dev/nfsstore/nfs_logical", Output::ok(BLKID_EXT4))
        .on(
            "wipefs -n /dev/nfsstore/nfs_logical",
            Output::ok("DEVICE OFFSET TYPE\nx 0x438 ext4\n"),
        )
        .on(
            "resize2fs /dev/nfsstore/nfs_logical",
            Output::ok(
                "The filesystem on /dev/nfsstore/nfs_logical is now 58982400 (4k) blocks long.\n",
            ),
        );
    assert_eq!(
        lvm.grow_lv("nfsstore", "nfs_logical").unwrap(),
        HostChange::Changed
    );
    assert_eq!(
        changes(&r),
        [
            "lvextend -l +100%FREE /dev/nfsstore/nfs_logical",
            "resize2fs /dev/nfsstore/nfs_logical"
        ]
    );
    never_forced(&r);
}

#[test]
fn grow_lv_after_a_crash_between_lvextend_and_resize2fs_still_resizes() {
    let (r, lvm) = fake_lvm();
    r.on(VGS, Output::ok(vgs_json(&[("nfsstore", 230400, 0)])))
        .on(
            LVS,
            Output::ok(lvs_json(&[("nfsstore", "nfs_logical", 230400)])),
        )
        .on("blkid -p /dev/nfsstore/nfs_logical", Output::ok(BLKID_EXT4))
        .on(
            "wipefs -n /dev/nfsstore/nfs_logical",
            Output::ok("DEVICE OFFSET TYPE\nx 0x438 ext4\n"),
        )
        .on(
            "resize2fs /dev/nfsstore/nfs_logical",
            Output::ok("is now 58982400 (4k) blocks long.\n"),
        );
    assert_eq!(
        lvm.grow_lv("nfsstore", "nfs_logical").unwrap(),
        HostChange::Changed
    );
    assert_eq!(changes(&r), ["resize2fs /dev/nfsstore/nfs_logical"]);

    let (r, lvm) = fake_lvm();
    r.on(VGS, Output::ok(vgs_json(&[("nfsstore", 10, 10)])))
        .on(LVS, Output::ok(lvs_json(&[])));
    assert!(matches!(
        lvm.grow_lv("nfsstore", "nfs_logical"),
        Err(LvmError::LvNotFound { .. })
    ));
}

#[test]
fn pvmove_progress_lines_parse() {
    assert_eq!(
        parse_progress("  /dev/vdd: Moved: 42.00%"),
        Some(PvmoveProgress {
            device: "/dev/vdd".into(),
            percent: 42.0
        })
    );
    assert_eq!(
        parse_progress("/dev/vdd: Moved: 100.0%").map(|p| p.percent),
        Some(100.0)
    );
    assert_eq!(
        parse_progress("  Detected pvmove in progress for /dev/vdd."),
        None
    );
    assert_eq!(parse_progress("/dev/vdd: Moved: lots%"), None);
}

#[test]
fn drivers_can_be_shared_with_the_agent_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lvm>();
    send_sync::<crate::host::fs::Fs>();
    send_sync::<crate::host::command::SystemRunner>();
}
