//! `omtd describe KIND NAME`: one object in full, kubectl style.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use omtd_crds::{Kind, Object};

use super::render;
use crate::resources::{ObjectsAt, Repo};

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Kind (node, credential, volume, cluster and their plural and short forms).
    pub kind: String,
    pub name: String,
    /// Show secret values instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
    /// For scripts: the object (with its status), who uses it, and its events.
    #[arg(short, long, value_enum)]
    pub output: Option<DescribeFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeFormat {
    Json,
    Yaml,
}

/// What `describe -o json|yaml` prints: the same facts as the text, as data.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Described<'a> {
    object: Object,
    used_by: Vec<String>,
    events: &'a [crate::runtime::events::Event],
}

pub async fn run(repo: &Repo, args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = args.kind.parse()?;
    let snapshot = repo.snapshot().await?;
    snapshot.unsealed(|k| k.kind == kind && k.name == args.name)?;
    let Some(stored) = snapshot.get(kind, &args.name) else {
        bail!(
            "{} {:?} not found (omtd get {} lists them)",
            kind.lower(),
            args.name,
            kind.plural()
        );
    };
    let object = stored.object.key().to_string();
    let events: Vec<_> = crate::runtime::events::list(repo.store.as_ref(), &repo.keys)
        .await?
        .into_iter()
        .filter(|e| e.object == object)
        .collect();
    if let Some(format) = args.output {
        let described = Described {
            object: render::redacted(&stored.object, args.show_secrets),
            used_by: referenced_by(&stored.object, &snapshot),
            events: &events,
        };
        match format {
            DescribeFormat::Json => println!("{}", serde_json::to_string_pretty(&described)?),
            DescribeFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&described)?),
        }
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", describe(&stored.object, &snapshot, args.show_secrets));
    // Events last, as kubectl prints them: what omtd did and saw about this object.
    println!("Events:");
    if events.is_empty() {
        println!("  <none>");
    } else {
        let rows = events
            .iter()
            .map(|e| {
                vec![
                    e.type_.to_string(),
                    e.reason.clone(),
                    e.count.to_string(),
                    e.last_seen.clone(),
                    e.source.clone(),
                    e.message.clone(),
                ]
            })
            .collect();
        let table = render::table(
            &["TYPE", "REASON", "COUNT", "LAST SEEN", "FROM", "MESSAGE"],
            rows,
        );
        for line in table.lines() {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(obj: &Object, snapshot: &ObjectsAt, show_secrets: bool) -> String {
    let shown = render::redacted(obj, show_secrets);
    let meta = shown.meta();
    let mut out = String::new();
    let _ = writeln!(out, "Name:              {}", meta.name);
    let _ = writeln!(out, "Kind:              {}", shown.kind());
    let kv = |m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            "<none>".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n                   ")
        }
    };
    let _ = writeln!(out, "Labels:            {}", kv(&meta.labels));
    let _ = writeln!(out, "Annotations:       {}", kv(&meta.annotations));
    let _ = writeln!(out, "Generation:        {}", meta.generation);
    let _ = writeln!(
        out,
        "Resource Version:  {}",
        meta.resource_version.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "Spec:");
    let spec = serde_yaml_ng::to_string(&shown.spec_value()).unwrap_or_default();
    for line in spec.lines() {
        let _ = writeln!(out, "  {line}");
    }
    let refs = referenced_by(obj, snapshot);
    let _ = writeln!(
        out,
        "Used By:           {}",
        if refs.is_empty() {
            "<none>".into()
        } else {
            refs.join(", ")
        }
    );
    let _ = writeln!(out, "Conditions:");
    match shown.status().filter(|s| !s.conditions.is_empty()) {
        None => {
            let _ = writeln!(
                out,
                "  <none yet: no controller has reported on this object>"
            );
        }
        Some(status) => {
            let rows = status
                .conditions
                .iter()
                .map(|c| {
                    vec![
                        c.type_.clone(),
                        format!("{:?}", c.status),
                        c.reason.clone(),
                        c.last_transition_time.clone(),
                        c.message.clone(),
                    ]
                })
                .collect();
            let table = render::table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows);
            for line in table.lines() {
                let _ = writeln!(out, "  {line}");
            }
            let _ = writeln!(out, "Observed Generation: {}", status.observed_generation);
        }
    }
    if let Some(r) = shown
        .status()
        .and_then(omtd_controllers::removal::NodeRemovalRecord::from_status)
    {
        removal_section(&mut out, &r);
    }
    // What a controller is doing about the object (a removal's phase, a volume's step and
    // percent, the leader guard's recovery), as the controllers record it in status.
    if let Some(status) = shown.status().filter(|s| !s.extra.is_empty()) {
        let _ = writeln!(out, "Operation:");
        let text = serde_yaml_ng::to_string(&status.extra).unwrap_or_default();
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// A node's removal: its phase, and while it drains the tasks still running on its agent
/// and the deadline after which the machine goes down anyway (killing them).
fn removal_section(out: &mut String, r: &omtd_controllers::removal::NodeRemovalRecord) {
    let _ = writeln!(out, "Removal:");
    let _ = writeln!(
        out,
        "  Phase:        {} (since {})",
        r.phase.as_str(),
        r.since
    );
    if let Some(deadline) = &r.deadline {
        let _ = writeln!(out, "  Deadline:     {deadline}");
    }
    if r.phase == omtd_controllers::removal::RemovalPhase::Draining {
        let more = r.running_tasks.saturating_sub(r.tasks.len());
        let mut tasks = r.tasks.join(", ");
        if more > 0 {
            tasks.push_str(&format!(" and {more} more"));
        }
        let _ = writeln!(out, "  Tasks running: {} {tasks}", r.running_tasks);
    }
    if !r.down_because.is_empty() {
        let _ = writeln!(out, "  Down because: {}", r.down_because);
    }
    if !r.waiting_for.is_empty() {
        let _ = writeln!(out, "  Waiting for:  {}", r.waiting_for);
    }
}

/// Objects that refer to this one (nodes using a credential, volumes on a node).
fn referenced_by(obj: &Object, snapshot: &ObjectsAt) -> Vec<String> {
    let name = obj.name();
    snapshot
        .objects
        .values()
        .filter(|s| match (&s.object, obj.kind()) {
            (Object::Node(n), Kind::Credential) => n.spec.credential.as_deref() == Some(name),
            (Object::Volume(v), Kind::Node) => v.spec.node == name,
            (Object::Cluster(c), Kind::Node) => {
                c.spec.roles.entries().any(|(_, n)| n == Some(name))
            }
            _ => false,
        })
        .map(|s| s.object.key().to_string())
        .collect()
}
