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
    /// Sim driver: serve the sim machine (its state, faults, and the agent service) on
    /// this loopback address, e.g. 127.0.0.1:0 (see `omtd::sim::machine`). It has no
    /// authentication, so any other address is refused.
    #[arg(long, value_parser = parse_loopback)]
    pub sim_api: Option<std::net::SocketAddr>,
    /// Sim driver: write the API's bound `http://ADDR` to this file once it listens.
    #[arg(long)]
    pub sim_api_file: Option<PathBuf>,
    /// Sim driver: the roles whose packages the machine has installed (services present,
    /// stopped), as the playbooks left it. Default: every role's.
    #[arg(long, value_delimiter = ',', value_parser = parse_role)]
    pub sim_roles: Option<Vec<omtd_crds::Role>>,
    /// Sim driver: a blank disk attached, PATH=SIZE (e.g. /dev/vdb=10GiB); repeatable.
    #[arg(long, value_parser = parse_disk)]
    pub sim_disk: Vec<(String, u64)>,
}

fn parse_role(s: &str) -> Result<omtd_crds::Role, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        format!("{s:?} is not a role (executor, editor, manager, registry, monitor, worker)")
    })
}

/// `--sim-api`: the API lets whoever reaches it break the machine and has no
/// authentication, so it may only listen where nobody else can reach it.
fn parse_loopback(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = s
        .parse()
        .map_err(|e| format!("{s:?} is not an address:port (e.g. 127.0.0.1:0): {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: the sim API has no authentication, \
             so it listens on 127.0.0.1 or [::1] only (e.g. 127.0.0.1:0)"
        ));
    }
    Ok(addr)
}

fn parse_disk(s: &str) -> Result<(String, u64), String> {
    let (path, size) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write PATH=SIZE, e.g. /dev/vdb=10GiB"))?;
    if !path.starts_with("/dev/") {
        return Err(format!("{path:?}: a disk path starts with /dev/"));
    }
    let size: bytesize::ByteSize = size
        .parse()
        .map_err(|e| format!("{size:?} is not a size (e.g. 10GiB): {e}"))?;
    Ok((path.to_owned(), size.as_u64()))
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
        Driver::Sim => return run_sim(repo, &args, config).await,
    };
    if args.sim_api.is_some() || args.sim_roles.is_some() || !args.sim_disk.is_empty() {
        anyhow::bail!("--sim-api, --sim-roles and --sim-disk need --driver sim");
    }
    agent.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// A sim machine: its packages and disks as the playbooks left it, and the agent on it;
/// with `--sim-api`, served for tests to look at and break (`omtd::sim::machine`).
async fn run_sim(
    repo: &Repo,
    args: &AgentArgs,
    mut config: AgentConfig,
) -> anyhow::Result<ExitCode> {
    let host = sim::SimHost::new();
    let services = match &args.sim_roles {
        None => crate::sim::packages::every_role(),
        Some(roles) => roles
            .iter()
            .flat_map(|r| crate::sim::packages::packages(*r))
            .copied()
            .collect(),
    };
    for service in services {
        host.install_service(service);
    }
    for (path, size) in &args.sim_disk {
        host.add_device(path, *size);
    }
    config.watch_files = false;
    let store = repo.store.clone();
    let factory_host = host.clone();
    let factory: crate::sim::machine::AgentFactory = Box::new(move || {
        Agent::new(store.clone(), factory_host.host(), config.clone())
            .with_signal(factory_host.drift_signal())
    });
    let machine = crate::sim::machine::SimMachine::new(host, factory);
    let Some(addr) = args.sim_api else {
        machine.start_agent().await;
        shutdown_signal().await;
        machine.stop_agent().await;
        return Ok(ExitCode::SUCCESS);
    };
    let (listener, bound) = crate::sim::machine::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --sim-api {addr}"))?;
    eprintln!("sim machine {} API on http://{bound}", args.node);
    if let Some(file) = &args.sim_api_file {
        // Written whole, then renamed: a reader never sees half an address.
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("http://{bound}"))
            .and_then(|()| std::fs::rename(&tmp, file))
            .with_context(|| format!("cannot write --sim-api-file {}", file.display()))?;
    }
    machine.run(listener, shutdown_signal()).await?;
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
