//! How a runtime runs: identity, lease timing, workers, backoff, debounce.

use std::time::Duration;

use super::backoff::BackoffConfig;
use super::events::DEFAULT_TTL;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Stored in the leader key: who leads (`host/pid`).
    pub identity: String,
    pub lease_ttl: Duration,
    pub renew_every: Duration,
    /// Concurrent reconciles per controller (never two of one key).
    pub workers: usize,
    /// How long in-flight reconciles may take to finish on shutdown.
    pub shutdown_timeout: Duration,
    pub backoff: BackoffConfig,
    pub event_ttl: Duration,
    /// The debounce window: a changed key that has not run within it is handed out at once;
    /// one that has waits until the window has passed since its last run, so a burst of
    /// changes (to one object, or the reports of many agents to a cluster-wide key) folds
    /// into one more reconcile. The window does not restart with each change, so a steady
    /// stream still gets reconciled.
    pub debounce: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            identity: format!("pid-{}", std::process::id()),
            lease_ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(3),
            workers: 4,
            shutdown_timeout: Duration::from_secs(10),
            backoff: BackoffConfig::default(),
            event_ttl: DEFAULT_TTL,
            debounce: Duration::from_millis(15),
        }
    }
}
