//! Tunables of the controllers, with the defaults omtd runs with. Tests shorten them.

use std::time::Duration;

/// How the controllers behave (not what the cluster is: that is the Cluster record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long an agent's lease may be gone before its node is `AgentLost` (Kubernetes'
    /// node-monitor-grace-period plays this part).
    pub agent_grace: Duration,
    pub recovery: RecoveryPolicy,
    /// bcrypt cost of the registry's htpasswd, hashed by the registry host's agent when a
    /// line no longer verifies (a new or rotated secret); 10 is ~60 ms per user in release.
    pub bcrypt_cost: u32,
    pub registry_image: String,
    pub cadvisor_image: String,
    /// The user Galaxy runs as: it must read `job_conf.xml`, which holds the Chronos
    /// password, so the file is its and mode 0600.
    pub galaxy_user: String,
    /// The user Apache's workers run as: they read the registry htpasswd per request.
    pub apache_user: String,
    /// Owner e-mail Galaxy's Chronos runner puts on the jobs it submits.
    pub chronos_job_owner: String,
    /// How long a worker's removal waits for the tasks on its agent to end before it marks
    /// the machine down anyway (which kills them). A node's `omtd/drain-timeout`
    /// annotation overrides it.
    pub drain_timeout: Duration,
    /// Whether the node controller plans the editor's `galaxy.ini` key `use_remote_user`
    /// (`FileRender::IniKeys`, and the `omtd/debug-ui-access-until` override). Off until
    /// the agents apply `IniKeys`: one that does not refuses the file (so the editor never
    /// converges), and an older one would write the plan's empty content over the user's
    /// file. Turn it on (default `true`) with the agent's support.
    pub galaxy_ini_keys: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            agent_grace: Duration::from_secs(40),
            recovery: RecoveryPolicy::default(),
            bcrypt_cost: 10,
            registry_image: "registry:2".into(),
            cadvisor_image: "gcr.io/cadvisor/cadvisor:v0.49.1".into(),
            galaxy_user: "galaxy".into(),
            apache_user: "www-data".into(),
            chronos_job_owner: "galaxy@localhost".into(),
            drain_timeout: Duration::from_secs(60 * 60),
            galaxy_ini_keys: false,
        }
    }
}

/// The leader guard's ordered recovery (stop all → master → Chronos → agents): when to
/// start it and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// How long Chronos or an agent may stay disconnected (or the wrong master lead)
    /// before a recovery starts: reconnections after a restart take a while by themselves.
    pub grace: Duration,
    /// How long one step may wait (services stopped, master elected, Chronos registered,
    /// agents active) before the attempt counts as failed.
    pub phase_timeout: Duration,
    /// Wait after the first failed attempt; doubled after each further failure.
    pub backoff_base: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// Attempts before giving up (a condition says so; nothing more is restarted).
    pub max_attempts: u32,
    /// How long the cluster must stay healthy before the attempt count starts over.
    pub reset_after: Duration,
    /// How often to look while a recovery step is waiting.
    pub poll: Duration,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            grace: Duration::from_secs(120),
            phase_timeout: Duration::from_secs(300),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(30 * 60),
            max_attempts: 5,
            reset_after: Duration::from_secs(15 * 60),
            poll: Duration::from_secs(5),
        }
    }
}

impl RecoveryPolicy {
    /// The wait after the `failed`-th failed attempt (1-based): base · 2^(failed-1), capped.
    pub fn backoff(&self, failed: u32) -> Duration {
        let exp = failed.saturating_sub(1).min(30);
        self.backoff_base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}
