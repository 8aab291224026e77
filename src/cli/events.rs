//! `omtd events [-o json]`: recent events, oldest first, as `kubectl get events` shows them.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::render;
use crate::resources::Repo;
use crate::runtime::events;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    Json,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this object (e.g. node/node1.omtd).
    #[arg(long = "for")]
    pub for_object: Option<String>,
    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<EventsFormat>,
}

pub async fn run(repo: &Repo, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut list = events::list(repo.store.as_ref(), &repo.keys).await?;
    if let Some(object) = &args.for_object {
        list.retain(|e| &e.object == object);
    }
    match args.output {
        Some(EventsFormat::Json) => println!("{}", serde_json::to_string_pretty(&list)?),
        None if list.is_empty() => eprintln!("No events."),
        None => {
            let rows = list
                .iter()
                .map(|e| {
                    vec![
                        e.last_seen.clone(),
                        e.type_.to_string(),
                        e.reason.clone(),
                        e.object.clone(),
                        e.count.to_string(),
                        e.first_seen.clone(),
                        e.message.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                render::table(
                    &[
                        "LAST SEEN",
                        "TYPE",
                        "REASON",
                        "OBJECT",
                        "COUNT",
                        "FIRST SEEN",
                        "MESSAGE"
                    ],
                    rows
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
