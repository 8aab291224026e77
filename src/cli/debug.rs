//! `omtd debug editor --ui-access --for 1h`: the runbook's debugging step ("turn
//! use_remote_user to False ... don't forget to turn it back to True") as an override that
//! cannot be forgotten. It records an expiry on the editor's Node
//! (`omtd/debug-ui-access-until`); the node controller plans `use_remote_user = False`
//! until then, says so in a Warning event while it lasts, and plans `True` again at the
//! expiry, with nobody having to remember. `--off` ends it now.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use omtd_controllers::node::DEBUG_UI_ACCESS_ANNOTATION;
use omtd_controllers::Desired;
use omtd_crds::{Kind, Object, ObjectKey, Role};

use super::apply::settle_staged;
use crate::resources::apply::{execute, ExecuteError, Plan};
use crate::resources::Repo;

/// The longest override: a debugging session, not a new way to run the editor.
const MAX_FOR: Duration = Duration::from_secs(24 * 3600);
/// Attempts when another writer changes the Node between read and write.
const ATTEMPTS: usize = 5;

#[derive(Debug, Args)]
pub struct DebugArgs {
    #[command(subcommand)]
    pub target: DebugTarget,
}

#[derive(Debug, Subcommand)]
pub enum DebugTarget {
    /// The editor's Galaxy.
    Editor(EditorArgs),
}

#[derive(Debug, Args)]
pub struct EditorArgs {
    /// Open Galaxy's UI without Apache's remote user (galaxy.ini use_remote_user = False).
    #[arg(long, required = true)]
    pub ui_access: bool,
    /// For how long (at most 24h); omtd turns it back by itself at the end.
    #[arg(long = "for", value_parser = humantime::parse_duration, conflicts_with = "off", required_unless_present = "off")]
    pub duration: Option<Duration>,
    /// End the override now.
    #[arg(long)]
    pub off: bool,
}

pub async fn run(repo: &Repo, args: DebugArgs) -> anyhow::Result<ExitCode> {
    let DebugTarget::Editor(editor) = args.target;
    let until = match editor.duration {
        Some(d) if d.is_zero() || d > MAX_FOR => {
            bail!(
                "--for {}: give a duration from 1s to 24h, e.g. --for 1h",
                humantime::format_duration(d)
            )
        }
        Some(d) => Some(SystemTime::now() + d),
        None => None,
    };
    for _ in 0..ATTEMPTS {
        settle_staged(repo).await?;
        let snapshot = repo.snapshot().await?;
        let objects: Vec<&Object> = snapshot.objects.values().map(|s| &s.object).collect();
        let desired = Desired::from_objects(objects.iter().copied());
        let mut editors = desired
            .nodes
            .keys()
            .filter(|n| desired.roles(n).contains(&Role::Editor));
        let Some(name) = editors.next().cloned() else {
            bail!("no node has the editor role (omtd get nodes shows the roles)");
        };
        let key = ObjectKey {
            kind: Kind::Node,
            name: name.clone(),
        };
        let stored = snapshot
            .objects
            .get(&key)
            .with_context(|| format!("{key} vanished while reading"))?;
        let mut after = stored.object.clone();
        let annotations = &mut after.meta_mut().annotations;
        match until {
            Some(t) => {
                annotations.insert(
                    DEBUG_UI_ACCESS_ANNOTATION.to_owned(),
                    omtd_controllers::time::format(t),
                );
            }
            None => {
                annotations.remove(DEBUG_UI_ACCESS_ANNOTATION);
            }
        }
        let plan = Plan::edit_of(&key, stored, after);
        match execute(repo, &plan).await {
            Ok(_) => {
                match until {
                    Some(t) => println!(
                        "{key}: Galaxy's UI open without Apache's remote user until {} \
                         (omtd turns use_remote_user back to True then; --off ends it now)",
                        omtd_controllers::time::format(t)
                    ),
                    None => println!("{key}: debug override off (use_remote_user = True)"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(ExecuteError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("the editor's Node kept changing; nothing was changed, try again")
}
