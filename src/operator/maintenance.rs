//! Mesos maintenance, the node controller's one imperative side effect: its output says how
//! each worker should stand (up; draining: scheduled, not down; or down); this loop
//! compares that with what the Mesos probe last saw and makes only the calls that differ.
//!
//! A draining machine is only scheduled: DRAINING disturbs no running task. On a master
//! that has the v1 operator API's `DEACTIVATE_AGENT` (>= 1.9) its agent is also
//! deactivated, so no new task lands there (inverse offers are advisory, and Chronos
//! ignores them); on 1.4 new tasks may still land while it drains. `DRAIN_AGENT` is never
//! used: it kills the tasks. Only a machine wanted down is marked down (which kills what
//! still runs there: the node controller asks so only when nothing does, or at the
//! deadline).
//!
//! Only the leader calls Mesos (the node controller runs only there, but a deposed leader's
//! last wish must not outlive its term). Failed calls are retried with exponential backoff;
//! every call is idempotent on the Mesos side as well (see `crate::probes::maintenance`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omtd_controllers::{MachineMode, MachineWish, MesosState};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::probes::SharedProbes;
use crate::probes::mesos::{MachineId, MesosMaster};
use crate::probes::ProbeError;
use crate::runtime::backoff::BackoffConfig;
use crate::runtime::leader::Leadership;

/// How often the wanted state is compared with Mesos even without a change.
const RECHECK: Duration = Duration::from_secs(10);

/// Delays between failed attempts.
const RETRY: BackoffConfig = BackoffConfig {
    min: Duration::from_secs(1),
    max: Duration::from_secs(60),
};

/// The machines' wanted maintenance modes, as the node controller last computed them.
#[derive(Debug, Default)]
pub struct MaintenanceWanted {
    machines: Mutex<Option<Vec<MachineWish>>>,
    changed: Notify,
}

impl MaintenanceWanted {
    pub fn new() -> Arc<MaintenanceWanted> {
        Arc::default()
    }

    /// Records what the node controller wants; wakes the loop when it changed.
    pub fn publish(&self, machines: Vec<MachineWish>) {
        let mut current = self.machines.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref() != Some(&machines) {
            *current = Some(machines);
            self.changed.notify_one();
        }
    }

    pub fn get(&self) -> Option<Vec<MachineWish>> {
        self.machines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The calls that bring Mesos in line with the wanted modes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Schedule for maintenance now (start draining).
    pub schedule: Vec<ToSchedule>,
    /// Mark down (they are, or will be by then, scheduled).
    pub down: Vec<MachineId>,
    /// Bring back up (also takes them out of the schedule).
    pub up: Vec<MachineId>,
    /// Take out of the schedule (a drain cancelled before the machine went down).
    pub unschedule: Vec<MachineId>,
    /// Agents (by id) to deactivate: no new offers (v1 `DEACTIVATE_AGENT`, Mesos >= 1.9).
    pub deactivate: Vec<String>,
    /// Agents (by id) to reactivate after a cancelled drain (v1 `REACTIVATE_AGENT`).
    pub reactivate: Vec<String>,
}

/// One machine to schedule and when it is to become unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToSchedule {
    pub id: MachineId,
    pub from: Option<SystemTime>,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty()
            && self.down.is_empty()
            && self.up.is_empty()
            && self.unschedule.is_empty()
            && self.deactivate.is_empty()
            && self.reactivate.is_empty()
    }
}

/// Whether Mesos lists the machine (by hostname, case-insensitively, or by IP).
fn listed(list: &[String], m: &MachineWish) -> bool {
    list.iter()
        .any(|x| x.eq_ignore_ascii_case(&m.hostname) || *x == m.ip)
}

/// What differs between `wanted` and what Mesos says. Pure.
pub fn actions(wanted: &[MachineWish], mesos: &MesosState) -> Actions {
    let mut a = Actions::default();
    for m in wanted {
        let id = MachineId::new(m.hostname.clone(), m.ip.clone());
        let down = listed(&mesos.down_machines, m);
        let draining = listed(&mesos.draining_machines, m);
        let schedule = ToSchedule {
            id: id.clone(),
            from: m.unavailable_from,
        };
        // The agent's activation is only ours to change on a master that has the call,
        // and only for a machine in maintenance (an agent someone deactivated by hand on
        // a machine in service is left as it is).
        let agent = mesos
            .has_deactivate_agent()
            .then(|| mesos.agent(&[m.hostname.as_str(), m.ip.as_str()]))
            .flatten()
            .filter(|a| !a.id.is_empty());
        match m.mode {
            MachineMode::Down if down => {}
            MachineMode::Down => {
                if !draining {
                    a.schedule.push(schedule);
                }
                a.down.push(id);
            }
            // Down already (by hand, or a drain that went on): never back to draining.
            MachineMode::Draining if down => {}
            MachineMode::Draining => {
                if !draining {
                    a.schedule.push(schedule);
                }
                if let Some(agent) = agent.filter(|x| !x.deactivated) {
                    a.deactivate.push(agent.id.clone());
                }
            }
            MachineMode::Up if down || draining => {
                if down {
                    a.up.push(id);
                } else {
                    a.unschedule.push(id);
                }
                if let Some(agent) = agent.filter(|x| x.deactivated) {
                    a.reactivate.push(agent.id.clone());
                }
            }
            MachineMode::Up => {}
        }
    }
    a
}

/// The maintenance calls, as a trait so the loop can be tested without a master.
#[async_trait]
pub trait MaintenanceApi: Send + Sync {
    async fn schedule(&self, machines: &[MachineId], start: SystemTime) -> Result<(), ProbeError>;
    async fn down(&self, machines: &[MachineId]) -> Result<(), ProbeError>;
    async fn up(&self, machines: &[MachineId]) -> Result<(), ProbeError>;
    async fn unschedule(&self, machines: &[MachineId]) -> Result<(), ProbeError>;
    /// v1 `DEACTIVATE_AGENT` (or, with `active`, `REACTIVATE_AGENT`).
    async fn set_agent_active(&self, agent_id: &str, active: bool) -> Result<(), ProbeError>;
}

#[async_trait]
impl MaintenanceApi for MesosMaster {
    async fn schedule(&self, machines: &[MachineId], start: SystemTime) -> Result<(), ProbeError> {
        self.schedule_maintenance(machines, start, None)
            .await
            .map(|_| ())
    }
    async fn down(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        self.machines_down(machines).await.map(|_| ())
    }
    async fn up(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        self.machines_up(machines).await.map(|_| ())
    }
    async fn unschedule(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        self.unschedule_maintenance(machines).await.map(|_| ())
    }
    async fn set_agent_active(&self, agent_id: &str, active: bool) -> Result<(), ProbeError> {
        if active {
            self.reactivate_agent(agent_id).await
        } else {
            self.deactivate_agent(agent_id).await
        }
    }
}

/// Makes the calls in order: schedule before down (Mesos refuses to down an unscheduled
/// machine) and before deactivating, up and unschedule independently.
pub async fn apply(api: &dyn MaintenanceApi, a: &Actions) -> Result<(), ProbeError> {
    // One window per machine: each has its own deadline.
    for s in &a.schedule {
        let now = SystemTime::now();
        let from = s.from.map_or(now, |f| f.max(now));
        api.schedule(std::slice::from_ref(&s.id), from).await?;
    }
    for id in &a.deactivate {
        api.set_agent_active(id, false).await?;
    }
    if !a.down.is_empty() {
        api.down(&a.down).await?;
    }
    if !a.up.is_empty() {
        api.up(&a.up).await?;
    }
    if !a.unschedule.is_empty() {
        api.unschedule(&a.unschedule).await?;
    }
    for id in &a.reactivate {
        api.set_agent_active(id, true).await?;
    }
    Ok(())
}

fn names(ids: &[MachineId]) -> String {
    ids.iter()
        .filter_map(MachineId::name)
        .collect::<Vec<_>>()
        .join(",")
}

/// Keeps Mesos maintenance as wanted while this process leads, until `shutdown`.
pub async fn run(
    api: Arc<dyn MaintenanceApi>,
    wanted: Arc<MaintenanceWanted>,
    probes: Arc<SharedProbes>,
    leadership: watch::Receiver<Leadership>,
    shutdown: CancellationToken,
) {
    let mut retry = RETRY.sequence();
    let mut wait = RECHECK;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wanted.changed.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        wait = RECHECK;
        if leadership.borrow().token().is_none() {
            continue;
        }
        let (Some(machines), Some(mesos)) = (wanted.get(), probes.get().mesos) else {
            // Nothing wanted yet, or Mesos unknown: no call on a guess.
            continue;
        };
        let todo = actions(&machines, &mesos);
        if todo.is_empty() {
            retry = RETRY.sequence();
            continue;
        }
        let scheduled: Vec<MachineId> = todo.schedule.iter().map(|s| s.id.clone()).collect();
        let span = tracing::info_span!(
            "maintenance",
            schedule = %names(&scheduled),
            deactivate = %todo.deactivate.join(","),
            reactivate = %todo.reactivate.join(","),
            down = %names(&todo.down),
            up = %names(&todo.up),
            unschedule = %names(&todo.unschedule),
        );
        let result = apply(api.as_ref(), &todo).instrument(span.clone()).await;
        let _enter = span.enter();
        match result {
            Ok(()) => {
                tracing::info!("Mesos maintenance updated");
                retry = RETRY.sequence();
                // Let the controllers see the new state without waiting for the next round.
                probes.refresh();
            }
            Err(e) => {
                wait = retry.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "Mesos maintenance call failed; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omtd_controllers::MesosAgent;

    fn m(name: &str, mode: MachineMode) -> MachineWish {
        MachineWish {
            node: name.into(),
            hostname: name.into(),
            ip: name.into(),
            mode,
            unavailable_from: None,
        }
    }

    fn ids(v: &[MachineId]) -> Vec<String> {
        v.iter().filter_map(MachineId::name).collect()
    }

    fn scheduled(a: &Actions) -> Vec<String> {
        a.schedule.iter().filter_map(|s| s.id.name()).collect()
    }

    #[test]
    fn only_what_differs() {
        let mesos = MesosState {
            down_machines: vec!["10.0.0.21".into(), "10.0.0.24".into(), "10.0.0.27".into()],
            draining_machines: vec!["10.0.0.22".into(), "10.0.0.25".into(), "10.0.0.28".into()],
            ..MesosState::default()
        };
        let wanted = [
            m("10.0.0.21", MachineMode::Down),     // already down
            m("10.0.0.22", MachineMode::Down),     // draining: down only
            m("10.0.0.23", MachineMode::Down),     // in service: schedule and down
            m("10.0.0.24", MachineMode::Up),       // down: up
            m("10.0.0.25", MachineMode::Up),       // draining: unschedule
            m("10.0.0.26", MachineMode::Up),       // in service: nothing
            m("10.0.0.27", MachineMode::Draining), // down already: left down
            m("10.0.0.28", MachineMode::Draining), // draining already: nothing
            m("10.0.0.29", MachineMode::Draining), // in service: schedule only, never down
        ];
        let a = actions(&wanted, &mesos);
        assert_eq!(scheduled(&a), ["10.0.0.23", "10.0.0.29"]);
        assert_eq!(ids(&a.down), ["10.0.0.22", "10.0.0.23"]);
        assert_eq!(ids(&a.up), ["10.0.0.24"]);
        assert_eq!(ids(&a.unschedule), ["10.0.0.25"]);
        assert!(
            a.deactivate.is_empty() && a.reactivate.is_empty(),
            "1.4: no v1 calls"
        );
        assert!(actions(&wanted[..1], &mesos).is_empty());
    }

    fn agent(host: &str, deactivated: bool) -> MesosAgent {
        MesosAgent {
            id: format!("{host}-S0"),
            hostname: host.into(),
            active: !deactivated,
            deactivated,
        }
    }

    #[test]
    fn a_1_9_master_deactivates_a_draining_agent_and_reactivates_a_cancelled_one() {
        let on = |version: &str| MesosState {
            version: Some(version.into()),
            agents: vec![
                agent("10.0.0.31", false),
                agent("10.0.0.32", true),
                agent("10.0.0.33", true),
                agent("10.0.0.34", true),
            ],
            draining_machines: vec!["10.0.0.32".into(), "10.0.0.33".into()],
            ..MesosState::default()
        };
        let wanted = [
            m("10.0.0.31", MachineMode::Draining), // schedule and deactivate
            m("10.0.0.32", MachineMode::Draining), // both done already
            m("10.0.0.33", MachineMode::Up),       // cancelled: unschedule, reactivate
            m("10.0.0.34", MachineMode::Up),       // deactivated by hand, in service: left
        ];
        let a = actions(&wanted, &on("1.9.0"));
        assert_eq!(scheduled(&a), ["10.0.0.31"]);
        assert_eq!(a.deactivate, ["10.0.0.31-S0"]);
        assert_eq!(ids(&a.unschedule), ["10.0.0.33"]);
        assert_eq!(a.reactivate, ["10.0.0.33-S0"]);
        assert!(a.down.is_empty(), "draining never downs");
        let old = actions(&wanted, &on("1.4.1"));
        assert!(old.deactivate.is_empty() && old.reactivate.is_empty());
        assert_eq!(scheduled(&old), ["10.0.0.31"]);
    }
}
