//! The demo's sequence: set up, converge, play the failures, summarise, tear down.

use std::time::{Duration, Instant};

use omtd_crds::{Node, Object, Role};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::checks::{self, Topology};
use super::ctx::{Ctx, POLL};
use super::{hosts, records, scenarios, DemoError, DemoOptions, DemoRun, Out, StepResult};
use crate::operator::{self, Options};
use crate::resources::Repo;
use crate::runtime::RuntimeConfig;
use crate::sim::probes::SimProbes;
use crate::sim::SimWorld;
use crate::status::{self, ClusterStatus};

fn nodes(objects: &[Object]) -> Vec<&Node> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Node(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn topology(objects: &[Object]) -> Result<Topology, DemoError> {
    let nodes = nodes(objects);
    let with = |role: Role| {
        nodes
            .iter()
            .find(|n| n.spec.roles.contains(&role))
            .map(|n| (*n).clone())
    };
    let manager = with(Role::Manager).ok_or(DemoError::Missing("manager"))?;
    let executor = with(Role::Executor).ok_or(DemoError::Missing("executor"))?;
    Ok(Topology {
        zk_url: format!("zk://{}:2181/mesos", manager.spec.address),
        manager: manager.metadata.name,
        executor: executor.metadata.name,
        monitor: with(Role::Monitor).map(|n| n.metadata.name),
        workers: nodes
            .iter()
            .filter(|n| n.spec.roles.contains(&Role::Worker))
            .map(|n| (n.metadata.name.clone(), n.spec.address.clone()))
            .collect(),
    })
}

/// Runs the demo on `repo` (an empty store). Returns every step's result; the caller
/// decides the exit code.
pub async fn run(repo: Repo, opts: DemoOptions, out: Out) -> Result<DemoRun, DemoError> {
    let objects = records::parse(records::CLUSTER)?;
    let topo = topology(&objects)?;
    let world = SimWorld::new();
    let shutdown = CancellationToken::new();
    let ctx = Ctx {
        repo: repo.clone(),
        world: world.clone(),
        topo,
        out,
        timeout: opts.timeout,
        tasks: std::sync::Mutex::new(JoinSet::new()),
        shutdown: shutdown.clone(),
    };

    ctx.out
        .title("Setting up: sim hosts, the operator, one agent per host");
    let mut provisioned = Vec::new();
    for node in nodes(&objects) {
        let host = hosts::provision(&world, node);
        let disks = objects.iter().filter_map(|o| match o {
            Object::Volume(v) if v.spec.node == node.metadata.name => Some(v.spec.device.as_str()),
            _ => None,
        });
        hosts::attach_disks(&host, disks);
        let roles: Vec<String> = node
            .spec
            .roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        ctx.out.info(&format!(
            "{:<15} {:<11} {}",
            node.metadata.name,
            node.spec.address,
            roles.join(",")
        ));
        provisioned.push((node.metadata.name.clone(), host));
    }
    let result = async {
        start_operator(&ctx, &objects)?;
        for (name, host) in &provisioned {
            ctx.start_agent(name, host);
        }
        let mut outcome = DemoRun::default();
        outcome.steps.push(converge(&ctx, &objects).await?);
        if outcome.steps[0].repaired {
            if let Some(s) = ctx.status().await {
                ctx.out.title("omtd status");
                print!("{}", status::table::render(&s, ctx.out.color));
            }
            for step in scenarios::ALL {
                outcome.steps.push(step.play(&ctx).await?);
            }
        }
        Ok::<_, DemoError>(outcome)
    }
    .await;

    if let Ok(outcome) = &result {
        summary(&ctx, outcome);
    }
    if opts.keep_running {
        keep_running(&ctx, &opts.store_url).await;
    }
    shutdown.cancel();
    world.shutdown();
    let mut tasks = std::mem::take(&mut *ctx.tasks.lock().unwrap_or_else(|p| p.into_inner()));
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some demo tasks did not stop in time");
    }
    result
}

fn start_operator(ctx: &Ctx, objects: &[Object]) -> Result<(), DemoError> {
    let cred = records::probe_credential(objects);
    let wiring = SimProbes::wiring(
        &ctx.world,
        &ctx.topo.manager,
        ctx.topo.monitor.as_deref(),
        cred.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        &ctx.topo.zk_url,
        Duration::from_secs(2),
    )?;
    let runtime = RuntimeConfig {
        identity: format!("omtd-demo/{}", std::process::id()),
        ..RuntimeConfig::default()
    };
    let mut options = Options::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), runtime);
    options.probes = Some(wiring.probes);
    options.maintenance = wiring.maintenance;
    // The sim answers in microseconds: probe often so repairs show at their real speed.
    options.probe_interval = Duration::from_millis(250);
    let repo = ctx.repo.clone();
    let stop = ctx.shutdown.clone();
    ctx.tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .spawn(async move {
            if let Err(e) = operator::run_until(&repo, options, stop).await {
                tracing::error!(error = %e, "demo operator stopped");
            }
        });
    ctx.out
        .info("operator started (SQLite store; probes: sim Mesos master, Prometheus, ZooKeeper)");
    Ok(())
}

/// Whether a milestone is reached, from the world (through the context) and omtd status.
type MilestoneCheck = Box<dyn Fn(&Ctx, Option<&ClusterStatus>) -> bool + Send + Sync>;

/// One milestone of the first convergence.
struct Milestone {
    label: String,
    reached: bool,
    check: MilestoneCheck,
}

fn milestone(
    label: impl Into<String>,
    check: impl Fn(&Ctx, Option<&ClusterStatus>) -> bool + Send + Sync + 'static,
) -> Milestone {
    Milestone {
        label: label.into(),
        reached: false,
        check: Box::new(check),
    }
}

/// Applies the cluster and follows it to convergence, a line per milestone.
async fn converge(ctx: &Ctx, objects: &[Object]) -> Result<StepResult, DemoError> {
    ctx.out.title(&format!(
        "omtd apply -f deploy/examples/cluster.yaml ({} records)",
        objects.len()
    ));
    let start = Instant::now();
    records::apply(&ctx.repo, objects).await?;
    ctx.out
        .done("records applied (all or nothing)", start.elapsed());
    let workers = ctx.topo.workers.len();
    let mut milestones = vec![
        milestone("every agent reporting", |_, s| {
            s.is_some_and(|s| !s.nodes.is_empty() && s.nodes.iter().all(|n| n.report.is_some()))
        }),
        milestone("ZooKeeper up, the manager's Mesos master leads", |c, _| {
            checks::mesos(&c.world, &c.topo).leader.as_deref() == Some(c.topo.manager.as_str())
        }),
        milestone("Chronos registered as a Mesos framework", |c, _| {
            checks::mesos(&c.world, &c.topo).chronos
        }),
        milestone(
            format!("{workers}/{workers} Mesos agents registered (credentials match)"),
            |c, _| {
                let m = checks::mesos(&c.world, &c.topo);
                c.topo
                    .worker_names()
                    .iter()
                    .all(|w| m.active_agents.contains(w))
            },
        ),
        milestone(
            "LVM nfsstore (vdb+vdc), ext4 mounted at /srv/executor/database",
            |c, _| {
                c.world
                    .host(&c.topo.executor)
                    .is_ok_and(|h| h.state().mounted.contains("/srv/executor/database"))
            },
        ),
        milestone(
            format!("NFS: database exported to and mounted on {workers}/{workers} workers"),
            |c, _| checks::nfs_ready(&c.world, &c.topo) == c.topo.workers.len(),
        ),
        milestone(
            format!("Prometheus scraping {} worker targets", 2 * workers),
            |c, _| {
                let t = checks::targets(&c.world, &c.topo);
                c.topo.workers.iter().all(|(_, a)| checks::scraped(&t, a))
            },
        ),
        milestone("every host converged (agents' reports)", |_, s| {
            s.is_some_and(|s| {
                s.nodes
                    .iter()
                    .all(|n| n.report.as_ref().is_some_and(|r| r.converged))
            })
        }),
        milestone("omtd status: converged", |_, s| {
            s.is_some_and(|s| s.converged)
        }),
    ];
    loop {
        let status = ctx.status().await;
        for m in milestones.iter_mut().filter(|m| !m.reached) {
            if (m.check)(ctx, status.as_ref()) {
                m.reached = true;
                ctx.out.done(&m.label, start.elapsed());
            }
        }
        let pending: Vec<&Milestone> = milestones.iter().filter(|m| !m.reached).collect();
        let waited = start.elapsed();
        if pending.is_empty() {
            return Ok(StepResult {
                name: format!(
                    "initial convergence ({} hosts)",
                    ctx.world.node_names().len()
                ),
                repaired: true,
                took: waited,
                detail: String::new(),
            });
        }
        if waited >= ctx.timeout {
            for m in &pending {
                ctx.out.failed(&format!("not reached: {}", m.label));
            }
            if let Some(s) = &status {
                for p in s.pending.iter().take(8) {
                    ctx.out.info(&format!("pending: {p}"));
                }
            }
            return Ok(StepResult {
                name: "initial convergence".into(),
                repaired: false,
                took: waited,
                detail: pending[0].label.clone(),
            });
        }
        let why = status
            .as_ref()
            .and_then(|s| s.pending.first())
            .map_or_else(|| pending[0].label.clone(), ToString::to_string);
        ctx.out.live(&why, waited);
        tokio::time::sleep(POLL).await;
    }
}

fn summary(ctx: &Ctx, outcome: &DemoRun) {
    ctx.out.title("Summary");
    let rows = outcome
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.repaired { "yes" } else { "NO" }.to_owned(),
                format!("{:.2}", s.took.as_secs_f64()),
                s.detail.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::table::table(&["FAILURE", "REPAIRED", "SECONDS", "NOTE"], rows)
    );
    println!();
    let total = super::output::secs(ctx.out.total());
    if outcome.all_repaired() {
        ctx.out.done(
            &format!("all {} steps converged", outcome.steps.len()),
            ctx.out.total(),
        );
    } else {
        ctx.out
            .failed(&format!("some steps did not converge (demo took {total})"));
    }
}

async fn keep_running(ctx: &Ctx, store_url: &str) {
    ctx.out
        .title("Still running (--keep-running): Ctrl-C to stop");
    ctx.out.info(&format!("omtd --store {store_url} status"));
    ctx.out.info(&format!("omtd --store {store_url} get nodes"));
    ctx.out
        .info(&format!("omtd --store {store_url} apply -f my-change.yaml"));
    let _ = tokio::signal::ctrl_c().await;
}
