//! Taking a PV out of its volume group: refused without room on the others, else handed
//! to the agent (pvmove, vgreduce, pvremove), recorded in the Volume's status.

use omtd_crds::plan::{ResourceReport, ResourceState};
use omtd_crds::Volume;
use serde::{Deserialize, Serialize};

use super::reason;
use super::{PERCENT_KEY, REMOVAL_KEY, STEP_KEY};
use crate::declaration::condition;
use crate::desired::{volume_key, Desired};
use crate::observed::Observed;
use crate::output::{Cond, Intent, StatusEdit};
use crate::render::bytes;

/// Where a PV's removal stands, recorded in the Volume's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemovalState {
    /// Not enough room on the other PVs: nothing planned.
    Refused,
    /// Planned absent: the agent moves the extents, then vgreduce and pvremove.
    Moving,
    /// Out of the group.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvRemovalRecord {
    pub phase: RemovalState,
}

pub(super) struct RemovalDecision {
    pub record: PvRemovalRecord,
    pub plan_absent: bool,
    /// Refused for lack of room: the PV stays planned as it is, so the agent keeps
    /// reporting its facts and a disk added later is seen to make room (a PV left out of
    /// the plan would no longer be reported, and look like one never seen).
    pub keep_present: bool,
    /// Ready/Progressing reason and message.
    pub reason: &'static str,
    pub message: String,
    pub percent: u8,
}

/// A PV's facts from the agent's report: (size, free) in bytes.
pub(super) fn pv_facts(r: &ResourceReport) -> Option<(u64, u64)> {
    let num = |k: &str| r.observed.get(k)?.trim().parse::<u64>().ok();
    Some((num("pv_size")?, num("pv_free")?))
}

pub(super) fn decide_removal(
    observed: &Observed,
    held: bool,
    vg: &str,
    v: &Volume,
    present: &[&Volume],
) -> RemovalDecision {
    let node = v.spec.node.as_str();
    let dev = v.spec.device.as_str();
    let stored = v
        .status
        .as_ref()
        .and_then(|s| s.extra.get(REMOVAL_KEY))
        .and_then(|x| serde_json::from_value::<PvRemovalRecord>(x.clone()).ok())
        .map(|r| r.phase);
    let report = observed.resource(node, &format!("pv:{dev}"));

    if matches!(stored, Some(RemovalState::Moving | RemovalState::Removed)) {
        return handed_over(report, stored, node, dev, vg);
    }

    let refused = |message: String| RemovalDecision {
        record: PvRemovalRecord {
            phase: RemovalState::Refused,
        },
        plan_absent: false,
        keep_present: false,
        reason: reason::REMOVAL_REFUSED,
        message,
        percent: 0,
    };
    if held {
        return refused(format!(
            "not started: the agent on {node} is lost (or most agents are), and omtd plans \
             nothing destructive until it is back"
        ));
    }
    let Some((size, free)) = report.and_then(pv_facts) else {
        // No facts (never reported as a PV of the group): hand it to the agent, which
        // removes nothing without room and says why.
        return RemovalDecision {
            record: PvRemovalRecord {
                phase: RemovalState::Moving,
            },
            plan_absent: true,
            keep_present: false,
            reason: reason::MOVING,
            message: format!("{dev} handed to the agent on {node} for removal from {vg}"),
            percent: 0,
        };
    };
    let used = size.saturating_sub(free);
    let room: u64 = present
        .iter()
        .filter_map(|o| observed.resource(node, &format!("pv:{}", o.spec.device)))
        .filter_map(pv_facts)
        .map(|(_, f)| f)
        .sum();
    if used > room {
        let lv = present
            .iter()
            .chain(std::iter::once(&v))
            .find_map(|o| o.spec.logical_volume.clone())
            .unwrap_or_else(|| "the logical volume".into());
        let mut decision = refused(format!(
            "cannot remove {dev} from {vg}: its {} of data must move to the other physical \
             volumes of {vg}, which have {} free (VFree {}). To make it possible, add a \
             Volume with at least {} to {vg} on {node} (omtd stops growing {lv} while a \
             removal is pending, so the new space stays free for the move), or shrink the \
             filesystem and {lv} first (ext4 shrinks only unmounted)",
            bytes(used),
            bytes(room),
            if room == 0 {
                "0".to_owned()
            } else {
                bytes(room)
            },
            bytes(used - room),
        ));
        decision.keep_present = true;
        return decision;
    }
    RemovalDecision {
        record: PvRemovalRecord {
            phase: RemovalState::Moving,
        },
        plan_absent: true,
        keep_present: false,
        reason: reason::MOVING,
        message: format!(
            "moving {} from {dev} to the other physical volumes of {vg} ({} free)",
            bytes(used),
            bytes(room)
        ),
        percent: 0,
    }
}

pub(super) fn removal_status(
    desired: &Desired,
    observed: &Observed,
    v: &Volume,
    d: &RemovalDecision,
    out: &mut Intent,
) {
    let mut edit = StatusEdit::new(desired, volume_key(&v.metadata.name), observed.now);
    edit.extra(REMOVAL_KEY, serde_json::to_value(&d.record).ok());
    edit.extra(STEP_KEY, Some("pvmove".into()));
    edit.extra(PERCENT_KEY, Some(d.percent.into()));
    match d.record.phase {
        RemovalState::Removed => {
            edit.set(Cond::yes(condition::READY, d.reason, d.message.clone()));
            edit.set(Cond::no(
                condition::PROGRESSING,
                reason::DONE,
                "nothing left to do",
            ));
            edit.extra(STEP_KEY, Some("done".into()));
        }
        RemovalState::Refused => {
            edit.set(Cond::no(condition::READY, d.reason, d.message.clone()));
            edit.set(Cond::no(
                condition::PROGRESSING,
                reason::REFUSED,
                d.message.clone(),
            ));
        }
        RemovalState::Moving => {
            edit.set(Cond::no(condition::READY, d.reason, d.message.clone()));
            edit.set(Cond::yes(
                condition::PROGRESSING,
                d.reason,
                d.message.clone(),
            ));
        }
    }
    edit.finish(out, |c| {
        c.reason == reason::REMOVAL_REFUSED || c.reason == reason::AGENT_REFUSED
    });
}

/// A removal already handed to the agent: keep it there and read back how it goes.
fn handed_over(
    report: Option<&ResourceReport>,
    stored: Option<RemovalState>,
    node: &str,
    dev: &str,
    vg: &str,
) -> RemovalDecision {
    let (phase, reason, message, percent) = match report {
        Some(r) if r.state == ResourceState::Converged && pv_facts(r).is_none() => (
            RemovalState::Removed,
            reason::REMOVED,
            format!(
                "{dev} is out of {vg} (pvmove, vgreduce, pvremove done): the device \
                 can be detached"
            ),
            100,
        ),
        Some(r) if r.state == ResourceState::Progressing => (
            RemovalState::Moving,
            reason::MOVING,
            format!(
                "pvmove {dev}: {}% moved{}",
                r.percent.unwrap_or(0),
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.message)
                }
            ),
            r.percent.unwrap_or(0),
        ),
        Some(r)
            if matches!(
                r.state,
                ResourceState::Refused | ResourceState::Failed | ResourceState::Conflict
            ) =>
        {
            (
                RemovalState::Moving,
                reason::AGENT_REFUSED,
                format!("the agent on {node} did not remove {dev}: {}", r.message),
                0,
            )
        }
        _ if stored == Some(RemovalState::Removed) => (
            RemovalState::Removed,
            reason::REMOVED,
            format!("{dev} is out of {vg}"),
            100,
        ),
        _ => (
            RemovalState::Moving,
            reason::MOVING,
            format!("waiting for the agent on {node} to move {dev}'s extents"),
            0,
        ),
    };
    RemovalDecision {
        record: PvRemovalRecord { phase },
        plan_absent: true,
        keep_present: false,
        reason,
        message,
        percent,
    }
}
