//! The `add-node` scenario ("how to add a node" in the runbook): each change applies a new
//! worker's Node and Credential to a host that is provisioned and runs its agent already,
//! and is done when every host that must know has it: the master's credentials, the
//! executor's NFS exports, the monitor's scrape targets, and the new host's own files.

use std::time::{Duration, Instant};

use omtd_controllers::paths::{
    AGENT_CREDENTIALS, AGENT_IP, MASTER_CREDENTIALS, PROMETHEUS_TARGETS,
};
use omtd_crds::Object;

use super::latency::Latencies;
use super::rig::{file_has, wait_landed, Outcome, Rig, EXECUTOR, MANAGER, MONITOR};
use super::{cluster, BenchError, BenchOptions};
use crate::agent::drivers::sim::SimHost;
use crate::demo::{hosts, records, DemoError};

/// Times `opts.changes` additions, workers numbered on from the cluster's last.
pub(super) async fn run(
    rig: &mut Rig,
    opts: &BenchOptions,
    latencies: &mut Latencies,
) -> Result<Outcome, BenchError> {
    let manager = rig.world.host(MANAGER)?;
    let executor = rig.world.host(EXECUTOR)?;
    let monitor = rig.world.host(MONITOR)?;
    let first = opts.nodes.saturating_sub(5).max(1) + 1;
    for i in first..first + opts.changes {
        let records_of = cluster::parse(&cluster::worker(i, None))?;
        let node = records_of
            .iter()
            .find_map(|o| match o {
                Object::Node(n) => Some(n.clone()),
                _ => None,
            })
            .ok_or_else(|| DemoError::Records(format!("worker {i} has no Node record")))?;
        let name = node.metadata.name.clone();
        let addr = node.spec.address.clone();
        // The machine as the playbooks leave it, its agent up and waiting for a plan: the
        // time taken is omtd's, from the records to the files.
        let host = hosts::provision(&rig.world, &node);
        rig.start_agent(&name)?;
        wait_heartbeat(rig, &name, opts.timeout).await?;

        let principal = format!("\"{name}\"");
        let export = format!(" {addr}(");
        let target = format!("\"{addr}:");
        let t = Instant::now();
        records::apply(&rig.repo, &records_of).await?;
        let landed = wait_landed(t, opts.timeout, || {
            file_has(&manager, MASTER_CREDENTIALS, &principal)
                && exports_have(&executor, &export)
                && file_has(&monitor, PROMETHEUS_TARGETS, &target)
                && file_has(&host, AGENT_IP, &addr)
                && file_has(&host, AGENT_CREDENTIALS, &principal)
        })
        .await;
        match landed {
            Some(took) => latencies.push(took),
            None => return Ok(Err(format!("the addition of {name}"))),
        }
        rig.check_operator()?;
        // Let the change's follow-up writes (reports, statuses) land before the next.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(Ok(()))
}

fn exports_have(host: &SimHost, needle: &str) -> bool {
    host.state()
        .exports_owned
        .iter()
        .any(|l| l.contains(needle))
}

/// Waits for the new agent's heartbeat: it is up and has read its (empty) plan.
async fn wait_heartbeat(rig: &Rig, node: &str, timeout: Duration) -> Result<(), BenchError> {
    let key = rig.repo.keys.agent_lease(node);
    let t = Instant::now();
    while t.elapsed() < timeout {
        if let Ok(Some(_)) = rig.repo.store.get(&key).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(DemoError::Store(format!(
        "the agent of {node} sent no heartbeat within {timeout:?}"
    ))
    .into())
}
