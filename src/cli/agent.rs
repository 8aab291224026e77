//! `omtd agent --node NAME [--driver linux|sim] [--root DIR] [--resync 30s]`: the host
//! agent (see `crate::agent`). Runs until SIGINT or SIGTERM, then revokes its heartbeat.
//! Where systemd runs, the linux driver also listens to its D-Bus unit signals on the system
//! bus (`OMTD_SYSTEMD_BUS=ADDRESS` names another bus; see `crate::agent::unit_watch`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::agent::drivers::{linux, sim};
use crate::agent::{Agent, AgentConfig};
use crate::resources::Repo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    /// The real host.
    Linux,
    /// An in-memory host (demo, scale runs).
    Sim,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// This host's node name (its plans are under plans/NAME/).
    #[arg(long)]
    pub node: String,
    #[arg(long, value_enum, default_value = "linux")]
    pub driver: Driver,
    /// Confine every path under DIR (tests): services are DIR/etc/init.d scripts, mounts are
    /// recorded in DIR/run/omtd/mounts, exports are not reloaded unless --exports-reload.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Full resync period, the safety net behind inotify.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// How often services, mounts and containers are checked.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub service_check: Duration,
    /// TTL of the heartbeat lease.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// Command run after /etc/exports changed (default: `exportfs -ra`; none under --root).
    #[arg(long)]
    pub exports_reload: Option<String>,
}

pub async fn run(repo: &Repo, args: AgentArgs) -> anyhow::Result<ExitCode> {
    if !omtd_crds::validate::is_dns_name(&args.node) {
        anyhow::bail!("--node {:?} is not a valid node name", args.node);
    }
    let mut config = AgentConfig::new(&args.node, repo.keys.clone());
    config.resync = args.resync;
    config.service_check = args.service_check;
    config.lease_ttl = args.lease_ttl;
    let agent = match args.driver {
        Driver::Linux => {
            let opts = linux::LinuxOptions {
                root: args.root.clone(),
                exports_reload: args
                    .exports_reload
                    .as_ref()
                    .map(|c| c.split_whitespace().map(str::to_owned).collect()),
            };
            let host = linux::host(&opts).context("cannot set up the linux drivers")?;
            config.systemd_bus = crate::agent::unit_watch::Bus::detect(args.root.is_some());
            Agent::new(repo.store.clone(), host, config)
        }
        Driver::Sim => {
            let sim = sim::SimHost::new();
            config.watch_files = false;
            Agent::new(repo.store.clone(), sim.host(), config).with_signal(sim.drift_signal())
        }
    };
    agent.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
