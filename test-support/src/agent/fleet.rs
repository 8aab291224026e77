//! The real-agents cold start (issue #11 item 5): one `omtd agent --root <dir>/hosts/NODE`
//! process per worker (linux driver, each its own temp root), one `omtd operator` process,
//! against a real etcd this starts; apply → every node Ready.
//!
//! What stands in for what a temp root cannot hold:
//! - the five service nodes (Galaxy, Apache with its config check, ZooKeeper, Chronos, the
//!   registry) run `omtd agent --driver sim --sim-roles ROLE` processes, one each;
//! - a worker's SysV services are `etc/init.d` scripts in its root whose state is a file
//!   (`start` makes it, `stop` removes it, `status` tests it): the driver's whole
//!   start/stop/status/enable path runs, with no thousands of idle processes behind it;
//! - `docker` is a script ([`FAKE_DOCKER`]) first on the agents' `PATH` that keeps each
//!   root's containers as `docker inspect` JSON files (there is no docker daemon here);
//! - there is no Mesos master, so the operator runs without probes and a worker's `Ready`
//!   stays `Unknown` with reason `MesosUnreachable` ("converged; the Mesos master did not
//!   answer"): a node counts as ready when its Ready is True, or Unknown for that reason
//!   alone, and its agent's report is converged on the current plan.
//!
//! The agents are started and their heartbeats seen before the clock starts: the figure
//! is omtd's, from `apply` to every host converged, not process start-up.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omtd::bench::cluster;
use omtd::bench::procfs::{self, Pid};
use omtd::demo::records;
use omtd::resources::{Keys, Repo};
use omtd::sim::packages::packages;
use omtd_crds::{ConditionStatus, Object, Role};

use crate::etcd::EtcdServer;

const CLUSTER: &str = "fleet";

/// A stand-in for the docker CLI: `inspect`, `run`, `start` and `rm` on JSON files under
/// `$OMTD_FAKE_DOCKER_DIR`, in the shape `docker inspect` prints.
pub const FAKE_DOCKER: &str = r#"#!/bin/sh
# The bench's docker: there is no daemon; a container is a JSON file.
d="${OMTD_FAKE_DOCKER_DIR:?}"
mkdir -p "$d"
cmd=$1; shift
case "$cmd" in
inspect)
  [ "$1" = "--type" ] && shift 2
  if [ -f "$d/$1.json" ]; then cat "$d/$1.json"; else echo "Error: No such container: $1" >&2; exit 1; fi ;;
run)
  name=; image=; binds=; ports=
  while [ $# -gt 0 ]; do
    case "$1" in
      -d) shift ;;
      --name) name=$2; shift 2 ;;
      --restart) shift 2 ;;
      -p) p=$2; shift 2
          c=${p##*:}; rest=${p%:*}
          case "$rest" in *:*) ip=${rest%:*}; h=${rest##*:} ;; *) ip=; h=$rest ;; esac
          ports="$ports${ports:+,}\"$c/tcp\":[{\"HostIp\":\"$ip\",\"HostPort\":\"$h\"}]" ;;
      -v) binds="$binds${binds:+,}\"$2\""; shift 2 ;;
      *) image=$1; shift ;;
    esac
  done
  printf '[{"Id":"%s","Config":{"Image":"%s"},"State":{"Running":true},"HostConfig":{"Binds":[%s],"PortBindings":{%s}}}]\n' \
    "$name" "$image" "$binds" "$ports" > "$d/$name.json"
  echo "$name" ;;
start) sed -i 's/"Running":false/"Running":true/' "$d/$1.json" ;;
rm) [ "$1" = "-f" ] && shift; rm -f "$d/$1.json" ;;
*) echo "fake docker: $cmd is not modelled" >&2; exit 1 ;;
esac
"#;

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker agents (linux driver); the five service nodes come on top.
    pub workers: usize,
    /// From `apply` to every node ready, at most.
    pub timeout: Duration,
    /// The agents' `--resync` and `--service-check`.
    pub resync: String,
    pub service_check: String,
}

/// What the cold start measured.
#[derive(Debug)]
pub struct ColdStart {
    pub workers: usize,
    /// Agents started → every heartbeat in the store (not part of the figure).
    pub startup: Duration,
    /// `apply` → every node ready; `None`: not within the timeout.
    pub took: Option<Duration>,
    /// Nodes not ready at the end (the first few, with why).
    pub pending: Vec<String>,
    pub operator_peak: u64,
    pub operator_cpu: Duration,
    /// Worker agents' RSS at the end: the largest and the mean.
    pub agent_rss_max: u64,
    pub agent_rss_mean: u64,
    /// `fs.inotify.max_user_instances`: agents beyond it find drift by resync only.
    pub inotify_instances: Option<usize>,
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `start`, `stop` and `status` on a state file under the root's `run/`.
fn init_script(root: &Path, name: &str) -> String {
    let state = root.join("run").join(format!("{name}.running"));
    format!(
        "#!/bin/sh\nS={}\ncase \"$1\" in start) : > $S;; stop) rm -f $S;; status) [ -f $S ] && exit 0; exit 3;; \
         restart) : > $S;; esac\n",
        state.display()
    )
}

/// A worker's root as the playbooks leave the machine: its packages' services installed
/// (stopped), nothing configured.
fn provision(root: &Path) -> std::io::Result<()> {
    let initd = root.join("etc/init.d");
    fs::create_dir_all(&initd)?;
    fs::create_dir_all(root.join("run"))?;
    for service in packages(Role::Worker) {
        let path = initd.join(service);
        fs::write(&path, init_script(root, service))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn inotify_instances() -> Option<usize> {
    fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a node's row says converged: Ready True, or Unknown only because no Mesos
/// master answered; and its report converged on the current plan.
fn is_ready(n: &omtd::status::NodeStatus) -> bool {
    let ready = n.ready.as_ref().is_some_and(|c| {
        c.status == ConditionStatus::True
            || (c.status == ConditionStatus::Unknown
                && c.reason == omtd_controllers::node::reason::MESOS_UNREACHABLE)
    });
    ready && n.report.as_ref().is_some_and(|r| r.converged && r.current)
}

/// Runs the cold start with the `bin` binary.
pub async fn cold_start(bin: &Path, cfg: &Config) -> ColdStart {
    let etcd = EtcdServer::start();
    let repo = Repo::new(etcd.store().await, Keys::for_cluster(CLUSTER));
    // The hosts' roots in memory when it can: every agent's atomic write syncs its file and
    // directory, and a thousand hosts' syncs on this machine's one disk left the agents in
    // I/O wait (load average ~480, the operator idle), where each real host has a disk of
    // its own.
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("omtd-fleet-");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("temp dir");
    let fake_bin = dir.path().join("bin");
    fs::create_dir_all(&fake_bin).expect("bin dir");
    fs::write(fake_bin.join("docker"), FAKE_DOCKER).expect("write the fake docker");
    fs::set_permissions(fake_bin.join("docker"), fs::Permissions::from_mode(0o755))
        .expect("chmod the fake docker");
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let batches: Vec<Vec<Object>> = cluster::batches(cfg.workers + 5)
        .iter()
        .map(|m| cluster::parse(m).expect("the bench's records"))
        .collect();
    let nodes: Vec<omtd_crds::Node> = batches
        .iter()
        .flatten()
        .filter_map(|o| match o {
            Object::Node(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    let log = |name: &str| fs::File::create(logs.join(format!("{name}.log"))).expect("a log file");
    let base = |cmd: &mut Command| {
        cmd.env("OMTD_STORE", etcd.url())
            .env("OMTD_CLUSTER", CLUSTER)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
    };

    let started = Instant::now();
    let mut agents = Vec::new();
    let mut worker_pids = Vec::new();
    for n in &nodes {
        let name = n.metadata.name.as_str();
        let mut cmd = Command::new(bin);
        base(&mut cmd);
        cmd.args(["agent", "--node", name]).stderr(log(name));
        if n.spec.roles.contains(&Role::Worker) {
            let root = dir.path().join("hosts").join(name);
            provision(&root).expect("provision a worker's root");
            cmd.arg("--root")
                .arg(&root)
                .args([
                    "--resync",
                    &cfg.resync,
                    "--service-check",
                    &cfg.service_check,
                ])
                .env("PATH", &path)
                .env("OMTD_FAKE_DOCKER_DIR", root.join("var/lib/fake-docker"));
        } else {
            let roles: Vec<String> = n.spec.roles.iter().map(|r| r.to_string()).collect();
            cmd.args(["--driver", "sim", "--sim-roles", &roles.join(",")]);
        }
        let child = cmd.spawn().expect("start omtd agent");
        if n.spec.roles.contains(&Role::Worker) {
            worker_pids.push(child.id());
        }
        agents.push(Process(child));
    }
    let names: BTreeSet<String> = nodes.iter().map(|n| n.metadata.name.clone()).collect();
    let startup_deadline = Instant::now() + Duration::from_secs(120) + cfg.timeout;
    loop {
        let seen = omtd::status::read(&repo)
            .await
            .map(|i| i.agents)
            .unwrap_or_default();
        if names.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < startup_deadline,
            "only {} of {} agents sent a heartbeat (logs in {})",
            seen.len(),
            names.len(),
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let startup = started.elapsed();

    let metrics = crate::ports::free_port();
    let mut cmd = Command::new(bin);
    base(&mut cmd);
    let operator = Process(
        cmd.args([
            "operator",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
        ])
        .args(["--identity", "fleet-operator"])
        .stderr(log("operator"))
        .spawn()
        .expect("start omtd operator"),
    );
    let operator_pid = operator.0.id();

    let t = Instant::now();
    for batch in &batches {
        records::apply(&repo, batch)
            .await
            .expect("apply the records");
    }
    let mut pending = Vec::new();
    let took = loop {
        let rows = omtd::status::read(&repo)
            .await
            .map(|i| omtd::status::compute(&i).nodes)
            .unwrap_or_default();
        let not_ready: Vec<_> = rows.iter().filter(|n| !is_ready(n)).collect();
        if rows.len() == names.len() && not_ready.is_empty() {
            break Some(t.elapsed());
        }
        if t.elapsed() > cfg.timeout {
            pending = not_ready
                .iter()
                .take(5)
                .map(|n| format!("{}: {:?}", n.name, n.ready))
                .collect();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rss: Vec<u64> = worker_pids
        .iter()
        .map(|p| procfs::memory(Pid::Of(*p)).rss)
        .collect();
    let figures = ColdStart {
        workers: cfg.workers,
        startup,
        took,
        pending,
        operator_peak: procfs::memory(Pid::Of(operator_pid)).peak,
        operator_cpu: procfs::cpu_time(Pid::Of(operator_pid)),
        agent_rss_max: rss.iter().max().copied().unwrap_or(0),
        agent_rss_mean: rss.iter().sum::<u64>() / rss.len().max(1) as u64,
        inotify_instances: inotify_instances(),
    };
    drop(operator);
    drop(agents);
    figures
}
