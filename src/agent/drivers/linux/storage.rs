//! LVM and filesystems on a real host, through the host library (`crate::host`), which
//! owns the safety rules: two signature probes before pvcreate or mkfs, never a forced
//! command, no vgreduce of a PV with extents, no removal without room elsewhere. This
//! driver maps the plan onto those steps and the library's refusals onto `Refused`.
//!
//! Device paths go through `--root` like every path (tests may point a device at an image
//! file under the root; mkfs and blkid work on files).
//!
//! A pvmove runs inside the pass (the pass waits for it); its progress (lvm2's copy percent)
//! goes to the log and to the agent, which reports it while the move runs.

use std::path::Path;
use std::sync::Arc;

use omtd_crds::plan::{Ensure, FilesystemSpec, LogicalVolumeSpec, PhysicalVolumeSpec};

use super::root::Root;
use crate::agent::drivers::{DriverError, Result, Storage, StorageOutcome};
use crate::host::command::{CommandRunner, SystemRunner};
use crate::host::fs::FsError;
use crate::host::lvm::{Lvm, LvmError, LvmOptions, Pv};
use crate::host::HostChange;

pub struct LinuxStorage {
    root: Root,
    lvm: Lvm,
}

impl LinuxStorage {
    /// The real host: lvm2 told not to wait for udev when the host runs none.
    pub fn new(root: Root) -> Self {
        let options = if Path::new("/run/udev/control").exists() {
            LvmOptions::default()
        } else {
            LvmOptions::container()
        };
        Self::with_runner(root, Arc::new(SystemRunner::new()), options)
    }

    pub fn with_runner(root: Root, runner: Arc<dyn CommandRunner>, options: LvmOptions) -> Self {
        LinuxStorage {
            root,
            lvm: Lvm::new(runner, options),
        }
    }

    fn dev(&self, device: &str) -> Result<String> {
        Ok(self.root.map(device)?.display().to_string())
    }

    fn pv_observed(&self, device: &str) -> Vec<(String, String)> {
        match self.lvm.pvs() {
            Ok(pvs) => pvs
                .iter()
                .find(|p| p.name == device)
                .map(observed)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}

fn observed(p: &Pv) -> Vec<(String, String)> {
    vec![
        ("pv_size".into(), p.size.to_string()),
        ("pv_free".into(), p.free.to_string()),
        ("pv_pe_count".into(), p.pe_count.to_string()),
        ("pv_pe_alloc_count".into(), p.pe_alloc_count.to_string()),
    ]
}

/// lvm2's percent (0.0..=100.0) as a whole percent, rounded down: 100 only when done.
fn whole_percent(p: f64) -> u8 {
    // Clamped first, so the cast cannot wrap.
    p.clamp(0.0, 100.0).floor() as u8
}

fn lvm_outcome(
    r: std::result::Result<HostChange, LvmError>,
    what: String,
    observed: impl FnOnce() -> Vec<(String, String)>,
) -> Result<StorageOutcome> {
    match r {
        Ok(HostChange::Unchanged) => Ok(StorageOutcome::Unchanged {
            observed: observed(),
        }),
        Ok(HostChange::Changed) => Ok(StorageOutcome::Changed {
            what,
            observed: observed(),
        }),
        Err(e) if e.is_refusal() => Ok(StorageOutcome::Refused {
            reason: e.to_string(),
        }),
        Err(e) => Err(DriverError::Other(e.to_string())),
    }
}

impl Storage for LinuxStorage {
    fn ensure_pv(
        &mut self,
        spec: &PhysicalVolumeSpec,
        may_destroy: bool,
        progress: &mut (dyn FnMut(u8) + Send),
    ) -> Result<StorageOutcome> {
        let dev = self.dev(&spec.device)?;
        let vg = &spec.volume_group;
        match spec.ensure {
            Ensure::Present => {
                let r = self.lvm.add_device(vg, &dev);
                lvm_outcome(r, format!("add {dev} to {vg}"), || self.pv_observed(&dev))
            }
            Ensure::Absent => {
                if !may_destroy {
                    let member = self
                        .lvm
                        .pvs()
                        .map_err(|e| DriverError::Other(e.to_string()))?
                        .iter()
                        .any(|p| p.name == dev && p.vg.as_deref() == Some(vg.as_str()));
                    return Ok(if member {
                        StorageOutcome::Progressing {
                            percent: 0,
                            message: "waiting for the store before removing a physical volume"
                                .into(),
                        }
                    } else {
                        StorageOutcome::Unchanged { observed: vec![] }
                    });
                }
                // Re-run after a crash, remove_pv finds lvm2's unfinished move and runs
                // pvmove again, which resumes it: progress picks up where the copy was.
                let r = self.lvm.remove_pv(vg, &dev, &mut |p| {
                    tracing::info!(device = %p.device, percent = p.percent, "pvmove progress");
                    progress(whole_percent(p.percent));
                });
                lvm_outcome(r, format!("remove {dev} from {vg}"), Vec::new)
            }
        }
    }

    fn ensure_lv(&mut self, spec: &LogicalVolumeSpec) -> Result<StorageOutcome> {
        let (vg, lv) = (&spec.volume_group, &spec.name);
        let created = self.lvm.lvcreate(vg, lv);
        let r = match created {
            Ok(HostChange::Unchanged) if spec.grow_to_fill => self.lvm.grow_lv(vg, lv),
            other => other,
        };
        lvm_outcome(r, format!("lvcreate/lvextend {vg}/{lv}"), Vec::new)
    }

    fn ensure_filesystem(&mut self, spec: &FilesystemSpec) -> Result<StorageOutcome> {
        let dev = self.dev(&spec.device)?;
        match self.lvm.fs().ensure(&dev, &spec.fstype) {
            Ok(o) => {
                let uuid = self.lvm.fs().uuid(&dev).ok().flatten();
                let observed: Vec<(String, String)> =
                    uuid.map(|u| ("uuid".to_owned(), u)).into_iter().collect();
                Ok(match o {
                    HostChange::Unchanged => StorageOutcome::Unchanged { observed },
                    HostChange::Changed => StorageOutcome::Changed {
                        what: format!("mkfs {} {dev}", spec.fstype),
                        observed,
                    },
                })
            }
            Err(e @ FsError::NotBlank { .. }) => Ok(StorageOutcome::Refused {
                reason: e.to_string(),
            }),
            Err(e) => Err(DriverError::Other(e.to_string())),
        }
    }

    fn device_uuid(&mut self, device: &str) -> Result<Option<String>> {
        let dev = self.dev(device)?;
        self.lvm
            .fs()
            .uuid(&dev)
            .map_err(|e| DriverError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};

    #[test]
    fn uuid_from_blkid_through_the_host_library() {
        let runner = Arc::new(RecordingRunner::new());
        runner.on(
            "blkid -c /dev/null -s UUID -o value /dev/vdb",
            Output::ok("0b4c-11\n"),
        );
        runner.on(
            "blkid -c /dev/null -s UUID -o value /dev/vdc",
            Output::exit(2),
        );
        let mut s = LinuxStorage::with_runner(
            Root::new(None).unwrap(),
            runner.clone(),
            LvmOptions::default(),
        );
        assert_eq!(
            s.device_uuid("/dev/vdb").unwrap().as_deref(),
            Some("0b4c-11")
        );
        assert_eq!(s.device_uuid("/dev/vdc").unwrap(), None);
    }

    #[test]
    fn pvmove_progress_reaches_the_agent_as_whole_percents() {
        use crate::host::lvm::testing::{pvs_json, segments_json, vgs_json, PVS, SEGMENTS, VGS};
        use crate::host::lvm::ReportFormat;
        let r = Arc::new(RecordingRunner::new());
        r.on(
            PVS,
            Output::ok(pvs_json(&[
                ("/dev/vdd", "nfsstore", 100, 100),
                ("/dev/vde", "nfsstore", 100, 0),
            ])),
        )
        .on(
            PVS,
            Output::ok(pvs_json(&[
                ("/dev/vdd", "nfsstore", 100, 0),
                ("/dev/vde", "nfsstore", 100, 100),
            ])),
        )
        .on(VGS, Output::ok(vgs_json(&[("nfsstore", 200, 100)])))
        .on(
            SEGMENTS,
            Output::ok(segments_json(&[(
                "nfsstore",
                "lv",
                "-wi-ao----",
                "/dev/vdd(0)",
            )])),
        )
        .on(
            "pvmove -i 1 /dev/vdd",
            Output::ok(
                "  /dev/vdd: Moved: 0.00%\n  /dev/vdd: Moved: 42.70%\n  /dev/vdd: Moved: 100.00%\n",
            ),
        )
        .on("vgreduce nfsstore /dev/vdd", Output::exit(0))
        .on("pvremove /dev/vdd", Output::exit(0));
        let mut s = LinuxStorage::with_runner(
            Root::new(None).unwrap(),
            r.clone(),
            LvmOptions {
                format: Some(ReportFormat::Json),
                ..Default::default()
            },
        );
        let spec = PhysicalVolumeSpec {
            device: "/dev/vdd".into(),
            volume_group: "nfsstore".into(),
            ensure: Ensure::Absent,
        };
        let mut seen = Vec::new();
        let out = s.ensure_pv(&spec, true, &mut |p| seen.push(p)).unwrap();
        assert!(matches!(out, StorageOutcome::Changed { .. }), "{out:?}");
        assert_eq!(seen, [0, 42, 100]);
        assert_eq!(whole_percent(99.99), 99, "100 only when lvm2 says so");
        assert_eq!(whole_percent(f64::NAN), 0);
    }

    #[test]
    fn an_ext4_image_under_the_root_is_never_reformatted() {
        // Real mke2fs and blkid on an image file: the second probe finds the filesystem
        // and a different fstype is refused with nothing changed.
        if std::process::Command::new("mke2fs")
            .arg("-V")
            .output()
            .is_err()
        {
            panic!("e2fsprogs missing: apt-get install -y e2fsprogs");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        let img = d.path().join("dev/vdb");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(8 << 20).unwrap();
        let mut s = LinuxStorage::new(Root::new(Some(d.path().to_path_buf())).unwrap());
        let spec = FilesystemSpec {
            device: "/dev/vdb".into(),
            fstype: "ext4".into(),
        };
        assert!(matches!(
            s.ensure_filesystem(&spec).unwrap(),
            StorageOutcome::Changed { .. }
        ));
        let uuid = s
            .device_uuid("/dev/vdb")
            .unwrap()
            .expect("a uuid after mkfs");
        assert!(matches!(
            s.ensure_filesystem(&spec).unwrap(),
            StorageOutcome::Unchanged { .. }
        ));
        let before = std::fs::read(&img).unwrap();
        let other = FilesystemSpec {
            device: "/dev/vdb".into(),
            fstype: "ext3".into(),
        };
        assert!(matches!(
            s.ensure_filesystem(&other).unwrap(),
            StorageOutcome::Refused { .. }
        ));
        assert_eq!(
            std::fs::read(&img).unwrap(),
            before,
            "refusal changed the device"
        );
        assert_eq!(s.device_uuid("/dev/vdb").unwrap(), Some(uuid));
    }
}
