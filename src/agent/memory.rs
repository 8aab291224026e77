//! What the agent remembers between passes: which spec each resource was last brought to
//! (to tell a repair of drift from a change of plan), the restart tokens applied, the
//! change counters, the repair limiter, and facts from the last full pass.
//!
//! Restart tokens and counters also live in the last report, so a restarted agent picks
//! them up from the store instead of restarting every service once more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use omtd_crds::plan::{Report, ResourceReport};
use serde::Serialize;

use super::repair_limit::{RepairLimiter, RepairPolicy};

/// Observed key under which a service's applied restart token is reported.
pub const RESTART_TOKEN: &str = "restartToken";

#[derive(Debug, Default)]
pub struct Memory {
    /// Resource id → hash of the spec it was last brought to.
    pub converged: HashMap<String, u64>,
    /// Resources whose last change failed, with the error: their retries are rate-limited
    /// too, and a resource held back says why it failed.
    pub failed: BTreeMap<String, String>,
    /// Service name → the restart token last applied.
    pub restart_tokens: BTreeMap<String, String>,
    pub corrective: u64,
    pub intentional: u64,
    pub limiter: RepairLimiter,
    /// Storage reports from the last full pass (light passes do not look at LVM).
    pub storage_reports: Vec<ResourceReport>,
    /// Filesystem UUIDs of devices, from the last full pass.
    pub uuids: BTreeMap<String, String>,
    /// Managed host files whose directory was cleared of stale temporary files since the
    /// agent started (once each: later temps are this process's own).
    pub temps_checked: BTreeSet<PathBuf>,
    /// systemd re-read its unit files since the agent started (see `Pass::reload_units`).
    pub units_reloaded: bool,
}

impl Memory {
    pub fn new(policy: RepairPolicy) -> Self {
        Memory {
            limiter: RepairLimiter::new(policy),
            ..Default::default()
        }
    }

    /// Seed from the agent's last report: counters and restart tokens.
    pub fn seed(&mut self, last: &Report) {
        self.corrective = last.corrective_changes;
        self.intentional = last.intentional_changes;
        for r in &last.resources {
            if let (Some(name), Some(token)) =
                (r.id.strip_prefix("service:"), r.observed.get(RESTART_TOKEN))
            {
                self.restart_tokens.insert(name.to_owned(), token.clone());
            }
        }
    }
}

/// A stable hash of a spec (its JSON form).
pub fn spec_hash<T: Serialize>(spec: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(spec).unwrap_or_default().hash(&mut h);
    h.finish()
}
