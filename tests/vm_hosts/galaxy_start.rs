//! Galaxy's slow start with the real systemd: a `run.sh` that takes its time (as Galaxy's
//! does while it migrates its database) keeps `galaxy.service` `activating` through omtd's
//! `ExecStartPost` wait, the agent starts it without waiting and reports it `Progressing`
//! ("starting"), `omtd status` says so, and it is converged once Galaxy answers.

use std::time::{Duration, Instant};

use omtd_crds::plan::ResourceState;
use omtd_test_support::vm::machine::Vm;
use omtd_test_support::vm::Rig;

/// How long the stand-in "migrates" before it serves.
const MIGRATION: Duration = Duration::from_secs(15);
const RUN_SH: &str = "/srv/executor/run.sh";
/// The image's stand-in Galaxy (busybox httpd on 8080), which `run.sh` links to.
const STANDIN: &str = "/usr/local/sbin/omtd-galaxy-run";

/// Stops Galaxy behind a slow `run.sh`; returns (seen starting after, up after).
pub async fn slow_start(rig: &Rig, executor: &Vm, node: &str) -> (Duration, Duration) {
    executor
        .run(&format!(
            "rm -f {RUN_SH} && printf '#!/bin/sh\\nsleep {}\\nexec {STANDIN}\\n' > {RUN_SH} \
             && chmod 0755 {RUN_SH} && systemctl stop galaxy",
            MIGRATION.as_secs()
        ))
        .await;
    let start = Instant::now();
    let (message, seen) = omtd_test_support::poll::within(MIGRATION)
        .every(Duration::from_millis(200))
        .until_ok(|| async {
            let report = rig.report(node).await.ok_or("no report")?;
            let galaxy = report
                .resources
                .iter()
                .find(|r| r.id == "service:galaxy")
                .ok_or("no service:galaxy in the report")?;
            if galaxy.state == ResourceState::Progressing && galaxy.message.contains("starting") {
                Ok(galaxy.message.clone())
            } else {
                Err("galaxy not reported starting yet")
            }
        })
        .await
        .unwrap_or_else(|e| panic!("the agent never reported Galaxy starting: {e}"));
    let active = executor.run("systemctl show -p ActiveState galaxy").await;
    assert_eq!(active.trim(), "ActiveState=activating", "{message}");
    let status = rig.omtd(&["status"]).await;
    assert!(
        status.contains("service:galaxy is progressing: starting"),
        "omtd status names the starting Galaxy:\n{status}"
    );
    rig.wait_converged(&[node], MIGRATION * 4).await;
    let up = start.elapsed();
    assert!(
        up >= MIGRATION,
        "converged before Galaxy could answer: {up:?}"
    );
    executor
        .run("curl -sSf --max-time 5 http://127.0.0.1:8080/ >/dev/null")
        .await;
    executor.run(&format!("ln -sf {STANDIN} {RUN_SH}")).await;
    (seen, up)
}
