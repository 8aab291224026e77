//! A worker's drain, the first phase of its removal: the machine is scheduled for Mesos
//! maintenance (DRAINING, which disturbs no running task) and stays so while tasks still run
//! on its agent, up to the drain deadline. Only then is it marked down, which kills what is
//! left (Mesos sends TASK_LOST): a Galaxy job that ran for hours is not cut short because a
//! node is being retired. "No task left" counts only from a master view that already shows
//! the machine scheduled: a view read before may miss a task started in between.
//!
//! Deadline = the drain's start (`status.removal.since`) + the drain timeout: the node's
//! `omtd/drain-timeout` annotation, else the operator's `--drain-timeout`. An annotation
//! that does not parse holds the drain (machine scheduled, not down) and says so: the
//! default is not quietly used in place of what someone meant to write.

use std::time::{Duration, SystemTime};

use omtd_crds::Node;

use super::reason;
use super::removal::NodeRemovalStep;
use crate::observed::{MesosState, Observed};
use crate::output::MachineMode;
use crate::removal::{NodeRemovalRecord, RemovalPhase, DRAIN_TIMEOUT_ANNOTATION};
use crate::settings::Settings;

/// How many task names a status or message lists (the count says the rest).
const LISTED_TASKS: usize = 5;

/// How soon a drain looks again while the master does not yet show the machine scheduled.
const SCHEDULE_RECHECK: Duration = Duration::from_secs(5);

/// Why a machine was asked down, as recorded in `status.removal.downBecause`.
pub mod because {
    pub const NO_TASKS: &str = "no task runs on the agent";
    pub const DEADLINE: &str = "the drain deadline passed";
    pub const ALREADY_DOWN: &str = "the Mesos master has the machine down already";
}

/// The node's drain timeout: its annotation, else the operator's setting. `Err` names
/// the annotation that does not parse.
pub fn drain_timeout(node: &Node, settings: &Settings) -> Result<Duration, String> {
    match node.metadata.annotations.get(DRAIN_TIMEOUT_ANNOTATION) {
        None => Ok(settings.drain_timeout),
        Some(v) => humantime::parse_duration(v.trim()).map_err(|e| {
            format!(
                "the annotation {DRAIN_TIMEOUT_ANNOTATION}={v:?} on node/{} is not a duration \
                 ({e}; e.g. 30m, 2h, 0s): the drain holds (machine scheduled, not down, its \
                 tasks left running) until it is fixed or removed",
                node.metadata.name
            )
        }),
    }
}

/// What the drain of `node` (in phase Draining since `since`) does this reconcile.
pub(super) fn drain_step(
    observed: &Observed,
    settings: &Settings,
    node: &Node,
    since: &str,
    stored: Option<&NodeRemovalRecord>,
) -> NodeRemovalStep {
    let name = node.metadata.name.as_str();
    let addr = node.spec.address.as_str();
    let names = [name, addr];
    // Once asked down, the ask stands: the call may be under way, and taking it back
    // would only make the machine flap.
    let asked = stored
        .filter(|r| r.phase == RemovalPhase::Draining)
        .map(|r| r.down_because.clone())
        .unwrap_or_default();
    let mut step = NodeRemovalStep {
        phase: Some(RemovalPhase::Draining),
        since: since.to_owned(),
        down_because: asked.clone(),
        ..Default::default()
    };
    let Some(mesos) = &observed.mesos else {
        step.waiting_for = "an answer from the Mesos master (which tasks still run on the \
                            agent is unknown, so the machine is not marked down)"
            .into();
        // Keep what was shown last: the tasks did not go away because the master is silent.
        if let Some(r) = stored {
            step.deadline = r.deadline.clone();
            step.running_tasks = r.running_tasks;
            step.tasks = r.tasks.clone();
        }
        return step.with_machine();
    };
    if mesos.machine_down(&names) {
        return NodeRemovalStep {
            phase: Some(RemovalPhase::Stopping),
            since: crate::time::format(observed.now),
            down_because: if asked.is_empty() {
                because::ALREADY_DOWN.into()
            } else {
                asked
            },
            ..Default::default()
        }
        .with_machine();
    }
    let tasks = mesos.tasks_on(&names);
    step.running_tasks = tasks.len();
    step.tasks = tasks.iter().take(LISTED_TASKS).map(|t| t.label()).collect();
    let deadline = match deadline(node, settings, since) {
        Ok(d) => d,
        Err(message) => {
            step.blocked = Some((reason::DRAIN_HELD.into(), message));
            return step.with_machine();
        }
    };
    step.deadline = Some(crate::time::format(deadline));
    let down_waiting = format!("Mesos to mark machine {addr} down (maintenance)");
    if !asked.is_empty() {
        step.waiting_for = down_waiting;
    } else if tasks.is_empty() && mesos.machine_draining(&names) {
        // Only a task list read while the master has the machine scheduled counts: one
        // read before the schedule took may miss a task launched since, which the down
        // would kill.
        step.down_because = because::NO_TASKS.into();
        step.waiting_for = down_waiting;
    } else if tasks.is_empty() && observed.now < deadline {
        step.waiting_for = format!(
            "Mesos to show machine {addr} scheduled for maintenance (the agent's tasks are \
             counted once it is), or the drain deadline {}",
            crate::time::format(deadline),
        );
        // The schedule is one maintenance call away: look again soon, not at the deadline.
        step.requeue = Some(crate::time::since(deadline, observed.now).min(SCHEDULE_RECHECK));
    } else if observed.now >= deadline {
        step.down_because = because::DEADLINE.into();
        step.waiting_for = down_waiting;
        step.notice = Some((
            reason::DRAIN_TIMED_OUT.into(),
            format!(
                "the drain of node/{name} reached its deadline ({}) with {} task(s) still \
                 running on the agent: marking machine {addr} down kills {}",
                crate::time::format(deadline),
                tasks.len(),
                task_list(mesos, &names),
            ),
        ));
    } else {
        step.waiting_for = format!(
            "{} task(s) to end on the agent ({}), or the drain deadline {}",
            tasks.len(),
            step.tasks.join(", "),
            crate::time::format(deadline),
        );
        step.requeue = Some(crate::time::since(deadline, observed.now));
    }
    step.with_machine()
}

/// `since` + the node's drain timeout.
fn deadline(node: &Node, settings: &Settings, since: &str) -> Result<SystemTime, String> {
    let timeout = drain_timeout(node, settings)?;
    let start = crate::time::parse(since).ok_or_else(|| {
        format!(
            "the drain start recorded in node/{}'s status.removal.since ({since:?}) is not an \
             RFC 3339 time: the drain holds (machine scheduled, not down) until the record \
             is fixed",
            node.metadata.name
        )
    })?;
    Ok(start + timeout)
}

/// Every running task on the agent, for the kill notice (which should name them all).
fn task_list(mesos: &MesosState, names: &[&str]) -> String {
    mesos
        .tasks_on(names)
        .iter()
        .map(|t| t.label())
        .collect::<Vec<_>>()
        .join(", ")
}

impl NodeRemovalStep {
    /// Sets how the machine should stand in Mesos maintenance for this step's phase.
    pub(super) fn with_machine(mut self) -> NodeRemovalStep {
        self.machine = match self.phase {
            None => MachineMode::Up,
            Some(RemovalPhase::Draining) if self.down_because.is_empty() => MachineMode::Draining,
            Some(_) => MachineMode::Down,
        };
        self
    }
}
