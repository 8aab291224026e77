//! Mesos maintenance (v0 API) as the master keeps it: a schedule of windows, which each
//! POST replaces, and the machines marked DOWN. The rules are Mesos's: a machine appears in
//! one window only, a window has machines, only scheduled machines go down, only down
//! machines come up, a down machine stays in the schedule, and coming up also takes a
//! machine out of the schedule.
//!
//! Kept once for the world rather than per master: Mesos keeps it in the replicated
//! registry the masters share.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Mesos's `MachineID`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Machine {
    /// Mesos compares hostnames without regard to case.
    fn same(&self, other: &Machine) -> bool {
        let lower = |m: &Machine| m.hostname.as_ref().map(|h| h.to_ascii_lowercase());
        lower(self) == lower(other) && self.ip == other.ip
    }

    /// Whether this machine is the agent at `hostname`/`ip`.
    pub fn is_agent(&self, hostname: &str, ip: &str) -> bool {
        self.hostname
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(hostname))
            || self.ip.as_deref() == Some(ip)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    pub machine_ids: Vec<Machine>,
    /// Kept as sent (`{"start":{"nanoseconds":N},"duration":{...}}`).
    #[serde(default)]
    pub unavailability: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default)]
    pub windows: Vec<Window>,
}

/// Why Mesos refused a maintenance call (its 400 body).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

#[derive(Debug, Default)]
pub struct Maintenance {
    schedule: Schedule,
    down: Vec<Machine>,
}

impl Maintenance {
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn scheduled(&self) -> impl Iterator<Item = &Machine> {
        self.schedule.windows.iter().flat_map(|w| &w.machine_ids)
    }

    fn is_down(&self, m: &Machine) -> bool {
        self.down.iter().any(|d| d.same(m))
    }

    /// Whether the agent at `hostname`/`ip` is on a DOWN machine.
    pub fn agent_down(&self, hostname: &str, ip: &str) -> bool {
        self.down.iter().any(|d| d.is_agent(hostname, ip))
    }

    /// `GET /master/maintenance/status`.
    pub fn status_json(&self) -> Value {
        let draining: Vec<Value> = self
            .scheduled()
            .filter(|m| !self.is_down(m))
            .map(|m| serde_json::json!({"id": m, "statuses": []}))
            .collect();
        serde_json::json!({"draining_machines": draining, "down_machines": self.down})
    }

    /// `POST /master/maintenance/schedule`.
    pub fn set_schedule(&mut self, new: Schedule) -> Result<(), Refused> {
        let ids: Vec<&Machine> = new.windows.iter().flat_map(|w| &w.machine_ids).collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].iter().any(|x| x.same(id)) {
                return Err(Refused(format!(
                    "Machine '{}' appears more than once in the schedule",
                    show(id)
                )));
            }
        }
        if new.windows.iter().any(|w| w.machine_ids.is_empty()) {
            return Err(Refused(
                "List of machines in the maintenance window is empty".into(),
            ));
        }
        if let Some(d) = self.down.iter().find(|d| !ids.iter().any(|x| x.same(d))) {
            return Err(Refused(format!(
                "Machine '{}' is deactivated and must be in the schedule",
                show(d)
            )));
        }
        self.schedule = new;
        Ok(())
    }

    /// `POST /master/machine/down`.
    pub fn down(&mut self, ids: Vec<Machine>) -> Result<(), Refused> {
        for id in &ids {
            if !self.scheduled().any(|s| s.same(id)) || self.is_down(id) {
                return Err(Refused(format!(
                    "Machine '{}' is not in DRAINING mode and cannot be brought down",
                    show(id)
                )));
            }
        }
        self.down.extend(ids);
        Ok(())
    }

    /// `POST /master/machine/up`.
    pub fn up(&mut self, ids: Vec<Machine>) -> Result<(), Refused> {
        if let Some(id) = ids.iter().find(|id| !self.is_down(id)) {
            return Err(Refused(format!(
                "Machine '{}' is not in DOWN mode and cannot be brought up",
                show(id)
            )));
        }
        self.down.retain(|d| !ids.iter().any(|x| x.same(d)));
        for w in &mut self.schedule.windows {
            w.machine_ids.retain(|m| !ids.iter().any(|x| x.same(m)));
        }
        self.schedule.windows.retain(|w| !w.machine_ids.is_empty());
        Ok(())
    }
}

fn show(m: &Machine) -> String {
    format!(
        "({}, {})",
        m.hostname.as_deref().unwrap_or(""),
        m.ip.as_deref().unwrap_or("")
    )
}
