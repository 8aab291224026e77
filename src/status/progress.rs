//! `omtd status --wait`'s progress: one line per subject (a node, a pending object, an
//! operation), printed again only when it changes, so a log of the wait reads as a story.

use std::collections::BTreeMap;

use super::ClusterStatus;

/// How a line is tinted on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Pending,
    Bad,
}

/// `text` in the tone's colour when `color`, else as is.
pub fn paint(text: &str, tone: Tone, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Pending => "33",
        Tone::Bad => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Every subject's current line, keyed so that a subject keeps its key across polls.
pub fn lines(status: &ClusterStatus) -> BTreeMap<String, (Tone, String)> {
    let mut out = BTreeMap::new();
    let pending_of = |object: &str| status.pending.iter().find(|p| p.object == object);
    for n in &status.nodes {
        let object = format!("node/{}", n.name);
        let broken = n.report_error.is_some() || n.report.as_ref().is_some_and(|r| r.broken() > 0);
        let line = match pending_of(&object) {
            Some(p) if broken => (Tone::Bad, p.reason.clone()),
            Some(p) => (Tone::Pending, p.reason.clone()),
            None => (Tone::Good, "converged".to_owned()),
        };
        out.insert(object, line);
    }
    for p in &status.pending {
        if !p.object.starts_with("node/") {
            out.insert(p.object.clone(), (Tone::Pending, p.reason.clone()));
        }
    }
    for o in &status.operations {
        let pct = o.percent.map(|p| format!(" {p}%")).unwrap_or_default();
        let msg = if o.message.is_empty() {
            String::new()
        } else {
            format!(": {}", o.message)
        };
        out.insert(
            format!("{} {}", o.object, o.step),
            (Tone::Pending, format!("in progress{pct}{msg}")),
        );
    }
    out
}

/// Remembers what was printed last and tells what to print now.
#[derive(Debug, Default)]
pub struct Tracker {
    last: BTreeMap<String, (Tone, String)>,
}

impl Tracker {
    /// The lines (`subject: text`) that are new or changed since the last call, and one
    /// line for each subject that went away (it is done).
    pub fn update(&mut self, status: &ClusterStatus) -> Vec<(Tone, String)> {
        let now = lines(status);
        let mut out = Vec::new();
        for (subject, (tone, text)) in &now {
            if self.last.get(subject) != Some(&(*tone, text.clone())) {
                out.push((*tone, format!("{subject}: {text}")));
            }
        }
        for subject in self.last.keys() {
            if !now.contains_key(subject) {
                out.push((Tone::Good, format!("{subject}: done")));
            }
        }
        self.last = now;
        out
    }
}
