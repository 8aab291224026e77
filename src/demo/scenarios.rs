//! The runbook's classic failures, each injected into the sim world the way it happens on
//! real hosts, then left to omtd. A step is repaired when the services show it (who leads,
//! who is registered, what runs, what is scraped) and `omtd status` is converged again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::checks::{self, Topology};
use super::ctx::Ctx;
use super::{hosts, records, DemoError, StepResult};
use crate::sim::config;

#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    StrayMaster,
    ChronosNewline,
    NfsStopped,
    AddNode,
    AddDisk,
}

pub const ALL: [Scenario; 5] = [
    Scenario::StrayMaster,
    Scenario::ChronosNewline,
    Scenario::NfsStopped,
    Scenario::AddNode,
    Scenario::AddDisk,
];

const LV: &str = "/dev/nfsstore/nfs_logical";

fn mesos_ok(c: &Ctx, topo: &Topology) -> Result<(), String> {
    let m = checks::mesos(&c.world, topo);
    if m.leader.as_deref() != Some(topo.manager.as_str()) {
        return Err(format!(
            "Mesos leader is {}",
            m.leader.as_deref().unwrap_or("nobody")
        ));
    }
    if !m.chronos {
        return Err("Chronos is not registered".into());
    }
    let missing: Vec<&str> = topo
        .workers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !m.active_agents.iter().any(|a| a == n))
        .collect();
    if !missing.is_empty() {
        return Err(format!("agents not active: {}", missing.join(", ")));
    }
    Ok(())
}

impl Scenario {
    pub async fn play(self, ctx: &Ctx) -> Result<StepResult, DemoError> {
        match self {
            Scenario::StrayMaster => stray_master(ctx).await,
            Scenario::ChronosNewline => chronos_newline(ctx).await,
            Scenario::NfsStopped => nfs_stopped(ctx).await,
            Scenario::AddNode => add_node(ctx).await,
            Scenario::AddDisk => add_disk(ctx).await,
        }
    }
}

/// Waits for the repair and turns the wait into the step's result; shows what the agents
/// changed on the hosts since `marks` (taken before the fault).
async fn finish(
    ctx: &Ctx,
    name: &str,
    marks: &BTreeMap<String, usize>,
    check: impl Fn(&Ctx) -> Result<(), String>,
    success: &str,
) -> StepResult {
    let (repaired, took, missing) = ctx.wait_repaired(name, check).await;
    for (node, changes) in checks::changes_since(&ctx.world, marks) {
        let shown = if changes.len() > 6 {
            format!("{}, … ({} changes)", changes[..5].join(", "), changes.len())
        } else {
            changes.join(", ")
        };
        ctx.out.info(&format!("omtd on {node}: {shown}"));
    }
    if repaired {
        ctx.out.done(success, took);
    } else {
        ctx.out
            .failed(&format!("not repaired within {:?}: {missing}", ctx.timeout));
    }
    StepResult {
        name: name.to_owned(),
        repaired,
        took,
        detail: if repaired {
            success.to_owned()
        } else {
            missing
        },
    }
}

/// "Most errors are caused by electing the wrong leader": a mesos-master started by hand
/// on a worker, and the manager's master losing its ZooKeeper session, so the stray one
/// holds the lowest sequence and leads — with no credentials, so every agent and Chronos
/// drop out.
async fn stray_master(ctx: &Ctx) -> Result<StepResult, DemoError> {
    let topo = ctx.topo.clone();
    let worker = topo
        .workers
        .get(1)
        .or(topo.workers.first())
        .map(|(n, _)| n.clone())
        .ok_or(DemoError::Missing("worker"))?;
    ctx.out
        .title(&format!("Failure 1: a stray mesos-master on {worker}"));
    let marks = checks::log_marks(&ctx.world);
    ctx.world.start_stray_master(&worker)?;
    ctx.world.expire_master_session(&topo.manager);
    let m = checks::mesos(&ctx.world, &topo);
    ctx.out.fault(&format!(
        "mesos-master started by hand on {worker}; the manager's ZooKeeper session expired"
    ));
    ctx.out.fault(&format!(
        "Mesos leader now: {} ({} agents, Chronos {})",
        m.leader.as_deref().unwrap_or("nobody"),
        m.active_agents.len(),
        if m.chronos { "registered" } else { "gone" }
    ));
    Ok(finish(
        ctx,
        "stray mesos-master on a worker",
        &marks,
        move |c| {
            if !checks::stopped_and_masked(&c.world, &worker, "mesos-master") {
                return Err(format!("mesos-master still runs on {worker}"));
            }
            mesos_ok(c, &c.topo)
        },
        "stray stopped and masked; the manager leads, agents and Chronos back",
    )
    .await)
}

/// "Make sure all mesos files have NO new line at the end. I kid you not!"
async fn chronos_newline(ctx: &Ctx) -> Result<StepResult, DemoError> {
    let manager = ctx.topo.manager.clone();
    ctx.out
        .title("Failure 2: a trailing newline in Chronos's secret file");
    let host = ctx.world.host(&manager)?;
    let marks = checks::log_marks(&ctx.world);
    // The credentials controller may still be rolling Chronos's files out after the
    // previous step's restarts (it holds Chronos back until the master has its
    // credentials): wait for the flag file rather than assume it is there.
    let flag_file = "/etc/chronos/conf/mesos_authentication_secret_file";
    let waited = Instant::now();
    let path = loop {
        if let Some(p) = config::flag(&host, flag_file) {
            break p;
        }
        if waited.elapsed() >= ctx.timeout {
            return Err(DemoError::Records(format!(
                "Chronos has no secret file configured ({flag_file} missing on {manager})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut secret = config::bytes(&host, &path).unwrap_or_default();
    secret.push(b'\n');
    host.edit_file(&path, &secret);
    let registered = checks::mesos(&ctx.world, &ctx.topo).chronos;
    ctx.out.fault(&format!(
        "someone edited {path} (an editor added a newline): Chronos {}",
        if registered {
            "still registered"
        } else {
            "no longer authenticates"
        }
    ));
    Ok(finish(
        ctx,
        "trailing newline in Chronos's secret",
        &marks,
        move |c| {
            let ends_in_newline = c
                .world
                .host(&manager)
                .ok()
                .and_then(|h| config::bytes(&h, &path))
                .is_some_and(|b| b.ends_with(b"\n"));
            if ends_in_newline {
                return Err(format!("{path} still ends in a newline"));
            }
            mesos_ok(c, &c.topo)
        },
        "secret file restored byte for byte; Chronos registered",
    )
    .await)
}

async fn nfs_stopped(ctx: &Ctx) -> Result<StepResult, DemoError> {
    let executor = ctx.topo.executor.clone();
    ctx.out
        .title(&format!("Failure 3: the NFS server stops on {executor}"));
    let marks = checks::log_marks(&ctx.world);
    ctx.world.host(&executor)?.kill_service("nfs-server");
    ctx.out
        .fault("nfs-server died: the workers' database share is gone");
    Ok(finish(
        ctx,
        "NFS server stopped",
        &marks,
        move |c| {
            if !checks::running(&c.world, &executor, "nfs-server") {
                return Err("nfs-server is not running".into());
            }
            let ready = checks::nfs_ready(&c.world, &c.topo);
            if ready < c.topo.workers.len() {
                return Err(format!(
                    "{ready}/{} workers have the share",
                    c.topo.workers.len()
                ));
            }
            Ok(())
        },
        "nfs-server running, exports and mounts in place",
    )
    .await)
}

/// "How to add a node": a new host with its packages, then one `omtd apply`.
async fn add_node(ctx: &Ctx) -> Result<StepResult, DemoError> {
    let objects = records::parse(records::NODE4)?;
    let node = objects
        .iter()
        .find_map(|o| match o {
            omtd_crds::Object::Node(n) => Some(n.clone()),
            _ => None,
        })
        .ok_or(DemoError::Missing("new worker"))?;
    let (name, address) = (node.metadata.name.clone(), node.spec.address.clone());
    ctx.out.title(&format!(
        "How to add a node: {name} ({address}) with omtd apply"
    ));
    let marks = checks::log_marks(&ctx.world);
    let host = hosts::provision(&ctx.world, &node);
    ctx.start_agent(&name, &host);
    let start = Instant::now();
    records::apply(&ctx.repo, &objects).await?;
    ctx.out.done(
        "Node and Credential applied; host provisioned, agent started",
        start.elapsed(),
    );
    let mut topo = ctx.topo.clone();
    topo.workers.push((name.clone(), address.clone()));
    let manager = ctx.topo.manager.clone();
    Ok(finish(
        ctx,
        &format!("new node {name}"),
        &marks,
        move |c| {
            let principals: Vec<String> = c
                .world
                .host(&manager)
                .map(|h| config::master_credentials(&h))
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.principal)
                .collect();
            if !principals.contains(&name) {
                return Err("the master does not know its credential yet".into());
            }
            let t = checks::targets(&c.world, &topo);
            if !checks::scraped(&t, &address) {
                return Err("Prometheus does not scrape it yet".into());
            }
            if checks::nfs_ready(&c.world, &topo) < topo.workers.len() {
                return Err("its database share is not exported and mounted yet".into());
            }
            mesos_ok(c, &topo)
        },
        "credential, export, mount, scrape targets; its agent is active",
    )
    .await)
}

/// "How to add disk space": a new disk attached, and a Volume naming it.
async fn add_disk(ctx: &Ctx) -> Result<StepResult, DemoError> {
    let executor = ctx.topo.executor.clone();
    ctx.out
        .title(&format!("How to add disk space: /dev/vdd on {executor}"));
    let host = ctx.world.host(&executor)?;
    let marks = checks::log_marks(&ctx.world);
    let (before, _) = checks::lv_sizes(&ctx.world, &executor, LV).unwrap_or((0, 0));
    hosts::attach_disks(&host, ["/dev/vdd"].into_iter());
    let start = Instant::now();
    records::apply(&ctx.repo, &records::parse(records::DISK)?).await?;
    ctx.out.done(
        &format!(
            "200 GiB disk attached, Volume applied (LV now {} GiB)",
            before / hosts::GIB
        ),
        start.elapsed(),
    );
    Ok(finish(
        ctx,
        "disk space added",
        &marks,
        move |c| {
            let (size, fs) = checks::lv_sizes(&c.world, &executor, LV).unwrap_or((0, 0));
            if size <= before {
                return Err(format!("{LV} is still {} GiB", size / hosts::GIB));
            }
            if fs != size {
                return Err("the filesystem has not grown yet".into());
            }
            Ok(())
        },
        "pvcreate, vgextend, lvextend, resize2fs: LV and ext4 grown online",
    )
    .await)
}
