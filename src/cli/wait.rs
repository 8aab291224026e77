//! `omtd wait --for=condition=Ready[=True] node/X ... [--timeout 5m]` and
//! `omtd wait --for=delete node/X`: kubectl's wait, for pipelines whose next step needs a
//! record ready (or a removal finished).
//!
//! A condition counts only when its status was computed from the record's current
//! generation (`status.observedGeneration`): right after an apply, the Ready of the old
//! spec must not end the wait. Exit 0 when every picked record meets it, 1 at the timeout
//! with each record still waited on and why.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use omtd_crds::{ConditionStatus, ObjectKey};

use crate::resources::selector::Selector;
use crate::resources::targets::{self, Targets};
use crate::resources::{ObjectsAt, Repo};

/// How often the store is read again. The records change at reconcile speed (seconds),
/// so a poll costs a read a second at most and keeps the command simple.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// KIND NAME..., KIND/NAME..., or KIND with --selector (as for get).
    #[arg(required = true, value_name = "KIND [NAME]...")]
    pub targets: Vec<String>,
    /// condition=TYPE[=STATUS] (STATUS True, False or Unknown; default True), or delete.
    #[arg(long = "for", value_name = "CONDITION")]
    pub condition: WaitFor,
    /// Records of the kind whose labels match (kubectl's grammar, as in get).
    #[arg(short = 'l', long, default_value = "")]
    pub selector: Selector,
    /// How long to wait, e.g. 30s, 5m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// What to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Condition(String, ConditionStatus),
    Delete,
}

impl FromStr for WaitFor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FIX: &str =
            "write --for=condition=Ready, --for=condition=Ready=False or --for=delete";
        if s == "delete" {
            return Ok(WaitFor::Delete);
        }
        let Some(rest) = s.strip_prefix("condition=") else {
            return Err(format!("{s:?}: {FIX}"));
        };
        let (type_, status) = rest.split_once('=').unwrap_or((rest, "True"));
        let status = match status.to_ascii_lowercase().as_str() {
            "true" => ConditionStatus::True,
            "false" => ConditionStatus::False,
            "unknown" => ConditionStatus::Unknown,
            other => return Err(format!("{other:?} is not a condition status: {FIX}")),
        };
        if type_.is_empty() || !type_.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{type_:?} is not a condition type: {FIX}"));
        }
        Ok(WaitFor::Condition(type_.to_owned(), status))
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: write e.g. 30s, 500ms or 5m"))
}

/// Why one record does not meet the wait yet (`None`: it does).
fn pending(snapshot: &ObjectsAt, key: &ObjectKey, want: &WaitFor) -> Option<String> {
    let stored = snapshot.objects.get(key);
    match (want, stored) {
        (WaitFor::Delete, None) => None,
        (WaitFor::Delete, Some(_)) => Some("still in the store".into()),
        (WaitFor::Condition(..), None) => Some("not in the store".into()),
        (WaitFor::Condition(type_, status), Some(s)) => {
            let Some(st) = s.object.status() else {
                return Some("no status yet (is the operator running?)".into());
            };
            let generation = s.object.meta().generation;
            if st.observed_generation < generation {
                return Some(format!(
                    "status is of generation {}, the spec is at {generation}: not observed yet",
                    st.observed_generation
                ));
            }
            match st.condition(type_) {
                None => Some(format!("no {type_} condition")),
                Some(c) if c.status == *status => None,
                Some(c) => Some(format!(
                    "{type_} is {:?}{}{}",
                    c.status,
                    if c.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.reason)
                    },
                    if c.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.message)
                    }
                )),
            }
        }
    }
}

pub async fn run(repo: &Repo, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let targets = targets::parse(&args.targets, &args.selector, "wait")?;
    let start = Instant::now();
    // The records waited on: named ones as given; a kind (with a selector) as found at the
    // first read, as kubectl does, so a record deleted meanwhile is waited on, not dropped.
    let first = repo.snapshot().await?;
    let keys = match (&targets, targets.resolve(&first, &args.selector)) {
        (_, Ok(keys)) => keys,
        // Waiting for the deletion of what is already gone: met at once.
        (Targets::Keys(all), Err(_)) if args.condition == WaitFor::Delete => all.clone(),
        (_, Err(missing)) => bail!("{}", targets::not_found(&missing)),
    };
    if keys.is_empty() {
        bail!(
            "no {} matching {}: nothing to wait for",
            targets.plurals(),
            args.selector
        );
    }
    let mut snapshot = first;
    let mut done = std::collections::BTreeSet::new();
    loop {
        let mut waiting = Vec::new();
        for key in &keys {
            match pending(&snapshot, key, &args.condition) {
                None => {
                    if done.insert(key.clone()) {
                        let met = match &args.condition {
                            WaitFor::Delete => "deleted".to_owned(),
                            WaitFor::Condition(t, s) => format!("condition {t}={s:?} met"),
                        };
                        println!("{key} {met}");
                    }
                }
                Some(why) => waiting.push(format!("{key}: {why}")),
            }
        }
        if waiting.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if start.elapsed() >= args.timeout {
            eprintln!(
                "timed out after {} waiting for:",
                humantime::format_duration(args.timeout)
            );
            for w in &waiting {
                eprintln!("  {w}");
            }
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(POLL.min(args.timeout.saturating_sub(start.elapsed()))).await;
        snapshot = repo.snapshot().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_takes_kubectls_forms_and_names_the_fix() {
        assert_eq!(
            "condition=Ready".parse(),
            Ok(WaitFor::Condition("Ready".into(), ConditionStatus::True))
        );
        assert_eq!(
            "condition=Ready=false".parse(),
            Ok(WaitFor::Condition("Ready".into(), ConditionStatus::False))
        );
        assert_eq!("delete".parse(), Ok(WaitFor::Delete));
        for bad in [
            "Ready",
            "condition=",
            "condition=Ready=maybe",
            "condition=Re ady",
        ] {
            let e = bad.parse::<WaitFor>().expect_err(bad);
            assert!(e.contains("--for=condition=Ready"), "{bad}: {e}");
        }
    }
}
