//! The end-to-end world: a real etcd and a real ZooKeeper, the `omtd operator` binary, one
//! `omtd agent --driver sim --sim-api` process per node, and the `omtd` binary for every
//! user action.
//!
//! The test reads each sim machine through a mirror kept in step with its `GET /state`
//! and breaks it through `POST /fault`. The sim world (`omtd::sim`) computes what Mesos,
//! Chronos and Prometheus make of the machines and serves it on loopback with the real
//! APIs; its Mesos leader election is copied into the real ZooKeeper. The operator is
//! pointed at all three as it would be at a cluster (`OMTD_MESOS_URL`, `OMTD_ZOOKEEPER`,
//! `OMTD_PROMETHEUS_URL`), so its real probes and maintenance calls run.

pub mod mesos;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd::agent::drivers::sim::{Fault, SimHost};
use omtd::resources::Keys;
use omtd::store::Store;
use omtd_crds::plan::{Ensure, PlanSlice, Report, ServiceState};
use tokio_util::sync::CancellationToken;

use crate::etcd::EtcdServer;
use crate::zookeeper::ZooKeeperServer;
use omtd::sim::remote::RemoteHost;
use omtd::sim::SimWorld;

pub const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/examples/cluster.yaml"
);
pub const CLUSTER: &str = "e2e";

/// The nodes of `deploy/examples/cluster.yaml`.
/// The secret values of the example cluster's credentials (`secret: {value: "..."}`),
/// for tests that look for them where they must not be.
pub fn example_secrets() -> Vec<String> {
    let text = std::fs::read_to_string(EXAMPLE).expect("read the example cluster");
    let secrets: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("secret: {value: \"")?.1.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .collect();
    assert_eq!(secrets.len(), 6, "the example's credentials: {secrets:?}");
    secrets
}

pub const NODES: [&str; 8] = [
    "executor.omtd",
    "editor.omtd",
    "manager.omtd",
    "registry.omtd",
    "monitor.omtd",
    "node1.omtd",
    "node2.omtd",
    "node3.omtd",
];

/// Each node's address (the example's, and node4's the tests add).
pub fn address(node: &str) -> &'static str {
    match node {
        "executor.omtd" => "10.0.0.10",
        "editor.omtd" => "10.0.0.11",
        "manager.omtd" => "10.0.0.12",
        "registry.omtd" => "10.0.0.13",
        "monitor.omtd" => "10.0.0.14",
        "node1.omtd" => "10.0.0.21",
        "node2.omtd" => "10.0.0.22",
        "node3.omtd" => "10.0.0.23",
        "node4.omtd" => "10.0.0.24",
        _ => panic!("no address for {node}"),
    }
}

/// One `omtd agent --driver sim` process: a sim machine with its agent.
struct Machine {
    process: Process,
    remote: RemoteHost,
    follow: CancellationToken,
}

impl Machine {
    /// SIGTERM (the agent revokes its heartbeat), then SIGKILL.
    fn stop(&mut self) {
        self.follow.cancel();
        self.process.stop();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.follow.cancel();
    }
}

pub struct World {
    pub etcd: EtcdServer,
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub zookeeper: ZooKeeperServer,
    machines: BTreeMap<String, Machine>,
    operator: Option<Process>,
    mirror_stop: CancellationToken,
    pub dir: tempfile::TempDir,
    /// Processes log at `-vv` ([`Setup::verbose`]).
    verbose: bool,
    /// What Mesos, ZooKeeper and Prometheus make of the hosts, served over HTTP to the
    /// operator's probes.
    pub sim: SimWorld,
}

/// A child process, killed when dropped.
struct Process(std::process::Child);

impl Process {
    /// SIGTERM, then SIGKILL after 15 s.
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// How the world's operator runs.
#[derive(Default)]
pub struct Setup {
    /// More `omtd operator` flags (e.g. a shorter `--recovery-grace`).
    pub operator_args: Vec<&'static str>,
    /// etcd over TLS with auth on (`omtd store secure`): the operator, each agent and the
    /// CLI with their own certificates (docs/security.md).
    pub secure: bool,
    /// The operator and the agents log at `-vv` (debug), into the world's folder.
    pub verbose: bool,
}

impl World {
    /// etcd, the operator, and a sim agent for each of `nodes`.
    pub async fn start(nodes: &[&str], setup: Setup) -> World {
        // RUST_LOG=omtd=debug shows the operator's and agents' logs with the test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let etcd = if setup.secure {
            EtcdServer::start_tls()
        } else {
            EtcdServer::start()
        };
        let store = etcd.store().await;
        let keys = Keys::for_cluster(CLUSTER);
        let mut world = World {
            etcd,
            zookeeper: ZooKeeperServer::start(),
            store,
            keys,
            machines: BTreeMap::new(),
            operator: None,
            mirror_stop: CancellationToken::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            verbose: false,
            sim: SimWorld::new(),
        };
        if setup.secure {
            // Every identity before its process: once auth is on, etcd knows only them.
            let mut args = vec!["store", "secure"];
            for n in nodes {
                args.extend(["--node", n]);
            }
            world.omtd(&args).await;
        }
        // Hosts first: the operator's probes need the manager's sim endpoints.
        for n in nodes {
            world.start_agent(n).await;
        }
        omtd::sim::zk_mirror::spawn(
            world.sim.clone(),
            mesos::ZK_URL,
            &world.zookeeper.endpoint(),
            "/mesos",
            Duration::from_millis(20),
            world.mirror_stop.clone(),
        )
        .await
        .expect("copy the sim's election into ZooKeeper");
        world.verbose = setup.verbose;
        world.start_operator(&setup.operator_args);
        world
    }

    /// Every log line the operator and the agents wrote so far, by file.
    pub fn logs(&self) -> Vec<(String, String)> {
        let mut logs = Vec::new();
        if let Ok(dir) = std::fs::read_dir(self.dir.path()) {
            for e in dir.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    logs.push((path.display().to_string(), text));
                }
            }
        }
        logs
    }

    /// Stops the operator (SIGTERM: it resigns at once).
    pub fn stop_operator(&mut self) {
        if let Some(mut p) = self.operator.take() {
            p.stop();
        }
    }

    /// `kill -9` of the operator: no resignation, its leader lease and any half-done
    /// procedure stay behind for the next operator (the operator chaos's fault).
    pub fn kill_operator(&mut self) {
        if let Some(mut p) = self.operator.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// `omtd operator` with its probes on the sim world's endpoints and the real ZooKeeper.
    pub fn start_operator(&mut self, extra: &[&str]) {
        let (user, secret) = mesos::PROBE_PRINCIPAL;
        let mesos_url = self
            .sim
            .mesos_url(mesos::MANAGER)
            .expect("the manager's sim endpoint")
            .replacen("http://", &format!("http://{user}:{secret}@"), 1);
        let prometheus = self
            .sim
            .prometheus_url(mesos::MONITOR)
            .expect("the monitor's sim endpoint");
        let log =
            std::fs::File::create(self.dir.path().join("operator.log")).expect("operator log file");
        let operator = self.etcd.pki().map(|p| p.operator()).unwrap_or_default();
        let child = std::process::Command::new(crate::omtd_bin())
            .envs(self.etcd.client_env(&operator))
            .env("OMTD_CLUSTER", CLUSTER)
            .env("OMTD_MESOS_URL", mesos_url)
            .env(
                "OMTD_ZOOKEEPER",
                format!("zk://{}/mesos", self.zookeeper.endpoint()),
            )
            .env("OMTD_PROMETHEUS_URL", prometheus)
            .args(["operator", "--metrics-addr", "127.0.0.1:0"])
            .args(["--identity", "e2e-operator", "--probe-interval", "100ms"])
            .args(self.verbose.then_some("-vv"))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start omtd operator");
        self.operator = Some(Process(child));
    }

    /// The operator's log so far (for a failing assertion's message).
    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("operator.log")).unwrap_or_default()
    }

    /// A sim machine with every role's packages installed (and, on the executor, two
    /// 10 GiB data disks), running its agent: an `omtd agent --driver sim` process.
    pub async fn start_agent(&mut self, node: &str) -> SimHost {
        let api_file = self.dir.path().join(format!("{node}.api"));
        let log = std::fs::File::create(self.dir.path().join(format!("{node}.log")))
            .expect("agent log file");
        let identity = self.etcd.pki().map(|p| p.agent(node)).unwrap_or_default();
        let mut command = std::process::Command::new(crate::omtd_bin());
        command
            .envs(self.etcd.client_env(&identity))
            .env("OMTD_CLUSTER", CLUSTER)
            .args(["agent", "--node", node, "--driver", "sim"])
            .args(["--service-check", "1s", "--sim-api", "127.0.0.1:0"])
            .args(self.verbose.then_some("-vv"))
            .arg("--sim-api-file")
            .arg(&api_file)
            .stdout(std::process::Stdio::null())
            .stderr(log);
        if node == "executor.omtd" {
            command.args([
                "--sim-disk",
                "/dev/vdb=10GiB",
                "--sim-disk",
                "/dev/vdc=10GiB",
            ]);
        }
        let child = command.spawn().expect("start omtd agent --driver sim");
        let follow = CancellationToken::new();
        let mut machine = Machine {
            process: Process(child),
            remote: RemoteHost::new("http://127.0.0.1:1"),
            follow: follow.clone(),
        };
        let start = Instant::now();
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(&api_file) {
                break url;
            }
            if let Ok(Some(exit)) = machine.process.0.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{node}.log")));
                panic!(
                    "omtd agent for {node} exited with {exit}: {}",
                    log.unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "omtd agent for {node} did not serve its sim API within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        machine.remote = RemoteHost::new(&url);
        machine
            .remote
            .refresh()
            .await
            .expect("the sim machine's state");
        machine.remote.follow(Duration::from_millis(20), follow);
        let sim = machine.remote.mirror().clone();
        self.sim.add_node(node, address(node), sim.clone());
        self.machines.insert(node.to_owned(), machine);
        sim
    }

    fn machine(&self, node: &str) -> &Machine {
        self.machines
            .get(node)
            .unwrap_or_else(|| panic!("no sim machine {node}"))
    }

    /// Does `fault` to a node's machine (and takes its new state into the mirror).
    pub async fn fault(&self, node: &str, fault: Fault) {
        self.machine(node)
            .remote
            .inject(&fault)
            .await
            .unwrap_or_else(|e| panic!("fault {fault:?} on {node}: {e}"));
        self.sim.refresh();
    }

    /// Takes the node's machine state into its mirror now (mirrors refresh every 20 ms,
    /// each on its own: two mirrors can be of different moments).
    pub async fn refresh(&self, node: &str) {
        self.machine(node)
            .remote
            .refresh()
            .await
            .unwrap_or_else(|e| panic!("refresh {node}: {e}"));
    }

    /// Stops a node's agent service (the machine stays up, unattended).
    pub async fn pause_agent(&mut self, node: &str) {
        self.machine(node)
            .remote
            .stop_agent()
            .await
            .unwrap_or_else(|e| panic!("stop the agent on {node}: {e}"));
    }

    /// Starts the node's agent service again.
    pub async fn resume_agent(&mut self, node: &str) {
        self.machine(node)
            .remote
            .start_agent()
            .await
            .unwrap_or_else(|e| panic!("start the agent on {node}: {e}"));
    }

    /// Shuts down the machine of a node that left the cluster; it is no longer checked.
    pub async fn forget(&mut self, node: &str) {
        if let Some(mut m) = self.machines.remove(node) {
            tokio::task::spawn_blocking(move || m.stop())
                .await
                .expect("stop a sim machine");
        }
    }

    /// A node's machine, as of its mirror's last refresh (every 20 ms). Read only: break
    /// it with [`World::fault`].
    pub fn host(&self, node: &str) -> &SimHost {
        self.machine(node).remote.mirror()
    }

    /// The nodes with a machine.
    pub fn hosts(&self) -> Vec<String> {
        self.machines.keys().cloned().collect()
    }

    pub async fn stop(mut self) {
        let machines = std::mem::take(&mut self.machines);
        tokio::task::spawn_blocking(move || {
            for (_, mut m) in machines {
                m.stop();
            }
        })
        .await
        .expect("stop the sim machines");
        if let Some(mut op) = self.operator.take() {
            tokio::task::spawn_blocking(move || op.stop())
                .await
                .expect("stop the operator");
        }
        self.mirror_stop.cancel();
        self.sim.shutdown();
    }

    /// Runs the `omtd` binary against this world's store; panics unless it exits 0.
    pub async fn omtd(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.omtd_status(args).await;
        assert_eq!(code, 0, "omtd {args:?} failed:\n{stderr}");
        stdout
    }

    /// Runs the `omtd` binary: (exit code, stdout, stderr).
    pub async fn omtd_status(&self, args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env = self.etcd.client_env("admin");
        let dir = self.dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let out = assert_cmd::Command::cargo_bin("omtd")
                .expect("the omtd binary")
                .envs(env)
                .env("OMTD_CLUSTER", CLUSTER)
                .current_dir(dir)
                .args(&args)
                .output()
                .expect("run omtd");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .expect("omtd runner")
    }

    /// Writes a manifest into the test's folder.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).expect("write manifest");
        path.to_string_lossy().into_owned()
    }

    /// The store's current revision.
    pub async fn revision(&self) -> i64 {
        self.store
            .list(&self.keys.leader(), None)
            .await
            .expect("list")
            .revision
    }

    /// The stored status of `kind`/`name` (`None` when missing or unreadable).
    pub async fn status(&self, kind: omtd_crds::Kind, name: &str) -> Option<omtd_crds::Status> {
        let kv = self.store.get(&self.keys.status(kind, name)).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    pub async fn report(&self, node: &str) -> Option<Report> {
        let kv = self.store.get(&self.keys.report(node)).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// The node's plan slices as stored, by controller.
    pub async fn slices(&self, node: &str) -> BTreeMap<String, PlanSlice> {
        let prefix = self.keys.plans_of(node);
        let Ok(list) = self.store.list(&prefix, None).await else {
            return BTreeMap::new();
        };
        list.kvs
            .into_iter()
            .filter_map(|kv| {
                let controller = kv.key.strip_prefix(&prefix)?.to_owned();
                Some((controller, serde_json::from_slice(&kv.value).ok()?))
            })
            .collect()
    }

    /// Why `node` is not converged yet (`None`: its report says converged and its host
    /// holds every planned file byte for byte and every planned service state).
    pub async fn not_converged(&self, node: &str) -> Option<String> {
        let Some(report) = self.report(node).await else {
            return Some("no report".into());
        };
        if !report.converged {
            let bad: Vec<String> = report
                .resources
                .iter()
                .filter(|r| r.state != omtd_crds::plan::ResourceState::Converged)
                .map(|r| format!("{} {:?} {}", r.id, r.state, r.message))
                .collect();
            return Some(format!("report not converged: {}", bad.join("; ")));
        }
        let slices = self.slices(node).await;
        if slices.is_empty() {
            return Some("no plan".into());
        }
        // A report of the slices before (a new leader rewrites every slice with its token)
        // says nothing about the ones now in the store.
        let stored: BTreeMap<String, String> = slices
            .iter()
            .map(|(c, s)| (c.clone(), s.digest()))
            .collect();
        if report.slices != stored {
            return Some(format!(
                "report is about slices {:?}, the store holds {stored:?}",
                report.slices
            ));
        }
        let host = self.host(node);
        for s in slices.values() {
            for f in &s.files {
                let on_host = host.file(&f.path);
                match (f.ensure, on_host) {
                    // Made on the host (random salts, the user's file with omtd's part):
                    // what the agent would leave as it is, not the plan's bytes.
                    (Ensure::Present, Some(h))
                        if omtd::agent::apply::file_satisfies(f, &h.content) => {}
                    (Ensure::Present, _) => return Some(format!("{} differs", f.path)),
                    (Ensure::Absent, None) => {}
                    (Ensure::Absent, Some(_)) => return Some(format!("{} present", f.path)),
                }
            }
            for svc in &s.services {
                let Some(h) = host.service(&svc.name) else {
                    continue;
                };
                let ok = match svc.state {
                    ServiceState::Running => h.running && !h.masked,
                    ServiceState::Stopped => !h.running,
                    ServiceState::Masked => !h.running && h.masked,
                };
                if !ok {
                    return Some(format!("service {} is not {:?}", svc.name, svc.state));
                }
            }
        }
        None
    }

    /// Waits until every node with an agent is converged; returns how long it took.
    pub async fn wait_converged(&self, timeout: Duration) -> Duration {
        crate::poll::within(timeout)
            .every(Duration::from_millis(50))
            .until_ok(|| async {
                let mut pending = Vec::new();
                for node in self.machines.keys() {
                    if let Some(why) = self.not_converged(node).await {
                        pending.push(format!("{node}: {why}"));
                    }
                }
                if pending.is_empty() {
                    Ok(())
                } else {
                    Err(pending)
                }
            })
            .await
            .map(|((), took)| took)
            .unwrap_or_else(|pending| {
                panic!(
                    "not converged after {timeout:?}:\n  {}",
                    pending.join("\n  ")
                )
            })
    }
}

impl World {
    /// `omtd status --wait` until converged; returns how long it took.
    pub async fn status_wait(&self) -> Duration {
        let start = Instant::now();
        let (code, out, err) = self
            .omtd_status(&["status", "--wait", "--timeout", "30s", "--settle", "500ms"])
            .await;
        assert_eq!(code, 0, "omtd status --wait:\n{out}\n{err}");
        start.elapsed()
    }

    /// The end of a step: every host holds its plan byte for byte, and `omtd status
    /// --wait` says the cluster converged (statuses, probes, operations). Logs the time.
    pub async fn converged(&self, step: &str) {
        let hosts = self.wait_converged(Duration::from_secs(30)).await;
        let status = self.status_wait().await;
        eprintln!(
            "[e2e] {step}: hosts converged in {:.2}s, omtd status --wait in {:.2}s more",
            hosts.as_secs_f64(),
            status.as_secs_f64()
        );
    }
}

/// A file's bytes on a sim host, as a string ("" when missing).
pub fn text(host: &SimHost, path: &str) -> String {
    host.file(path)
        .map(|f| String::from_utf8_lossy(&f.content).into_owned())
        .unwrap_or_default()
}
