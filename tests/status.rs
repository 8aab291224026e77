//! `omtd status` as a user runs it: the binary against a real store (SQLite, and once a
//! real etcd), with Node specs, statuses, agent reports and heartbeat leases written
//! straight into the store the way the operator and the agents write them.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd::resources::Keys;
use omtd::store::{Op, Store, StoreUrl, Txn};
use omtd_crds::plan::{Report, ResourceReport, ResourceState};
use omtd_crds::Kind;
use omtd_test_support::etcd::EtcdServer;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const OMTD: &str = env!("CARGO_BIN_EXE_omtd");

struct Env {
    url: String,
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    keys: Keys,
    _etcd: Option<EtcdServer>,
}

impl Env {
    async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("omtd.db").display());
        Env::open(url, dir, None).await
    }

    async fn etcd() -> Env {
        let etcd = EtcdServer::start();
        Env::open(etcd.url(), tempfile::tempdir().unwrap(), Some(etcd)).await
    }

    async fn open(url: String, dir: tempfile::TempDir, etcd: Option<EtcdServer>) -> Env {
        let parsed: StoreUrl = url.parse().unwrap();
        let store = omtd::store::open(&parsed).await.unwrap();
        Env {
            url,
            dir,
            store,
            keys: Keys::for_cluster("default"),
            _etcd: etcd,
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(OMTD);
        cmd.env("OMTD_STORE", &self.url)
            .env("NO_COLOR", "1")
            .env_remove("OMTD_CLUSTER")
            .current_dir(self.dir.path())
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    async fn omtd(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().await.unwrap())
    }

    async fn put(&self, key: String, value: Value) {
        self.store
            .put(&key, serde_json::to_vec(&value).unwrap())
            .await
            .unwrap();
    }

    async fn node(&self, name: &str, roles: &[&str], generation: i64) {
        let mut spec = json!({"address": "10.0.0.1", "roles": roles});
        if roles.contains(&"worker") {
            spec["credential"] = json!("worker-cred");
        }
        self.put(
            self.keys.spec(Kind::Node, name),
            json!({"apiVersion": "omtd/v1", "kind": "Node",
                   "metadata": {"name": name, "generation": generation}, "spec": spec}),
        )
        .await;
    }

    async fn status(&self, kind: Kind, name: &str, observed: i64, conditions: Value) {
        self.put(
            self.keys.status(kind, name),
            json!({"observedGeneration": observed, "conditions": conditions}),
        )
        .await;
    }

    /// The agent's heartbeat: its key on a lease, as `omtd agent` keeps it.
    async fn heartbeat(&self, node: &str) {
        let lease = self
            .store
            .grant_lease(Duration::from_secs(60))
            .await
            .unwrap();
        self.store
            .txn(Txn::new().then(Op::put_with_lease(
                self.keys.agent_lease(node),
                serde_json::to_vec(&json!({"node": node})).unwrap(),
                lease.id,
            )))
            .await
            .unwrap();
    }

    async fn report(&self, node: &str, resources: &[(&str, ResourceState, Option<u8>)]) {
        let report = Report {
            node: node.into(),
            converged: resources
                .iter()
                .all(|(_, s, _)| *s == ResourceState::Converged),
            resources: resources
                .iter()
                .map(|(id, state, percent)| ResourceReport {
                    id: (*id).into(),
                    state: *state,
                    message: match state {
                        ResourceState::Failed => "exited with status 1".into(),
                        _ => String::new(),
                    },
                    percent: *percent,
                    observed: Default::default(),
                })
                .collect(),
            corrective_changes: 2,
            intentional_changes: 7,
            ..Report::default()
        };
        self.put(
            self.keys.report(node),
            serde_json::to_value(&report).unwrap(),
        )
        .await;
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn line_of<'a>(text: &'a str, starts: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no line starting with {starts:?} in:\n{text}"))
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

const CONVERGED: ResourceState = ResourceState::Converged;

#[tokio::test]
async fn table_and_json_show_nodes_conditions_operations_and_pending() {
    let env = Env::sqlite().await;
    env.node("manager.omtd", &["manager"], 1).await;
    env.node("node1.omtd", &["worker"], 1).await;
    env.node("monitor.omtd", &["monitor"], 1).await;
    env.status(
        Kind::Node,
        "manager.omtd",
        1,
        json!([{"type": "Ready", "status": "True", "reason": "Ready"}]),
    )
    .await;
    env.status(
        Kind::Node,
        "node1.omtd",
        1,
        json!([{"type": "Ready", "status": "False", "reason": "NotConverged"}]),
    )
    .await;
    env.heartbeat("manager.omtd").await;
    env.heartbeat("node1.omtd").await;
    env.report(
        "manager.omtd",
        &[
            ("service:zookeeper", CONVERGED, None),
            ("service:mesos-master", CONVERGED, None),
            ("service:chronos", CONVERGED, None),
        ],
    )
    .await;
    env.report(
        "node1.omtd",
        &[
            ("file:/etc/mesos-slave/credential", CONVERGED, None),
            ("pv:/dev/vdd", ResourceState::Progressing, Some(40)),
            ("service:docker", ResourceState::Failed, None),
        ],
    )
    .await;
    env.put(
        env.keys.spec(Kind::Cluster, "omtd"),
        json!({"apiVersion": "omtd/v1", "kind": "Cluster",
               "metadata": {"name": "omtd", "generation": 1}, "spec": {}}),
    )
    .await;
    env.status(
        Kind::Cluster,
        "omtd",
        1,
        json!([{"type": "LeaderElected", "status": "True", "reason": "ManagerLeads",
                "message": "manager.omtd leads"}]),
    )
    .await;
    // A credential's secret must never reach the output.
    env.put(
        env.keys.spec(Kind::Credential, "worker-cred"),
        json!({"apiVersion": "omtd/v1", "kind": "Credential",
               "metadata": {"name": "worker-cred", "generation": 1},
               "spec": {"principal": "node1", "secret": {"value": "hunter2"}, "use": "mesos-agent"}}),
    )
    .await;

    let run = env.omtd(&["status"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    assert_eq!(
        words(line_of(out, "NODE")),
        ["NODE", "ROLES", "READY", "RESOURCES", "AGENT", "CORRECTIVE"]
    );
    assert_eq!(
        words(line_of(out, "manager.omtd")),
        [
            "manager.omtd",
            "manager",
            "True",
            "3/3",
            "converged",
            "lease",
            "alive",
            "2"
        ]
    );
    let node1 = line_of(out, "node1.omtd");
    assert!(node1.contains("False (NotConverged)"), "{node1}");
    assert!(
        node1.contains("1/3 converged (1 progressing, 1 failed)"),
        "{node1}"
    );
    assert_eq!(
        words(line_of(out, "monitor.omtd")),
        [
            "monitor.omtd",
            "monitor",
            "-",
            "no",
            "report",
            "no",
            "agent",
            "-"
        ]
    );
    let leader = line_of(out, "leader-guard  LeaderElected");
    assert!(leader.contains("True") && leader.contains("manager.omtd leads"));
    assert!(line_of(out, "credentials").contains("0 of 1 credentials ready"));
    let op = words(line_of(out, "node/node1.omtd"));
    assert_eq!(op[..3], ["node/node1.omtd", "pv:/dev/vdd", "40%"]);
    assert!(out.contains("Not converged"));
    assert!(out.contains("  node/monitor.omtd: no agent heartbeat"));
    assert!(out.contains("  node/node1.omtd: 2 of 3 resources not converged"));
    assert!(out.contains("service:docker is failed: exited with status 1"));
    assert!(!out.contains("hunter2"));

    let run = env.omtd(&["status", "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("hunter2"));
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["converged"], json!(false));
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let manager = nodes.iter().find(|n| n["name"] == "manager.omtd").unwrap();
    assert_eq!(manager["agent"], json!(true));
    assert_eq!(manager["ready"]["status"], json!("True"));
    assert_eq!(manager["report"]["correctiveChanges"], json!(2));
    assert_eq!(manager["report"]["convergedResources"], json!(3));
    let monitor = nodes.iter().find(|n| n["name"] == "monitor.omtd").unwrap();
    assert_eq!(monitor["report"], Value::Null);
    let pending: Vec<&str> = v["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["object"].as_str().unwrap())
        .collect();
    // The credential has no Ready condition yet: only the two nodes are pending.
    assert_eq!(pending, ["node/monitor.omtd", "node/node1.omtd"]);
    assert_eq!(v["operations"][0]["percent"], json!(40));
}

/// Two nodes with agents whose first reports are not converged; `--wait` is started, and
/// once it has shown them pending, the converged reports arrive one after the other.
/// Returns the run and how long the command took to exit after the last report.
async fn converge_mid_wait(env: &Env, args: &[&str]) -> (Run, Duration) {
    for n in ["a.omtd", "b.omtd"] {
        env.node(n, &["manager"], 1).await;
        env.heartbeat(n).await;
        env.report(
            n,
            &[
                ("service:zookeeper", CONVERGED, None),
                ("service:chronos", ResourceState::Progressing, None),
            ],
        )
        .await;
    }
    let mut child = env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    // Wait for the command to have seen the pending state, however slowly it starts.
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("no progress line within 10 s")
            .unwrap()
            .unwrap_or_else(|| panic!("stderr closed early:\n{stderr}"));
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("node/b.omtd: 1 of 2") {
            break;
        }
    }
    env.report("a.omtd", &[("service:zookeeper", CONVERGED, None)])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.report("b.omtd", &[("service:zookeeper", CONVERGED, None)])
        .await;
    let written = Instant::now();
    while let Some(line) = lines.next_line().await.unwrap() {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("omtd status --wait did not exit")
        .unwrap();
    let took = written.elapsed();
    let mut run = Run::from(out);
    run.stderr = stderr;
    (run, took)
}

#[tokio::test]
async fn wait_exits_zero_once_reports_converge() {
    let env = Env::sqlite().await;
    let (run, took) = converge_mid_wait(&env, &["status", "--wait", "--timeout", "15s"]).await;
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after the last report"
    );
    // Progress, a line per change: pending first, then each node as it converges.
    let err = &run.stderr;
    let at = |s: &str| {
        err.find(s)
            .unwrap_or_else(|| panic!("{s:?} not in stderr:\n{err}"))
    };
    assert!(at("node/a.omtd: 1 of 2 resources not converged") < at("node/a.omtd: converged"));
    assert!(at("node/a.omtd: converged") < at("node/b.omtd: converged"));
    assert!(err.trim_end().ends_with("] converged"), "{err}");
    assert!(!err.contains('\x1b'), "no colours off a terminal");
    assert!(run.stdout.contains("Converged (store revision"));
}

#[tokio::test]
async fn wait_times_out_with_exit_one_and_the_pending_list() {
    let env = Env::sqlite().await;
    env.node("a.omtd", &["manager"], 1).await;
    env.heartbeat("a.omtd").await;
    env.report("a.omtd", &[("service:zookeeper", CONVERGED, None)])
        .await;
    env.node("b.omtd", &["monitor"], 1).await;
    let started = Instant::now();
    let run = env
        .omtd(&["status", "--wait", "--timeout", "2s", "-o", "json"])
        .await;
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    assert!(
        run.stderr
            .contains("timed out after 2s; still pending:\n  node/b.omtd: no agent heartbeat"),
        "{}",
        run.stderr
    );
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["converged"], json!(false));
    assert_eq!(v["pending"][0]["object"], json!("node/b.omtd"));
}

#[tokio::test]
async fn wait_on_etcd_with_json_output() {
    let env = Env::etcd().await;
    let (run, took) = converge_mid_wait(
        &env,
        &["status", "--wait", "--timeout", "15s", "-o", "json"],
    )
    .await;
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after the last report"
    );
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["converged"], json!(true));
    assert_eq!(v["pending"], json!([]));
    assert_eq!(v["nodes"][1]["report"]["resources"], json!(1));
}

#[tokio::test]
async fn timeout_needs_wait() {
    let env = Env::sqlite().await;
    let run = env.omtd(&["status", "--timeout", "2s"]).await;
    assert_eq!(run.code, 2, "a usage error: {}", run.stderr);
}
