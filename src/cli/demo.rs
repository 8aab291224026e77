//! `omtd demo [--keep-running] [--timeout 60s]`: the operator, one sim agent per node of
//! the runbook's cluster, and the runbook's classic failures, in one process (see
//! `crate::demo`). Exit 0 when every step converged, 1 otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::demo::{self, DemoOptions, Out};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stay up after the summary, so `omtd status`, `get` and `apply` can be run against
    /// the same store from another shell. Ctrl-C stops it.
    #[arg(long)]
    pub keep_running: bool,
    /// How long each step may take to converge before it counts as failed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitCode> {
    // A fresh store unless one was named: a demo must not mix with an old run's records.
    let temp;
    let mut global = global.clone();
    // No --store or OMTD_STORE: a fresh temporary store, not the default one.
    if global.store.is_none() {
        temp = tempfile::Builder::new().prefix("omtd-demo-").tempdir()?;
        global.store = Some(format!(
            "sqlite://{}",
            temp.path().join("omtd.db").display()
        ));
    }
    let store_url = global.store_url()?.to_string();
    let repo = super::open_repo(&global, super::Access::Write).await?;
    let keys = repo.store.list(&repo.keys.specs(), None).await;
    if keys.is_ok_and(|l| !l.kvs.is_empty()) {
        anyhow::bail!(
            "the store {} already holds records: the demo needs an empty one (leave out --store for a temporary one)",
            store_url
        );
    }
    let tty = std::io::stdout().is_terminal();
    let color = tty && std::env::var_os("NO_COLOR").is_none();
    let out = Out::new(color, tty);
    println!("omtd demo: the runbook's cluster on sim hosts, store {store_url}");
    let opts = DemoOptions {
        timeout: args.timeout,
        keep_running: args.keep_running,
        store_url,
    };
    let outcome = demo::run(repo, opts, out).await?;
    Ok(if outcome.all_repaired() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
