//! Services through systemd (`systemctl`) where systemd is PID 1 (`/run/systemd/system`
//! exists), else through SysV init scripts.
//!
//! SysV has no masking: a service planned `masked` on a SysV host is kept stopped and
//! disabled (its `S` links renamed to `K`, as `update-rc.d NAME disable` does), which is as
//! close as SysV gets; `can_mask` tells the agent not to expect more.
//!
//! Under `--root DIR` (tests) the scripts are `DIR/etc/init.d/NAME`, run directly, and
//! enabling edits the `DIR/etc/rcN.d` links itself instead of calling `update-rc.d`, which
//! only knows the real `/etc`.

use std::fs;
use std::path::{Path, PathBuf};

use super::exec::{self, argv, run_ok};
use std::sync::Arc;

use super::root::Root;
use crate::agent::drivers::{DriverError, Result, ServiceStatus, Services};
use crate::host::command::CommandRunner;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Systemd,
    SysV,
}

pub struct LinuxServices {
    flavor: Flavor,
    root: Root,
    runner: Arc<dyn CommandRunner>,
}

/// Runlevels whose `S` links mean "enabled".
const START_LEVELS: [&str; 4] = ["2", "3", "4", "5"];
const STOP_LEVELS: [&str; 3] = ["0", "1", "6"];

impl LinuxServices {
    /// systemd when it runs (and the agent is not confined to a test root), else SysV.
    pub fn detect(root: Root, runner: Arc<dyn CommandRunner>) -> Self {
        let flavor = if !root.is_confined() && Path::new("/run/systemd/system").exists() {
            Flavor::Systemd
        } else {
            Flavor::SysV
        };
        Self::with_flavor(flavor, root, runner)
    }

    pub fn with_flavor(flavor: Flavor, root: Root, runner: Arc<dyn CommandRunner>) -> Self {
        LinuxServices {
            flavor,
            root,
            runner,
        }
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    fn etc(&self) -> PathBuf {
        match self.root.dir() {
            Some(d) => d.join("etc"),
            None => PathBuf::from("/etc"),
        }
    }

    fn script(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.etc().join("init.d").join(name))
    }

    /// The command line for a SysV action.
    fn sysv(&self, name: &str, action: &str) -> Result<Vec<String>> {
        let script = self.script(name)?;
        Ok(if self.root.is_confined() {
            vec![script.display().to_string(), action.to_owned()]
        } else {
            argv(&["service", name, action])
        })
    }

    fn systemctl(&mut self, verb: &str, name: &str) -> Result<()> {
        check_name(name)?;
        run_ok(
            &*self.runner,
            &argv(&["systemctl", verb, &format!("{name}.service")]),
        )?;
        Ok(())
    }

    fn sysv_action(&mut self, name: &str, action: &str) -> Result<()> {
        if !self.script(name)?.exists() {
            return Err(DriverError::NoSuchService(name.to_owned()));
        }
        let line = self.sysv(name, action)?;
        run_ok(&*self.runner, &line)?;
        Ok(())
    }

    fn sysv_enabled(&self, name: &str) -> bool {
        START_LEVELS
            .iter()
            .any(|l| find_link(&self.etc().join(format!("rc{l}.d")), 'S', name).is_some())
    }

    fn sysv_set_enabled(&mut self, name: &str, enable: bool) -> Result<()> {
        if !self.script(name)?.exists() {
            return Err(DriverError::NoSuchService(name.to_owned()));
        }
        if !self.root.is_confined() {
            let has_links = START_LEVELS.iter().chain(STOP_LEVELS.iter()).any(|l| {
                let dir = self.etc().join(format!("rc{l}.d"));
                find_link(&dir, 'S', name).is_some() || find_link(&dir, 'K', name).is_some()
            });
            if !has_links {
                run_ok(&*self.runner, &argv(&["update-rc.d", name, "defaults"]))?;
            }
            let verb = if enable { "enable" } else { "disable" };
            run_ok(&*self.runner, &argv(&["update-rc.d", name, verb]))?;
            return Ok(());
        }
        // Confined: do what update-rc.d does to the links, inside the root.
        for l in START_LEVELS {
            let dir = self.etc().join(format!("rc{l}.d"));
            fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let (from, to) = if enable { ('K', 'S') } else { ('S', 'K') };
            if let Some(link) = find_link(&dir, from, name) {
                fs::remove_file(&link).map_err(|e| io(&link, e))?;
            }
            if find_link(&dir, to, name).is_none() {
                let link = dir.join(format!("{to}01{name}"));
                std::os::unix::fs::symlink(format!("../init.d/{name}"), &link)
                    .map_err(|e| io(&link, e))?;
            }
        }
        Ok(())
    }
}

impl Services for LinuxServices {
    fn reload_units(&mut self) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => {
                run_ok(&*self.runner, &argv(&["systemctl", "daemon-reload"]))?;
                Ok(())
            }
            Flavor::SysV => Ok(()),
        }
    }

    fn status(&mut self, name: &str) -> Result<ServiceStatus> {
        match self.flavor {
            Flavor::Systemd => {
                check_name(name)?;
                let line = argv(&[
                    "systemctl",
                    "show",
                    "--property=LoadState,ActiveState,UnitFileState",
                    &format!("{name}.service"),
                ]);
                let out = run_ok(&*self.runner, &line)?;
                Ok(parse_systemctl_show(&out.stdout))
            }
            Flavor::SysV => {
                let script = self.script(name)?;
                if !script.exists() {
                    return Ok(ServiceStatus::default());
                }
                let line = self.sysv(name, "status")?;
                let out = exec::run(&*self.runner, &line)?;
                // LSB: 0 running; 1 dead with a pid file; 2 dead with a lock file;
                // 3 not running; 4 unknown (an error).
                let running = match out.code {
                    Some(0) => true,
                    Some(1..=3) => false,
                    _ => return Err(exec::failed(&line, &out)),
                };
                Ok(ServiceStatus {
                    installed: true,
                    running,
                    enabled: self.sysv_enabled(name),
                    masked: false,
                    starting: false,
                })
            }
        }
    }

    fn start(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("start", name),
            Flavor::SysV => self.sysv_action(name, "start"),
        }
    }

    fn stop(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("stop", name),
            Flavor::SysV => self.sysv_action(name, "stop"),
        }
    }

    fn restart(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("restart", name),
            Flavor::SysV => self.sysv_action(name, "restart"),
        }
    }

    fn enable(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("enable", name),
            Flavor::SysV => self.sysv_set_enabled(name, true),
        }
    }

    fn disable(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("disable", name),
            Flavor::SysV => self.sysv_set_enabled(name, false),
        }
    }

    fn mask(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("mask", name),
            // SysV: masked means stopped and disabled (see the module comment).
            Flavor::SysV => self.sysv_set_enabled(name, false),
        }
    }

    fn unmask(&mut self, name: &str) -> Result<()> {
        match self.flavor {
            Flavor::Systemd => self.systemctl("unmask", name),
            Flavor::SysV => Ok(()),
        }
    }

    fn can_mask(&self) -> bool {
        self.flavor == Flavor::Systemd
    }

    fn start_no_wait(&mut self, name: &str, restart: bool) -> Result<()> {
        let verb = if restart { "restart" } else { "start" };
        match self.flavor {
            // The job is queued and systemctl returns; `ActiveState=activating` until the
            // unit's start (and its ExecStartPost) is done or its TimeoutStartSec runs out.
            Flavor::Systemd => {
                check_name(name)?;
                run_ok(
                    &*self.runner,
                    &argv(&["systemctl", "--no-block", verb, &format!("{name}.service")]),
                )?;
                Ok(())
            }
            // An init script has no queue: it runs to its end.
            Flavor::SysV => self.sysv_action(name, verb),
        }
    }
}

/// `systemctl show` output → status. `static` and `indirect` units cannot be enabled or
/// disabled: they count as enabled so the agent does not try forever.
pub fn parse_systemctl_show(stdout: &str) -> ServiceStatus {
    let mut st = ServiceStatus::default();
    let mut load = "";
    for line in stdout.lines() {
        match line.split_once('=') {
            Some(("LoadState", v)) => load = v.trim(),
            Some(("ActiveState", v)) => {
                st.running = matches!(v.trim(), "active" | "activating" | "reloading");
                st.starting = v.trim() == "activating";
            }
            Some(("UnitFileState", v)) => {
                let v = v.trim();
                st.enabled = matches!(
                    v,
                    "enabled" | "enabled-runtime" | "static" | "indirect" | "alias" | "generated"
                );
                st.masked |= v.starts_with("masked");
            }
            _ => {}
        }
    }
    st.masked |= load == "masked";
    st.installed = load != "not-found" && !load.is_empty();
    st
}

/// Unit and script names come from plans: refuse anything that could be read as an option or
/// a path.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(DriverError::Other(format!("invalid service name {name:?}")))
    }
}

/// `rcN.d/S01name` or `K01name`.
fn find_link(dir: &Path, kind: char, name: &str) -> Option<PathBuf> {
    let entries = fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        let mut chars = file.chars();
        if chars.next() == Some(kind) {
            let rest: String = chars.collect();
            if rest.len() > 2 && rest[..2].chars().all(|c| c.is_ascii_digit()) && &rest[2..] == name
            {
                return Some(e.path());
            }
        }
    }
    None
}

fn io(path: &Path, e: std::io::Error) -> DriverError {
    DriverError::io(path.display().to_string(), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::command::{Output, RecordingRunner};

    #[test]
    fn systemctl_show_parses() {
        let st =
            parse_systemctl_show("LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n");
        assert_eq!(
            st,
            ServiceStatus {
                installed: true,
                running: true,
                enabled: true,
                masked: false,
                starting: false,
            }
        );
        let st =
            parse_systemctl_show("LoadState=masked\nActiveState=inactive\nUnitFileState=masked\n");
        assert!(st.masked && !st.running && !st.enabled && st.installed);
        assert!(!parse_systemctl_show("LoadState=not-found\nActiveState=inactive\n").installed);
        // Galaxy migrating its database: up as far as "start" goes, but not yet serving.
        let st = parse_systemctl_show("LoadState=loaded\nActiveState=activating\n");
        assert!(st.running && st.starting);
    }

    #[test]
    fn systemd_command_lines() {
        let fake = Arc::new(RecordingRunner::answering(|_| {
            Output::ok("LoadState=loaded\nActiveState=inactive\n")
        }));
        let mut s =
            LinuxServices::with_flavor(Flavor::Systemd, Root::new(None).unwrap(), fake.clone());
        s.status("mesos-master").unwrap();
        s.stop("mesos-master").unwrap();
        s.mask("mesos-master").unwrap();
        s.restart("chronos").unwrap();
        s.start_no_wait("galaxy", false).unwrap();
        s.start_no_wait("galaxy", true).unwrap();
        assert_eq!(
            fake.lines(),
            vec![
                "systemctl show --property=LoadState,ActiveState,UnitFileState mesos-master.service",
                "systemctl stop mesos-master.service",
                "systemctl mask mesos-master.service",
                "systemctl restart chronos.service",
                "systemctl --no-block start galaxy.service",
                "systemctl --no-block restart galaxy.service",
            ]
        );
        assert!(s.start("--evil").is_err());
    }

    #[test]
    fn sysv_links_under_a_root() {
        let d = tempfile::tempdir().unwrap();
        let initd = d.path().join("etc/init.d");
        fs::create_dir_all(&initd).unwrap();
        fs::write(initd.join("svc"), "#!/bin/sh\nexit 3\n").unwrap();
        let mut s = LinuxServices::detect(
            Root::new(Some(d.path().to_path_buf())).unwrap(),
            Arc::new(RecordingRunner::answering(|_| {
                Output::exit(3).with_stderr("")
            })),
        );
        assert_eq!(s.flavor(), Flavor::SysV);
        assert!(!s.status("svc").unwrap().enabled);
        s.enable("svc").unwrap();
        assert!(s.status("svc").unwrap().enabled);
        assert!(
            d.path().join("etc/rc2.d/S01svc").exists()
                || d.path().join("etc/rc2.d/S01svc").symlink_metadata().is_ok()
        );
        s.disable("svc").unwrap();
        let st = s.status("svc").unwrap();
        assert!(!st.enabled && !st.running && st.installed);
        assert!(!s.status("other").unwrap().installed);
    }
}
