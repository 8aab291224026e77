//! Filesystems on block devices: signature probes, mkfs, UUID, online grow.
//!
//! The rule (DESIGN.md §6): never make a filesystem, or a PV, on a device that carries any
//! signature. "No signature" must be confirmed by two independent probes, because the
//! peers' data-loss bugs came from one probe missing what another would have seen:
//! - `blkid -p DEV` (low-level superblock probing, no cache): exit 2 means nothing found;
//!   exit 0 (found) and 8 (several, "ambivalent") both mean "not blank". Note blkid also
//!   exits 2 for a device that does not exist, which is why it is never trusted alone.
//! - `wipefs -n DEV` (no-act): lists every signature, partition tables included; empty
//!   output means nothing found; an error (no such device) means we do not know.
//!
//! mke2fs itself is no safety net: with stdin closed (as here) it formats over an existing
//! ext4 without asking, as tried on this machine with e2fsprogs 1.47.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::command::{Cmd, CommandError, CommandRunner};
use super::HostChange;

/// What the two probes saw on a device. Blank only when both saw nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signatures {
    /// `blkid -p` tags (`TYPE`, `UUID`, `PTTYPE`, ...), empty when it found nothing.
    pub blkid: BTreeMap<String, String>,
    /// blkid's own words when it found something it would not name (exit 8).
    pub blkid_note: Option<String>,
    /// `wipefs -n` rows (header removed), one per signature.
    pub wipefs: Vec<String>,
}

impl Signatures {
    pub fn is_blank(&self) -> bool {
        self.blkid.is_empty() && self.blkid_note.is_none() && self.wipefs.is_empty()
    }

    /// The filesystem or other content type blkid named (`ext4`, `LVM2_member`, ...).
    pub fn fstype(&self) -> Option<&str> {
        self.blkid.get("TYPE").map(String::as_str)
    }
}

impl fmt::Display for Signatures {
    /// `blkid: TYPE="ext4" UUID="..."; wipefs: loop4 0x438 ext4 ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.blkid.is_empty() {
            // The telling tags first, so a truncated message still says what it is.
            let order = ["TYPE", "PTTYPE", "USAGE", "LABEL", "UUID"];
            let mut tags: Vec<String> = order
                .iter()
                .filter_map(|k| self.blkid.get(*k).map(|v| format!("{k}={v:?}")))
                .collect();
            tags.extend(
                self.blkid
                    .iter()
                    .filter(|(k, _)| !order.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v:?}")),
            );
            parts.push(format!("blkid found {}", tags.join(" ")));
        }
        if let Some(note) = &self.blkid_note {
            parts.push(format!("blkid: {note}"));
        }
        if !self.wipefs.is_empty() {
            parts.push(format!("wipefs found {}", self.wipefs.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("no signature")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Filesystem errors. [`FsError::is_refusal`] tells a safety refusal from a failure.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(
        "refusing to make an {fstype} filesystem on {device}: it is not blank ({found}); \
         it may hold data. If it does not, wipe it by hand after checking \
         (`wipefs -a {device}`) and omtd will continue"
    )]
    NotBlank {
        device: String,
        fstype: String,
        found: String,
    },
    #[error("cannot tell whether {device} is blank: `{probe}` failed: {detail}")]
    ProbeFailed {
        device: String,
        probe: String,
        detail: String,
    },
    #[error("unsupported filesystem type {fstype:?}: omtd makes and grows ext2, ext3 and ext4")]
    Unsupported { fstype: String },
}

impl FsError {
    /// True when omtd declined to act to keep data safe (report "Refused", not "Failed").
    pub fn is_refusal(&self) -> bool {
        matches!(self, FsError::NotBlank { .. })
    }
}

/// Filesystem operations through a [`CommandRunner`].
#[derive(Clone)]
pub struct Fs {
    runner: Arc<dyn CommandRunner>,
}

// Messages we match (blkid notes, resize2fs "Nothing to do!") are English in the C locale.
fn cmd(program: &str) -> Cmd {
    Cmd::new(program).env("LC_ALL", "C")
}

fn is_ext(fstype: &str) -> bool {
    matches!(fstype, "ext2" | "ext3" | "ext4")
}

fn check_supported(fstype: &str) -> Result<(), FsError> {
    if is_ext(fstype) {
        Ok(())
    } else {
        Err(FsError::Unsupported {
            fstype: fstype.to_owned(),
        })
    }
}

impl Fs {
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Fs { runner }
    }

    /// Runs both probes (always both, so a refusal can name everything found).
    pub fn probe(&self, device: &str) -> Result<Signatures, FsError> {
        let mut sig = Signatures::default();

        let c = cmd("blkid").args(["-p", device]);
        let out = self.runner.run(&c)?;
        match out.code {
            Some(0) => sig.blkid = parse_blkid_tags(&out.stdout),
            Some(2) => {}
            Some(8) => {
                sig.blkid_note = Some(format!(
                    "several signatures (ambivalent): {}",
                    out.stderr.trim()
                ))
            }
            _ => return Err(probe_failed(device, &c, &out)),
        }

        let c = cmd("wipefs").args(["-n", device]);
        let out = self.runner.run(&c)?;
        if !out.success() {
            return Err(probe_failed(device, &c, &out));
        }
        sig.wipefs = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("DEVICE") && !l.starts_with("offset"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        // Old wipefs prints a header and a dashed rule even for one row; any other text
        // we did not expect still counts as a signature (fail safe).
        sig.wipefs
            .retain(|l| !l.chars().all(|c| c == '-' || c == ' '));
        Ok(sig)
    }

    /// Makes a filesystem, only on a device both probes find blank. Refuses on any
    /// signature, including one of the same type (use [`Fs::ensure`] for desired state).
    pub fn mkfs(&self, device: &str, fstype: &str) -> Result<HostChange, FsError> {
        check_supported(fstype)?;
        let sig = self.probe(device)?;
        self.mkfs_if_blank(device, fstype, &sig)
    }

    /// Desired state "DEVICE holds an FSTYPE filesystem": unchanged when blkid already
    /// sees exactly that filesystem, mkfs when blank, refused otherwise.
    pub fn ensure(&self, device: &str, fstype: &str) -> Result<HostChange, FsError> {
        check_supported(fstype)?;
        let sig = self.probe(device)?;
        if sig.fstype() == Some(fstype) && sig.blkid_note.is_none() {
            return Ok(HostChange::Unchanged);
        }
        self.mkfs_if_blank(device, fstype, &sig)
    }

    fn mkfs_if_blank(
        &self,
        device: &str,
        fstype: &str,
        sig: &Signatures,
    ) -> Result<HostChange, FsError> {
        if !sig.is_blank() {
            tracing::warn!(device, found = %sig, "refusing mkfs: device not blank");
            return Err(FsError::NotBlank {
                device: device.to_owned(),
                fstype: fstype.to_owned(),
                found: sig.to_string(),
            });
        }
        // No -F: never force. (mke2fs would not ask anyway with stdin closed; the probes
        // are the guard.)
        let c = cmd("mke2fs").args(["-t", fstype, device]);
        tracing::info!(command = %c, "making filesystem");
        self.runner.run(&c)?.check(&c)?;
        Ok(HostChange::Changed)
    }

    /// The filesystem type blkid names on the device, if any.
    pub fn fstype(&self, device: &str) -> Result<Option<String>, FsError> {
        Ok(self.probe(device)?.fstype().map(str::to_owned))
    }

    /// The filesystem UUID (for `UUID=...` in fstab), `None` when there is none.
    /// `-c /dev/null` skips blkid's cache, which can hold a UUID from before an mkfs.
    pub fn uuid(&self, device: &str) -> Result<Option<String>, FsError> {
        let c = cmd("blkid").args(["-c", "/dev/null", "-s", "UUID", "-o", "value", device]);
        let out = self.runner.run(&c)?;
        match out.code {
            Some(0) => {
                let u = out.stdout.trim();
                Ok((!u.is_empty()).then(|| u.to_owned()))
            }
            Some(2) => Ok(None),
            _ => Err(CommandError::failed(&c, &out).into()),
        }
    }

    /// Grows the filesystem on `device` to fill it (online when mounted: ext4 grows while
    /// in use). A device with no filesystem is left alone: there is nothing to grow.
    pub fn grow(&self, device: &str) -> Result<HostChange, FsError> {
        match self.fstype(device)? {
            None => {
                tracing::debug!(device, "no filesystem to grow");
                Ok(HostChange::Unchanged)
            }
            Some(t) if is_ext(&t) => self.resize2fs(device),
            Some(t) => Err(FsError::Unsupported { fstype: t }),
        }
    }

    /// `resize2fs DEV` with no size: grow to the device's size. Idempotent: resize2fs
    /// says "Nothing to do!" when it already fills the device.
    pub fn resize2fs(&self, device: &str) -> Result<HostChange, FsError> {
        let c = cmd("resize2fs").arg(device);
        tracing::info!(command = %c, "growing filesystem");
        let out = self.runner.run(&c)?.check(&c)?;
        if format!("{}{}", out.stdout, out.stderr).contains("Nothing to do!") {
            Ok(HostChange::Unchanged)
        } else {
            Ok(HostChange::Changed)
        }
    }
}

fn probe_failed(device: &str, c: &Cmd, out: &super::command::Output) -> FsError {
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    FsError::ProbeFailed {
        device: device.to_owned(),
        probe: c
            .args
            .first()
            .map_or(c.program.clone(), |a| format!("{} {a}", c.program)),
        detail: format!(
            "{} {}",
            out.code
                .map_or("killed".to_owned(), |c| format!("exit {c}")),
            text
        )
        .trim()
        .to_owned(),
    }
}

/// Parses `/dev/x: UUID="..." TYPE="ext4" ...` (blkid's default output). Values are
/// double-quoted with `\"` and `\\` escaped.
pub fn parse_blkid_tags(stdout: &str) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for line in stdout.lines() {
        // Skip the "DEVICE:" prefix; a device path holds no `: ` in practice.
        let rest = line.split_once(": ").map_or(line, |(_, r)| r);
        let mut chars = rest.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
            if key.is_empty() || chars.next() != Some('=') {
                break;
            }
            let mut value = String::new();
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect();
            }
            tags.insert(key, value);
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};

    // Real outputs from util-linux 2.38.1 on loop devices.
    const BLKID_EXT4: &str = "/dev/loop4: UUID=\"2d03ac1d-00d1-4db8-a6ec-28322846edc4\" \
        VERSION=\"1.0\" BLOCK_SIZE=\"1024\" TYPE=\"ext4\" USAGE=\"filesystem\"\n";
    const WIPEFS_EXT4: &str = "DEVICE OFFSET TYPE UUID                                 LABEL\n\
        loop4  0x438  ext4 2d03ac1d-00d1-4db8-a6ec-28322846edc4 \n";
    const BLKID_PV: &str = "/dev/loop2: UUID=\"acmseO-1DDE-EDqu-BIns-Yqcw-kSRl-samyfM\" \
        VERSION=\"LVM2 001\" TYPE=\"LVM2_member\" USAGE=\"raid\"\n";

    fn fake() -> (Arc<RecordingRunner>, Fs) {
        let r = Arc::new(RecordingRunner::new());
        (r.clone(), Fs::new(r))
    }

    #[test]
    fn blkid_tags_parse_with_spaces_and_escapes() {
        let t = parse_blkid_tags(BLKID_PV);
        assert_eq!(t["TYPE"], "LVM2_member");
        assert_eq!(t["VERSION"], "LVM2 001");
        let t = parse_blkid_tags("/dev/x: LABEL=\"a \\\"b\\\"\" TYPE=\"ext4\"");
        assert_eq!(t["LABEL"], "a \"b\"");
        assert_eq!(t["TYPE"], "ext4");
    }

    #[test]
    fn mkfs_on_blank_device_runs_mke2fs_without_force() {
        let (r, fs) = fake();
        r.on("blkid -p /dev/vdb", Output::exit(2))
            .on("wipefs -n /dev/vdb", Output::ok(""))
            .on("mke2fs -t ext4 /dev/vdb", Output::ok(""));
        assert_eq!(fs.mkfs("/dev/vdb", "ext4").unwrap(), HostChange::Changed);
        assert_eq!(
            r.lines(),
            [
                "blkid -p /dev/vdb",
                "wipefs -n /dev/vdb",
                "mke2fs -t ext4 /dev/vdb"
            ]
        );
    }

    #[test]
    fn mkfs_refuses_when_either_probe_sees_something() {
        // blkid sees ext4.
        let (r, fs) = fake();
        r.on("blkid -p /dev/vdb", Output::ok(BLKID_EXT4))
            .on("wipefs -n /dev/vdb", Output::ok(WIPEFS_EXT4));
        let e = fs.mkfs("/dev/vdb", "ext4").unwrap_err();
        assert!(e.is_refusal());
        assert!(e.to_string().contains("TYPE=\"ext4\""), "{e}");
        assert!(!r.lines().iter().any(|l| l.starts_with("mke2fs")));

        // blkid misses it (exit 2), wipefs does not: still refused.
        let (r, fs) = fake();
        r.on("blkid -p /dev/vdb", Output::exit(2))
            .on("wipefs -n /dev/vdb", Output::ok(WIPEFS_EXT4));
        let e = fs.mkfs("/dev/vdb", "ext4").unwrap_err();
        assert!(
            e.to_string().contains("wipefs found loop4 0x438 ext4"),
            "{e}"
        );
        assert!(!r.lines().iter().any(|l| l.starts_with("mke2fs")));

        // blkid: several signatures (exit 8).
        let (r, fs) = fake();
        r.on(
            "blkid -p /dev/vdb",
            Output::exit(8).with_stderr("ambivalent result"),
        )
        .on("wipefs -n /dev/vdb", Output::ok(""));
        assert!(fs.mkfs("/dev/vdb", "ext4").unwrap_err().is_refusal());
    }

    #[test]
    fn a_missing_device_is_a_probe_failure_not_blank() {
        // Real: blkid -p exits 2 on a missing device; wipefs says why.
        let (r, fs) = fake();
        r.on("blkid -p /dev/nope", Output::exit(2)).on(
            "wipefs -n /dev/nope",
            Output::exit(1).with_stderr(
                "wipefs: error: /dev/nope: probing initialization failed: No such file or directory\n",
            ),
        );
        let e = fs.mkfs("/dev/nope", "ext4").unwrap_err();
        assert!(matches!(e, FsError::ProbeFailed { .. }), "{e}");
        assert!(!e.is_refusal());
        assert!(e.to_string().contains("No such file"), "{e}");
    }

    #[test]
    fn ensure_leaves_the_same_filesystem_alone() {
        let (r, fs) = fake();
        r.on("blkid -p /dev/vdb", Output::ok(BLKID_EXT4))
            .on("wipefs -n /dev/vdb", Output::ok(WIPEFS_EXT4));
        assert_eq!(
            fs.ensure("/dev/vdb", "ext4").unwrap(),
            HostChange::Unchanged
        );
        assert!(fs.ensure("/dev/vdb", "ext3").unwrap_err().is_refusal());
    }

    #[test]
    fn uuid_grow_and_unsupported() {
        let (r, fs) = fake();
        r.on(
            "blkid -c /dev/null -s UUID -o value /dev/vdb",
            Output::ok("2d03ac1d-00d1-4db8-a6ec-28322846edc4\n"),
        )
        .on(
            "blkid -c /dev/null -s UUID -o value /dev/vdc",
            Output::exit(2),
        );
        assert_eq!(
            fs.uuid("/dev/vdb").unwrap().as_deref(),
            Some("2d03ac1d-00d1-4db8-a6ec-28322846edc4")
        );
        assert_eq!(fs.uuid("/dev/vdc").unwrap(), None);

        let (r, fs) = fake();
        r.on("blkid -p /dev/vg/lv", Output::ok(BLKID_EXT4))
            .on("wipefs -n /dev/vg/lv", Output::ok(WIPEFS_EXT4))
            .on(
                "resize2fs /dev/vg/lv",
                Output::ok("The filesystem on /dev/vg/lv is now 52428800 (4k) blocks long.\n"),
            );
        assert_eq!(fs.grow("/dev/vg/lv").unwrap(), HostChange::Changed);
        let (r, fs) = fake();
        r.on(
            "resize2fs /dev/vg/lv",
            Output::ok("The filesystem is already 65536 (1k) blocks long.  Nothing to do!\n\n"),
        );
        assert_eq!(fs.resize2fs("/dev/vg/lv").unwrap(), HostChange::Unchanged);
        assert!(matches!(
            fs.mkfs("/dev/vdb", "xfs"),
            Err(FsError::Unsupported { .. })
        ));
        assert!(r
            .lines()
            .iter()
            .all(|l| !l.starts_with("blkid -p /dev/vdb")));
    }
}
