//! Issue #11's targets table, the one place its limits are written down: every bench
//! (`omtd bench`, `cargo bench --bench cold_start_agents`, `drift_repair`, `agent_idle`)
//! judges its figures against it and prints them in one summary block, a line per figure
//! with its target and "met" or "missed".
//!
//! A figure measured at another size or on another store than a target's row (a 200-node
//! run, say) is printed with the row it would be judged by, and "not judged".

use std::fmt::Write as _;
use std::time::Duration;

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// From `apply` returning to a relabelled worker's bytes in the monitor's targets.
    RelabelP99,
    /// The operator process's CPU per change, net of what it spends idle.
    OperatorCpuPerChange,
    /// New Node and Credential applied → every host that must know has its files.
    AddNodeP99,
    /// `apply` → every node Ready (sim agents).
    ColdStart,
    /// The operator process's peak RSS through the cold start.
    ColdStartOperatorRss,
    /// `apply` → every node Ready, with one `omtd agent --root` process per worker.
    ColdStartRealAgents,
    /// Store revisions while nothing changes.
    IdleStoreWrites,
    /// A hand edit of a managed file → its planned bytes back (linux driver, inotify).
    DriftRepairP99,
    /// An idle `omtd agent` process's RSS (release build).
    AgentRssIdle,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::RelabelP99 => "relabel p99",
            Metric::OperatorCpuPerChange => "operator CPU per change",
            Metric::AddNodeP99 => "add a node end to end p99",
            Metric::ColdStart => "cold start -> all Ready",
            Metric::ColdStartOperatorRss => "operator RSS (peak) in the cold start",
            Metric::ColdStartRealAgents => "cold start, real agents (linux driver) -> all Ready",
            Metric::IdleStoreWrites => "idle store writes",
            Metric::DriftRepairP99 => "drift repair p99, linux driver, real inotify",
            Metric::AgentRssIdle => "agent RSS idle",
        }
    }

    /// What the size counts.
    fn noun(self) -> &'static str {
        match self {
            Metric::ColdStartRealAgents => "agent processes",
            _ => "nodes",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Etcd,
    Sqlite,
}

impl Store {
    /// From a store URL (`etcd://`, `etcd+tls://`, `sqlite://`).
    pub fn of_url(url: &str) -> Option<Store> {
        if url.starts_with("etcd") {
            Some(Store::Etcd)
        } else if url.starts_with("sqlite") {
            Some(Store::Sqlite)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Store::Etcd => "etcd",
            Store::Sqlite => "SQLite",
        }
    }
}

/// A measured value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Time(Duration),
    Bytes(u64),
    Count(u64),
}

impl Value {
    fn magnitude(self) -> f64 {
        match self {
            Value::Time(d) => d.as_secs_f64(),
            Value::Bytes(b) => b as f64,
            Value::Count(n) => n as f64,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Time(d) if d < Duration::from_secs(1) => {
                write!(f, "{:.1} ms", d.as_secs_f64() * 1000.0)
            }
            Value::Time(d) => write!(f, "{:.2} s", d.as_secs_f64()),
            Value::Bytes(b) if b < 1 << 30 => write!(f, "{:.1} MB", b as f64 / 1e6),
            Value::Bytes(b) => write!(f, "{:.2} GiB", b as f64 / (1u64 << 30) as f64),
            Value::Count(n) => write!(f, "{n}"),
        }
    }
}

/// One row of the table: a limit at a size on a store (`None`: any).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub metric: Metric,
    pub nodes: Option<usize>,
    pub store: Option<Store>,
    /// The figure must be at most this.
    pub at_most: Value,
    /// How the issue writes the limit.
    pub limit: &'static str,
}

const fn row(
    metric: Metric,
    nodes: Option<usize>,
    store: Option<Store>,
    at_most: Value,
    limit: &'static str,
) -> Target {
    Target {
        metric,
        nodes,
        store,
        at_most,
        limit,
    }
}

const fn ms(n: u64) -> Value {
    Value::Time(Duration::from_millis(n))
}

/// Issue #11's targets, in its order.
pub const TARGETS: &[Target] = &[
    row(
        Metric::RelabelP99,
        Some(1000),
        Some(Store::Etcd),
        ms(50),
        "<= 50 ms",
    ),
    row(
        Metric::OperatorCpuPerChange,
        Some(1000),
        None,
        ms(10),
        "<= 10 ms",
    ),
    row(
        Metric::RelabelP99,
        Some(1000),
        Some(Store::Sqlite),
        ms(80),
        "<= 80 ms",
    ),
    row(Metric::AddNodeP99, Some(1000), None, ms(100), "<= 100 ms"),
    row(
        Metric::ColdStart,
        Some(10_000),
        Some(Store::Etcd),
        Value::Time(Duration::from_secs(30)),
        "<= 30 s",
    ),
    row(
        Metric::ColdStartOperatorRss,
        Some(10_000),
        Some(Store::Etcd),
        Value::Bytes(1 << 30),
        "<= 1 GiB",
    ),
    row(
        Metric::ColdStartRealAgents,
        Some(1000),
        Some(Store::Etcd),
        Value::Time(Duration::from_secs(30)),
        "<= 30 s (was 504 s)",
    ),
    row(
        Metric::RelabelP99,
        Some(10_000),
        Some(Store::Etcd),
        ms(150),
        "<= 150 ms",
    ),
    row(Metric::IdleStoreWrites, None, None, Value::Count(0), "0"),
    row(
        Metric::DriftRepairP99,
        None,
        None,
        ms(10),
        "<= 10 ms (was 53-55 ms)",
    ),
    row(
        Metric::AgentRssIdle,
        None,
        None,
        Value::Bytes(10_000_000),
        "<= 10 MB (was 12.7-13.1 MB)",
    ),
];

/// A figure judged against the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub value: Value,
    /// The row it is judged by (or would be, at the row's size and store).
    pub target: Option<Target>,
    /// Whether the figure was measured at the row's size and store.
    pub judged: bool,
    /// Said after the value, e.g. "in 10 s".
    pub note: String,
}

impl Line {
    /// `Some(true)` met, `Some(false)` missed, `None` not judged.
    pub fn met(&self) -> Option<bool> {
        let t = self.target.filter(|_| self.judged)?;
        Some(self.value.magnitude() <= t.at_most.magnitude())
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Line {
        self.note = note.into();
        self
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn label(metric: Metric, nodes: Option<usize>, store: Option<Store>) -> String {
    let mut s = metric.name().to_owned();
    if let Some(n) = nodes {
        let _ = write!(s, ", {} {}", thousands(n), metric.noun());
    }
    if let Some(st) = store {
        let _ = write!(s, ", {}", st.name());
    }
    s
}

/// Judges `value`, measured at `nodes` on `store`, by the row of `metric` that fits.
pub fn judge(metric: Metric, nodes: Option<usize>, store: Option<Store>, value: Value) -> Line {
    let fits = |t: &&Target| {
        t.metric == metric
            && t.nodes.is_none_or(|n| Some(n) == nodes)
            && t.store.is_none_or(|s| Some(s) == store)
    };
    let judged = TARGETS.iter().find(fits);
    // Not at a row's size and store: the nearest row, the same store first.
    let target = judged
        .or_else(|| {
            TARGETS
                .iter()
                .filter(|t| t.metric == metric)
                .min_by_key(|t| (t.store != store, t.nodes != nodes))
        })
        .copied();
    Line {
        label: match judged {
            // The row's own words (its size and store are the run's).
            Some(t) => label(metric, t.nodes.or(nodes), t.store.or(store)),
            None => label(metric, nodes, store),
        },
        value,
        target,
        judged: judged.is_some(),
        note: String::new(),
    }
}

/// The summary block: one line per figure, its target, and the verdict.
pub fn render(lines: &[Line]) -> String {
    let width = lines.iter().map(|l| l.label.len()).max().unwrap_or(0);
    let mut s = String::from("summary (targets of issue #11):\n");
    for l in lines {
        let value = if l.note.is_empty() {
            l.value.to_string()
        } else {
            format!("{} {}", l.value, l.note)
        };
        let (limit, verdict) = match (l.target, l.met()) {
            (Some(t), Some(true)) => (t.limit.to_owned(), "met".to_owned()),
            (Some(t), Some(false)) => (t.limit.to_owned(), "missed".to_owned()),
            (Some(t), None) => (
                t.limit.to_owned(),
                format!("not judged: the target is for {}", where_of(&t)),
            ),
            (None, _) => ("-".to_owned(), "no target".to_owned()),
        };
        let _ = writeln!(
            s,
            "  {:<width$}  {:>16}  target {:<28} {verdict}",
            l.label, value, limit
        );
    }
    s
}

fn where_of(t: &Target) -> String {
    let mut parts = Vec::new();
    if let Some(n) = t.nodes {
        parts.push(format!("{} {}", thousands(n), t.metric.noun()));
    }
    if let Some(s) = t.store {
        parts.push(s.name().to_owned());
    }
    parts.join(" on ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_at_the_rows_size_and_store_is_met_or_missed() {
        let ok = judge(Metric::RelabelP99, Some(1000), Some(Store::Etcd), ms(48));
        assert_eq!(ok.label, "relabel p99, 1,000 nodes, etcd");
        assert_eq!(ok.met(), Some(true));
        let slow = judge(Metric::RelabelP99, Some(1000), Some(Store::Sqlite), ms(81));
        assert_eq!(slow.met(), Some(false));
        let cpu = judge(
            Metric::OperatorCpuPerChange,
            Some(1000),
            Some(Store::Sqlite),
            ms(9),
        );
        assert_eq!(cpu.met(), Some(true), "any store");
        let idle = judge(Metric::IdleStoreWrites, Some(8), None, Value::Count(1));
        assert_eq!(idle.met(), Some(false), "any size");
    }

    #[test]
    fn a_figure_at_another_size_is_shown_but_not_judged() {
        let small = judge(Metric::RelabelP99, Some(200), Some(Store::Sqlite), ms(1));
        assert_eq!(small.label, "relabel p99, 200 nodes, SQLite");
        assert_eq!(small.met(), None);
        let text = render(&[small]);
        assert!(
            text.contains("not judged: the target is for 1,000 nodes on SQLite"),
            "{text}"
        );
    }

    #[test]
    fn every_line_of_the_summary_names_its_target_and_verdict() {
        let text = render(&[
            judge(
                Metric::ColdStart,
                Some(10_000),
                Some(Store::Etcd),
                ms(29_000),
            ),
            judge(
                Metric::ColdStartOperatorRss,
                Some(10_000),
                Some(Store::Etcd),
                Value::Bytes(2 << 30),
            ),
        ]);
        assert!(
            text.contains("cold start -> all Ready, 10,000 nodes, etcd"),
            "{text}"
        );
        assert!(text.contains("29.00 s") && text.contains("<= 30 s") && text.contains("met"));
        assert!(
            text.contains("2.00 GiB") && text.contains("missed"),
            "{text}"
        );
    }
}
