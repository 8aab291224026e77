//! Mesos's maintenance schedule as JSON types: shared by the master's state probe
//! ([`super::mesos`]) and the maintenance calls ([`super::maintenance`]), below both.

use serde::{Deserialize, Serialize};

/// Mesos's `MachineID`: a hostname, an IP, or both. Mesos compares hostnames without regard
/// to case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl MachineId {
    pub fn new(hostname: impl Into<String>, ip: impl Into<String>) -> MachineId {
        MachineId {
            hostname: Some(hostname.into()),
            ip: Some(ip.into()),
        }
    }

    /// How `MesosState` names the machine: its hostname, else its IP.
    pub fn name(&self) -> Option<String> {
        self.hostname
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| self.ip.clone().filter(|i| !i.is_empty()))
    }

    /// Mesos's own comparison: hostnames without regard to case, IPs exactly.
    pub(crate) fn same(&self, other: &MachineId) -> bool {
        let host = |m: &MachineId| m.hostname.as_ref().map(|h| h.to_ascii_lowercase());
        host(self) == host(other) && self.ip == other.ip
    }
}

/// One window of the maintenance schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub machine_ids: Vec<MachineId>,
    pub unavailability: Unavailability,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailability {
    pub start: Nanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Nanos>,
}

/// Mesos's `TimeInfo` / `DurationInfo`: `{"nanoseconds": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nanos {
    pub nanoseconds: i64,
}

/// What `schedule_maintenance` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleChange {
    /// A new window was posted.
    Scheduled,
    /// Every machine was already in the schedule; nothing was posted.
    AlreadyScheduled,
}
