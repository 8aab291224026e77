//! The pure part: [`Inputs`] → [`ClusterStatus`].

use omtd_crds::plan::{Report, ResourceState};
use omtd_crds::plan_manifest::HOLD_ID;
use omtd_crds::{Condition, ConditionStatus, Kind, Object, Status};

use super::inputs::Inputs;
use super::{
    ClusterStatus, ConditionRow, ConditionView, NodeStatus, Operation, OverrideView, Pending,
    ReportSummary, ResourceProblem,
};
use crate::resources::staged::Held;
use omtd_controllers::node::DEBUG_UI_ACCESS_ANNOTATION;

/// The Cluster conditions shown even before anything set them, with their owners. Any other
/// condition on the Cluster is shown too, under the controller that declares it (the
/// node controller's front doors: `RegistryReady`, `ChronosReady`,
/// `PrometheusTargetsReady`, set only for the services the cluster runs), else `cluster`.
const CLUSTER_CONDITIONS: [(&str, &str); 4] = [
    ("leader-guard", "LeaderElected"),
    ("leader-guard", "MesosConnected"),
    ("leader-guard", "Recovery"),
    ("node", "AgentsReachable"),
];

/// How many non-converged resources a pending line names before "and N more".
const NAMED_PROBLEMS: usize = 3;

pub fn compute(inputs: &Inputs) -> ClusterStatus {
    let mut nodes = Vec::new();
    let mut pending = Vec::new();
    let mut operations = Vec::new();
    let mut overrides = Vec::new();
    for stored in inputs.objects.objects.values() {
        let obj = &stored.object;
        let id = obj.key().to_string();
        let mut why: Vec<(Rank, String)> = Vec::new();
        if let Object::Node(n) = obj {
            if let Some(until) = n.metadata.annotations.get(DEBUG_UI_ACCESS_ANNOTATION) {
                overrides.push(OverrideView {
                    node: n.metadata.name.clone(),
                    what: "Galaxy UI access (use_remote_user = False)".into(),
                    until: until.clone(),
                });
            }
            let node = node_status(obj, n.spec.roles.iter().map(|r| r.to_string()), inputs);
            why.extend(node_pending(&node));
            for p in node.report.iter().flat_map(|r| &r.problems) {
                if p.state == "progressing" {
                    operations.push(Operation {
                        object: id.clone(),
                        step: p.id.clone(),
                        percent: percent_of(inputs, obj.name(), &p.id),
                        message: p.message.clone(),
                    });
                }
            }
            nodes.push(node);
        }
        if let Some(status) = obj.status() {
            why.extend(status_pending(obj, status));
            operations.extend(status_operations(obj, status));
        }
        // With an operator running, "no status yet" means its controllers have not caught
        // up with this object (a first reconcile still under way), not that all is well:
        // agents can report converged on the slices written so far while another
        // controller's first slice is still to come.
        let reported = obj.status().and_then(|s| s.condition("Ready")).is_some();
        let expects_ready = matches!(obj.kind(), Kind::Node | Kind::Credential | Kind::Volume);
        if inputs.operator && expects_ready && !reported {
            why.push((
                Rank::StaleStatus,
                "the operator's controllers have not reported on it yet".to_owned(),
            ));
        }
        // One reason per object, the most fundamental: the others usually follow from it.
        if let Some((_, reason)) = why.into_iter().min_by_key(|(rank, _)| *rank) {
            pending.push(Pending { object: id, reason });
        }
    }
    // An agent reporting here for a node this cluster has no record of (a mistyped
    // `--cluster` or `--node`, an emptied store) holds its host: say so, or it is never seen.
    for (node, report) in &inputs.reports {
        let known = inputs
            .objects
            .objects
            .keys()
            .any(|k| k.kind == Kind::Node && k.name == *node);
        let hold = report
            .as_ref()
            .ok()
            .and_then(|r| r.resources.iter().find(|p| p.id == HOLD_ID));
        let alive = inputs.agents.contains(node);
        if let (false, true, Some(hold)) = (known, alive, hold) {
            pending.push(Pending {
                object: format!("node/{node}"),
                reason: format!(
                    "no Node record in this cluster, but an agent reports for it and holds \
                     its host: {}",
                    hold.message
                ),
            });
        }
    }
    // An unreadable record is the root cause of whatever else its object shows.
    pending.retain(|p| !inputs.unreadable.contains_key(&p.object));
    pending.extend(inputs.unreadable.iter().map(|(object, why)| Pending {
        object: object.clone(),
        reason: format!("Unreadable: {why}"),
    }));
    if let Some(held) = &inputs.staged {
        pending.insert(0, staged_pending(held));
    }
    ClusterStatus {
        revision: inputs.objects.revision,
        converged: pending.is_empty(),
        nodes,
        conditions: conditions(inputs),
        operations,
        pending,
        overrides,
    }
}

/// A staged apply holding the lock: the operator does not see its writes until it ends.
fn staged_pending(held: &Held) -> Pending {
    let lock = &held.lock.lock;
    let reason = if held.holder_alive {
        format!(
            "being written by {} since {}: {} of {} changes so far, hidden from the operator \
             until all are written",
            lock.by,
            lock.started,
            held.keys.len(),
            lock.changes
        )
    } else {
        format!(
            "interrupted ({}, started {}) after writing {} keys: they are hidden from the \
             operator, which holds those objects as they were; the next `omtd apply` or \
             `omtd delete` rolls it back",
            lock.by,
            lock.started,
            held.keys.len()
        )
    };
    Pending {
        object: "apply".to_owned(),
        reason,
    }
}

fn node_status(obj: &Object, roles: impl Iterator<Item = String>, inputs: &Inputs) -> NodeStatus {
    let name = obj.name().to_owned();
    let (report, report_error) = match inputs.reports.get(&name) {
        Some(Ok(r)) => {
            let mut summary = summarise(r);
            summary.current = report_is_current(r, inputs.plans.get(&name));
            (Some(summary), None)
        }
        Some(Err(e)) => (None, Some(e.clone())),
        None => (None, None),
    };
    NodeStatus {
        roles: roles.collect(),
        ready: obj.status().and_then(|s| s.condition("Ready")).map(view),
        agent: inputs.agents.contains(&name),
        report,
        report_error,
        name,
    }
}

/// Which reason to show when an object has several: the lowest rank, the root cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    NoAgent,
    NotAccepted,
    StaleStatus,
    Report,
    NotReady,
}

/// Why a node is not converged, as far as its agent and report tell.
fn node_pending(node: &NodeStatus) -> Vec<(Rank, String)> {
    let mut why = Vec::new();
    if !node.agent {
        why.push((
            Rank::NoAgent,
            format!(
                "no agent heartbeat: start `omtd agent --node {}` on the host",
                node.name
            ),
        ));
    }
    let report = match (&node.report, &node.report_error) {
        (_, Some(e)) => Some(format!("its report is unreadable: {e}")),
        (None, None) => Some("the agent has not reported yet".to_owned()),
        (Some(r), None) if !r.converged => Some(not_converged(r)),
        (Some(r), None) if !r.current => {
            Some("the plan changed; the agent has not reported on the new one yet".to_owned())
        }
        (Some(_), None) => None,
    };
    why.extend(report.map(|r| (Rank::Report, r)));
    why
}

fn not_converged(r: &ReportSummary) -> String {
    // A hold is the whole story: the agent applies no new plan until it ends.
    if let Some(hold) = r.problems.iter().find(|p| p.id == HOLD_ID) {
        return format!("the agent holds the host: {}", hold.message);
    }
    let bad = r.resources - r.converged_resources;
    if r.problems.is_empty() {
        return "the agent is still applying its plan".to_owned();
    }
    let mut named: Vec<String> = r
        .problems
        .iter()
        .take(NAMED_PROBLEMS)
        .map(|p| {
            if p.message.is_empty() {
                format!("{} is {}", p.id, p.state)
            } else {
                format!("{} is {}: {}", p.id, p.state, p.message)
            }
        })
        .collect();
    if r.problems.len() > NAMED_PROBLEMS {
        named.push(format!("and {} more", r.problems.len() - NAMED_PROBLEMS));
    }
    format!(
        "{bad} of {} resources not converged: {}",
        r.resources,
        named.join("; ")
    )
}

/// Why an object's status says it is not done, from its conditions and generation.
fn status_pending(obj: &Object, status: &Status) -> Vec<(Rank, String)> {
    let mut why = Vec::new();
    if let Some(c) = status.condition("Accepted") {
        if c.status == ConditionStatus::False {
            why.push((Rank::NotAccepted, format!("not accepted{}", explain(c))));
        }
    }
    let generation = obj.meta().generation;
    if status.observed_generation > 0 && status.observed_generation != generation {
        why.push((
            Rank::StaleStatus,
            format!(
                "the operator has not acted on generation {generation} yet (its status is from generation {})",
                status.observed_generation
            ),
        ));
    }
    if let Some(c) = status.condition("Ready") {
        if c.status != ConditionStatus::True {
            why.push((
                Rank::NotReady,
                format!("Ready is {:?}{}", c.status, explain(c)),
            ));
        }
    }
    why
}

/// ` (Reason): message`, with whatever parts the condition has.
fn explain(c: &Condition) -> String {
    let mut s = String::new();
    if !c.reason.is_empty() {
        s.push_str(&format!(" ({})", c.reason));
    }
    if !c.message.is_empty() {
        s.push_str(&format!(": {}", c.message));
    }
    s
}

/// Steps under way that an object's status tells of.
fn status_operations(obj: &Object, status: &Status) -> Vec<Operation> {
    let id = obj.key().to_string();
    let mut ops = Vec::new();
    let active = |t: &str| {
        status
            .condition(t)
            .filter(|c| c.status == ConditionStatus::True)
    };
    if let Some(c) = active("Progressing") {
        ops.push(Operation {
            object: id.clone(),
            step: status
                .extra
                .get("step")
                .and_then(|v| v.as_str())
                .unwrap_or("progressing")
                .to_owned(),
            percent: status
                .extra
                .get("percent")
                .and_then(|v| v.as_u64())
                .map(|p| u8::try_from(p.min(100)).unwrap_or(100)),
            message: c.message.clone(),
        });
    }
    if let Some(c) = active("Recovery") {
        ops.push(Operation {
            object: id.clone(),
            step: "recovery".to_owned(),
            percent: None,
            message: c.message.clone(),
        });
    }
    // The node controller says a node being retired is not Ready for reason `Removing`.
    if let Some(c) = status
        .condition("Ready")
        .filter(|c| obj.kind() == Kind::Node && c.reason == "Removing")
    {
        ops.push(Operation {
            object: id,
            step: "removal".to_owned(),
            percent: None,
            message: c.message.clone(),
        });
    }
    ops
}

fn percent_of(inputs: &Inputs, node: &str, resource: &str) -> Option<u8> {
    let report = inputs.reports.get(node)?.as_ref().ok()?;
    report
        .resources
        .iter()
        .find(|r| r.id == resource)
        .and_then(|r| r.percent)
}

/// Whether `report` names the digest of every stored slice of its node (and no other). A
/// report naming none comes from an agent older than the digests: taken as it stands.
fn report_is_current(
    report: &Report,
    stored: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    if report.slices.is_empty() {
        return true;
    }
    let stored_count = stored.map_or(0, |s| s.len());
    stored_count == report.slices.len()
        && stored
            .into_iter()
            .flatten()
            .all(|(controller, digest)| report.slices.get(controller) == Some(digest))
}

fn summarise(report: &Report) -> ReportSummary {
    let mut s = ReportSummary {
        converged: report.converged,
        resources: report.resources.len(),
        corrective_changes: report.corrective_changes,
        intentional_changes: report.intentional_changes,
        unmanaged: report.unmanaged.clone(),
        ..ReportSummary::default()
    };
    for r in &report.resources {
        let (count, state) = match r.state {
            ResourceState::Converged => {
                s.converged_resources += 1;
                continue;
            }
            ResourceState::Progressing => (&mut s.progressing, "progressing"),
            ResourceState::Failed => (&mut s.failed, "failed"),
            ResourceState::Refused => (&mut s.refused, "refused"),
            ResourceState::Conflict => (&mut s.conflict, "conflict"),
            ResourceState::CrashLooping => (&mut s.crash_looping, "crashLooping"),
        };
        *count += 1;
        s.problems.push(ResourceProblem {
            id: r.id.clone(),
            state: state.to_owned(),
            message: r.message.clone(),
        });
    }
    s
}

fn view(c: &Condition) -> ConditionView {
    ConditionView {
        status: c.status,
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

/// The Cluster's conditions, then one summary row each for volumes and credentials.
fn conditions(inputs: &Inputs) -> Vec<ConditionRow> {
    let cluster_status = inputs
        .objects
        .of_kind(Kind::Cluster)
        .next()
        .and_then(|c| c.object.status());
    let row = |group: &str, type_: &str, c: Option<&Condition>| ConditionRow {
        group: group.to_owned(),
        type_: type_.to_owned(),
        status: c.map(|c| c.status),
        reason: c.map(|c| c.reason.clone()).unwrap_or_default(),
        message: c.map(|c| c.message.clone()).unwrap_or_default(),
    };
    let mut rows: Vec<ConditionRow> = CLUSTER_CONDITIONS
        .iter()
        .map(|(group, t)| row(group, t, cluster_status.and_then(|s| s.condition(t))))
        .collect();
    for c in cluster_status.iter().flat_map(|s| &s.conditions) {
        if !CLUSTER_CONDITIONS.iter().any(|(_, t)| *t == c.type_) {
            rows.push(row(cluster_owner(&c.type_), &c.type_, Some(c)));
        }
    }
    rows.push(readiness_of(
        inputs,
        Kind::Volume,
        "storage",
        "VolumesReady",
    ));
    rows.push(readiness_of(
        inputs,
        Kind::Credential,
        "credentials",
        "CredentialsReady",
    ));
    rows
}

/// The controller whose declaration owns the Cluster condition `type_`, or `cluster`.
fn cluster_owner(type_: &str) -> &'static str {
    omtd_controllers::DECLARATIONS
        .iter()
        .find(|d| {
            d.owns
                .iter()
                .any(|o| o.kind == Kind::Cluster && o.conditions.contains(&type_))
        })
        .map_or("cluster", |d| d.name)
}

/// One row summing up the `Ready` conditions of every object of a kind.
fn readiness_of(inputs: &Inputs, kind: Kind, group: &str, type_: &str) -> ConditionRow {
    let mut total = 0usize;
    let mut ready = 0usize;
    let mut any_false = false;
    let mut any_set = false;
    let mut first_bad: Option<String> = None;
    for stored in inputs.objects.of_kind(kind) {
        total += 1;
        match stored.object.status().and_then(|s| s.condition("Ready")) {
            Some(c) => {
                any_set = true;
                match c.status {
                    ConditionStatus::True => ready += 1,
                    other => {
                        any_false |= other == ConditionStatus::False;
                        if first_bad.is_none() {
                            first_bad = Some(format!("{}{}", stored.object.key(), explain(c)));
                        }
                    }
                }
            }
            None => {
                if first_bad.is_none() {
                    first_bad = Some(format!("{}: no Ready condition yet", stored.object.key()));
                }
            }
        }
    }
    let (status, reason) = match (total, any_set) {
        (0, _) | (_, false) => (None, ""),
        _ if ready == total => (Some(ConditionStatus::True), "AllReady"),
        _ if any_false => (Some(ConditionStatus::False), "NotReady"),
        _ => (Some(ConditionStatus::Unknown), "Unknown"),
    };
    let plural = kind.plural();
    let mut message = if total == 0 {
        format!("no {plural}")
    } else {
        format!("{ready} of {total} {plural} ready")
    };
    if let (Some(_), Some(bad)) = (status, first_bad) {
        if ready < total {
            message.push_str(&format!("; {bad}"));
        }
    }
    ConditionRow {
        group: group.to_owned(),
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
    }
}
