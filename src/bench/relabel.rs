//! The `relabel` scenario: each change relabels one worker, which the node controller must
//! re-render into the monitor's Prometheus file_sd targets and the monitor's agent write.

use std::time::{Duration, Instant};

use omtd_controllers::paths::PROMETHEUS_TARGETS;

use super::latency::Latencies;
use super::rig::{file_has, wait_landed, Outcome, Rig, MONITOR};
use super::{cluster, BenchError, BenchOptions};
use crate::demo::records;

/// Times `opts.changes` relabels (a different worker each time, spread over all of them).
pub(super) async fn run(
    rig: &mut Rig,
    opts: &BenchOptions,
    latencies: &mut Latencies,
) -> Result<Outcome, BenchError> {
    let monitor = rig.world.host(MONITOR)?;
    let workers = opts.nodes.saturating_sub(5).max(1);
    for k in 0..opts.changes {
        let i = 1 + (k * 7919) % workers;
        let label = format!("change-{k}");
        let needle = format!("\"bench\":\"{label}\"");
        let change = cluster::parse(&cluster::worker(i, Some(&label)))?;
        let t = Instant::now();
        records::apply(&rig.repo, &change).await?;
        match wait_landed(t, opts.timeout, || {
            file_has(&monitor, PROMETHEUS_TARGETS, &needle)
        })
        .await
        {
            Some(took) => latencies.push(took),
            None => return Ok(Err(format!("relabel {k} of node{i}.omtd"))),
        }
        rig.check_operator()?;
        // Let the change's follow-up writes (reports, statuses) land before the next.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(Ok(()))
}
