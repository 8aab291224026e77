//! LVM (lvm2) through its command-line tools: observe PVs, VGs and LVs, and the runbook's
//! "add disk space" and "reduce disk space" steps as safe, idempotent operations.
//!
//! ```no_run
//! # fn f() -> Result<(), omtd::host::lvm::LvmError> {
//! use std::sync::Arc;
//! use omtd::host::command::SystemRunner;
//! use omtd::host::lvm::{Lvm, LvmOptions};
//! let lvm = Lvm::new(Arc::new(SystemRunner::new()), LvmOptions::default());
//! lvm.add_device("nfsstore", "/dev/vdd")?;     // pvcreate (if blank) + vgextend
//! lvm.grow_lv("nfsstore", "nfs_logical")?;     // lvextend -l +100%FREE + resize2fs
//! lvm.remove_pv("nfsstore", "/dev/vdd", &mut |p| println!("{}%", p.percent))?;
//! # Ok(()) }
//! ```
//!
//! Every call blocks until lvm2 is done (a pvmove for hours): the agent runs them on a
//! blocking thread, as it runs all its drivers.
//!
//! Device names must be the names lvm2 reports (`pvs`): `/dev/vdd`, not a
//! `/dev/disk/by-id/...` symlink, because PVs are matched by name.
//!
//! Report format: JSON when the host's lvm2 has it (>= 2.02.158), else the column output;
//! found out on the first report and remembered ([`LvmOptions::format`] forces one).
//!
//! Containers: lvm2 may wait on udev that is not there. On this test machine no extra
//! configuration was needed for PV/VG work; [`LvmOptions::container`] passes
//! [`NO_UDEV_CONFIG`] with `--config` to every lvm command for hosts that need it.

mod error;
mod ops;
mod remove;
pub mod report;

use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use self::error::{human_bytes, LvmError};
pub use self::remove::{parse_progress, plan_removal, PvmoveProgress, RemovalStep};
pub use self::report::{Lv, Pv, ReportFormat, Segment, Vg};

use self::report::ReportKind;
use crate::host::command::{Cmd, CommandError, CommandRunner};
use crate::host::fs::Fs;

/// lvm2 configuration for hosts (containers) without a running udev: list devices by
/// scanning `/dev`, and do not wait for udev to create device nodes.
pub const NO_UDEV_CONFIG: &str =
    "devices { obtain_device_list_from_udev=0 } activation { udev_sync=0 udev_rules=0 }";

/// How to talk to this host's lvm2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LvmOptions {
    /// Passed as `--config VALUE` to every lvm command (e.g. [`NO_UDEV_CONFIG`]).
    pub config: Option<String>,
    /// Force a report format instead of detecting it.
    pub format: Option<ReportFormat>,
}

impl LvmOptions {
    /// For a host or container without udev.
    pub fn container() -> Self {
        LvmOptions {
            config: Some(NO_UDEV_CONFIG.to_owned()),
            format: None,
        }
    }
}

/// Everything lvm2 reports on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LvmState {
    pub pvs: Vec<Pv>,
    pub vgs: Vec<Vg>,
    pub lvs: Vec<Lv>,
}

impl LvmState {
    pub fn pv(&self, device: &str) -> Option<&Pv> {
        self.pvs.iter().find(|p| p.name == device)
    }

    pub fn vg(&self, name: &str) -> Option<&Vg> {
        self.vgs.iter().find(|v| v.name == name)
    }

    pub fn lv(&self, vg: &str, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.vg == vg && l.name == name)
    }

    /// The PVs of a volume group.
    pub fn pvs_in<'a>(&'a self, vg: &'a str) -> impl Iterator<Item = &'a Pv> + 'a {
        self.pvs.iter().filter(move |p| p.vg.as_deref() == Some(vg))
    }
}

/// The LVM driver: observation and safe operations on one host.
pub struct Lvm {
    runner: Arc<dyn CommandRunner>,
    fs: Fs,
    options: LvmOptions,
    /// The detected report format, once known.
    format: Mutex<Option<ReportFormat>>,
}

impl Lvm {
    pub fn new(runner: Arc<dyn CommandRunner>, options: LvmOptions) -> Self {
        Lvm {
            fs: Fs::new(runner.clone()),
            format: Mutex::new(options.format),
            runner,
            options,
        }
    }

    /// The filesystem helper sharing this driver's runner.
    pub fn fs(&self) -> &Fs {
        &self.fs
    }

    /// An lvm2 command with the options every call needs.
    fn cmd(&self, program: &str) -> Cmd {
        // C locale: we match lvm2's English messages ("No data to move").
        // Fd warnings: lvm2 complains about any inherited descriptor on stderr; harmless
        // noise that would otherwise end up in every error message.
        let mut c = Cmd::new(program)
            .env("LC_ALL", "C")
            .env("LVM_SUPPRESS_FD_WARNINGS", "1");
        if let Some(config) = &self.options.config {
            c = c.args(["--config", config]);
        }
        c
    }

    /// Runs a command that changes the host, turning a non-zero exit into an error.
    fn change(&self, c: Cmd) -> Result<(), LvmError> {
        tracing::info!(command = %c, "lvm change");
        self.runner.run(&c)?.check(&c)?;
        Ok(())
    }

    fn report_cmd(&self, kind: ReportKind, format: ReportFormat) -> Cmd {
        let c = self.cmd(kind.command());
        let c = if kind == ReportKind::Segment {
            c.arg("-a")
        } else {
            c
        };
        let c = match format {
            ReportFormat::Json => c.args(["--reportformat", "json"]),
            ReportFormat::Columns => c.args(["--noheadings", "--separator", "|"]),
        };
        c.args(["--units", "b", "--nosuffix", "-o"])
            .arg(kind.fields().join(","))
    }

    fn cached_format(&self) -> Option<ReportFormat> {
        *self.format.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember_format(&self, f: ReportFormat) {
        *self.format.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Runs one report, detecting the format on first use.
    fn report(&self, kind: ReportKind) -> Result<Vec<report::Row>, LvmError> {
        if let Some(f) = self.cached_format() {
            let c = self.report_cmd(kind, f);
            let out = self.runner.run(&c)?.check(&c)?;
            return Ok(report::parse(kind, f, &out.stdout)?);
        }
        let c = self.report_cmd(kind, ReportFormat::Json);
        let out = self.runner.run(&c)?;
        if out.success() {
            self.remember_format(ReportFormat::Json);
            return Ok(report::parse_json(kind, &out.stdout)?);
        }
        if !self.json_unsupported(&out.stderr)? {
            return Err(CommandError::failed(&c, &out).into());
        }
        tracing::info!("lvm2 has no JSON reports (older than 2.02.158): using columns");
        self.remember_format(ReportFormat::Columns);
        let c = self.report_cmd(kind, ReportFormat::Columns);
        let out = self.runner.run(&c)?.check(&c)?;
        Ok(report::parse_columns(kind, &out.stdout)?)
    }

    /// After a failed JSON report: is it because this lvm2 has no JSON? Either it said so
    /// ("unrecognized option '--reportformat'") or its version predates JSON.
    fn json_unsupported(&self, stderr: &str) -> Result<bool, LvmError> {
        let s = stderr.to_ascii_lowercase();
        if s.contains("reportformat")
            && (s.contains("unrecognized") || s.contains("unrecognised") || s.contains("unknown"))
        {
            return Ok(true);
        }
        let c = self.cmd("lvm").arg("version");
        let out = self.runner.run(&c)?;
        Ok(out.success()
            && report::lvm_version(&out.stdout).is_some_and(|v| v < report::JSON_SINCE))
    }

    pub fn pvs(&self) -> Result<Vec<Pv>, LvmError> {
        Ok(report::pvs(&self.report(ReportKind::Pv)?)?)
    }

    pub fn vgs(&self) -> Result<Vec<Vg>, LvmError> {
        Ok(report::vgs(&self.report(ReportKind::Vg)?)?)
    }

    pub fn lvs(&self) -> Result<Vec<Lv>, LvmError> {
        Ok(report::lvs(&self.report(ReportKind::Lv)?)?)
    }

    /// Segments of every LV, hidden ones included (`lvs -a`), to find a pvmove in flight.
    pub fn segments(&self) -> Result<Vec<Segment>, LvmError> {
        Ok(report::segments(&self.report(ReportKind::Segment)?)?)
    }

    /// PVs, VGs and LVs in one snapshot (three commands; lvm2 locks each).
    pub fn observe(&self) -> Result<LvmState, LvmError> {
        Ok(LvmState {
            pvs: self.pvs()?,
            vgs: self.vgs()?,
            lvs: self.lvs()?,
        })
    }

    /// The report format in use (detected by the first report), if known yet.
    pub fn format(&self) -> Option<ReportFormat> {
        self.cached_format()
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod removal_tests;
#[cfg(test)]
mod tests;
