//! A real etcd (Debian's `etcd-server`) for integration tests.
//!
//! `EtcdServer::start()` runs one member on free loopback ports with a temporary data dir and
//! returns once the member answers `/health`; dropping it kills the process and removes the
//! data dir. `EtcdCluster::start(3)` does the same for a three-member cluster.
//!
//! A missing `etcd` binary is a hard failure, never a silent skip: a suite that skips the
//! production backend would pass while testing nothing.
//!
//! Set `OMTD_TEST_ETCD=/path/to/etcd` to use another binary than the `etcd` on `PATH`.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::etcd_partition::Partition;
use crate::etcd_tls::TestPki;
use crate::ports::free_ports;

/// How to get the binary, in the words of the panic message.
const INSTALL_HINT: &str = "apt-get update && apt-get install -y etcd-server";

/// How long a fresh member may take to become healthy (it takes ~0.5 s on an idle machine;
/// the slack is for a loaded CI box building in parallel).
const HEALTH_DEADLINE: Duration = Duration::from_secs(10);

/// How long a restarted cluster member may take to rejoin: it replays its log and catches up
/// from the leader, which on a loaded machine takes far longer than a fresh start.
const REJOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Starting can lose a race for a port another process grabbed between our probe and etcd's
/// bind; retrying with fresh ports makes that harmless.
const START_ATTEMPTS: usize = 3;

/// One etcd member on loopback.
pub struct EtcdServer {
    member: Member,
    /// With TLS: its certificates (clients must present one, `--client-cert-auth`).
    pki: Option<TestPki>,
    /// How it was started: a restore starts it again the same way.
    spec: MemberSpec,
    // Declared after `member` so the process is killed before its data dir is removed.
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Start a single-member etcd and wait until it is healthy. Panics (with etcd's log) if it
    /// cannot start, and with install instructions if the binary is missing.
    pub fn start() -> EtcdServer {
        Self::start_with(false)
    }

    /// [`EtcdServer::start`] serving clients over TLS only, with `--client-cert-auth`: a CA
    /// and certificates made by `omtd pki` ([`EtcdServer::pki`]). Auth is off until
    /// `omtd store secure` turns it on.
    pub fn start_tls() -> EtcdServer {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> EtcdServer {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = temp_dir();
            let ports = free_ports(3);
            let (client_port, peer_port) = (ports[0], ports[1]);
            let pki = tls.then(|| TestPki::new(&dir.path().join("pki")));
            let name = "default".to_owned();
            let spec = MemberSpec {
                name: name.clone(),
                client_port,
                peer_port,
                advertise_peer_port: peer_port,
                initial_cluster: format!("{name}=http://127.0.0.1:{peer_port}"),
                token: cluster_token(),
                // A single member never holds an election, so short raft timings are safe,
                // and they let etcd honour a 1 s lease TTL: its minimum TTL is
                // 1.5 × election timeout, which is 2 s with the defaults (100 ms / 1 s).
                fast_raft: true,
                tls: pki.as_ref().map(|p| p.dir().to_owned()),
                metrics_port: ports[2],
            };
            let mut member = spawn_member(dir.path(), spec.clone());
            match wait_healthy(std::slice::from_mut(&mut member)) {
                Ok(()) => {
                    return EtcdServer {
                        member,
                        pki,
                        spec,
                        _dir: dir,
                    }
                }
                Err(log) if is_port_clash(&log) => last_log = log,
                Err(log) => panic!(
                    "etcd did not become healthy within {HEALTH_DEADLINE:?}; its log:\n{log}"
                ),
            }
        }
        panic!("etcd could not bind free loopback ports after {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// `etcd://127.0.0.1:PORT` (`etcd+tls://` with TLS), the form `--store` and
    /// `OMTD_STORE` take.
    pub fn url(&self) -> String {
        match self.pki {
            Some(_) => format!("etcd+tls://{}", self.endpoint()),
            None => format!("etcd://{}", self.endpoint()),
        }
    }

    /// The certificates of a TLS server.
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    /// The environment of an `omtd` process of identity `stem` (a file stem of the PKI:
    /// "admin", "operator", "agent-NODE"; ignored without TLS).
    pub fn client_env(&self, stem: &str) -> Vec<(String, String)> {
        let mut env = vec![("OMTD_STORE".to_owned(), self.url())];
        if let Some(pki) = &self.pki {
            env.extend(pki.env(Some(stem)));
        }
        env
    }

    /// `127.0.0.1:PORT`, the form `EtcdStore::connect` takes.
    pub fn endpoint(&self) -> String {
        self.member.endpoint()
    }

    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// A client of this server, as the tests' harnesses use it (with TLS: the admin).
    pub async fn store(&self) -> std::sync::Arc<dyn omtd::store::Store> {
        let tls = self.pki.as_ref().map(|p| p.tls(Some("admin")));
        std::sync::Arc::new(
            omtd::store::etcd::EtcdStore::connect_with(&self.endpoints(), tls.as_ref())
                .await
                .expect("connect to etcd"),
        )
    }

    /// Kill the server now (SIGKILL), e.g. to see clients notice the store went away.
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// etcd's log so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.member.log()
    }

    /// Starts the member again after [`EtcdServer::kill`], on the same ports and data: a
    /// store that was down for a while and came back (the chaos run's outage).
    pub fn restart(&mut self) {
        self.member.kill();
        self.member = spawn_member(self._dir.path(), self.spec.clone());
        if let Err(log) = wait_healthy(std::slice::from_mut(&mut self.member)) {
            panic!("etcd did not come back after a restart; its log:\n{log}");
        }
    }

    /// `etcdctl snapshot save`: the whole keyspace at this moment, as an operator backs it
    /// up (docs/operations.md).
    pub fn save_snapshot(&self, to: &Path) {
        let mut cmd = etcdctl();
        match &self.pki {
            None => cmd
                .arg("--endpoints")
                .arg(format!("http://{}", self.endpoint())),
            Some(pki) => cmd
                .arg("--endpoints")
                .arg(format!("https://{}", self.endpoint()))
                .arg("--cacert")
                .arg(pki.ca())
                .arg("--cert")
                .arg(pki.file("admin", "crt"))
                .arg("--key")
                .arg(pki.file("admin", "key")),
        };
        let out = cmd
            .args(["snapshot", "save"])
            .arg(to)
            .output()
            .unwrap_or_else(|e| panic!("run etcdctl ({e}): {ETCDCTL_HINT}"));
        assert!(out.status.success(), "etcdctl snapshot save: {out:?}");
    }

    /// Stops the member, replaces its data with `snapshot` (`etcdctl snapshot restore`, as
    /// docs/operations.md says) and starts it again on the same ports, so clients reconnect
    /// to a store whose revisions and fencing tokens went back in time.
    pub fn restore_snapshot(&mut self, snapshot: &Path) {
        self.member.kill();
        let data = self._dir.path().join(format!("{}.etcd", self.spec.name));
        fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
        let peer = format!("http://127.0.0.1:{}", self.spec.advertise_peer_port);
        let out = etcdctl()
            .args(["snapshot", "restore"])
            .arg(snapshot)
            .args(["--name", &self.spec.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--initial-cluster", &self.spec.initial_cluster])
            .args(["--initial-cluster-token", &self.spec.token])
            .args(["--initial-advertise-peer-urls", &peer])
            .output()
            .unwrap_or_else(|e| panic!("run etcdctl ({e}): {ETCDCTL_HINT}"));
        assert!(out.status.success(), "etcdctl snapshot restore: {out:?}");
        self.member = spawn_member(self._dir.path(), self.spec.clone());
        if let Err(log) = wait_healthy(std::slice::from_mut(&mut self.member)) {
            panic!("etcd did not come back from the restore; its log:\n{log}");
        }
    }
}

/// How to get `etcdctl`, in the words of the panic message.
const ETCDCTL_HINT: &str = "apt-get update && apt-get install -y etcd-client";

fn etcdctl() -> Command {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3");
    cmd
}

/// Several etcd members on loopback forming one cluster, their peer traffic through
/// proxies that can cut one member off ([`EtcdCluster::isolate_member`]).
pub struct EtcdCluster {
    members: Vec<Member>,
    /// How each member was started: a restarted member comes back the same way.
    specs: Vec<MemberSpec>,
    partition: Partition,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Start an `n`-member cluster and wait until every member is healthy (which for etcd
    /// means a leader was elected).
    pub fn start(n: usize) -> EtcdCluster {
        assert!(n >= 1, "a cluster needs at least one member");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = temp_dir();
            let ports = free_ports(2 * n);
            let partition = Partition::new(n);
            let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let initial_cluster = names
                .iter()
                .enumerate()
                .map(|(i, name)| format!("{name}=http://127.0.0.1:{}", partition.port(i)))
                .collect::<Vec<_>>()
                .join(",");
            let token = cluster_token();
            let specs: Vec<MemberSpec> = names
                .iter()
                .enumerate()
                .map(|(i, name)| MemberSpec {
                    name: name.clone(),
                    client_port: ports[2 * i],
                    peer_port: ports[2 * i + 1],
                    advertise_peer_port: partition.port(i),
                    initial_cluster: initial_cluster.clone(),
                    token: token.clone(),
                    // Real elections happen here: keep etcd's default timings so a
                    // busy machine does not make members depose each other.
                    fast_raft: false,
                    tls: None,
                    metrics_port: 0,
                })
                .collect();
            for (i, spec) in specs.iter().enumerate() {
                partition.forward(i, spec.peer_port);
            }
            let mut members: Vec<Member> = specs
                .iter()
                .map(|spec| spawn_member(dir.path(), spec.clone()))
                .collect();
            match wait_healthy(&mut members) {
                Ok(()) => {
                    for (i, m) in members.iter().enumerate() {
                        if let Some(id) = m.member_id() {
                            partition.set_id(i, id);
                        }
                    }
                    return EtcdCluster {
                        members,
                        specs,
                        partition,
                        _dir: dir,
                    };
                }
                Err(log) if is_port_clash(&log) => last_log = log,
                Err(log) => {
                    panic!("etcd cluster did not become healthy within {HEALTH_DEADLINE:?}:\n{log}")
                }
            }
        }
        panic!("etcd cluster could not bind free loopback ports after {START_ATTEMPTS} attempts:\n{last_log}");
    }

    /// `etcd://h1:p1,h2:p2,...`
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// Kill member `i` (SIGKILL); the others keep running.
    pub fn kill_member(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again after [`EtcdCluster::kill_member`], on its ports and data,
    /// and waits until it is healthy (it rejoins the cluster).
    pub fn restart_member(&mut self, i: usize) {
        self.members[i].kill();
        self.members[i] = spawn_member(self._dir.path(), self.specs[i].clone());
        if let Err(log) =
            wait_healthy_within(std::slice::from_mut(&mut self.members[i]), REJOIN_DEADLINE)
        {
            panic!("etcd member {i} did not come back; its log:\n{log}");
        }
    }

    /// Member `i`'s client endpoint (`127.0.0.1:PORT`), for a client of that member only.
    pub fn member_endpoint(&self, i: usize) -> String {
        self.members[i].endpoint()
    }

    /// Cut member `i` off from the others (a partition): its client port keeps answering,
    /// from data that no longer moves, and it loses its leader within an election timeout.
    pub fn isolate_member(&self, i: usize) {
        self.partition.isolate(i);
    }

    /// Ends [`EtcdCluster::isolate_member`]: the member rejoins and catches up.
    pub fn heal(&self) {
        self.partition.heal();
    }

    /// A client of the whole cluster (every member's endpoint).
    pub async fn store(&self) -> std::sync::Arc<dyn omtd::store::Store> {
        std::sync::Arc::new(
            omtd::store::etcd::EtcdStore::connect(&self.endpoints())
                .await
                .expect("connect to etcd"),
        )
    }
}

#[derive(Clone)]
struct MemberSpec {
    name: String,
    client_port: u16,
    /// Where the member listens for its peers.
    peer_port: u16,
    /// What it tells its peers to dial: its [`Partition`] proxy in a cluster, else
    /// `peer_port`.
    advertise_peer_port: u16,
    initial_cluster: String,
    token: String,
    fast_raft: bool,
    /// The PKI directory of a TLS member (clients over TLS with certificates only).
    tls: Option<PathBuf>,
    /// Where a TLS member serves `/health` in plain HTTP (its client port speaks TLS only).
    metrics_port: u16,
}

struct Member {
    name: String,
    client_port: u16,
    /// Where `/health` answers in plain HTTP.
    health_port: u16,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it already exited, which is what we want anyway.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The member's raft id (hex), as its log states it at start.
    fn member_id(&self) -> Option<String> {
        let log = fs::read_to_string(&self.log_path).ok()?;
        let (_, rest) = log.split_once(r#""local-member-id":""#)?;
        rest.split('"').next().map(str::to_owned)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        // A failing test is much easier to understand with the server's side of the story.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("---- last lines of etcd member {} log ----", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn_member(dir: &Path, spec: MemberSpec) -> Member {
    let bin = std::env::var("OMTD_TEST_ETCD").unwrap_or_else(|_| "etcd".to_owned());
    let log_path = dir.join(format!("{}.log", spec.name));
    let log =
        File::create(&log_path).unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("dup log file handle: {e}"));
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://127.0.0.1:{}", spec.client_port);
    let peer_url = format!("http://127.0.0.1:{}", spec.peer_port);
    let advertise_peer_url = format!("http://127.0.0.1:{}", spec.advertise_peer_port);
    let mut cmd = Command::new(&bin);
    cmd.arg("--name")
        .arg(&spec.name)
        .arg("--data-dir")
        .arg(dir.join(format!("{}.etcd", spec.name)))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&advertise_peer_url)
        .arg("--initial-cluster")
        .arg(&spec.initial_cluster)
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--initial-cluster-token")
        .arg(&spec.token)
        // etcd's default limits (128 ops a transaction, 1.5 MiB a request), as a stock
        // install has them: omtd must work within them (`resources::staged`).
        .arg("--logger")
        .arg("zap");
    if let Some(pki) = &spec.tls {
        cmd.arg("--cert-file")
            .arg(pki.join("etcd-server.crt"))
            .arg("--key-file")
            .arg(pki.join("etcd-server.key"))
            .arg("--trusted-ca-file")
            .arg(pki.join("ca.crt"))
            .arg("--client-cert-auth")
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", spec.metrics_port));
    }
    if spec.fast_raft {
        cmd.arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500");
    }
    // Logs go to a file, not a pipe: nobody reads a pipe while the test runs, and a full pipe
    // would block etcd mid-test.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "the `{bin}` binary was not found: the etcd store tests need a real etcd server. \
             Install it with `{INSTALL_HINT}` (or point OMTD_TEST_ETCD at an etcd binary)."
        ),
        Err(e) => panic!("cannot start `{bin}`: {e}. Install etcd with `{INSTALL_HINT}`."),
    };
    let health_port = match spec.tls {
        Some(_) => spec.metrics_port,
        None => spec.client_port,
    };
    Member {
        name: spec.name,
        client_port: spec.client_port,
        health_port,
        child: Some(child),
        log_path,
    }
}

/// Wait until every member answers `/health` with `true`. On failure, returns the logs.
fn wait_healthy(members: &mut [Member]) -> Result<(), String> {
    wait_healthy_within(members, HEALTH_DEADLINE)
}

fn wait_healthy_within(members: &mut [Member], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let mut all_healthy = true;
        for i in 0..members.len() {
            let exited = members[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let name = &members[i].name;
                return Err(format!(
                    "member {name} exited early ({status}):\n{}",
                    all_logs(members)
                ));
            }
            if !is_healthy(members[i].health_port) {
                all_healthy = false;
            }
        }
        if all_healthy {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(all_logs(members));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_logs(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("==== {} ====\n{}", m.name, m.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// etcd's `/health` on the client port (plain HTTP/1.1 next to gRPC), without an HTTP client
/// crate: it needs a leader and a successful linearizable read to answer `true`.
fn is_healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
    {
        return false;
    }
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    // With `Connection: close` the server ends the stream; a timeout just means "not yet".
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") && response.contains(r#""health":"true""#)
}

fn is_port_clash(log: &str) -> bool {
    log.contains("address already in use")
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("omtd-etcd-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("create a temp dir for etcd: {e}"))
}

/// Distinct tokens keep members of different test clusters from ever talking to each other.
fn cluster_token() -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    format!(
        "omtd-test-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}
