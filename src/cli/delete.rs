//! `omtd delete KIND NAME`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use omtd_crds::{Kind, ObjectKey};

use super::apply::report_diagnostics;
use crate::resources::apply::{execute, plan_delete, ExecuteError};
use crate::resources::Repo;

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
}

pub async fn run(repo: &Repo, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = args.kind.parse()?;
    let key = ObjectKey {
        kind,
        name: args.name.clone(),
    };
    for _ in 0..5 {
        let snapshot = repo.snapshot().await?;
        let Some(plan) = plan_delete(&snapshot, &key) else {
            if args.ignore_not_found {
                return Ok(ExitCode::SUCCESS);
            }
            bail!("{key} not found (omtd get {} lists them)", kind.plural());
        };
        if report_diagnostics(&plan) {
            bail!("deleting {key} would leave the desired state invalid; nothing was deleted");
        }
        if args.dry_run {
            println!("{key} deleted (dry run)");
            return Ok(ExitCode::SUCCESS);
        }
        match execute(repo, &plan).await {
            Ok(_) => {
                println!("{key} deleted");
                return Ok(ExitCode::SUCCESS);
            }
            Err(ExecuteError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("{key} kept changing while being deleted; nothing was deleted, try again")
}
