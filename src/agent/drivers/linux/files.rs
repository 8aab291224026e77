//! Files with exact bytes, mode and owner, replaced atomically, optionally validated before
//! they go live. Secret files are written 0600 and nothing about their content (not even a
//! validator's output, which may quote it) reaches an error or a log.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};
use omtd_crds::plan::FileSpec;

use super::atomic::{self, Ownership};
use super::exec;
use std::sync::Arc;

use super::root::Root;
use crate::agent::drivers::{DriverError, FileState, Files, Result};
use crate::host::command::CommandRunner;

pub struct LinuxFiles {
    root: Root,
    runner: Arc<dyn CommandRunner>,
    /// Only root may chown; otherwise owner and group are neither set nor compared.
    chown: bool,
}

impl LinuxFiles {
    pub fn new(root: Root, runner: Arc<dyn CommandRunner>) -> Self {
        LinuxFiles {
            root,
            runner,
            chown: Uid::effective().is_root(),
        }
    }

    fn ownership(&self, spec: &FileSpec) -> Result<Ownership> {
        if !self.chown {
            return Ok(Ownership::default());
        }
        let uid = match &spec.owner {
            None => None,
            Some(name) => Some(
                User::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| DriverError::UnknownOwner {
                        what: "user",
                        name: name.clone(),
                    })?
                    .uid
                    .as_raw(),
            ),
        };
        let gid = match &spec.group {
            None => None,
            Some(name) => Some(
                Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| DriverError::UnknownOwner {
                        what: "group",
                        name: name.clone(),
                    })?
                    .gid
                    .as_raw(),
            ),
        };
        Ok(Ownership { uid, gid })
    }

    /// Run the validate command on the candidate: `{}` in it stands for the candidate path.
    fn validate(&mut self, spec: &FileSpec, candidate: &std::path::Path) -> Result<()> {
        let Some(template) = &spec.validate else {
            return Ok(());
        };
        let cand = candidate.display().to_string();
        let argv: Vec<String> = template
            .split_whitespace()
            .map(|w| w.replace("{}", &cand))
            .collect();
        let out = exec::run(&*self.runner, &argv)?;
        if out.success() {
            return Ok(());
        }
        let message = if spec.secret {
            // A validator may quote the offending line: for a secret, say only that it failed.
            format!(
                "`{template}` exited {:?} (output withheld: secret file)",
                out.code
            )
        } else {
            exec::failed(&argv, &out).to_string()
        };
        Err(DriverError::Invalid {
            path: spec.path.clone(),
            message,
        })
    }
}

impl Files for LinuxFiles {
    fn read(&mut self, path: &str) -> Result<Option<FileState>> {
        let p = self.root.map(path)?;
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DriverError::io(path, e)),
        };
        if !meta.is_file() {
            // A directory or symlink where a file should be: report it as different content
            // so the write (a rename) replaces a symlink; a directory makes the rename fail
            // with a clear error.
            return Ok(Some(FileState {
                content: Vec::new(),
                mode: u32::MAX,
                owner: String::new(),
                group: String::new(),
            }));
        }
        let content = fs::read(&p).map_err(|e| DriverError::io(path, e))?;
        Ok(Some(FileState {
            content,
            mode: meta.mode() & 0o7777,
            owner: user_name(meta.uid()),
            group: group_name(meta.gid()),
        }))
    }

    fn write(&mut self, spec: &FileSpec, mode: u32) -> Result<()> {
        let p = self.root.map(&spec.path)?;
        let own = self.ownership(spec)?;
        let candidate = atomic::prepare(&p, spec.content.as_bytes(), mode, own)?;
        self.validate(spec, candidate.path())?;
        candidate.install()
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        let p = self.root.map(path)?;
        match fs::remove_file(&p) {
            Ok(()) => atomic::sync_dir(&p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::io(path, e)),
        }
    }

    fn enforces_ownership(&self) -> bool {
        self.chown
    }

    fn host_path(&self, path: &str) -> Option<PathBuf> {
        self.root.map(path).ok()
    }
}

fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner, SystemRunner};

    fn spec(path: &str, content: &str) -> FileSpec {
        FileSpec::plain(path, content)
    }

    fn files(dir: &std::path::Path) -> LinuxFiles {
        LinuxFiles::new(
            Root::new(Some(dir.to_path_buf())).unwrap(),
            Arc::new(SystemRunner::for_drivers()),
        )
    }

    #[test]
    fn exact_bytes_without_a_trailing_newline() {
        let d = tempfile::tempdir().unwrap();
        let mut f = files(d.path());
        f.write(&spec("/etc/mesos-master/quorum", "1"), 0o644)
            .unwrap();
        let st = f.read("/etc/mesos-master/quorum").unwrap().unwrap();
        assert_eq!(st.content, b"1");
        assert_eq!(st.mode, 0o644);
        assert_eq!(
            fs::read(d.path().join("etc/mesos-master/quorum")).unwrap(),
            b"1"
        );
    }

    #[test]
    fn a_failed_validation_keeps_the_live_file_and_hides_secret_output() {
        let d = tempfile::tempdir().unwrap();
        let mut f = files(d.path());
        f.write(&spec("/etc/x.conf", "good"), 0o644).unwrap();
        let mut bad = spec("/etc/x.conf", "hunter2");
        bad.validate = Some("sh -c false {}".into());
        bad.secret = true;
        let err = f.write(&bad, 0o600).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(fs::read(d.path().join("etc/x.conf")).unwrap(), b"good");
        // no temporary left behind
        assert_eq!(fs::read_dir(d.path().join("etc")).unwrap().count(), 1);
    }

    #[test]
    fn validate_sees_the_candidate() {
        let d = tempfile::tempdir().unwrap();
        let fake = Arc::new(RecordingRunner::answering(|_| Output::ok("")));
        let mut f = LinuxFiles::new(
            Root::new(Some(d.path().to_path_buf())).unwrap(),
            fake.clone(),
        );
        let mut s = spec("/etc/apache2/apache2.conf", "x");
        s.validate = Some("apache2ctl -t -f {}".into());
        f.write(&s, 0o644).unwrap();
        let line = &fake.lines()[0];
        assert!(line.starts_with("apache2ctl -t -f "), "{line}");
        assert!(line.contains("/etc/apache2/.apache2.conf.omtd-"), "{line}");
    }

    #[test]
    fn missing_is_none_and_remove_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let mut f = files(d.path());
        assert!(f.read("/nope").unwrap().is_none());
        f.remove("/nope").unwrap();
    }
}
