//! `/etc/exports`: omtd's lines in a managed block, foreign lines kept, then the export table
//! reloaded (`exportfs -ra`). A reload that fails is remembered and retried on the next pass,
//! since the file alone would then look converged.
//!
//! Under `--root` the reload command runs only when one is configured (`--exports-reload`):
//! a test machine has no nfsd.

use std::fs;
use std::path::PathBuf;

use super::atomic::{self, Ownership};
use super::block::{self, Foreign};
use super::exec::run_ok;
use std::sync::Arc;

use super::root::Root;
use crate::agent::drivers::{DriverError, Exports, Result};
use crate::host::command::CommandRunner;

const EXPORTS: &str = "/etc/exports";

pub struct LinuxExports {
    root: Root,
    reload: Option<Vec<String>>,
    runner: Arc<dyn CommandRunner>,
    reload_pending: bool,
}

impl LinuxExports {
    pub fn new(root: Root, reload: Option<Vec<String>>, runner: Arc<dyn CommandRunner>) -> Self {
        LinuxExports {
            root,
            reload,
            runner,
            reload_pending: false,
        }
    }

    fn read(&self) -> Result<String> {
        let p = self.root.map(EXPORTS)?;
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(DriverError::io(EXPORTS, e)),
        }
    }

    fn do_reload(&mut self) -> Result<()> {
        if let Some(cmd) = &self.reload {
            let cmd = cmd.clone();
            run_ok(&*self.runner, &cmd)?;
        }
        self.reload_pending = false;
        Ok(())
    }
}

impl Exports for LinuxExports {
    fn owned_lines(&mut self) -> Result<Vec<String>> {
        Ok(block::owned(&self.read()?))
    }

    fn write_owned_lines(&mut self, lines: &[String]) -> Result<()> {
        let text = self.read()?;
        let owned: Vec<(String, String)> = lines.iter().flat_map(|l| pairs(l)).collect();
        let new = block::render(&text, lines, |l| adopt(l, &owned));
        if new != text {
            let path = self.root.map(EXPORTS)?;
            atomic::write(&path, new.as_bytes(), 0o644, Ownership::default())?;
            self.reload_pending = true;
        }
        if self.reload_pending {
            self.do_reload()?;
        }
        Ok(())
    }

    fn reload_if_pending(&mut self) -> Result<bool> {
        if !self.reload_pending {
            return Ok(false);
        }
        self.do_reload()?;
        Ok(true)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        self.root.map(EXPORTS).into_iter().collect()
    }
}

/// The (path, client) pairs of an exports line: `path client(opts) client2(opts) ...`.
fn pairs(line: &str) -> Vec<(String, String)> {
    let mut words = line.split_whitespace();
    let Some(path) = words.next() else {
        return Vec::new();
    };
    words
        .map(|w| {
            let client = w.split('(').next().unwrap_or(w);
            (path.to_owned(), client.to_owned())
        })
        .collect()
}

/// A foreign line exporting a path to a client omtd now owns loses that client (and goes
/// when no client is left); anything else is kept as is.
fn adopt(line: &str, owned: &[(String, String)]) -> Foreign {
    let mut words = line.split_whitespace();
    let Some(path) = words.next() else {
        return Foreign::Keep;
    };
    let clients: Vec<&str> = words.collect();
    let kept: Vec<&str> = clients
        .iter()
        .copied()
        .filter(|w| {
            let client = w.split('(').next().unwrap_or(w);
            !owned.iter().any(|(p, c)| p == path && c == client)
        })
        .collect();
    if kept.len() == clients.len() {
        Foreign::Keep
    } else if kept.is_empty() {
        Foreign::Drop
    } else {
        Foreign::Replace(format!("{path} {}", kept.join(" ")))
    }
}

#[cfg(test)]
#[path = "exports_never_panic.rs"]
mod never_panic;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};

    #[test]
    fn foreign_lines_kept_owned_adopted_reload_once() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/exports"),
            "# exports\n/srv/other 10.0.0.9(ro)\n/srv/executor/database 10.0.0.21(rw,sync) 10.0.0.30(ro)\n",
        )
        .unwrap();
        let fake = Arc::new(RecordingRunner::answering(|_| Output::ok("")));
        let mut e = LinuxExports::new(
            Root::new(Some(d.path().to_path_buf())).unwrap(),
            Some(vec!["exportfs".into(), "-ra".into()]),
            fake.clone(),
        );
        let l =
            "/srv/executor/database 10.0.0.21(rw,sync,no_subtree_check,no_root_squash)".to_owned();
        e.write_owned_lines(std::slice::from_ref(&l)).unwrap();
        let text = fs::read_to_string(d.path().join("etc/exports")).unwrap();
        assert!(
            text.starts_with(
                "# exports\n/srv/other 10.0.0.9(ro)\n/srv/executor/database 10.0.0.30(ro)\n"
            ),
            "{text}"
        );
        assert_eq!(e.owned_lines().unwrap(), vec![l.clone()]);
        // Same lines again: no write, no reload.
        e.write_owned_lines(std::slice::from_ref(&l)).unwrap();
        assert_eq!(fake.lines(), vec!["exportfs -ra"]);
    }

    #[test]
    fn a_failed_reload_is_retried() {
        let d = tempfile::tempdir().unwrap();
        let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f2 = fail.clone();
        let fake = Arc::new(RecordingRunner::answering(move |_| {
            if f2.load(std::sync::atomic::Ordering::SeqCst) {
                Output::exit(1).with_stderr("exportfs: no nfsd")
            } else {
                Output::ok("")
            }
        }));
        let mut e = LinuxExports::new(
            Root::new(Some(d.path().to_path_buf())).unwrap(),
            Some(vec!["exportfs".into(), "-ra".into()]),
            fake.clone(),
        );
        assert!(e.write_owned_lines(&["/a b(rw)".into()]).is_err());
        fail.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(e.reload_if_pending().unwrap());
        assert!(!e.reload_if_pending().unwrap());
        assert_eq!(fake.lines().len(), 2);
    }
}
