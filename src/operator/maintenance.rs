//! Mesos maintenance, the node controller's one imperative side effect: its output says how
//! each worker should stand (up, or scheduled and down while it is retired); this loop
//! compares that with what the Mesos probe last saw and makes only the calls that differ.
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
    pub schedule: Vec<MachineId>,
    /// Mark down (they are, or will be by then, scheduled).
    pub down: Vec<MachineId>,
    /// Bring back up (also takes them out of the schedule).
    pub up: Vec<MachineId>,
    /// Take out of the schedule (a drain cancelled before the machine went down).
    pub unschedule: Vec<MachineId>,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty()
            && self.down.is_empty()
            && self.up.is_empty()
            && self.unschedule.is_empty()
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
        match m.mode {
            MachineMode::Down if down => {}
            MachineMode::Down => {
                if !draining {
                    a.schedule.push(id.clone());
                }
                a.down.push(id);
            }
            MachineMode::Up if down => a.up.push(id),
            MachineMode::Up if draining => a.unschedule.push(id),
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
}

/// Makes the calls in order: schedule before down (Mesos refuses to down an unscheduled
/// machine), up and unschedule independently.
pub async fn apply(api: &dyn MaintenanceApi, a: &Actions) -> Result<(), ProbeError> {
    if !a.schedule.is_empty() {
        api.schedule(&a.schedule, SystemTime::now()).await?;
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
        let span = tracing::info_span!(
            "maintenance",
            schedule = %names(&todo.schedule),
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

    fn m(name: &str, mode: MachineMode) -> MachineWish {
        MachineWish {
            node: name.into(),
            hostname: name.into(),
            ip: name.into(),
            mode,
        }
    }

    #[test]
    fn only_what_differs() {
        let mesos = MesosState {
            down_machines: vec!["10.0.0.21".into(), "10.0.0.24".into()],
            draining_machines: vec!["10.0.0.22".into(), "10.0.0.25".into()],
            ..MesosState::default()
        };
        let wanted = [
            m("10.0.0.21", MachineMode::Down), // already down
            m("10.0.0.22", MachineMode::Down), // draining: down only
            m("10.0.0.23", MachineMode::Down), // in service: schedule and down
            m("10.0.0.24", MachineMode::Up),   // down: up
            m("10.0.0.25", MachineMode::Up),   // draining: unschedule
            m("10.0.0.26", MachineMode::Up),   // in service: nothing
        ];
        let a = actions(&wanted, &mesos);
        let ids = |v: &[MachineId]| v.iter().filter_map(MachineId::name).collect::<Vec<_>>();
        assert_eq!(ids(&a.schedule), ["10.0.0.23"]);
        assert_eq!(ids(&a.down), ["10.0.0.22", "10.0.0.23"]);
        assert_eq!(ids(&a.up), ["10.0.0.24"]);
        assert_eq!(ids(&a.unschedule), ["10.0.0.25"]);
        assert!(actions(&wanted[..1], &mesos).is_empty());
    }
}
