//! `omtd get KIND [NAME] [-o wide|yaml|json] [--show-secrets]`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use omtd_crds::{Kind, Object};

use super::{render, OutputFormat};
use crate::resources::Repo;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind: node (nodes, no), credential (credentials, cred), volume (volumes, vol),
    /// cluster (clusters, cl), or all.
    pub kind: String,
    /// One object's name (default: all of the kind).
    pub name: Option<String>,
    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Show secret values instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
}

/// The kinds a `get`/`describe` argument names (`all` is every kind).
pub fn parse_kinds(arg: &str) -> anyhow::Result<Vec<Kind>> {
    if arg.eq_ignore_ascii_case("all") {
        return Ok(Kind::ALL.to_vec());
    }
    Ok(vec![arg.parse::<Kind>()?])
}

pub async fn run(repo: &Repo, args: GetArgs) -> anyhow::Result<ExitCode> {
    let kinds = parse_kinds(&args.kind)?;
    if args.name.is_some() && kinds.len() > 1 {
        bail!("a name goes with one kind, not with 'all': omtd get node NAME");
    }
    let snapshot = repo.snapshot().await?;
    // A sealed record this process has no key for: say which key, rather than leave it out.
    snapshot
        .unsealed(|k| kinds.contains(&k.kind) && args.name.as_ref().is_none_or(|n| *n == k.name))?;
    let mut objects: Vec<Object> = Vec::new();
    for kind in &kinds {
        match &args.name {
            Some(name) => match snapshot.get(*kind, name) {
                Some(s) => objects.push(s.object.clone()),
                None => bail!(
                    "{} {name:?} not found (omtd get {} lists them)",
                    kind.lower(),
                    kind.plural()
                ),
            },
            None => objects.extend(snapshot.of_kind(*kind).map(|s| s.object.clone())),
        }
    }
    let shown: Vec<Object> = objects
        .iter()
        .map(|o| render::redacted(o, args.show_secrets))
        .collect();
    match args.output {
        Some(OutputFormat::Yaml) => print!("{}", render::to_yaml(&shown)),
        Some(OutputFormat::Json) => println!("{}", render::to_json(&shown, args.name.is_some())),
        Some(OutputFormat::Wide) | None => {
            let wide = args.output == Some(OutputFormat::Wide);
            if shown.is_empty() {
                eprintln!(
                    "No {} found.",
                    kinds
                        .iter()
                        .map(|k| k.plural())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
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
