//! Rate limit for repairs of one resource, so that a service that keeps dying is reported as
//! crash-looping and restarted with growing pauses, not 100 times a second.
//!
//! Each resource may be repaired `burst` times within `window`. Past that it is in backoff:
//! the next repair waits `base`, and each later one waits twice as long as the one before
//! (up to `max`), one repair per pause. A resource that stays as planned for a whole
//! `window` after its last repair is forgiven and starts afresh.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The limits. Tests use short ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairPolicy {
    pub burst: usize,
    pub window: Duration,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RepairPolicy {
    fn default() -> Self {
        // Like systemd's StartLimitBurst: a few quick repairs are normal (an admin's edit,
        // a one-off crash); more within the window is a fight or a loop.
        RepairPolicy {
            burst: 5,
            window: Duration::from_secs(30),
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    attempts: VecDeque<Instant>,
    /// 0: not in backoff; n: the next pause is base * 2^(n-1).
    level: u32,
    until: Option<Instant>,
}

/// Whether a repair may happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairDecision {
    Allow,
    /// Backing off; the pause now in force.
    Deny {
        pause: Duration,
    },
}

#[derive(Debug, Default)]
pub struct RepairLimiter {
    policy: RepairPolicy,
    entries: BTreeMap<String, Entry>,
}

impl RepairLimiter {
    pub fn new(policy: RepairPolicy) -> Self {
        RepairLimiter {
            policy,
            entries: BTreeMap::new(),
        }
    }

    fn pause(&self, level: u32) -> Duration {
        pause_for(&self.policy, level)
    }

    /// Ask to repair `id` now; an allowed repair is counted.
    pub fn allow(&mut self, id: &str, now: Instant) -> RepairDecision {
        let policy = self.policy;
        let pause = |level: u32| pause_for(&policy, level);
        let e = self.entries.entry(id.to_owned()).or_default();
        while e
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= policy.window)
        {
            e.attempts.pop_front();
        }
        if e.until.is_some_and(|until| now < until) {
            return RepairDecision::Deny {
                pause: pause(e.level),
            };
        }
        if e.level == 0 && e.attempts.len() >= policy.burst {
            e.level = 1;
            e.until = Some(now + pause(1));
            return RepairDecision::Deny { pause: pause(1) };
        }
        e.attempts.push_back(now);
        if e.level > 0 {
            // One repair per pause, then a longer pause.
            e.level = e.level.saturating_add(1);
            e.until = Some(now + pause(e.level));
        }
        RepairDecision::Allow
    }

    /// `id` is as planned: forget it once it has been so for a whole window since its last
    /// repair.
    pub fn settle(&mut self, id: &str, now: Instant) {
        let window = self.policy.window;
        if let Some(e) = self.entries.get(id) {
            let last = e.attempts.back().copied();
            if last.is_none_or(|t| now.duration_since(t) >= window)
                && e.until.is_none_or(|u| now >= u)
            {
                self.entries.remove(id);
            }
        }
    }

    /// Whether `id` is backing off (its state is crash-looping until it settles).
    pub fn backing_off(&self, id: &str) -> Option<Duration> {
        self.entries
            .get(id)
            .filter(|e| e.level > 0)
            .map(|e| self.pause(e.level))
    }

    /// When the earliest pause ends (the agent looks again then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.until).min()
    }

    /// Drop resources no longer in the plan.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|id, _| keep(id));
    }
}

/// The pause at backoff level `level` (1: `base`, doubling, capped at `max`).
fn pause_for(policy: &RepairPolicy, level: u32) -> Duration {
    let factor = 1u32
        .checked_shl(level.saturating_sub(1))
        .unwrap_or(u32::MAX);
    policy
        .base
        .checked_mul(factor)
        .unwrap_or(policy.max)
        .min(policy.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RepairPolicy {
        RepairPolicy {
            burst: 3,
            window: Duration::from_secs(30),
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        }
    }

    #[test]
    fn bursts_then_backs_off_exponentially() {
        let mut l = RepairLimiter::new(policy());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Polled every 100 ms for 20 s: count the repairs allowed.
        let mut allowed = Vec::new();
        for i in 0..200 {
            if l.allow("service:x", at(i * 100)) == RepairDecision::Allow {
                allowed.push(i * 100);
            }
        }
        // 3 at once, then after pauses of 1, 2, 4, 8, 8 s.
        assert_eq!(allowed, vec![0, 100, 200, 1300, 3300, 7300, 15300]);
        assert_eq!(l.backing_off("service:x"), Some(Duration::from_secs(8)));
        assert!(l.next_deadline().is_some());
    }

    #[test]
    fn settles_after_a_quiet_window() {
        let mut l = RepairLimiter::new(policy());
        let t0 = Instant::now();
        for i in 0..4 {
            l.allow("x", t0 + Duration::from_millis(i));
        }
        assert!(l.backing_off("x").is_some());
        l.settle("x", t0 + Duration::from_secs(5));
        assert!(l.backing_off("x").is_some(), "too early to forgive");
        l.settle("x", t0 + Duration::from_secs(31));
        assert!(l.backing_off("x").is_none());
        assert_eq!(
            l.allow("x", t0 + Duration::from_secs(31)),
            RepairDecision::Allow
        );
    }
}
