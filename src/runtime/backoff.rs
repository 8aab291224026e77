//! Per-key exponential backoff with jitter, reset on success.
//!
//! The delays come from `backon`'s exponential builder (the maintained crate kube-runtime
//! moved to); this module only keeps one sequence per work key, caps it, and forgets it once
//! the key reconciles cleanly, so a key that failed an hour ago starts again from the minimum
//! (kube-rs#1916 is about kube-runtime not doing that).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Bounds of the delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub min: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min: Duration::from_millis(100),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffConfig {
    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
    }

    /// A fresh sequence for one retried operation (the reflector and the elector use these).
    pub fn sequence(&self) -> Sequence {
        Sequence {
            inner: self.builder().build(),
            max: self.max,
        }
    }
}

/// One growing sequence of delays.
#[derive(Debug)]
pub struct Sequence {
    inner: ExponentialBackoff,
    max: Duration,
}

impl Sequence {
    /// The next delay: the base doubles each time, jitter adds up to as much again, and the
    /// result never exceeds the configured maximum.
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next().unwrap_or(self.max).min(self.max)
    }
}

/// One backoff sequence per key.
#[derive(Debug)]
pub struct Backoffs {
    config: BackoffConfig,
    per_key: Mutex<HashMap<String, (Sequence, u32)>>,
}

impl Backoffs {
    pub fn new(config: BackoffConfig) -> Self {
        Backoffs {
            config,
            per_key: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more failure, and how many failures in a
    /// row that makes.
    pub fn next_delay(&self, key: &str) -> (Duration, u32) {
        let mut map = self
            .per_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map
            .entry(key.to_owned())
            .or_insert_with(|| (self.config.sequence(), 0));
        entry.1 += 1;
        (entry.0.next_delay(), entry.1)
    }

    /// The key reconciled cleanly: its next failure starts again from the minimum delay.
    pub fn reset(&self, key: &str) {
        self.per_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let b = Backoffs::new(BackoffConfig {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        });
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay("k").0).collect();
        // Jitter keeps each delay within [base, 2 * base), and the base doubles.
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] < Duration::from_millis(200));
        assert!(delays[1] >= Duration::from_millis(200) && delays[1] < Duration::from_millis(400));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert_eq!(delays[7], Duration::from_secs(1));
        assert_eq!(b.next_delay("other").1, 1, "keys are independent");
        b.reset("k");
        let (d, n) = b.next_delay("k");
        assert_eq!(n, 1);
        assert!(d < Duration::from_millis(200));
    }
}
