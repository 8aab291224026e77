//! `omtd apply -f FILE|DIR [--dry-run] [--prune]`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use super::manifests;
use super::FileArgs;
use crate::resources::apply::{
    execute, plan_apply, sort_changes, Action, ApplyOptions, ExecuteError, Plan,
};
use crate::resources::staged::{self, StagedError};
use crate::resources::Repo;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Validate and show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete objects an earlier apply of the same source created that are no longer in it.
    #[arg(long)]
    pub prune: bool,
    /// Name of the source recorded on each object for --prune (default: the absolute paths
    /// of the -f arguments). Set it in pipelines whose checkout path changes between runs.
    #[arg(long)]
    pub source: Option<String>,
}

/// The source name recorded on objects: `--source`, or the -f arguments made absolute (so
/// the same file is the same source whatever the working directory).
pub fn source_name(files: &FileArgs, source: &Option<String>) -> String {
    if let Some(s) = source {
        return s.clone();
    }
    files
        .files
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                "stdin".to_owned()
            } else {
                std::fs::canonicalize(p)
                    .or_else(|_| std::path::absolute(p))
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads the manifests and plans the apply against the store as it is now.
pub async fn plan_from_files(
    repo: &Repo,
    files: &FileArgs,
    opts: &ApplyOptions,
) -> anyhow::Result<Plan> {
    let objects = match manifests::load(&files.files, files.recursive) {
        Ok(o) => o,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("error: {e}");
            }
            bail!(
                "{} problem(s) in the manifests; nothing was changed",
                errs.0.len()
            );
        }
    };
    let snapshot = repo.snapshot().await?;
    // Planning against a state with records it cannot read would take them for absent.
    snapshot.unsealed(|_| true)?;
    let mut plan = plan_apply(&snapshot, objects, opts);
    sort_changes(&mut plan.changes);
    Ok(plan)
}

/// Prints warnings, and errors when there are any (returning whether there were).
pub fn report_diagnostics(plan: &Plan) -> bool {
    for w in plan.warnings() {
        eprintln!("{w}");
    }
    let mut errors = 0;
    for e in plan.errors() {
        eprintln!("{e}");
        errors += 1;
    }
    errors > 0
}

pub async fn run(repo: &Repo, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let opts = ApplyOptions {
        source: source_name(&args.files, &args.source),
        prune: args.prune,
    };
    // Optimistic concurrency: if another writer touches one of our objects between our read
    // and our write, the transaction fails as a whole and we plan again from a fresh read.
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        if !args.dry_run {
            settle_staged(repo).await?;
        }
        let plan = plan_from_files(repo, &args.files, &opts).await?;
        if report_diagnostics(&plan) {
            bail!("the desired state is invalid; nothing was changed");
        }
        if args.dry_run {
            print_changes(&plan, " (dry run)");
            return Ok(ExitCode::SUCCESS);
        }
        match execute(repo, &plan).await {
            Ok(_) => {
                print_changes(&plan, "");
                return Ok(ExitCode::SUCCESS);
            }
            Err(ExecuteError::Conflict) if attempt < ATTEMPTS => {
                tracing::info!(
                    attempt,
                    "apply conflicted with another writer; planning again"
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("the objects kept changing under this apply ({ATTEMPTS} attempts); nothing was changed, try again")
}

/// How long an apply waits for another one that holds the store's apply lock.
const WAIT_FOR_OTHER_APPLY: Duration = Duration::from_secs(120);

/// Before planning: waits while another apply is being written, and rolls back one that
/// was interrupted (saying so), so this one plans on a whole state.
pub async fn settle_staged(repo: &Repo) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT_FOR_OTHER_APPLY;
    let mut said = false;
    loop {
        match staged::recover(repo.store.as_ref(), &repo.keys).await {
            Ok(None) => return Ok(()),
            Ok(Some(r)) => {
                eprintln!(
                    "warning: rolled back an interrupted apply ({}, started {}): {} keys put \
                     back as they were before it",
                    r.by, r.started, r.restored
                );
                return Ok(());
            }
            Err(StagedError::Busy { by, started, .. }) if Instant::now() < deadline => {
                if !said {
                    eprintln!("waiting for another apply ({by}, started {started}) to finish");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            // A rollback that raced another writer: look again.
            Err(StagedError::Conflict) if Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn print_changes(plan: &Plan, suffix: &str) {
    for c in &plan.changes {
        println!("{} {}{suffix}", c.key, c.action);
    }
    if plan.changes.is_empty() {
        println!("no objects{suffix}");
    }
    debug_assert!(plan.changes.iter().all(|c| c.action != Action::Deleted));
}
