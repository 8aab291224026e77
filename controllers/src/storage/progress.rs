//! A present volume's status: Ready/Progressing, step and percent, from the agent's
//! report.

use omtd_crds::plan::{ResourceReport, ResourceState};
use omtd_crds::{Volume, VolumeState};

use super::reason;
use super::volume::VolumeStep;
use super::{PERCENT_KEY, REMOVAL_KEY, STEP_KEY};
use crate::declaration::condition;
use crate::desired::{volume_key, Desired};
use crate::observed::Observed;
use crate::output::{not_true, Cond, Intent, StatusEdit};

/// Ready/Progressing, step and percent of a present volume, from the agent's report.
pub(super) fn progress_status(
    desired: &Desired,
    observed: &Observed,
    v: &Volume,
    steps: &[VolumeStep],
    out: &mut Intent,
) {
    let node = v.spec.node.as_str();
    let mut edit = StatusEdit::new(desired, volume_key(&v.metadata.name), observed.now);
    edit.extra(REMOVAL_KEY, None);
    let total = steps.len().max(1) as u32;
    let mut done = 0u32;
    let mut current: Option<(&VolumeStep, Option<&ResourceReport>)> = None;
    // A report on an older plan says nothing about this one's steps: a step id that stays
    // (the LV, grown by a new disk) would pass for done before the agent even saw the plan.
    let report_current = observed.report_is_current(node);
    for st in steps {
        let r = observed.resource(node, &st.id).filter(|_| report_current);
        if r.is_some_and(|r| r.state == ResourceState::Converged) {
            done += 1;
        } else {
            current = Some((st, r));
            break;
        }
    }
    match current {
        None => {
            edit.extra(STEP_KEY, Some("done".into()));
            edit.extra(PERCENT_KEY, Some(100.into()));
            edit.set(Cond::yes(
                condition::READY,
                reason::READY,
                match v.spec.state {
                    VolumeState::Present => "every step is done",
                    VolumeState::Absent => "unmounted",
                },
            ));
            edit.set(Cond::no(
                condition::PROGRESSING,
                reason::DONE,
                "nothing left to do",
            ));
        }
        Some((st, r)) => {
            let step_pct = r.and_then(|r| r.percent).unwrap_or(0) as u32;
            let percent = (done * 100 + step_pct) / total;
            edit.extra(STEP_KEY, Some(st.name.into()));
            edit.extra(PERCENT_KEY, Some(percent.into()));
            match r.map(|r| (r.state, r.message.as_str())) {
                Some((
                    state @ (ResourceState::Failed
                    | ResourceState::Refused
                    | ResourceState::Conflict
                    | ResourceState::CrashLooping),
                    msg,
                )) => {
                    let reason = if state == ResourceState::Refused {
                        reason::STEP_REFUSED
                    } else {
                        reason::STEP_FAILED
                    };
                    let message = format!("step {} ({}) is {state:?}: {msg}", st.name, st.id);
                    edit.set(Cond::no(condition::READY, reason, message.clone()));
                    edit.set(Cond::no(condition::PROGRESSING, reason, message));
                }
                _ => {
                    let message = format!(
                        "step {} of {} ({}): {}",
                        done + 1,
                        steps.len(),
                        st.name,
                        if r.is_some() {
                            "in progress"
                        } else {
                            "waiting for the agent's report"
                        }
                    );
                    edit.set(Cond::no(
                        condition::READY,
                        reason::PROGRESSING,
                        message.clone(),
                    ));
                    edit.set(Cond::yes(
                        condition::PROGRESSING,
                        reason::STEP_IN_PROGRESS,
                        message,
                    ));
                }
            }
        }
    }
    edit.finish(out, |c| {
        not_true(c) && (c.reason == reason::STEP_FAILED || c.reason == reason::STEP_REFUSED)
    });
}
