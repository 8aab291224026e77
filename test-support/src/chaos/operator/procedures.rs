//! The procedures an operator-chaos round runs, each with one `kill -9` of the operator
//! somewhere inside it (see [`Round::kill_soon`]), and what "finished after the restart"
//! means for each. A procedure returns `Err(why)` when it did not finish within the bound.

use std::time::{Duration, Instant};

use omtd_crds::{ConditionStatus, Kind, Status};

use super::watch::{Watch, WORKERS};
use super::{Config, Rng};
use crate::e2e::mesos::{mesos_state, MANAGER};
use crate::e2e::{address, text, World, EXAMPLE};

/// What a round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Procedure {
    /// A worker with a running task removed (`omtd delete node`): the drain.
    Drain,
    /// Chronos disconnected: the leader guard's cluster-wide ordered recovery.
    Recovery,
    /// A worker's Mesos credential rotated (`omtd apply` of its Credential).
    Rotate,
    /// The example applied again with one node's labels changed.
    Relabel,
}

pub const ALL: [Procedure; 4] = [
    Procedure::Drain,
    Procedure::Recovery,
    Procedure::Rotate,
    Procedure::Relabel,
];

const MASTER_CREDENTIALS: &str = "/etc/mesos-master/store/credentials.json";
const AGENT_CREDENTIALS: &str = "/etc/mesos-slave/store/credentials.json";

/// One round in progress.
pub(super) struct Round<'a> {
    pub(super) w: &'a mut World,
    pub(super) rng: &'a mut Rng,
    pub(super) cfg: &'a Config,
    pub(super) watch: &'a Watch,
    pub(super) number: usize,
    /// When the new operator started (the kill's restart).
    pub(super) restarted: Option<Instant>,
    /// Time the round held on purpose after the restart (a task kept running): not part
    /// of the time to reconverge.
    pub(super) held: Duration,
    pub(super) kills: usize,
    /// The leader term (the leader key's create revision) the last kill ended.
    pub(super) term_killed: i64,
    /// What the round did, for the figures' log.
    pub(super) trace: Vec<String>,
}

impl Round<'_> {
    fn ms(&mut self, max: Duration) -> Duration {
        Duration::from_millis(self.rng.below(max.as_millis() as u64 + 1))
    }

    /// Waits 0–`kill_within`, `kill -9`s the operator, waits 0–`restart_within` and starts
    /// a new operator process (same identity: the dead one's lease is still in the store).
    pub(super) async fn kill_soon(&mut self) {
        self.kill_within(self.cfg.kill_within).await;
    }

    /// Half the time, a second kill 0–`max` from now (a later step of the procedure).
    async fn maybe_kill_again(&mut self, max: Duration) {
        if self.rng.below(2) == 0 {
            self.kill_within(max).await;
        }
    }

    async fn kill_within(&mut self, max: Duration) {
        let after = self.ms(max);
        tokio::time::sleep(after).await;
        self.term_killed = self.term_killed.max(term(self.w).await.unwrap_or(0));
        self.w.kill_operator();
        self.kills += 1;
        let down = self.ms(self.cfg.restart_within);
        tokio::time::sleep(down).await;
        // Keep the dead operator's log beside the new one's.
        let dir = self.w.dir.path().to_owned();
        let _ = std::fs::rename(dir.join("operator.log"), dir.join("operator.prev.log"));
        self.w.start_operator(&super::operator_args());
        self.restarted = Some(Instant::now());
        // Only what is held after the last restart is part of its time to reconverge.
        self.held = Duration::ZERO;
        self.trace
            .push(format!("kill -9 at +{after:?}, restart after {down:?}"));
    }

    /// Waits until a new operator leads (a term after the killed one's): what the round
    /// checks next is then the new process's doing, not what the dead one left.
    async fn led_again(&self) -> Result<(), String> {
        let (old, bound) = (self.term_killed, self.cfg.bound);
        let w = &*self.w;
        let led = crate::poll::within(bound)
            .every(Duration::from_millis(50))
            .until_async(|| async { term(w).await.is_some_and(|t| t > old) })
            .await;
        match led {
            Some(_) => Ok(()),
            None => Err(format!(
                "no new operator term after {old} within {bound:?} of the restart"
            )),
        }
    }

    pub(super) async fn run(&mut self, p: Procedure) -> Result<(), String> {
        match p {
            Procedure::Drain => self.drain().await,
            Procedure::Recovery => self.recovery().await,
            Procedure::Rotate => self.rotate().await,
            Procedure::Relabel => self.relabel().await,
        }
    }

    fn worker(&mut self) -> &'static str {
        WORKERS[self.rng.below(WORKERS.len() as u64) as usize]
    }

    /// A task on a worker, the worker removed, the kill during the drain; after the
    /// restart the machine is (still) DRAINING, not DOWN, while the task runs; the task
    /// ends, the node is released, then added back.
    async fn drain(&mut self) -> Result<(), String> {
        let node = self.worker();
        let ip = address(node);
        self.trace.push(format!("drain {node}"));
        let job = self
            .w
            .sim
            .start_task(node, "chaos-job")
            .map_err(|e| format!("start a task on {node}: {e}"))?;
        self.w.omtd(&["delete", "node", node]).await;
        self.kill_soon().await;
        self.led_again().await?;
        let bound = self.cfg.bound;
        let w = &*self.w;
        let draining = crate::poll::within(bound)
            .every(Duration::from_millis(50))
            .until_async(|| async {
                mesos_state(w)
                    .await
                    .draining_machines
                    .iter()
                    .any(|m| m == ip)
            })
            .await;
        if draining.is_none() {
            return Err(format!(
                "{node} not DRAINING within {bound:?} after the restart: {:?}",
                mesos_state(w).await
            ));
        }
        // The drain goes on across the new leader's reconciles (its probes every 100 ms,
        // the maintenance and node controllers within seconds).
        let hold = Duration::from_millis(3000);
        tokio::time::sleep(hold).await;
        self.held += hold;
        let m = mesos_state(w).await;
        if m.down_machines.iter().any(|d| d == ip) {
            return Err(format!("{node} DOWN while its task runs: {m:?}"));
        }
        let spec = w.keys.spec(Kind::Node, node);
        if w.store.get(&spec).await.ok().flatten().is_none() {
            return Err(format!("{node} released while its task runs"));
        }
        self.watch.unwant(node);
        if !w.sim.finish_task(&job) {
            return Err(format!(
                "task {job} was no longer running: {:?}",
                w.sim.tasks()
            ));
        }
        // The down, the clean-up and the release: kill inside them too.
        self.maybe_kill_again(Duration::from_millis(1500)).await;
        self.led_again().await?;
        let w = &*self.w;
        let released = crate::poll::within(bound)
            .every(Duration::from_millis(50))
            .until_async(|| async { w.store.get(&spec).await.ok().flatten().is_none() })
            .await;
        if released.is_none() {
            return Err(format!(
                "{node} not released within {bound:?} after its task ended: {:?}",
                mesos_state(w).await
            ));
        }
        // Back for the next round.
        w.omtd(&["apply", "-f", EXAMPLE]).await;
        converge(w, bound).await?;
        self.watch.want(node);
        Ok(())
    }

    /// Chronos loses its registration; with the fast timings the leader guard starts the
    /// ordered recovery after ~1 s; the kill lands before, inside or after it. Finished:
    /// a new Chronos process registered, and the cluster converged.
    async fn recovery(&mut self) -> Result<(), String> {
        self.trace.push("recovery (Chronos disconnected)".into());
        let chronos_starts = |w: &World| w.host(MANAGER).service("chronos").map_or(0, |s| s.starts);
        let before = chronos_starts(self.w);
        self.w
            .sim
            .disconnect_chronos(MANAGER)
            .map_err(|e| format!("disconnect Chronos: {e}"))?;
        self.kill_soon().await;
        // The recovery's later steps (master, Chronos, agents) take seconds: again there.
        self.maybe_kill_again(Duration::from_secs(4)).await;
        self.led_again().await?;
        let bound = self.cfg.bound;
        let w = &*self.w;
        let recovered = crate::poll::within(bound)
            .every(Duration::from_millis(50))
            .until_async(|| async {
                if chronos_starts(w) <= before || !mesos_state(w).await.framework_active("chronos")
                {
                    return false;
                }
                let s = cluster_status(w).await;
                condition(&s, "MesosConnected") == Some(ConditionStatus::True)
                    && condition(&s, "Recovery") != Some(ConditionStatus::True)
            })
            .await;
        if recovered.is_none() {
            return Err(format!(
                "recovery not completed within {bound:?} after the restart: Chronos starts \
                 {before} -> {}, {:?}",
                chronos_starts(w),
                cluster_status(w).await.map(|s| s.conditions)
            ));
        }
        converge(w, bound).await
    }

    /// A worker's credential gets a new secret; finished: the master and the agent hold
    /// it, and the cluster converged.
    async fn rotate(&mut self) -> Result<(), String> {
        let node = self.worker();
        let secret = format!("chaos-{}-{}", self.number, self.rng.below(1 << 20));
        self.trace.push(format!("rotate {node}"));
        let yaml = format!(
            "apiVersion: omtd/v1\nkind: Credential\nmetadata:\n  name: {node}\nspec:\n  \
             principal: {node}\n  secret: {{value: \"{secret}\"}}\n  use: mesos-agent\n"
        );
        let path = self.w.manifest("rotate.yaml", &yaml);
        self.w.omtd(&["apply", "-f", &path]).await;
        self.kill_soon().await;
        self.led_again().await?;
        let bound = self.cfg.bound;
        let w = &*self.w;
        let line = format!(r#"{{"principal":"{node}","secret":"{secret}"}}"#);
        let done = crate::poll::within(bound)
            .every(Duration::from_millis(50))
            .until(|| {
                text(w.host(node), AGENT_CREDENTIALS) == line
                    && text(w.host(MANAGER), MASTER_CREDENTIALS).contains(&line)
            })
            .await;
        if done.is_none() {
            return Err(format!(
                "{node}'s rotation not on the hosts within {bound:?} after the restart"
            ));
        }
        converge(w, bound).await
    }

    /// The example again, one node's labels changed.
    async fn relabel(&mut self) -> Result<(), String> {
        let node = crate::e2e::NODES[self.rng.below(8) as usize];
        self.trace.push(format!("relabel {node}"));
        let example = std::fs::read_to_string(EXAMPLE).map_err(|e| e.to_string())?;
        let from = format!("  name: {node}\n  labels: {{");
        let to = format!("{from}chaos: \"r{}\", ", self.number);
        let yaml = example.replacen(&from, &to, 1);
        let path = self.w.manifest("relabel.yaml", &yaml);
        self.w.omtd(&["apply", "-f", &path]).await;
        self.kill_soon().await;
        self.led_again().await?;
        converge(self.w, self.cfg.bound).await
    }
}

/// The current leader term: the leader key's create revision (`None`: nobody leads).
async fn term(w: &World) -> Option<i64> {
    let kv = w.store.get(&w.keys.leader()).await.ok()??;
    Some(kv.create_revision)
}

async fn cluster_status(w: &World) -> Option<Status> {
    w.status(Kind::Cluster, "omtd").await
}

fn condition(s: &Option<Status>, t: &str) -> Option<ConditionStatus> {
    s.as_ref()?.condition(t).map(|c| c.status)
}

/// Every host converged on its plan byte for byte, then `omtd status --wait` converged.
pub async fn converge(w: &World, bound: Duration) -> Result<(), String> {
    let hosts = crate::poll::within(bound)
        .every(Duration::from_millis(100))
        .until_ok(|| async {
            let mut pending = Vec::new();
            for node in w.hosts() {
                if let Some(why) = w.not_converged(&node).await {
                    pending.push(format!("{node}: {why}"));
                }
            }
            if pending.is_empty() {
                Ok(())
            } else {
                Err(pending)
            }
        })
        .await;
    if let Err(pending) = hosts {
        return Err(format!(
            "hosts not converged within {bound:?}:\n  {}",
            pending.join("\n  ")
        ));
    }
    // `omtd status` does not count Mesos's health; the round does: the manager leads,
    // Chronos and the agents are registered, no recovery is running.
    let healthy = crate::poll::within(bound)
        .every(Duration::from_millis(100))
        .until_async(|| async {
            let s = cluster_status(w).await;
            condition(&s, "LeaderElected") == Some(ConditionStatus::True)
                && condition(&s, "MesosConnected") == Some(ConditionStatus::True)
                && condition(&s, "Recovery") != Some(ConditionStatus::True)
        })
        .await;
    if healthy.is_none() {
        return Err(format!(
            "Mesos not healthy within {bound:?}: {:?}",
            cluster_status(w).await.map(|s| s.conditions)
        ));
    }
    let (code, out, err) = w
        .omtd_status(&["status", "--wait", "--timeout", "30s", "--settle", "500ms"])
        .await;
    if code != 0 {
        return Err(format!("omtd status --wait: {code}\n{out}\n{err}"));
    }
    Ok(())
}
