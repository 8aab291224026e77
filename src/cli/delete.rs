//! `omtd delete KIND NAME`.
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
use crate::resources::{ObjectsAt, Repo};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kind (node, credential, volume, cluster and their plural and short forms).
    pub kind: String,
    pub name: String,
    /// Exit 0 when the object does not exist.
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
    let kind: Kind = args.kind.parse()?;
    let key = ObjectKey {
        kind,
        name: args.name.clone(),
    };
    let retire = kind == Kind::Node && !args.force;
    let kill_now = retire && args.now;
    for _ in 0..ATTEMPTS {
        if !args.dry_run {
            settle_staged(repo).await?;
        }
        let snapshot = repo.snapshot().await?;
        // The state left behind is validated whole: every record must be readable.
        snapshot.unsealed(|_| true)?;
        let plan = if retire {
            plan_mark(&snapshot, &key, kill_now)
        } else {
            plan_delete(&snapshot, &key)
        };
        let Some(plan) = plan else {
            if args.ignore_not_found {
                return Ok(ExitCode::SUCCESS);
            }
            bail!("{key} not found (omtd get {} lists them)", kind.plural());
        };
        if report_diagnostics(&plan) {
            bail!("deleting {key} would leave the desired state invalid; nothing was deleted");
        }
        let done = if kill_now {
            format!(
                "{key} marked for deletion now: tasks still running on its Mesos agent are \
                 killed (the machine goes down without waiting; see omtd describe node {})",
                key.name
            )
        } else if retire {
            format!(
                "{key} marked for deletion (omtd drains and retires it; see omtd describe node {})",
                key.name
            )
        } else {
            format!("{key} deleted")
        };
        if args.dry_run {
            println!("{done} (dry run)");
            return Ok(ExitCode::SUCCESS);
        }
        match execute(repo, &plan).await {
            Ok(_) => {
                println!("{done}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(ExecuteError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("{key} kept changing while being deleted; nothing was deleted, try again")
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
