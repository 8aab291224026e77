//! The chaos run (issue #21 item 8): a real etcd on loopback, `omtd agent --root DIR`
//! processes (linux driver, real files, exports reload `true`), and a planner in the
//! operator's place writing each node's slice and manifest in one transaction. Each round
//! writes a new version of every plan and does one random fault; a reader thread
//! ([`watch`]) checks the hosts' files all along, and the round ends when every agent's
//! report is converged on the current plan again (or the round times out).
//!
//! `tests/chaos_short.rs` runs a few rounds in CI and, ignored by default, the long run.

mod etcd;
pub mod operator;
pub mod plan;
pub mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd::resources::Keys;
use omtd::store::Store;
use omtd_crds::plan::Report;
use omtd_crds::plan_manifest::MANIFEST_KEY;

use etcd::Etcd;
use plan::{Planner, CONTROLLER, EXPORTS_FOREIGN, FSTAB_FOREIGN};

pub const CLUSTER: &str = "chaos";

pub struct Config {
    pub agents: usize,
    pub rounds: usize,
    /// How long etcd stays down in an outage round.
    pub etcd_outage: Duration,
    /// How long the first outage (or killed member) of the run lasts: the 60 s, once,
    /// without making every outage round a minute long.
    pub first_outage: Duration,
    /// A round that has not reconverged by then counts as not converged.
    pub converge_timeout: Duration,
    /// Stop starting rounds after this moment (the long run's deadline).
    pub until: Option<Instant>,
    pub seed: u64,
    /// Three etcd members instead of one: the run then kills one member a while
    /// (`KillMember`) or cuts it off from the others (`IsolateMember`) in place of the outage
    /// and snapshot rounds, which need the store whole.
    pub three_members: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillAgent,
    EtcdOutage,
    DeleteSlice,
    DeleteManifest,
    CorruptSlice,
    CorruptManifest,
    RestoreSnapshot,
    KillMember,
    IsolateMember,
}

const ONE_MEMBER: [Fault; 7] = [
    Fault::KillAgent,
    Fault::EtcdOutage,
    Fault::DeleteSlice,
    Fault::DeleteManifest,
    Fault::CorruptSlice,
    Fault::CorruptManifest,
    Fault::RestoreSnapshot,
];

const THREE_MEMBERS: [Fault; 7] = [
    Fault::KillAgent,
    Fault::KillMember,
    Fault::IsolateMember,
    Fault::DeleteSlice,
    Fault::DeleteManifest,
    Fault::CorruptSlice,
    Fault::CorruptManifest,
];

#[derive(Default)]
pub struct Figures {
    pub rounds: usize,
    pub kills: usize,
    pub faults: BTreeMap<String, usize>,
    pub reads: u64,
    pub torn: u64,
    pub unsafe_steps: u64,
    pub converged: usize,
    pub reconverge: Vec<Duration>,
    pub examples: Vec<String>,
    pub elapsed: Duration,
}

/// The `p` quantile (0..=1) of `v` (zero when empty).
fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A number from the environment (the long runs' `OMTD_CHAOS_*` knobs), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `OMTD_CHAOS_SEED`, or one from the clock (the figures print it, to replay the run).
pub fn seed() -> u64 {
    env_num(
        "OMTD_CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7),
    )
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rounds            {}", self.rounds)?;
        writeln!(f, "kills (-9)        {}", self.kills)?;
        for (k, n) in &self.faults {
            writeln!(f, "  {k:<16}{n}")?;
        }
        writeln!(f, "file reads        {}", self.reads)?;
        writeln!(f, "torn files        {}", self.torn)?;
        Outcome {
            unsafe_steps: self.unsafe_steps,
            converged: self.converged,
            rounds: self.rounds,
            reconverge: &self.reconverge,
            elapsed: self.elapsed,
            examples: &self.examples,
        }
        .fmt(f)
    }
}

/// The figures every chaos run ends with, in one layout.
pub(crate) struct Outcome<'a> {
    pub unsafe_steps: u64,
    pub converged: usize,
    pub rounds: usize,
    pub reconverge: &'a [Duration],
    pub elapsed: Duration,
    pub examples: &'a [String],
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.rounds == 0 {
            0.0
        } else {
            100.0 * self.converged as f64 / self.rounds as f64
        };
        writeln!(f, "unsafe steps      {}", self.unsafe_steps)?;
        writeln!(f, "converged         {} ({rate:.1} %)", self.converged)?;
        writeln!(
            f,
            "reconverge        p50 {:?}, p99 {:?}",
            percentile(self.reconverge, 0.5),
            percentile(self.reconverge, 0.99)
        )?;
        writeln!(f, "elapsed           {:?}", self.elapsed)?;
        for e in self.examples {
            writeln!(f, "example: {e}")?;
        }
        Ok(())
    }
}

/// A tiny xorshift: the run's choices, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct AgentProc {
    node: String,
    root: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl AgentProc {
    fn start(&mut self, etcd_url: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log file");
        let child = Command::new(crate::omtd_bin())
            .env("OMTD_STORE", etcd_url)
            .env("OMTD_CLUSTER", CLUSTER)
            .args(["agent", "--node", &self.node, "--driver", "linux"])
            .arg("--root")
            .arg(&self.root)
            .args([
                "--resync",
                "2s",
                "--service-check",
                "500ms",
                "--lease-ttl",
                "3s",
            ])
            .args(["--exports-reload", "true"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start omtd agent --root");
        self.child = Some(child);
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Chaos {
    etcd: Etcd,
    store: Arc<dyn Store>,
    keys: Keys,
    agents: Vec<AgentProc>,
    planner: Planner,
    dir: tempfile::TempDir,
    nodes: Vec<String>,
}

impl Chaos {
    pub async fn start(agents: usize, three_members: bool) -> Chaos {
        let etcd = Etcd::start(three_members);
        let store = etcd.store().await;
        let keys = Keys::for_cluster(CLUSTER);
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().canonicalize().expect("canonical temp dir");
        let nodes: Vec<String> = (1..=agents).map(|i| format!("n{i}.chaos")).collect();
        let mut procs = Vec::new();
        for node in &nodes {
            let root = base.join(node);
            std::fs::create_dir_all(root.join("etc")).expect("root/etc");
            // The exported directories exist, as on a real NFS server: the agent checks
            // exports lines before it writes them and refuses a path that is no directory.
            for d in ["srv/data", "srv/v0", "srv/v1", "srv/v2"] {
                std::fs::create_dir_all(root.join(d)).expect("exported dir");
            }
            std::fs::write(root.join("etc/fstab"), FSTAB_FOREIGN).expect("fstab");
            std::fs::write(root.join("etc/exports"), EXPORTS_FOREIGN).expect("exports");
            let mut p = AgentProc {
                node: node.clone(),
                log: base.join(format!("{node}.log")),
                root,
                child: None,
            };
            p.start(&etcd.url());
            procs.push(p);
        }
        let planner = Planner {
            store: store.clone(),
            keys: keys.clone(),
            version: 0,
            token: 0,
            digests: BTreeMap::new(),
        };
        Chaos {
            etcd,
            store,
            keys,
            agents: procs,
            planner,
            dir,
            nodes,
        }
    }

    async fn report(&self, node: &str) -> Option<Report> {
        let kv = self.store.get(&self.keys.report(node)).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Whether every agent reports converged on the slice last written.
    async fn all_converged(&self) -> bool {
        for node in &self.nodes {
            let want = self.planner.digests.get(node);
            match self.report(node).await {
                Some(r) if r.converged && r.slices.get(CONTROLLER) == want => {}
                _ => return false,
            }
        }
        true
    }

    /// Writes the plan (again, until the store takes it), then waits for convergence.
    async fn settle(&mut self, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while !self.planner.write(&self.nodes).await {
            if start.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while start.elapsed() < timeout {
            if self.all_converged().await {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// The agents' logs, for a failing run's message.
    pub fn logs(&self) -> String {
        self.agents
            .iter()
            .map(|a| {
                let log = std::fs::read_to_string(&a.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- {}\n{}",
                    a.node,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn run(mut self, cfg: &Config) -> Figures {
        let started = Instant::now();
        let mut figures = Figures::default();
        self.planner.version = 1;
        if self.settle(Duration::from_secs(60)).await.is_none() {
            panic!(
                "the chaos cluster never converged at first:\n{}",
                self.logs()
            );
        }
        let hosts = self
            .agents
            .iter()
            .map(|a| (a.node.clone(), a.root.clone()))
            .collect();
        let (findings, reader) = watch::spawn(hosts);
        let mut rng = Rng(cfg.seed | 1);
        let snapshot = self.dir.path().join("backup.db");
        let mut have_snapshot = false;
        for _ in 0..cfg.rounds {
            if cfg.until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            let faults: &[Fault] = if cfg.three_members {
                &THREE_MEMBERS
            } else {
                &ONE_MEMBER
            };
            // Every fault once first, so that even a short run tries each; then at random.
            let fault = match faults.get(figures.rounds) {
                Some(f) => *f,
                None => faults[rng.below(faults.len() as u64) as usize],
            };
            // An older snapshot is one taken some rounds ago; take one now and then.
            if !cfg.three_members && (!have_snapshot || rng.below(8) == 0) {
                self.etcd.save_snapshot(&snapshot);
                have_snapshot = true;
            }
            self.planner.version += 1;
            let _ = self.planner.write(&self.nodes).await;
            let held = self
                .fault(fault, cfg, &mut rng, &mut figures, &snapshot)
                .await;
            *figures.faults.entry(format!("{fault:?}")).or_default() += 1;
            figures.rounds += 1;
            self.planner.version += 1;
            match self.settle(cfg.converge_timeout).await {
                Some(_) if !held => figures.examples.push(format!(
                    "round {} ({fault:?}): the agents did not converge while the fault lasted",
                    figures.rounds
                )),
                Some(d) => {
                    figures.converged += 1;
                    figures.reconverge.push(d);
                }
                None => figures.examples.push(format!(
                    "round {} ({fault:?}) did not reconverge",
                    figures.rounds
                )),
            }
            // After the round's settle, so the converged count includes this round.
            if figures.rounds % 50 == 0 {
                // A long run can be cut short: what it saw so far is on stderr.
                eprintln!(
                    "chaos progress: {} rounds, {} converged, {} torn, {} unsafe, {:?} elapsed",
                    figures.rounds,
                    figures.converged,
                    findings.torn.load(Ordering::Relaxed),
                    findings.unsafe_steps.load(Ordering::Relaxed),
                    started.elapsed()
                );
            }
        }
        findings.stop();
        let _ = reader.join();
        figures.reads = findings.reads.load(Ordering::Relaxed);
        figures.torn = findings.torn.load(Ordering::Relaxed);
        figures.unsafe_steps = findings.unsafe_steps.load(Ordering::Relaxed);
        figures.examples.extend(
            findings
                .examples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..),
        );
        figures.elapsed = started.elapsed();
        if figures.converged < figures.rounds {
            figures.examples.push(self.logs());
        }
        figures
    }

    async fn fault(
        &mut self,
        fault: Fault,
        cfg: &Config,
        rng: &mut Rng,
        figures: &mut Figures,
        snapshot: &std::path::Path,
    ) -> bool {
        let node = self.nodes[rng.below(self.nodes.len() as u64) as usize].clone();
        match fault {
            Fault::KillAgent => {
                // Within the first 300 ms after the new plan: often mid-write.
                tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
                let i = rng.below(self.agents.len() as u64) as usize;
                self.agents[i].kill();
                figures.kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
                let url = self.etcd.url();
                self.agents[i].start(&url);
            }
            Fault::EtcdOutage => {
                tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
                self.etcd.kill();
                figures.kills += 1;
                tokio::time::sleep(outage(cfg, figures)).await;
                self.etcd.restart();
            }
            Fault::KillMember => {
                // Any member, the leader included: the other two keep a quorum.
                tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
                let i = rng.below(3) as usize;
                self.etcd.kill_member(i);
                figures.kills += 1;
                tokio::time::sleep(outage(cfg, figures)).await;
                self.etcd.restart_member(i);
            }
            Fault::IsolateMember => {
                // A partition, not a crash: the member still answers its clients, from data
                // that stops moving. A plan written meanwhile must reach every agent through
                // the other two (require-leader makes a client leave the cut member).
                tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
                let i = rng.below(3) as usize;
                self.etcd.isolate_member(i);
                tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
                self.planner.version += 1;
                let converged = self.settle(cfg.converge_timeout).await.is_some();
                self.etcd.heal();
                return converged;
            }
            Fault::DeleteSlice | Fault::DeleteManifest => {
                let which = if fault == Fault::DeleteSlice {
                    CONTROLLER
                } else {
                    MANIFEST_KEY
                };
                let _ = self.store.delete(&self.keys.plan(&node, which)).await;
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
            }
            Fault::CorruptSlice | Fault::CorruptManifest => {
                let which = if fault == Fault::CorruptSlice {
                    CONTROLLER
                } else {
                    MANIFEST_KEY
                };
                let key = self.keys.plan(&node, which);
                if let Ok(Some(kv)) = self.store.get(&key).await {
                    let mut bytes = kv.value;
                    let cut = rng.below(bytes.len() as u64) as usize;
                    bytes.truncate(cut);
                    bytes.extend_from_slice(b"\x00garbage{");
                    let _ = self.store.put(&key, bytes).await;
                }
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
            }
            Fault::RestoreSnapshot => {
                self.etcd.restore_snapshot(snapshot);
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
                // The documented procedure (docs/operations.md): a new epoch.
                let out = Command::new(crate::omtd_bin())
                    .env("OMTD_STORE", self.etcd.url())
                    .env("OMTD_CLUSTER", CLUSTER)
                    .args(["epoch", "renew"])
                    .output()
                    .expect("run omtd epoch renew");
                assert!(out.status.success(), "omtd epoch renew: {out:?}");
            }
        }
        true
    }
}

/// This outage's length: [`Config::first_outage`] for the run's first, else
/// [`Config::etcd_outage`].
fn outage(cfg: &Config, figures: &Figures) -> Duration {
    let so_far = ["EtcdOutage", "KillMember"]
        .iter()
        .filter_map(|f| figures.faults.get(*f))
        .sum::<usize>();
    if so_far == 0 {
        cfg.first_outage
    } else {
        cfg.etcd_outage
    }
}
