//! `omtd get KIND [NAME...] | KIND/NAME... [-l SELECTOR] [-o wide|yaml|json|name]
//! [--show-secrets]`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use omtd_crds::Object;

use super::{render, OutputFormat};
use crate::resources::selector::Selector;
use crate::resources::targets;
use crate::resources::Repo;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// KIND [NAME...], or KIND/NAME...: node (nodes, no), credential (credentials, cred),
    /// volume (volumes, vol), cluster (clusters, cl), several joined by commas
    /// (nodes,volumes), or all.
    #[arg(required = true, value_name = "KIND [NAME]...")]
    pub targets: Vec<String>,
    /// Only records whose labels match (kubectl's grammar: tier=galaxy, tier!=galaxy,
    /// 'tier in (galaxy,mesos)', 'tier notin (x)', tier, !tier; joined by commas).
    #[arg(short = 'l', long, default_value = "")]
    pub selector: Selector,
    /// Output format (default: a table); `name` prints KIND/NAME lines.
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Show secret values instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
}

pub async fn run(repo: &Repo, args: GetArgs) -> anyhow::Result<ExitCode> {
    let targets = targets::parse(&args.targets, &args.selector, "get")?;
    let snapshot = repo.snapshot().await?;
    // A sealed record this process has no key for: say which key, rather than leave it out.
    snapshot.unsealed(|k| targets.names(k))?;
    let keys = match targets.resolve(&snapshot, &args.selector) {
        Ok(keys) => keys,
        Err(missing) => bail!("{}", targets::not_found(&missing)),
    };
    let objects: Vec<Object> = keys
        .iter()
        .filter_map(|k| snapshot.objects.get(k))
        .map(|s| s.object.clone())
        .collect();
    let shown: Vec<Object> = objects
        .iter()
        .map(|o| render::redacted(o, args.show_secrets))
        .collect();
    match args.output {
        Some(OutputFormat::Yaml) => print!("{}", render::to_yaml(&shown)),
        Some(OutputFormat::Json) => {
            println!("{}", render::to_json(&shown, targets.is_single()))
        }
        Some(OutputFormat::Name) => {
            for o in &shown {
                println!("{}", o.key());
            }
        }
        Some(OutputFormat::Wide) | None => {
            let wide = args.output == Some(OutputFormat::Wide);
            let kinds = targets.kinds();
            if shown.is_empty() {
                let which = if args.selector.is_empty() {
                    String::new()
                } else {
                    format!(" matching {}", args.selector)
                };
                eprintln!("No {}{which} found.", targets.plurals());
            }
            let mut first = true;
            for kind in &kinds {
                let rows: Vec<Vec<String>> = objects
                    .iter()
                    .filter(|o| o.kind() == *kind)
                    .map(|o| render::row(o, wide, args.show_secrets))
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                if !first {
                    println!();
                }
                first = false;
                if kinds.len() > 1 {
                    println!("# {}", kind.plural());
                }
                println!("{}", render::table(&render::columns(*kind, wide), rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
