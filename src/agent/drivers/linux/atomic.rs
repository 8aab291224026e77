//! Atomic file replacement: a temporary file in the same directory, written, given its mode
//! and owner, fsynced, renamed over the target, and the directory fsynced, so that a crash at
//! any point leaves either the old file or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::agent::drivers::{DriverError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Owner ids to give the file (None: leave as created).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A written but not yet installed candidate. Dropping it removes the temporary file.
pub struct Candidate {
    tmp: PathBuf,
    target: PathBuf,
    installed: bool,
}

impl Candidate {
    /// The temporary file's path (for a validate command).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Rename over the target and make the rename durable.
    pub fn install(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.target).map_err(|e| io(&self.target, e))?;
        self.installed = true;
        sync_dir(&self.target)
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Write `content` to a candidate beside `target` (parent directories created).
pub fn prepare(target: &Path, content: &[u8], mode: u32, own: Ownership) -> Result<Candidate> {
    let dir = target
        .parent()
        .ok_or_else(|| DriverError::BadPath(target.display().to_string()))?;
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(
        &name,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    let candidate = Candidate {
        tmp,
        target: target.to_path_buf(),
        installed: false,
    };
    // Created 0600 so a secret is never readable by others, even for a moment; the final
    // mode is set before the rename.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&candidate.tmp)
        .map_err(|e| io(&candidate.tmp, e))?;
    f.write_all(content).map_err(|e| io(&candidate.tmp, e))?;
    if own.uid.is_some() || own.gid.is_some() {
        std::os::unix::fs::fchown(&f, own.uid, own.gid).map_err(|e| io(&candidate.tmp, e))?;
    }
    // chown clears set-id bits, so the mode goes on after it.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io(&candidate.tmp, e))?;
    f.sync_all().map_err(|e| io(&candidate.tmp, e))?;
    Ok(candidate)
}

/// The temporary file beside `name`: `.NAME.omtd-PID-N`.
fn temp_name(name: &str, pid: u32, n: u64) -> String {
    format!(".{name}.omtd-{pid}-{n}")
}

/// The writer's pid when `candidate` is one of our temporary files for `name` (exactly
/// [`temp_name`]'s shape), else None.
fn temp_pid(name: &str, candidate: &str) -> Option<u32> {
    let rest = candidate
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix(".omtd-")?;
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Remove temporary files an interrupted write of `target` left beside it (a crash between
/// `prepare` and `install`: a copy of a secret, say). Only regular files of exactly our
/// naming for this target, and none of this process's own; returns the paths removed.
pub fn remove_stale_temps(target: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    // A missing directory has nothing left in it; other errors only cost the clean-up.
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = temp_pid(&name, &file_name.to_string_lossy()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        // Never follow a link or touch a directory that merely looks like ours.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary file")
            }
        }
    }
    if !removed.is_empty() {
        let _ = sync_dir(target);
    }
    removed
}

/// Write atomically in one go.
pub fn write(target: &Path, content: &[u8], mode: u32, own: Ownership) -> Result<()> {
    prepare(target, content, mode, own)?.install()
}

/// fsync the directory holding `path` so a rename or unlink in it survives a crash.
pub fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

fn io(path: &Path, e: std::io::Error) -> DriverError {
    DriverError::io(path.display().to_string(), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_exact_bytes_and_mode_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("a/b/flag");
        write(&t, b"1", 0o640, Ownership::default()).unwrap();
        assert_eq!(fs::read(&t).unwrap(), b"1");
        assert_eq!(fs::metadata(&t).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_dir(t.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn only_our_exact_temp_names_of_the_target_are_stale() {
        assert_eq!(temp_pid("zk", &temp_name("zk", 41, 7)), Some(41));
        for other in [
            ".zk.omtd-41",
            ".zk.omtd-41-",
            ".zk.omtd--7",
            ".zk.omtd-4x-7",
            ".zk.omtd-41-7.bak",
            ".zkx.omtd-41-7",
            "zk.omtd-41-7",
            ".zk.swp",
            ".exports.omtd-41-7",
        ] {
            assert_eq!(temp_pid("zk", other), None, "{other}");
        }
    }

    #[test]
    fn stale_temps_go_and_everything_else_stays() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("zk");
        fs::write(&t, "live").unwrap();
        let stale = d.path().join(temp_name("zk", std::process::id() + 1, 3));
        let ours = d.path().join(temp_name("zk", std::process::id(), 3));
        let unrelated = d.path().join(".zk.keep");
        let dir_alike = d.path().join(temp_name("zk", std::process::id() + 1, 4));
        for p in [&stale, &ours, &unrelated] {
            fs::write(p, "x").unwrap();
        }
        fs::create_dir(&dir_alike).unwrap();
        assert_eq!(remove_stale_temps(&t), vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(ours.exists() && unrelated.exists() && dir_alike.exists() && t.exists());
    }

    #[test]
    fn a_dropped_candidate_leaves_the_live_file() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("f");
        fs::write(&t, "old").unwrap();
        let c = prepare(&t, b"new", 0o644, Ownership::default()).unwrap();
        drop(c);
        assert_eq!(fs::read(&t).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
