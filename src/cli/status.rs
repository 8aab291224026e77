//! `omtd status [--wait] [--timeout 60s] [-o json]`: every node, the cluster's conditions,
//! operations under way, and what is still pending (the rules are in `crate::status`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::resources::Repo;
use crate::status::progress::{paint, Tone, Tracker};
use crate::status::{self, ClusterStatus};
use crate::store::WatchStream;

/// How often the state is read again when the watch is gone (store unreachable, compacted
/// start revision), and at the latest even with a watch: a safety net, as a reflector's
/// resync is.
const POLL: Duration = Duration::from_millis(500);
const RESYNC: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Wait until the cluster is converged (exit 0) or --timeout passes (exit 1), showing
    /// progress on stderr.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
    /// With --wait: how long the cluster must stay converged before the wait ends. The
    /// operator's probes (Mesos, Prometheus) answer every --probe-interval, so a change
    /// they have not seen yet can still flip a condition; keep this near that interval
    /// when a pipeline's next step relies on Mesos having caught up.
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "wait")]
    pub settle: Duration,
    /// Output format (default: tables).
    #[arg(short, long, value_enum)]
    pub output: Option<StatusFormat>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: write e.g. 60s, 500ms or 5m"))
}

pub async fn run(repo: &Repo, args: StatusArgs) -> anyhow::Result<ExitCode> {
    if !args.wait {
        let s = status::compute(&status::read(repo).await?);
        print(&s, args.output);
        return Ok(ExitCode::SUCCESS);
    }
    wait(repo, &args).await
}

/// Colours only on a terminal, and never when NO_COLOR is set (no-color.org).
fn use_color(tty: bool) -> bool {
    tty && std::env::var_os("NO_COLOR").is_none()
}

fn print(s: &ClusterStatus, format: Option<StatusFormat>) {
    match format {
        Some(StatusFormat::Json) => match serde_json::to_string_pretty(s) {
            Ok(json) => println!("{json}"),
            // Serialising plain strings and numbers cannot fail; say so if it ever does.
            Err(e) => eprintln!("error: cannot encode the status as JSON: {e}"),
        },
        None => print!(
            "{}",
            status::table::render(s, use_color(std::io::stdout().is_terminal()))
        ),
    }
}

async fn wait(repo: &Repo, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let deadline = start + args.timeout;
    let color = use_color(std::io::stderr().is_terminal());
    let say = |tone: Tone, line: &str| {
        eprintln!(
            "[{:>6.1}s] {}",
            start.elapsed().as_secs_f64(),
            paint(line, tone, color)
        );
    };
    say(
        Tone::Pending,
        &format!(
            "waiting up to {} for the cluster to converge",
            humantime::format_duration(args.timeout)
        ),
    );
    let mut tracker = Tracker::default();
    let mut last: Option<ClusterStatus> = None;
    let mut last_error: Option<String> = None;
    let mut watch: Option<WatchStream> = None;
    // Since when every read has said converged.
    let mut converged_since: Option<Instant> = None;
    loop {
        match status::read(repo).await {
            Ok(inputs) => {
                let s = status::compute(&inputs);
                last_error = None;
                for (tone, line) in tracker.update(&s) {
                    say(tone, &line);
                }
                if !s.converged {
                    converged_since = None;
                } else if converged_since.is_none() && !args.settle.is_zero() {
                    say(
                        Tone::Pending,
                        &format!(
                            "converged; checking it holds for {}",
                            humantime::format_duration(args.settle)
                        ),
                    );
                }
                let since = s
                    .converged
                    .then(|| *converged_since.get_or_insert_with(Instant::now));
                if since.is_some_and(|t| t.elapsed() >= args.settle) {
                    say(Tone::Good, "converged");
                    print(&s, args.output);
                    return Ok(ExitCode::SUCCESS);
                }
                if watch.is_none() {
                    // Everything under the cluster prefix: a report, a lease, a status or
                    // a spec changing can each change the verdict.
                    watch = repo
                        .store
                        .watch(repo.keys.prefix(), s.revision + 1)
                        .await
                        .ok();
                }
                last = Some(s);
            }
            Err(e) => {
                let message = e.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    say(
                        Tone::Bad,
                        &format!("cannot read the store: {message}; retrying"),
                    );
                }
                last_error = Some(message);
                watch = None;
            }
        }
        let settled = converged_since.map(|t| (t + args.settle).min(deadline));
        let timed_out = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => true,
            _ = next_change(&mut watch) => false,
            // Converged so far: look again once it has held long enough.
            _ = tokio::time::sleep_until(settled.unwrap_or(deadline)), if settled.is_some() => false,
        };
        if timed_out {
            break;
        }
    }

    let waited = humantime::format_duration(args.timeout);
    if let Some(s) = last.as_ref().filter(|s| s.converged) {
        // Converged at the deadline, only not yet for all of --settle: that is converged.
        say(
            Tone::Good,
            "converged (at the deadline, before --settle passed)",
        );
        print(s, args.output);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(s) = last else {
        anyhow::bail!(
            "timed out after {waited} without reading the store: {}",
            last_error.unwrap_or_default()
        );
    };
    print(&s, args.output);
    eprintln!(
        "{}",
        paint(
            &format!("timed out after {waited}; still pending:"),
            Tone::Bad,
            color
        )
    );
    for p in &s.pending {
        eprintln!("  {p}");
    }
    if let Some(e) = last_error {
        eprintln!("  (and the store could not be read at the end: {e})");
    }
    Ok(ExitCode::from(1))
}

/// Returns when something under the prefix changed, or after a poll period. A watch that
/// fails or ends is dropped; the caller opens a new one after its next read.
async fn next_change(watch: &mut Option<WatchStream>) {
    let Some(stream) = watch.as_mut() else {
        tokio::time::sleep(POLL).await;
        return;
    };
    match tokio::time::timeout(RESYNC, stream.next()).await {
        Ok(Some(Ok(_))) => {
            // Take the rest of a burst (an apply, a pass of the agent) in one read.
            let mut failed = false;
            while let Some(Some(item)) = stream.next().now_or_never() {
                if item.is_err() {
                    failed = true;
                    break;
                }
            }
            if failed {
                *watch = None;
            }
        }
        Ok(Some(Err(_)) | None) => {
            *watch = None;
            tokio::time::sleep(POLL).await;
        }
        Err(_) => {}
    }
}
