//! fstab and the mount table.
//!
//! On a real host `is_mounted` reads `/proc/self/mountinfo` and `mount TARGET` mounts from
//! fstab. Under `--root DIR` (tests) nothing is mounted: the mount table is simulated by the
//! file `DIR/run/omtd/mounts` (one mount point per line), which a test may edit to
//! "unmount" something. The mount point directory is created for real in both cases.

use std::fs;
use std::path::PathBuf;

use super::atomic::{self, Ownership};
use super::block;
use super::exec::{argv, run_ok};
use std::sync::Arc;

use super::fstab;
use super::root::Root;
use crate::agent::drivers::{DriverError, Mounts, Result};
use crate::host::command::CommandRunner;

const FSTAB: &str = "/etc/fstab";
const SIM_TABLE: &str = "/run/omtd/mounts";

pub struct LinuxMounts {
    root: Root,
    runner: Arc<dyn CommandRunner>,
}

impl LinuxMounts {
    pub fn new(root: Root, runner: Arc<dyn CommandRunner>) -> Self {
        LinuxMounts { root, runner }
    }

    fn read(&self, plan_path: &str) -> Result<String> {
        let p = self.root.map(plan_path)?;
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(DriverError::io(plan_path, e)),
        }
    }

    fn sim_table(&self) -> Result<Vec<String>> {
        Ok(self
            .read(SIM_TABLE)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn write_sim_table(&self, targets: &[String]) -> Result<()> {
        let mut text = targets.join("\n");
        text.push('\n');
        atomic::write(
            &self.root.map(SIM_TABLE)?,
            text.as_bytes(),
            0o644,
            Ownership::default(),
        )
    }
}

impl Mounts for LinuxMounts {
    fn owned_entries(&mut self) -> Result<Vec<String>> {
        Ok(block::owned(&self.read(FSTAB)?))
    }

    fn write_owned_entries(&mut self, lines: &[String]) -> Result<()> {
        let text = self.read(FSTAB)?;
        let targets: Vec<String> = lines.iter().filter_map(|l| fstab::target(l)).collect();
        let new = block::render(&text, lines, fstab::adopt(&targets));
        if new == text {
            return Ok(());
        }
        let path = self.root.map(FSTAB)?;
        let mode = current_mode(&path).unwrap_or(0o644);
        atomic::write(&path, new.as_bytes(), mode, Ownership::default())
    }

    fn is_mounted(&mut self, target: &str) -> Result<bool> {
        if self.root.is_confined() {
            return Ok(self.sim_table()?.iter().any(|t| t == target));
        }
        let info = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| DriverError::io("/proc/self/mountinfo", e))?;
        Ok(mountinfo_has(&info, target))
    }

    fn mount(&mut self, target: &str) -> Result<()> {
        let dir = self.root.map(target)?;
        fs::create_dir_all(&dir).map_err(|e| DriverError::io(target, e))?;
        if self.root.is_confined() {
            let mut table = self.sim_table()?;
            if !table.iter().any(|t| t == target) {
                table.push(target.to_owned());
                self.write_sim_table(&table)?;
            }
            return Ok(());
        }
        run_ok(&*self.runner, &argv(&["mount", target]))?;
        Ok(())
    }

    fn unmount(&mut self, target: &str) -> Result<()> {
        if self.root.is_confined() {
            let table: Vec<String> = self
                .sim_table()?
                .into_iter()
                .filter(|t| t != target)
                .collect();
            return self.write_sim_table(&table);
        }
        run_ok(&*self.runner, &argv(&["umount", target]))?;
        Ok(())
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        self.root.map(FSTAB).into_iter().collect()
    }
}

fn current_mode(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| m.mode() & 0o7777)
}

/// Whether `/proc/self/mountinfo` lists `target` as a mount point (field 5, octal-escaped).
pub fn mountinfo_has(info: &str, target: &str) -> bool {
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| fstab::unescape(mp) == target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};

    #[test]
    fn mountinfo() {
        let info = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 0:35 / /srv/my\\040data rw - nfs h:/x rw\n";
        assert!(mountinfo_has(info, "/"));
        assert!(mountinfo_has(info, "/srv/my data"));
        assert!(!mountinfo_has(info, "/srv"));
    }

    #[test]
    fn real_host_mount_command_line() {
        let fake = Arc::new(RecordingRunner::answering(|_| Output::ok("")));
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("mnt/x").display().to_string();
        let mut m = LinuxMounts::new(Root::new(None).unwrap(), fake.clone());
        m.mount(&target).unwrap();
        assert!(d.path().join("mnt/x").is_dir());
        m.unmount(&target).unwrap();
        assert_eq!(
            fake.lines(),
            vec![format!("mount {target}"), format!("umount {target}")]
        );
    }

    #[test]
    fn confined_mounts_are_simulated_and_fstab_keeps_foreign_lines() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        let foreign = "# /etc/fstab\nUUID=1 / ext4 errors=remount-ro 0 1\nh:/old /srv/executor/database nfs defaults 0 0\n";
        fs::write(d.path().join("etc/fstab"), foreign).unwrap();
        let mut m = LinuxMounts::new(
            Root::new(Some(d.path().to_path_buf())).unwrap(),
            Arc::new(RecordingRunner::answering(|_| {
                Output::exit(1).with_stderr("must not run")
            })),
        );
        let l = "h:/srv/executor/database /srv/executor/database nfs defaults 0 0".to_owned();
        m.write_owned_entries(std::slice::from_ref(&l)).unwrap();
        let text = fs::read_to_string(d.path().join("etc/fstab")).unwrap();
        assert!(text.starts_with("# /etc/fstab\nUUID=1 / ext4 errors=remount-ro 0 1\n"));
        assert!(
            !text.contains("h:/old"),
            "adopted foreign line dropped: {text}"
        );
        assert_eq!(m.owned_entries().unwrap(), vec![l]);
        assert!(!m.is_mounted("/srv/executor/database").unwrap());
        m.mount("/srv/executor/database").unwrap();
        assert!(m.is_mounted("/srv/executor/database").unwrap());
        assert!(d.path().join("srv/executor/database").is_dir());
        m.unmount("/srv/executor/database").unwrap();
        assert!(!m.is_mounted("/srv/executor/database").unwrap());
    }
}
