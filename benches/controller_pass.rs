//! What one whole-cluster pass of each pure controller costs, with nothing else in the
//! process: `Desired` built from the records, then each controller's reconcile on a
//! converged cluster (every agent alive and reporting, Mesos healthy), at 1,000 and
//! 10,000 nodes. The operator's CPU per change is a few of these passes plus the runtime's
//! own work (snapshot, `Observed`, writer); this separates the two.
//!
//! `cargo bench --bench controller_pass`; `OMTD_BENCH_NODES=1000,5000` for other sizes.

use std::time::{Duration, Instant, SystemTime};

use omtd_controllers::{
    self as pure, AgentLiveness, Desired, MesosAgent, MesosFramework, MesosState, Observed,
    Settings,
};
use omtd_crds::plan::Report;

type Run = fn(&Desired, &Observed, &Settings) -> Result<pure::Intent, pure::Error>;

/// Median of `rounds` timings of `f`.
fn median(rounds: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

fn healthy(d: &Desired) -> Observed {
    let mut o = Observed::at(SystemTime::now());
    for name in d.nodes.keys() {
        o.agents.insert(
            name.clone(),
            AgentLiveness {
                lease_present: true,
                since_heartbeat: Duration::ZERO,
            },
        );
        o.reports.insert(
            name.clone(),
            Report {
                node: name.clone(),
                converged: true,
                ..Default::default()
            },
        );
    }
    o.mesos = Some(MesosState {
        leader: d.manager().map(|m| m.spec.address.clone()),
        agents: d
            .workers()
            .map(|w| MesosAgent {
                id: format!("{}-S0", w.metadata.name),
                hostname: w.spec.address.clone(),
                active: true,
                deactivated: false,
            })
            .collect(),
        frameworks: vec![MesosFramework {
            name: "chronos".into(),
            active: true,
        }],
        ..Default::default()
    });
    o
}

fn main() {
    let sizes: Vec<usize> = std::env::var("OMTD_BENCH_NODES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10000]);
    let settings = Settings::default();
    let controllers: [(&str, Run); 4] = [
        (pure::node::NAME, pure::node::reconcile),
        (pure::storage::NAME, pure::storage::reconcile),
        (pure::credentials::NAME, pure::credentials::reconcile),
        (pure::leader_guard::NAME, pure::leader_guard::reconcile),
    ];
    for nodes in sizes {
        let objects = match omtd::bench::cluster::parse(&omtd::bench::cluster::manifests(nodes)) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("the bench cluster does not parse: {e}");
                std::process::exit(1);
            }
        };
        let rounds = if nodes > 2000 { 5 } else { 21 };
        let desired_cost = median(rounds, || {
            std::hint::black_box(Desired::from_objects(&objects));
        });
        let d = Desired::from_objects(&objects);
        let o = healthy(&d);
        // The first pass hashes the registry's htpasswd (bcrypt, memoized after).
        for (_, run) in &controllers {
            let _ = run(&d, &o, &settings);
        }
        println!(
            "controller_pass: {nodes} nodes ({} records), median of {rounds}",
            objects.len()
        );
        println!(
            "  Desired::from_objects  {:>9.2} ms",
            desired_cost.as_secs_f64() * 1e3
        );
        for (name, run) in &controllers {
            let cost = median(rounds, || {
                std::hint::black_box(run(&d, &o, &settings).ok());
            });
            println!("  {name:<22} {:>9.2} ms", cost.as_secs_f64() * 1e3);
        }
    }
}
