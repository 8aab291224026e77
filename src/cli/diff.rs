//! `omtd diff -f FILE|DIR`: what apply would change, as a unified diff. Exit codes follow
//! kubectl: 0 no change, 1 changes, 2 error.

use std::process::ExitCode;

use clap::Args;
use omtd_crds::{Object, Secret, REDACTED};
use similar::TextDiff;

use super::apply::{plan_from_files, report_diagnostics, source_name};
use super::{render, FileArgs};
use crate::resources::apply::{Action, ApplyOptions};
use crate::resources::Repo;

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Include the deletions `apply --prune` would make.
    #[arg(long)]
    pub prune: bool,
    /// The source name, as for apply --source.
    #[arg(long)]
    pub source: Option<String>,
    /// Show secret values instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
}

pub async fn run(repo: &Repo, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let opts = ApplyOptions {
        source: source_name(&args.files, &args.source),
        prune: args.prune,
    };
    let plan = plan_from_files(repo, &args.files, &opts).await?;
    if report_diagnostics(&plan) {
        anyhow::bail!("the desired state is invalid");
    }
    let mut changed = false;
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
    {
        changed = true;
        let (old, new) = comparable_pair(c.before.as_ref(), c.after.as_ref(), args.show_secrets);
        let diff = TextDiff::from_lines(&old, &new);
        print!(
            "{}",
            diff.unified_diff().context_radius(3).header(
                &format!("{} (stored)", c.key),
                &format!("{} ({})", c.key, c.action)
            )
        );
    }
    Ok(if changed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// YAML of the parts a user writes (metadata without omtd's bookkeeping, and spec), with
/// secrets redacted. A changed secret shows as `<redacted> (changed)` so the diff says that
/// it changed without saying what to.
fn comparable_pair(
    before: Option<&Object>,
    after: Option<&Object>,
    show_secrets: bool,
) -> (String, String) {
    let secret_changed = match (before, after) {
        (Some(Object::Credential(a)), Some(Object::Credential(b))) => {
            a.spec.secret != b.spec.secret
        }
        _ => false,
    };
    let view = |obj: Option<&Object>, is_new: bool| -> String {
        let Some(obj) = obj else { return String::new() };
        let mut obj = render::redacted(obj, show_secrets);
        obj.set_status(None);
        obj.meta_mut().generation = 0;
        obj.meta_mut().resource_version = None;
        if is_new && secret_changed && !show_secrets {
            if let Object::Credential(c) = &mut obj {
                c.spec.secret.value = Some(Secret::new(format!("{REDACTED} (changed)")));
            }
        }
        render::to_yaml(&[obj])
    };
    (view(before, false), view(after, true))
}
