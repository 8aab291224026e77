//! Sim services: start, stop, enable, mask as systemd would, and services that die right
//! after they start (see `SimHost::set_crash_on_start`).

use super::SimHost;
use crate::agent::drivers::{DriverError, Result, ServiceStatus, Services};

impl SimHost {
    fn with_service<T>(
        &mut self,
        name: &str,
        verb: &str,
        f: impl FnOnce(&mut super::SimService, u64) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.state();
        let id = st.next_id();
        let svc = st
            .services
            .get_mut(name)
            .filter(|s| s.installed)
            .ok_or_else(|| DriverError::NoSuchService(name.to_owned()))?;
        let out = f(svc, id)?;
        st.log.push(format!("{verb} {name}"));
        Ok(out)
    }
}

fn start(svc: &mut super::SimService, pid: u64, name: &str) -> Result<()> {
    if svc.masked {
        return Err(DriverError::Other(format!("unit {name} is masked")));
    }
    svc.starts += 1;
    svc.pid = pid;
    svc.running = !svc.crash_on_start;
    svc.hung = false;
    Ok(())
}

impl Services for SimHost {
    fn status(&mut self, name: &str) -> Result<ServiceStatus> {
        Ok(self
            .state()
            .services
            .get(name)
            .filter(|s| s.installed)
            .map(|s| ServiceStatus {
                installed: true,
                running: s.running,
                enabled: s.enabled,
                masked: s.masked,
                starting: false,
            })
            .unwrap_or_default())
    }

    fn start(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "start", |s, pid| start(s, pid, name))
    }

    fn stop(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "stop", |s, _| {
            s.running = false;
            Ok(())
        })
    }

    fn restart(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "restart", |s, pid| start(s, pid, name))
    }

    fn enable(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "enable", |s, _| {
            s.enabled = true;
            Ok(())
        })
    }

    fn disable(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "disable", |s, _| {
            s.enabled = false;
            Ok(())
        })
    }

    fn mask(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "mask", |s, _| {
            s.masked = true;
            Ok(())
        })
    }

    fn unmask(&mut self, name: &str) -> Result<()> {
        self.with_service(name, "unmask", |s, _| {
            s.masked = false;
            Ok(())
        })
    }

    fn can_mask(&self) -> bool {
        true
    }
}
