//! Real lvm2, util-linux and e2fsprogs on loop devices (needs root).
//!
//! This machine's kernel has loop devices but no device-mapper targets: PV/VG metadata
//! work (pvcreate, vgcreate, vgextend, vgreduce, pvremove, reports) runs here for real;
//! lvcreate/lvextend/pvmove are proven on exact command lines in the unit tests. To give
//! PVs real allocated extents without device-mapper, the setup creates metadata-only LVs
//! (`lvcreate --driverloaded n -an -Zn`): lvm2 records the allocation, nothing is activated.
//!
//! Every test makes its own sparse files, loop devices and uniquely named VGs, and a
//! [`Rig`] removes them on drop, also when the test fails.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use omtd::host::command::{Cmd, CommandError, CommandRunner, LineSink, Output, SystemRunner};
use omtd::host::fs::Fs;
use omtd::host::lvm::{Lvm, LvmError, LvmOptions, Pv, ReportFormat};
use omtd::host::HostChange;

/// Runs a setup/inspection command directly (not through the library), returning stdout.
fn sh(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(program)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn must(program: &str, args: &[&str]) -> String {
    let (code, out, err) = sh(program, args);
    assert_eq!(code, 0, "{program} {args:?} failed: {err}");
    out
}

/// Fails loudly (never skips) when the machine cannot run these tests.
fn preflight() {
    if Command::new("pvcreate").arg("--version").output().is_err() {
        panic!("pvcreate not found: install lvm2: apt-get install -y lvm2");
    }
    for (tool, pkg) in [
        ("mke2fs", "e2fsprogs"),
        ("wipefs", "util-linux"),
        ("losetup", "mount"),
    ] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!("{tool} not found: install {pkg}: apt-get install -y {pkg}");
        }
    }
    let uid = must("id", &["-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "tests/lvm_loop.rs needs root (loop devices, lvm2)"
    );
    let (code, _, err) = sh("losetup", &["-f"]);
    assert_eq!(
        code, 0,
        "losetup -f failed: loop devices are not usable here ({err}); these tests need \
         /dev/loop-control and permission to attach loop devices"
    );
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Loop devices and VGs of one test, torn down on drop (VGs first, then devices).
struct Rig {
    dir: tempfile::TempDir,
    loops: Vec<String>,
    vgs: Vec<String>,
}

impl Rig {
    fn new() -> Rig {
        preflight();
        Rig {
            dir: tempfile::tempdir().expect("tempdir"),
            loops: Vec::new(),
            vgs: Vec::new(),
        }
    }

    /// A blank loop device over a sparse file of `mib` MiB.
    fn device(&mut self, mib: u64) -> String {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let file = self.dir.path().join(format!("disk{n}.img"));
        let f = std::fs::File::create(&file).expect("create backing file");
        f.set_len(mib << 20).expect("size backing file");
        let path = file.to_string_lossy().into_owned();
        let dev = must("losetup", &["-f", "--show", &path]).trim().to_owned();
        assert!(dev.starts_with("/dev/loop"), "losetup gave {dev:?}");
        self.loops.push(dev.clone());
        dev
    }

    /// Grows a device's backing file and tells the kernel.
    fn grow_device(&self, dev: &str, mib: u64) {
        let (_, out, _) = sh("losetup", &["-n", "-O", "BACK-FILE", dev]);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(out.trim())
            .expect("open backing file");
        f.set_len(mib << 20).expect("grow backing file");
        must("losetup", &["-c", dev]);
    }

    /// A VG name no other test (or run) uses; removed on drop if it exists.
    fn vg_name(&mut self) -> String {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let vg = format!("omtdtest_{}_{n}", std::process::id());
        self.vgs.push(vg.clone());
        vg
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Test cleanup of our own VGs may force (the library never does); --driverloaded n
        // because their LVs are metadata-only and there is no device-mapper to talk to.
        for vg in &self.vgs {
            let _ = sh("vgremove", &["-f", "--driverloaded", "n", vg]);
        }
        for dev in &self.loops {
            let _ = sh("pvremove", &["-ff", "-y", dev]);
            let _ = sh("losetup", &["-d", dev]);
        }
    }
}

/// The real runner, recording every command line (to prove what ran and what did not).
#[derive(Default)]
struct Tee {
    inner: SystemRunner,
    lines: Mutex<Vec<String>>,
}

impl Tee {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
    fn ran(&self, prefix: &str) -> bool {
        self.lines().iter().any(|l| l.starts_with(prefix))
    }
}

impl CommandRunner for Tee {
    fn run(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        if let Ok(mut l) = self.lines.lock() {
            l.push(cmd.line());
        }
        self.inner.run(cmd)
    }
    fn run_streaming(&self, cmd: &Cmd, on_line: &mut LineSink<'_>) -> Result<Output, CommandError> {
        if let Ok(mut l) = self.lines.lock() {
            l.push(cmd.line());
        }
        self.inner.run_streaming(cmd, on_line)
    }
}

fn drivers() -> (Arc<Tee>, Lvm, Fs) {
    let tee = Arc::new(Tee::default());
    let lvm = Lvm::new(tee.clone(), LvmOptions::default());
    let fs = Fs::new(tee.clone());
    (tee, lvm, fs)
}

fn blkid_p(dev: &str) -> (i32, String) {
    let (code, out, _) = sh("blkid", &["-p", dev]);
    (code, out)
}

fn our_pvs(pvs: Vec<Pv>, devs: &[&str]) -> Vec<Pv> {
    pvs.into_iter()
        .filter(|p| devs.contains(&p.name.as_str()))
        .collect()
}

/// Fills a VG with a metadata-only LV so its PVs hold real allocated extents.
fn fill_vg(vg: &str) {
    must(
        "lvcreate",
        &[
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-l",
            "100%FREE",
            "-n",
            "data",
            vg,
        ],
    );
}

#[test]
fn pvcreate_vgcreate_vgextend_for_real_and_json_and_columns_agree() {
    let mut rig = Rig::new();
    let (a, b) = (rig.device(64), rig.device(64));
    let vg = rig.vg_name();
    let (tee, lvm, _) = drivers();

    assert_eq!(lvm.pvcreate(&a).unwrap(), HostChange::Changed);
    assert_eq!(lvm.pvcreate(&a).unwrap(), HostChange::Unchanged);
    assert_eq!(
        lvm.format(),
        Some(ReportFormat::Json),
        "lvm2 2.03 speaks JSON"
    );
    assert_eq!(lvm.vgcreate(&vg, &a).unwrap(), HostChange::Changed);
    // b is blank: vgextend goes through the safe pvcreate (both probes) first.
    assert_eq!(lvm.add_device(&vg, &b).unwrap(), HostChange::Changed);
    assert_eq!(lvm.add_device(&vg, &b).unwrap(), HostChange::Unchanged);
    assert!(tee.ran(&format!("wipefs -n {b}")));
    for l in tee.lines() {
        assert!(!l.contains(" -y") && !l.contains(" -f"), "forced: {l}");
    }

    let json = lvm.observe().unwrap();
    let columns = Lvm::new(
        Arc::new(SystemRunner::new()),
        LvmOptions {
            format: Some(ReportFormat::Columns),
            ..Default::default()
        },
    )
    .observe()
    .unwrap();
    let devs = [a.as_str(), b.as_str()];
    let (pj, pc) = (
        our_pvs(json.pvs.clone(), &devs),
        our_pvs(columns.pvs.clone(), &devs),
    );
    assert_eq!(pj.len(), 2);
    assert_eq!(pj, pc, "JSON and column reports disagree on PVs");
    assert_eq!(json.vg(&vg), columns.vg(&vg));
    let g = json.vg(&vg).expect("vg observed");
    // 2 x 64 MiB, 1 MiB metadata each, 4 MiB extents: 15 + 15.
    assert_eq!(
        (g.extent_size, g.extent_count, g.free_count),
        (4 << 20, 30, 30)
    );
    assert!(pj
        .iter()
        .all(|p| p.vg.as_deref() == Some(vg.as_str()) && p.pe_count == 15));
    println!("observed via JSON and columns: {pj:?}\n{g:?}");
}

#[test]
fn pvcreate_over_ext4_is_refused_and_nothing_changes() {
    let mut rig = Rig::new();
    let dev = rig.device(32);
    let vg = rig.vg_name();
    must("mkfs.ext4", &["-q", &dev]);
    let before = blkid_p(&dev);
    assert!(before.1.contains("TYPE=\"ext4\""), "{before:?}");
    let (tee, lvm, _) = drivers();

    let e = lvm.pvcreate(&dev).unwrap_err();
    assert!(e.is_refusal(), "{e}");
    assert!(e.to_string().contains("TYPE=\"ext4\""), "{e}");
    println!("refused: {e}");
    // vgcreate takes the same safe path.
    assert!(lvm.vgcreate(&vg, &dev).unwrap_err().is_refusal());

    assert!(
        !tee.ran("pvcreate") && !tee.ran("vgcreate"),
        "{:?}",
        tee.lines()
    );
    assert_eq!(blkid_p(&dev), before, "signature changed");
    assert!(lvm.pvs().unwrap().iter().all(|p| p.name != dev));
    assert!(lvm.vgs().unwrap().iter().all(|v| v.name != vg));
}

#[test]
fn removing_an_empty_pv_skips_pvmove_then_vgreduce_and_pvremove_for_real() {
    let mut rig = Rig::new();
    let (a, b) = (rig.device(64), rig.device(64));
    let vg = rig.vg_name();
    let (tee, lvm, _) = drivers();
    lvm.add_device(&vg, &a).unwrap();
    lvm.add_device(&vg, &b).unwrap();

    let mut progress = Vec::new();
    let out = lvm.remove_pv(&vg, &b, &mut |p| progress.push(p)).unwrap();
    assert_eq!(out, HostChange::Changed);
    assert!(!tee.ran("pvmove"), "pvmove ran for an empty PV");
    assert!(tee.ran(&format!("vgreduce {vg} {b}")));
    assert!(tee.ran(&format!("pvremove {b}")));
    assert!(progress.is_empty());

    let pvs = lvm.pvs().unwrap();
    assert!(pvs.iter().all(|p| p.name != b), "still a PV");
    assert_eq!(our_pvs(pvs, &[&a]).len(), 1);
    assert_eq!(blkid_p(&b).0, 2, "label not wiped");
    // Done is done.
    assert_eq!(
        lvm.remove_pv(&vg, &b, &mut |_| {}).unwrap(),
        HostChange::Unchanged
    );
}

#[test]
fn removal_resumes_from_an_orphan_pv_for_real() {
    // As after a crash between vgreduce and pvremove.
    let mut rig = Rig::new();
    let (a, b) = (rig.device(64), rig.device(64));
    let vg = rig.vg_name();
    let (tee, lvm, _) = drivers();
    lvm.add_device(&vg, &a).unwrap();
    lvm.add_device(&vg, &b).unwrap();
    must("vgreduce", &[&vg, &b]);

    assert_eq!(
        lvm.remove_pv(&vg, &b, &mut |_| {}).unwrap(),
        HostChange::Changed
    );
    assert!(!tee.ran("vgreduce"));
    assert!(tee.ran(&format!("pvremove {b}")));
    assert!(lvm.pvs().unwrap().iter().all(|p| p.name != b));
}

#[test]
fn removal_without_room_is_refused_for_real_and_nothing_changes() {
    let mut rig = Rig::new();
    let (a, b) = (rig.device(64), rig.device(64));
    let vg = rig.vg_name();
    let (tee, lvm, _) = drivers();
    lvm.add_device(&vg, &a).unwrap();
    lvm.add_device(&vg, &b).unwrap();
    // Every PV at PFree 0, as in the runbook.
    fill_vg(&vg);
    let devs = [a.as_str(), b.as_str()];
    let before = our_pvs(lvm.pvs().unwrap(), &devs);
    assert!(
        before.iter().all(|p| p.free == 0 && p.pe_alloc_count == 15),
        "{before:?}"
    );

    let n = tee.lines().len();
    let e = lvm.remove_pv(&vg, &b, &mut |_| {}).unwrap_err();
    assert!(matches!(e, LvmError::RemovalNoRoom { .. }), "{e}");
    assert!(e.is_refusal());
    assert_eq!(
        e.to_string(),
        format!(
            "cannot remove {b} from {vg}: it holds 15 extents and the other PVs have 0 free; \
             add a disk of at least 60 MiB (plus about 1 MiB for LVM metadata) to {vg} first, \
             or shrink the filesystem and its LV (ext4 shrinks only unmounted)"
        )
    );
    println!("refused: {e}");
    // Only reports ran after the call began.
    for l in &tee.lines()[n..] {
        assert!(
            l.starts_with("pvs ") || l.starts_with("vgs ") || l.starts_with("lvs "),
            "ran {l}"
        );
    }
    assert_eq!(our_pvs(lvm.pvs().unwrap(), &devs), before);
}

#[test]
fn with_room_added_removal_passes_the_check_and_never_vgreduces_a_full_pv() {
    let mut rig = Rig::new();
    let (a, b, c) = (rig.device(64), rig.device(64), rig.device(64));
    let vg = rig.vg_name();
    let (tee, lvm, _) = drivers();
    lvm.add_device(&vg, &a).unwrap();
    lvm.add_device(&vg, &b).unwrap();
    fill_vg(&vg);
    // "Add a disk first": c brings 15 free extents, enough for b's 15.
    lvm.add_device(&vg, &c).unwrap();

    let result = lvm.remove_pv(&vg, &b, &mut |_| {});
    assert!(tee.ran(&format!("pvmove -i 1 {b}")), "{:?}", tee.lines());
    let pv_b = lvm.pvs().unwrap().into_iter().find(|p| p.name == b);
    match result {
        // No device-mapper (this machine): pvmove fails, and nothing after it runs.
        Err(e) => {
            println!("pvmove failed as expected without device-mapper: {e}");
            assert!(!e.is_refusal());
            assert!(!tee.ran("vgreduce") && !tee.ran("pvremove"));
            assert_eq!(pv_b.map(|p| p.pe_alloc_count), Some(15));
        }
        // A machine with device-mapper moves the data, then vgreduce and pvremove.
        Ok(out) => {
            assert_eq!(out, HostChange::Changed);
            assert!(pv_b.is_none());
        }
    }
}

#[test]
fn mkfs_over_an_existing_filesystem_is_refused_and_its_uuid_unchanged() {
    let mut rig = Rig::new();
    let dev = rig.device(32);
    must("mkfs.ext4", &["-q", &dev]);
    let (tee, _, fs) = drivers();
    let uuid = fs.uuid(&dev).unwrap().expect("ext4 has a UUID");

    let e = fs.mkfs(&dev, "ext4").unwrap_err();
    assert!(e.is_refusal(), "{e}");
    assert!(e.to_string().contains("TYPE=\"ext4\""), "{e}");
    println!("refused: {e}");
    assert!(!tee.ran("mke2fs"));
    assert_eq!(fs.uuid(&dev).unwrap(), Some(uuid.clone()));
    // Desired state "ext4 here" is already met.
    assert_eq!(fs.ensure(&dev, "ext4").unwrap(), HostChange::Unchanged);
    assert!(fs.ensure(&dev, "ext3").unwrap_err().is_refusal());
    assert_eq!(fs.uuid(&dev).unwrap(), Some(uuid));
}

#[test]
fn mkfs_on_a_blank_device_then_uuid_then_grow_for_real() {
    let mut rig = Rig::new();
    let dev = rig.device(32);
    let (_, _, fs) = drivers();
    assert_eq!(fs.uuid(&dev).unwrap(), None);
    assert!(fs.probe(&dev).unwrap().is_blank());

    assert_eq!(fs.mkfs(&dev, "ext4").unwrap(), HostChange::Changed);
    let uuid = fs.uuid(&dev).unwrap().expect("UUID after mkfs");
    let (code, out) = blkid_p(&dev);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("UUID=\"{uuid}\"")) && out.contains("TYPE=\"ext4\""));
    println!("made ext4 on {dev}: UUID={uuid}");
    // Made once: a second mkfs is refused, the ensure is a no-op.
    assert!(fs.mkfs(&dev, "ext4").unwrap_err().is_refusal());
    assert_eq!(fs.ensure(&dev, "ext4").unwrap(), HostChange::Unchanged);

    // Grow: nothing to do, then the device grows and resize2fs fills it. (Offline here:
    // online resize needs a capability this container lacks; the VM tests cover it.)
    assert_eq!(fs.grow(&dev).unwrap(), HostChange::Unchanged);
    rig.grow_device(&dev, 64);
    assert_eq!(fs.grow(&dev).unwrap(), HostChange::Changed);
    assert_eq!(fs.grow(&dev).unwrap(), HostChange::Unchanged);
    assert_eq!(fs.uuid(&dev).unwrap(), Some(uuid));
}

#[test]
fn a_missing_device_is_not_blank() {
    preflight();
    let (tee, lvm, fs) = drivers();
    let e = fs.mkfs("/dev/omtd-no-such-disk", "ext4").unwrap_err();
    assert!(
        !e.is_refusal() && e.to_string().contains("cannot tell"),
        "{e}"
    );
    assert!(lvm.pvcreate("/dev/omtd-no-such-disk").is_err());
    assert!(!tee.ran("mke2fs") && !tee.ran("pvcreate"));
}
