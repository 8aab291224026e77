//! `omtd epoch [renew]`: show the cluster epoch, or make a new one after restoring the store
//! from a snapshot (docs/operations.md, "Restoring the store").
//!
//! A restore brings back the fencing tokens of the snapshot's time, lower than the ones
//! agents have seen since, so agents would refuse every plan of the restored operator as
//! a deposed leader's. A new epoch tells them the token count starts again; a deposed
//! leader of the new epoch is still refused.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::resources::{epoch, Repo};

#[derive(Debug, Args)]
pub struct EpochArgs {
    #[command(subcommand)]
    pub action: Option<EpochAction>,
}

#[derive(Debug, Subcommand)]
pub enum EpochAction {
    /// Make a new cluster epoch (after restoring the store from a snapshot).
    Renew,
}

pub async fn run(repo: &Repo, args: EpochArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        None => match epoch::current(repo.store.as_ref(), &repo.keys).await? {
            Some(e) => println!("{e}"),
            None => eprintln!("No cluster epoch yet: the operator makes one when it first leads."),
        },
        Some(EpochAction::Renew) => {
            let e = epoch::renew(repo.store.as_ref(), &repo.keys).await?;
            println!("{e}");
            eprintln!(
                "New cluster epoch: the operator writes every plan again under it, and \
                 agents follow it whatever fencing tokens they saw before."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
