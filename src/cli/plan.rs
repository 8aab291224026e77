//! `omtd plan NODE [-o yaml|json] [--show-secrets]`: the merged configuration the
//! controllers would give one node now — files with their exact contents, services,
//! mounts, exports, volumes, containers, and which controller owns each — computed from
//! the store's records in-process (no operator needed). Secret files show `<redacted>`
//! unless `--show-secrets`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use omtd_controllers::Settings;
use omtd_crds::plan::{Ensure, FileSpec, ServiceState};
use omtd_crds::REDACTED;
use serde_json::{json, Value};

use super::render;
use crate::agent::merge::id;
use crate::operator::preview::{self, NodePlan};
use crate::resources::Repo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The node whose plan to show.
    pub node: String,
    /// Output format (default: human-readable).
    #[arg(short, long, value_enum)]
    pub output: Option<PlanFormat>,
    /// Show the contents of secret files instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
}

pub async fn run(repo: &Repo, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let snapshot = preview::read_snapshot(repo.store.as_ref(), &repo.keys).await?;
    let plan = preview::node_plan(&snapshot, &args.node, Settings::default())?;
    match args.output {
        None => print!("{}", human(&plan, args.show_secrets)),
        Some(PlanFormat::Json) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&structured(&plan, args.show_secrets))?
            );
        }
        Some(PlanFormat::Yaml) => {
            print!(
                "{}",
                serde_yaml_ng::to_string(&structured(&plan, args.show_secrets))?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every resource of the plan, tagged with its owner, in one list per kind.
#[derive(Default)]
struct Entries {
    files: Vec<(String, FileSpec)>,
    services: Vec<(String, omtd_crds::plan::ServiceSpec)>,
    physical_volumes: Vec<(String, omtd_crds::plan::PhysicalVolumeSpec)>,
    logical_volumes: Vec<(String, omtd_crds::plan::LogicalVolumeSpec)>,
    filesystems: Vec<(String, omtd_crds::plan::FilesystemSpec)>,
    mounts: Vec<(String, omtd_crds::plan::MountSpec)>,
    exports: Vec<(String, omtd_crds::plan::ExportSpec)>,
    containers: Vec<(String, omtd_crds::plan::ContainerSpec)>,
    /// Resource id → its owners, for the ones with more than one (the agent refuses those).
    conflicts: BTreeMap<String, Vec<String>>,
}

fn entries(plan: &NodePlan) -> Entries {
    let mut e = Entries::default();
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut own = |rid: String, c: &str| owners.entry(rid).or_default().push(c.to_owned());
    // Each kind: every resource under its owner, and its id counted for conflicts.
    macro_rules! collect {
        ($c:expr, $s:expr, $($field:ident => $id:path),+ $(,)?) => {$(
            for x in &$s.$field {
                own($id(x), $c);
                e.$field.push(($c.clone(), x.clone()));
            }
        )+};
    }
    for (c, s) in &plan.slices {
        collect!(c, s,
            files => id::file,
            services => id::service,
            physical_volumes => id::pv,
            logical_volumes => id::lv,
            filesystems => id::fs,
            mounts => id::mount,
            exports => id::export,
            containers => id::container,
        );
    }
    e.files.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    e.services.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    e.conflicts = owners.into_iter().filter(|(_, o)| o.len() > 1).collect();
    e
}

/// A file's content as shown: `<redacted>` for a secret unless asked.
fn shown_content(f: &FileSpec, show_secrets: bool) -> &str {
    if f.secret && !show_secrets {
        REDACTED
    } else {
        &f.content
    }
}

fn human(plan: &NodePlan, show_secrets: bool) -> String {
    let e = entries(plan);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for node/{} (from store revision {}, as the controllers would write it now)",
        plan.node, plan.revision
    );
    if plan.slices.is_empty() {
        let _ = writeln!(out, "\nNothing is planned for this node.");
        return out;
    }
    if !e.conflicts.is_empty() {
        let _ = writeln!(out, "\nConflicts (the agent applies none of these):");
        for (rid, owners) in &e.conflicts {
            let _ = writeln!(out, "  {rid}: owned by {}", owners.join(" and "));
        }
    }
    files_section(&mut out, &e, show_secrets);
    services_section(&mut out, &e);
    section(&mut out, "Volumes", &volume_lines(&e));
    let mounts: Vec<String> = e
        .mounts
        .iter()
        .map(|(c, m)| match m.ensure {
            Ensure::Present => format!(
                "  {} on {} type {} ({} {} {}) [{c}]",
                m.source, m.target, m.fstype, m.options, m.dump, m.pass
            ),
            Ensure::Absent => format!("  {} unmounted, out of fstab [{c}]", m.target),
        })
        .collect();
    section(&mut out, "Mounts", &mounts);
    let exports: Vec<String> = e
        .exports
        .iter()
        .map(|(c, x)| format!("  {} [{c}]", x.line()))
        .collect();
    section(&mut out, "Exports", &exports);
    let containers: Vec<String> = e
        .containers
        .iter()
        .map(|(c, k)| match k.ensure {
            Ensure::Absent => format!("  {} removed [{c}]", k.name),
            Ensure::Present => {
                let mut s = format!("  {} image {}", k.name, k.image);
                if !k.ports.is_empty() {
                    s.push_str(&format!(", ports {}", k.ports.join(" ")));
                }
                if !k.volumes.is_empty() {
                    s.push_str(&format!(", volumes {}", k.volumes.join(" ")));
                }
                s.push_str(&format!(" [{c}]"));
                s
            }
        })
        .collect();
    section(&mut out, "Containers", &containers);
    out
}

fn files_section(out: &mut String, e: &Entries, show_secrets: bool) {
    if !e.files.is_empty() {
        let _ = writeln!(out, "\nFiles:");
        for (c, f) in &e.files {
            let _ = writeln!(out, "  {} [{c}]", f.path);
            if f.ensure == Ensure::Absent {
                let _ = writeln!(out, "    absent");
                continue;
            }
            let mut facts = vec![format!("mode {:04o}", f.mode)];
            if let Some(o) = &f.owner {
                facts.push(format!("owner {o}"));
            }
            if let Some(g) = &f.group {
                facts.push(format!("group {g}"));
            }
            if f.secret {
                facts.push("secret".into());
            }
            if let Some(v) = &f.validate {
                facts.push(format!("checked with `{v}`"));
            }
            let _ = writeln!(out, "    {}", facts.join(", "));
            if f.secret && !show_secrets {
                // Not even its shape (length, final newline) is shown.
                let _ = writeln!(out, "    {REDACTED}");
            } else {
                out.push_str(&indented(&f.content));
            }
        }
    }
}

fn services_section(out: &mut String, e: &Entries) {
    if !e.services.is_empty() {
        let _ = writeln!(out, "\nServices:");
        let rows = e
            .services
            .iter()
            .map(|(c, s)| {
                let state = match s.state {
                    ServiceState::Running => "running",
                    ServiceState::Stopped => "stopped",
                    ServiceState::Masked => "masked",
                };
                let enabled = match (s.state, s.enabled) {
                    (ServiceState::Masked, _) => "-",
                    (_, true) => "yes",
                    (_, false) => "no",
                };
                let mut notes = Vec::new();
                if !s.after.is_empty() {
                    notes.push(format!("after {}", s.after.join(",")));
                }
                if !s.restart_on.is_empty() {
                    notes.push(format!("restart on {}", s.restart_on.join(",")));
                }
                if let Some(t) = &s.restart_token {
                    notes.push(format!("token {t}"));
                }
                vec![
                    format!("  {}", s.name),
                    state.into(),
                    enabled.into(),
                    c.clone(),
                    notes.join("; "),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            render::table(&["  NAME", "STATE", "ENABLED", "OWNER", "NOTES"], rows)
        );
    }
}

/// Physical volumes, logical volumes and filesystems, one line each.
fn volume_lines(e: &Entries) -> Vec<String> {
    let mut volumes = Vec::new();
    for (c, pv) in &e.physical_volumes {
        let what = match pv.ensure {
            Ensure::Present => format!("PV {} in volume group {}", pv.device, pv.volume_group),
            Ensure::Absent => format!(
                "PV {} out of volume group {} (pvmove, vgreduce, pvremove)",
                pv.device, pv.volume_group
            ),
        };
        volumes.push(format!("  {what} [{c}]"));
    }
    for (c, lv) in &e.logical_volumes {
        let grow = if lv.grow_to_fill {
            ", grown over all free extents"
        } else {
            ""
        };
        volumes.push(format!("  LV {}/{}{grow} [{c}]", lv.volume_group, lv.name));
    }
    for (c, fs) in &e.filesystems {
        volumes.push(format!(
            "  {} filesystem on {} (made only on a blank device) [{c}]",
            fs.fstype, fs.device
        ));
    }
    volumes
}

fn section(out: &mut String, title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
}

/// Content indented under its file, exactly: a missing final newline is said, as diff
/// says it (one-line flag files must not have one).
fn indented(content: &str) -> String {
    let mut s = String::new();
    if content.is_empty() {
        s.push_str("    (empty)\n");
        return s;
    }
    for line in content.lines() {
        let _ = writeln!(s, "    | {line}");
    }
    if !content.ends_with('\n') {
        s.push_str("    \\ No newline at end of file\n");
    }
    s
}

/// The plan as data: one list per kind, every entry with its `controller`. File modes are
/// octal strings; secret contents are redacted unless asked.
fn structured(plan: &NodePlan, show_secrets: bool) -> Value {
    let e = entries(plan);
    fn tagged<T: serde::Serialize>(items: &[(String, T)]) -> Vec<Value> {
        items
            .iter()
            .map(|(c, x)| {
                let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("controller".into(), Value::String(c.clone()));
                }
                v
            })
            .collect()
    }
    let files: Vec<Value> = e
        .files
        .iter()
        .map(|(c, f)| {
            let mut shown = f.clone();
            shown.content = shown_content(f, show_secrets).to_owned();
            let mut v = serde_json::to_value(&shown).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("mode".into(), Value::String(format!("{:04o}", f.mode)));
                m.insert("controller".into(), Value::String(c.clone()));
            }
            v
        })
        .collect();
    let conflicts: Vec<Value> = e
        .conflicts
        .iter()
        .map(|(rid, owners)| json!({"resource": rid, "controllers": owners}))
        .collect();
    json!({
        "node": plan.node,
        "revision": plan.revision,
        "files": files,
        "services": tagged(&e.services),
        "physicalVolumes": tagged(&e.physical_volumes),
        "logicalVolumes": tagged(&e.logical_volumes),
        "filesystems": tagged(&e.filesystems),
        "mounts": tagged(&e.mounts),
        "exports": tagged(&e.exports),
        "containers": tagged(&e.containers),
        "conflicts": conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_shown_exactly() {
        assert_eq!(
            indented("zk://a/mesos"),
            "    | zk://a/mesos\n    \\ No newline at end of file\n"
        );
        assert_eq!(indented("a\nb\n"), "    | a\n    | b\n");
        assert_eq!(indented(""), "    (empty)\n");
    }
}
