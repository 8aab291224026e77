//! The built-in check of a file under `/etc/apache2` ([`VALIDATE_APACHE`]): a site or a
//! module's `.load` is not a config by itself, so the candidate is checked as part of the
//! whole configuration it is about to join, without ever being live.
//!
//! How, with Debian's apache2 2.4: a stage directory mirrors the root's `/etc/apache2`
//! (directories re-made, every file a symlink to its original, so nothing is copied and a
//! secret stays where it is), except that the file being replaced is a symlink to the
//! candidate. `apache2 -t -d STAGE -f STAGE/apache2.conf` then reads Debian's unchanged main
//! config: its `Include`s are relative to the server root (`-d`), so they see the stage and
//! its candidate, never the live file. Debian's config needs the `APACHE_*` variables that
//! `envvars` (through `apache2ctl`) would set; they point into the stage, so the check needs
//! no run directory on the host and touches nothing of the running server. `apache2ctl -t`
//! itself cannot be pointed at a staged tree without running the stage's `envvars`.
//!
//! [`VALIDATE_APACHE`]: omtd_crds::plan::VALIDATE_APACHE

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::root::Root;
use crate::agent::drivers::{DriverError, Result};
use crate::host::command::{Cmd, CommandRunner};

/// Apache's configuration directory on a Debian host (a plan path).
pub const APACHE_DIR: &str = "/etc/apache2";
/// Lines of apache's complaint that reach the report: the first name the file and line.
const MESSAGE_LINES: usize = 4;

/// Checks Apache's config with `candidate` in place of `plan_path`. `Ok(None)`: it passes;
/// `Ok(Some(message))`: apache refused it, saying why (stage paths shown as plan paths).
pub fn check(
    runner: &dyn CommandRunner,
    root: &Root,
    plan_path: &str,
    candidate: &Path,
) -> Result<Option<String>> {
    let rel = plan_path
        .strip_prefix(APACHE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            DriverError::Other(format!(
                "{plan_path}: the Apache check applies only to files under {APACHE_DIR}"
            ))
        })?;
    let live_conf = root.map(APACHE_DIR)?;
    let stage = tempfile::Builder::new()
        .prefix("omtd-apache-check-")
        .tempdir()
        .map_err(|e| DriverError::io("apache check stage", e))?;
    let conf = stage.path().join("apache2");
    let run = stage.path().join("run");
    fs::create_dir_all(&run).map_err(|e| DriverError::io(run.display().to_string(), e))?;
    let mirror = Mirror {
        from: &live_conf,
        to: &conf,
        replaced: &live_conf.join(rel),
        candidate,
    };
    mirror.dir(&live_conf, &conf)?;
    mirror.place(&conf.join(rel))?;

    let conf_s = conf.display().to_string();
    let run_s = run.display().to_string();
    let cmd = Cmd::new("apache2")
        .args(["-t", "-d", &conf_s, "-f", &format!("{conf_s}/apache2.conf")])
        .env("APACHE_RUN_DIR", &run_s)
        .env("APACHE_LOCK_DIR", &run_s)
        .env("APACHE_LOG_DIR", &run_s)
        .env("APACHE_PID_FILE", format!("{run_s}/apache2.pid"))
        .env("APACHE_RUN_USER", "www-data")
        .env("APACHE_RUN_GROUP", "www-data");
    let out = runner
        .run(&cmd)
        .map_err(|e| DriverError::Other(e.to_string()))?;
    if out.success() {
        return Ok(None);
    }
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let first: Vec<&str> = text.trim().lines().take(MESSAGE_LINES).collect();
    let message = first.join("\n").replace(&conf_s, APACHE_DIR);
    let code = out
        .code
        .map_or("a signal".to_owned(), |c| format!("exit {c}"));
    Ok(Some(format!("apache2 -t ({code}): {message}")))
}

/// The stage's view of the root's Apache directory.
struct Mirror<'a> {
    from: &'a Path,
    to: &'a Path,
    /// The live file the candidate stands in for (left out of the stage).
    replaced: &'a Path,
    candidate: &'a Path,
}

impl Mirror<'_> {
    fn dir(&self, src: &Path, dst: &Path) -> Result<()> {
        fs::create_dir_all(dst).map_err(|e| io(dst, e))?;
        let entries = match fs::read_dir(src) {
            Ok(e) => e,
            // No Apache config under the root: apache's own complaint says so.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(src, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(src, e))?;
            let path = entry.path();
            if path == self.replaced || path == self.candidate {
                continue;
            }
            let target = dst.join(entry.file_name());
            let kind = entry.file_type().map_err(|e| io(&path, e))?;
            if kind.is_dir() {
                self.dir(&path, &target)?;
            } else if kind.is_symlink() {
                let link = fs::read_link(&path).map_err(|e| io(&path, e))?;
                symlink(self.relink(&link), &target).map_err(|e| io(&target, e))?;
            } else {
                symlink(&path, &target).map_err(|e| io(&target, e))?;
            }
        }
        Ok(())
    }

    /// A symlink's target in the stage: Debian's relative links
    /// (`../sites-available/x.conf`) resolve inside the mirror as they are; an absolute one
    /// into `/etc/apache2` is redirected into the stage, so the candidate still wins.
    fn relink(&self, link: &Path) -> PathBuf {
        if let Ok(rest) = link.strip_prefix(APACHE_DIR) {
            return self.to.join(rest);
        }
        if let Ok(rest) = link.strip_prefix(self.from) {
            return self.to.join(rest);
        }
        link.to_path_buf()
    }

    fn place(&self, at: &Path) -> Result<()> {
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        // A live file that is a symlink was skipped above, so nothing stands here.
        symlink(self.candidate, at).map_err(|e| io(at, e))
    }
}

fn io(path: &Path, e: std::io::Error) -> DriverError {
    DriverError::io(path.display().to_string(), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};
    use std::sync::{Arc, Mutex};

    /// What the fake apache2 saw in its stage: the site it would include, and where an
    /// absolute symlink of the live tree leads inside the stage.
    #[test]
    fn the_stage_has_the_candidate_in_the_live_files_place() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("etc/apache2");
        fs::create_dir_all(conf.join("sites-enabled")).unwrap();
        fs::create_dir_all(conf.join("sites-available")).unwrap();
        fs::write(
            conf.join("apache2.conf"),
            "IncludeOptional sites-enabled/*.conf\n",
        )
        .unwrap();
        fs::write(conf.join("sites-enabled/omtd.conf"), "live").unwrap();
        fs::write(conf.join("sites-available/other.conf"), "other").unwrap();
        symlink(
            "/etc/apache2/sites-available/other.conf",
            conf.join("sites-enabled/other.conf"),
        )
        .unwrap();
        let candidate = conf.join("sites-enabled/.omtd.conf.omtd-1-0");
        fs::write(&candidate, "candidate").unwrap();

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let runner = RecordingRunner::answering(move |cmd| {
            let stage = PathBuf::from(&cmd.args[2]);
            let mut s = s2.lock().unwrap();
            for f in ["sites-enabled/omtd.conf", "sites-enabled/other.conf"] {
                s.push(fs::read_to_string(stage.join(f)).unwrap_or_default());
            }
            s.push(
                fs::read_dir(stage.join("sites-enabled"))
                    .unwrap()
                    .count()
                    .to_string(),
            );
            Output::exit(1).with_stderr(format!(
                "AH00526: Syntax error on line 2 of {}/sites-enabled/omtd.conf:\nInvalid command 'Bogus'",
                stage.display()
            ))
        });
        let root = Root::new(Some(d.path().to_path_buf())).unwrap();
        let msg = check(
            &runner,
            &root,
            "/etc/apache2/sites-enabled/omtd.conf",
            &candidate,
        )
        .unwrap()
        .unwrap();
        assert_eq!(*seen.lock().unwrap(), ["candidate", "other", "2"]);
        assert!(
            msg.contains(
                "line 2 of /etc/apache2/sites-enabled/omtd.conf:\nInvalid command 'Bogus'"
            ),
            "{msg}"
        );
        let line = &runner.lines()[0];
        assert!(line.starts_with("apache2 -t -d "), "{line}");
        // The live file was never touched.
        assert_eq!(
            fs::read_to_string(conf.join("sites-enabled/omtd.conf")).unwrap(),
            "live"
        );
    }

    #[test]
    fn only_files_under_etc_apache2() {
        let d = tempfile::tempdir().unwrap();
        let runner = RecordingRunner::answering(|_| Output::ok(""));
        let root = Root::new(Some(d.path().to_path_buf())).unwrap();
        let err = check(&runner, &root, "/etc/nginx/x.conf", Path::new("/nope")).unwrap_err();
        assert!(err.to_string().contains("only to files under"), "{err}");
        assert!(runner.lines().is_empty());
    }
}
