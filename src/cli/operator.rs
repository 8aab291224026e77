//! `omtd operator`: run the controllers (one process leads; others stand by).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use crate::operator::probes::ProbeTargets;
use crate::operator::Options;
use crate::resources::Repo;
use crate::runtime::backoff::BackoffConfig;
use crate::runtime::RuntimeConfig;

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Leader lease time to live: a standby takes over this long after the leader dies.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// How often the leader renews its lease.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub renew_every: Duration,
    /// Concurrent reconciles per controller.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// On SIGTERM/SIGINT, how long running reconciles may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How long an event is kept after it last happened.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
    /// Shortest retry delay of a failing reconcile (doubles up to --max-backoff).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub min_backoff: Duration,
    /// Longest retry delay of a failing reconcile.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Who this process is in the leader key (default: HOST/PID).
    #[arg(long)]
    pub identity: Option<String>,
    /// A Mesos master, e.g. http://10.0.0.12:5050. The master checks credentials even for
    /// reads: the operator presents its own Credential (use: operator) from the store.
    /// User-info in the URL (http://PRINCIPAL:SECRET@...) overrides it, for older setups.
    /// Without it, agent registration and leadership are unknown and no node is drained.
    #[arg(long, env = "OMTD_MESOS_URL", hide_env_values = true)]
    pub mesos_url: Option<String>,
    /// The Mesos ZooKeeper URL, e.g. zk://10.0.0.12:2181/mesos (who contends to lead).
    #[arg(long, env = "OMTD_ZOOKEEPER", hide_env_values = true)]
    pub zookeeper: Option<String>,
    /// Prometheus with its route prefix, e.g. http://10.0.0.14:9090/prometheus (whether a
    /// removed node's scrape targets are gone).
    #[arg(long, env = "OMTD_PROMETHEUS_URL", hide_env_values = true)]
    pub prometheus_url: Option<String>,
    /// The registry behind Apache, e.g. https://10.0.0.13 (the Cluster's RegistryReady:
    /// GET /v2/ refused without credentials, answered with them). No user-info: the
    /// credential comes from the store.
    #[arg(long, env = "OMTD_REGISTRY_URL", hide_env_values = true)]
    pub registry_url: Option<String>,
    /// The Credential (use: registry) the registry probe presents; default: the first by
    /// name. A name, not a secret.
    #[arg(long, env = "OMTD_REGISTRY_CREDENTIAL")]
    pub registry_credential: Option<String>,
    /// Chronos, e.g. http://10.0.0.12:8080 (the Cluster's ChronosReady: /ping answers and
    /// the framework is registered). It presents the store's chronos-http Credential.
    #[arg(long, env = "OMTD_CHRONOS_URL", hide_env_values = true)]
    pub chronos_url: Option<String>,
    /// A PEM file of CA certificates the probes trust besides the system's: the cluster CA
    /// that signed the HTTPS front doors (`omtd pki init`'s ca.crt).
    #[arg(long, env = "OMTD_PROBE_CA")]
    pub probe_ca: Option<std::path::PathBuf>,
    /// How often the probes ask.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub probe_interval: Duration,
    /// How long one probe may take.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// How long an agent's heartbeat may be gone before its node is AgentLost.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub agent_grace: Duration,
    /// How long a worker's removal waits for the tasks on its Mesos agent to end before it
    /// marks the machine down anyway (killing them). Per node: annotation omtd/drain-timeout.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Leader guard: how long Chronos or an agent may stay disconnected before the ordered
    /// recovery (stop all, master, Chronos, agents) starts.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub recovery_grace: Duration,
    /// Leader guard: how long one recovery step may wait before the attempt failed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub recovery_step_timeout: Duration,
    /// Leader guard: the wait after a failed recovery, doubled after each further failure.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub recovery_backoff: Duration,
    /// Leader guard: the longest wait between recovery attempts.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub recovery_max_backoff: Duration,
    /// Leader guard: attempts before it gives up and says so in a condition.
    #[arg(long, default_value_t = 5)]
    pub recovery_attempts: u32,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: write e.g. 10s, 500ms or 1m"))
}

pub async fn run(repo: &Repo, args: OperatorArgs) -> anyhow::Result<ExitCode> {
    if args.lease_ttl < Duration::from_secs(1) {
        bail!("--lease-ttl must be at least 1s (stores count leases in whole seconds)");
    }
    if args.renew_every.is_zero() || args.renew_every * 2 > args.lease_ttl {
        bail!(
            "--renew-every ({:?}) must be more than zero and at most half of --lease-ttl ({:?}), so one lost renewal does not cost the lease",
            args.renew_every,
            args.lease_ttl
        );
    }
    if args.min_backoff.is_zero() || args.min_backoff > args.max_backoff {
        bail!("--min-backoff must be more than zero and at most --max-backoff");
    }
    let identity = args.identity.unwrap_or_else(default_identity);
    let config = RuntimeConfig {
        identity,
        lease_ttl: args.lease_ttl,
        renew_every: args.renew_every,
        workers: args.workers.max(1),
        shutdown_timeout: args.shutdown_timeout,
        backoff: BackoffConfig {
            min: args.min_backoff,
            max: args.max_backoff,
        },
        event_ttl: args.event_ttl,
        ..RuntimeConfig::default()
    };
    if args.probe_interval.is_zero() || args.probe_timeout.is_zero() {
        bail!("--probe-interval and --probe-timeout must be more than zero");
    }
    let targets = ProbeTargets {
        mesos_url: args.mesos_url,
        zookeeper: args.zookeeper,
        prometheus_url: args.prometheus_url,
        registry_url: args.registry_url,
        registry_credential: args.registry_credential,
        chronos_url: args.chronos_url,
        ca_file: args.probe_ca,
        timeout: args.probe_timeout,
    };
    let mut options = Options::new(args.metrics_addr, config).with_targets(&targets)?;
    options.settings.agent_grace = args.agent_grace;
    options.settings.drain_timeout = args.drain_timeout;
    if args.recovery_backoff.is_zero()
        || args.recovery_backoff > args.recovery_max_backoff
        || args.recovery_attempts == 0
    {
        bail!(
            "--recovery-backoff must be more than zero and at most --recovery-max-backoff, \
             and --recovery-attempts at least 1"
        );
    }
    let recovery = &mut options.settings.recovery;
    recovery.grace = args.recovery_grace;
    recovery.phase_timeout = args.recovery_step_timeout;
    recovery.backoff_base = args.recovery_backoff;
    recovery.backoff_max = args.recovery_max_backoff;
    recovery.max_attempts = args.recovery_attempts;
    // Poll a waiting step a few times per step timeout, never slower than the default.
    recovery.poll = recovery
        .poll
        .min(args.recovery_step_timeout / 10)
        .max(Duration::from_millis(50));
    options.probe_interval = args.probe_interval;
    crate::operator::run(repo, options).await?;
    Ok(ExitCode::SUCCESS)
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}/{}", std::process::id())
}
