//! `omtd status` as text: the node table, the conditions, operations under way, and what is
//! still pending.

use omtd_crds::ConditionStatus;

use super::progress::{paint, Tone};
use super::{ClusterStatus, ConditionView, NodeStatus, ReportSummary};
use crate::table::table;

/// The whole text view. `color` only tints the verdict line (never table cells, whose
/// widths escape codes would upset).
pub fn render(status: &ClusterStatus, color: bool) -> String {
    let mut out = String::new();
    if status.nodes.is_empty() {
        out.push_str("No nodes.\n");
    } else {
        let rows = status.nodes.iter().map(node_row).collect();
        out.push_str(&table(
            &["NODE", "ROLES", "READY", "RESOURCES", "AGENT", "CORRECTIVE"],
            rows,
        ));
        out.push('\n');
    }

    out.push('\n');
    let rows = status
        .conditions
        .iter()
        .map(|c| {
            vec![
                c.group.clone(),
                c.type_.clone(),
                c.status.map_or_else(|| "-".to_owned(), status_word),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["GROUP", "CONDITION", "STATUS", "REASON", "MESSAGE"],
        rows,
    ));
    out.push('\n');

    let left_alone: Vec<Vec<String>> = status
        .nodes
        .iter()
        .flat_map(|n| {
            let paths = n.report.iter().flat_map(|r| r.unmanaged.iter());
            paths.map(|p| vec![n.name.clone(), p.clone()])
        })
        .collect();
    if !left_alone.is_empty() {
        // Served beside omtd's sites, but the operator's to remove, not omtd's.
        out.push('\n');
        out.push_str(&table(
            &["NODE", "NOT MANAGED BY OMTD (left alone)"],
            left_alone,
        ));
        out.push('\n');
    }

    if !status.overrides.is_empty() {
        // Shown while recorded, so an override nobody ended is seen; past its time the
        // node controller has turned it back already.
        out.push('\n');
        let now = std::time::SystemTime::now();
        let rows = status
            .overrides
            .iter()
            .map(|o| {
                let state = match omtd_controllers::time::parse(&o.until) {
                    Some(t) if t > now => "in force",
                    Some(_) => "ended (turned back)",
                    None => "ignored (not a time)",
                };
                vec![
                    o.node.clone(),
                    o.what.clone(),
                    o.until.clone(),
                    state.to_owned(),
                ]
            })
            .collect();
        out.push_str(&table(&["NODE", "DEBUG OVERRIDE", "UNTIL", "STATE"], rows));
        out.push('\n');
    }

    if !status.operations.is_empty() {
        out.push('\n');
        let rows = status
            .operations
            .iter()
            .map(|o| {
                vec![
                    o.object.clone(),
                    o.step.clone(),
                    o.percent
                        .map_or_else(|| "-".to_owned(), |p| format!("{p}%")),
                    o.message.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["IN PROGRESS", "STEP", "DONE", "MESSAGE"], rows));
        out.push('\n');
    }

    out.push('\n');
    if status.converged {
        out.push_str(&paint(
            &format!("Converged (store revision {}).", status.revision),
            Tone::Good,
            color,
        ));
        out.push('\n');
    } else {
        out.push_str(&paint(
            &format!(
                "Not converged (store revision {}); pending:",
                status.revision
            ),
            Tone::Pending,
            color,
        ));
        out.push('\n');
        for p in &status.pending {
            out.push_str(&format!("  {p}\n"));
        }
    }
    out
}

fn node_row(n: &NodeStatus) -> Vec<String> {
    vec![
        n.name.clone(),
        if n.roles.is_empty() {
            "<none>".to_owned()
        } else {
            n.roles.join(",")
        },
        n.ready.as_ref().map_or_else(|| "-".to_owned(), ready_cell),
        match (&n.report, &n.report_error) {
            (_, Some(_)) => "report unreadable".to_owned(),
            (None, None) => "no report".to_owned(),
            (Some(r), None) => resources_cell(r),
        },
        if n.agent { "lease alive" } else { "no agent" }.to_owned(),
        n.report
            .as_ref()
            .map_or_else(|| "-".to_owned(), |r| r.corrective_changes.to_string()),
    ]
}

fn status_word(s: ConditionStatus) -> String {
    format!("{s:?}")
}

/// `True`, `False (Reason)`, `Unknown (Reason)`.
fn ready_cell(c: &ConditionView) -> String {
    match (c.status, c.reason.is_empty()) {
        (ConditionStatus::True, _) | (_, true) => status_word(c.status),
        (s, false) => format!("{} ({})", status_word(s), c.reason),
    }
}

/// `12/14 converged (1 progressing, 1 failed)`.
pub fn resources_cell(r: &ReportSummary) -> String {
    let mut cell = format!("{}/{} converged", r.converged_resources, r.resources);
    let parts: Vec<String> = [
        (r.progressing, "progressing"),
        (r.failed, "failed"),
        (r.refused, "refused"),
        (r.conflict, "conflict"),
        (r.crash_looping, "crash-looping"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if !parts.is_empty() {
        cell.push_str(&format!(" ({})", parts.join(", ")));
    }
    cell
}
