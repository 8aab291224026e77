//! `omtd delete KIND NAME... | KIND/NAME... | KIND -l SELECTOR`: every record named or
//! selected in one all-or-nothing change.
//!
//! A node is not deleted at once: it gets the annotation `omtd/deleting: "true"`, and the
//! node controller retires it (drain in Mesos, stop its agent and exporter, take it out of
//! the credentials, exports and scrape targets) before it deletes the record itself.
//! The drain waits for the tasks on the node's Mesos agent (up to its drain timeout);
//! `--now` is the explicit "kill them now" path: it also sets `omtd/drain-timeout: 0s`, so
//! the machine goes down at once and its running tasks are killed. `--force` deletes the
//! record at once, for a node with nothing to retire (a typo, a host that never ran).
//! Other kinds are deleted at once.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use omtd_controllers::removal::{DELETING_ANNOTATION, DRAIN_TIMEOUT_ANNOTATION};
use omtd_crds::{Kind, ObjectKey};

use super::apply::{report_diagnostics, settle_staged};
use crate::resources::apply::{execute, plan_delete, ExecuteError, Plan};
use crate::resources::selector::Selector;
use crate::resources::targets::{self, Targets};
use crate::resources::{ObjectsAt, Repo};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// KIND NAME..., or KIND/NAME..., or KIND with --selector (node, credential, volume,
    /// cluster and their plural and short forms).
    #[arg(required = true, value_name = "KIND [NAME]...")]
    pub targets: Vec<String>,
    /// Every record of the kind whose labels match (kubectl's grammar, as in `get`); what
    /// it picks is printed, and deleted together or not at all.
    #[arg(short = 'l', long, default_value = "")]
    pub selector: Selector,
    /// Exit 0 when a named object does not exist (the others are deleted).
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Retire a node without waiting for the tasks on its Mesos agent: they are killed
    /// (sets omtd/drain-timeout=0s). Other kinds are deleted at once anyway.
    #[arg(long)]
    pub now: bool,
    /// Delete a node's record at once instead of retiring the node first (for a node with
    /// nothing to retire: its hosts keep whatever omtd set up there).
    #[arg(long)]
    pub force: bool,
}

/// Attempts when another writer changes the object between read and write.
const ATTEMPTS: usize = 5;

pub async fn run(repo: &Repo, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let targets = targets::parse(&args.targets, &args.selector, "delete")?;
    // A bare kind deletes every record of it only when a selector narrows it: `omtd delete
    // nodes` is far more likely a slip than a wish to retire the whole cluster.
    if matches!(targets, Targets::Kinds(_)) && args.selector.is_empty() {
        bail!(
            "name what to delete (omtd delete node NAME, or node/NAME), or select it with \
             -l (omtd delete nodes -l tier=old); nothing was deleted"
        );
    }
    let retire = |key: &ObjectKey| key.kind == Kind::Node && !args.force;
    let kill_now = args.now;
    for _ in 0..ATTEMPTS {
        if !args.dry_run {
            settle_staged(repo).await?;
        }
        let snapshot = repo.snapshot().await?;
        // The state left behind is validated whole: every record must be readable.
        snapshot.unsealed(|_| true)?;
        let keys = match targets.resolve(&snapshot, &args.selector) {
            Ok(keys) => keys,
            Err(missing) if args.ignore_not_found => match &targets {
                Targets::Keys(all) => all
                    .iter()
                    .filter(|k| !missing.contains(k))
                    .cloned()
                    .collect(),
                Targets::Kinds(_) => Vec::new(),
            },
            Err(missing) => bail!("{}; nothing was deleted", targets::not_found(&missing)),
        };
        if keys.is_empty() {
            if !args.selector.is_empty() {
                println!("no {} matching {}", targets.plurals(), args.selector);
            }
            return Ok(ExitCode::SUCCESS);
        }
        let (marked, deleted): (Vec<ObjectKey>, Vec<ObjectKey>) =
            keys.iter().cloned().partition(|k| retire(k));
        let Some(mut plan) = plan_delete(&snapshot, &deleted) else {
            continue; // gone between the read and now: read again
        };
        for key in &marked {
            let Some(edit) = plan_mark(&snapshot, key, kill_now) else {
                continue;
            };
            plan.changes.extend(edit.changes);
        }
        let what = keys
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if report_diagnostics(&plan) {
            bail!("deleting {what} would leave the desired state invalid; nothing was deleted");
        }
        let lines: Vec<String> = keys
            .iter()
            .map(|key| {
                if !retire(key) {
                    format!("{key} deleted")
                } else if kill_now {
                    format!(
                        "{key} marked for deletion now: tasks still running on its Mesos agent \
                         are killed (the machine goes down without waiting; see omtd describe \
                         node {})",
                        key.name
                    )
                } else {
                    format!(
                        "{key} marked for deletion (omtd drains and retires it; see omtd \
                         describe node {})",
                        key.name
                    )
                }
            })
            .collect();
        if args.dry_run {
            for l in &lines {
                println!("{l} (dry run)");
            }
            return Ok(ExitCode::SUCCESS);
        }
        match execute(repo, &plan).await {
            Ok(_) => {
                for l in &lines {
                    println!("{l}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(ExecuteError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("the records kept changing while being deleted; nothing was deleted, try again")
}

/// Plans setting the deleting annotation, and with `kill_now` a zero drain timeout (no
/// change when they are already set). No validation is needed: the record stays, and so
/// does everything it refers to.
fn plan_mark(snapshot: &ObjectsAt, key: &ObjectKey, kill_now: bool) -> Option<Plan> {
    let stored = snapshot.objects.get(key)?;
    let mut after = stored.object.clone();
    let annotations = &mut after.meta_mut().annotations;
    annotations.insert(DELETING_ANNOTATION.to_owned(), "true".to_owned());
    if kill_now {
        annotations.insert(DRAIN_TIMEOUT_ANNOTATION.to_owned(), "0s".to_owned());
    }
    Some(Plan::edit_of(key, stored, after))
}
