//! Progress of a long step (a pvmove, hours on a big disk) in `reports/<node>` while the
//! step runs: the pass runs on a blocking thread and sends (resource id, whole percent)
//! here; the agent loop turns them into report writes.
//!
//! Writes are rate-limited — at most one per `interval`, and only when a resource's whole
//! percent differs from the one last written — so a move costs the store a write every few
//! seconds, not one per lvm2 progress line. Nothing arrives while the host is idle, so the
//! zero-writes-when-idle property is untouched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use omtd_crds::plan::{Report, ResourceReport, ResourceState};

/// Decides which progress updates are written.
#[derive(Debug)]
pub struct ProgressLimiter {
    interval: Duration,
    last_write: Option<Instant>,
    /// Resource → the percent last written for it.
    written: BTreeMap<String, u8>,
    /// Resource → the latest percent heard, written or not.
    latest: BTreeMap<String, u8>,
}

impl ProgressLimiter {
    pub fn new(interval: Duration) -> Self {
        ProgressLimiter {
            interval,
            last_write: None,
            written: BTreeMap::new(),
            latest: BTreeMap::new(),
        }
    }

    /// Note a percent heard for `id`.
    pub fn note(&mut self, id: &str, percent: u8) {
        self.latest.insert(id.to_owned(), percent);
    }

    /// Whether a write is due at `now`: some resource's latest percent was never written,
    /// and the last progress write is at least `interval` old.
    pub fn due(&self, now: Instant) -> bool {
        let changed = self
            .latest
            .iter()
            .any(|(id, p)| self.written.get(id) != Some(p));
        changed
            && self
                .last_write
                .is_none_or(|t| now.duration_since(t) >= self.interval)
    }

    /// When the next write could be due (for a timer), if anything is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        let changed = self
            .latest
            .iter()
            .any(|(id, p)| self.written.get(id) != Some(p));
        if !changed {
            return None;
        }
        Some(
            self.last_write
                .map_or_else(Instant::now, |t| t + self.interval),
        )
    }

    /// The latest percents, to put in the report being written.
    pub fn latest(&self) -> &BTreeMap<String, u8> {
        &self.latest
    }

    /// Record that the latest percents were written at `now`.
    pub fn written(&mut self, now: Instant) {
        self.last_write = Some(now);
        self.written = self.latest.clone();
    }

    /// The pass is over: its own report supersedes the progress.
    pub fn reset(&mut self) {
        self.latest.clear();
        self.written.clear();
    }
}

/// `base` with each resource in `percents` shown as `Progressing` at that percent.
pub fn apply(base: &Report, percents: &BTreeMap<String, u8>) -> Report {
    let mut r = base.clone();
    for (id, percent) in percents {
        let message = match id.strip_prefix("pv:") {
            Some(dev) => format!("pvmove: moving extents off {dev}"),
            None => "in progress".to_owned(),
        };
        let entry = ResourceReport {
            id: id.clone(),
            state: ResourceState::Progressing,
            message,
            percent: Some(*percent),
            observed: BTreeMap::new(),
        };
        match r.resources.iter_mut().find(|x| &x.id == id) {
            Some(x) => *x = entry,
            None => r.resources.push(entry),
        }
    }
    r.resources.sort_by(|a, b| a.id.cmp(&b.id));
    r.converged = false;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_write_per_interval_and_only_on_a_new_percent() {
        let t0 = Instant::now();
        let mut l = ProgressLimiter::new(Duration::from_secs(2));
        assert!(!l.due(t0), "nothing heard");
        l.note("pv:/dev/vdd", 3);
        assert!(l.due(t0), "the first percent is written at once");
        l.written(t0);
        l.note("pv:/dev/vdd", 3);
        assert!(
            !l.due(t0 + Duration::from_secs(5)),
            "same percent: no write"
        );
        l.note("pv:/dev/vdd", 4);
        assert!(!l.due(t0 + Duration::from_secs(1)), "too soon");
        assert_eq!(l.next_due(), Some(t0 + Duration::from_secs(2)));
        assert!(l.due(t0 + Duration::from_secs(2)));
        l.written(t0 + Duration::from_secs(2));
        assert_eq!(l.next_due(), None);
        l.reset();
        assert!(l.latest().is_empty());
    }

    #[test]
    fn progress_replaces_the_resource_and_unconverges() {
        let base = Report {
            node: "n".into(),
            converged: true,
            resources: vec![ResourceReport {
                id: "file:/etc/a".into(),
                state: ResourceState::Converged,
                message: String::new(),
                percent: None,
                observed: BTreeMap::new(),
            }],
            ..Default::default()
        };
        let r = apply(&base, &BTreeMap::from([("pv:/dev/vdd".to_owned(), 42)]));
        assert!(!r.converged);
        let pv = r.resources.iter().find(|x| x.id == "pv:/dev/vdd").unwrap();
        assert_eq!(pv.state, ResourceState::Progressing);
        assert_eq!(pv.percent, Some(42));
        assert_eq!(r.resources.len(), 2);
    }
}
