//! An idle `omtd agent` process on a converged host, measured: store writes (the store's
//! revision must not move; heartbeats are lease keep-alives, not writes) and RSS. Shared by
//! the suite's short check (`tests/agent_idle.rs`) and the 60 s benchmark
//! (`benches/agent_idle.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice, ServiceSpec, ServiceState};

use super::{file, Rig};

/// Which drivers the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `--driver sim`: an in-memory host.
    Sim,
    /// `--driver linux --root DIR`: real files under a temp root (inotify), a real SysV
    /// service process.
    Linux,
}

/// What an idle run measured.
#[derive(Debug)]
pub struct Idle {
    pub seconds: u64,
    pub writes: u64,
    pub rev0: i64,
    pub rev1: i64,
    /// KiB, at the end.
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
    /// KiB: the largest RSS sampled each second, and the kernel's peak (VmHWM).
    pub max_rss: u64,
    pub hwm: u64,
}

impl Idle {
    pub fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }
}

/// An agent process, killed when dropped.
pub(crate) struct AgentProcess(pub(crate) Child);
impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (VmRSS, VmHWM, RssAnon, RssFile) in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64, u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:"),
    )
}

/// A worker-like plan: 10 flag files and a secret, an NFS mount, an export, and a service
/// (a real init script under `root` for the linux driver; for the sim, whose host starts
/// empty, a stray master kept masked — not installed is as masked as it gets).
pub fn plan(root: &Path, driver: Driver) -> PlanSlice {
    // The exported directory exists, as on a real executor: the agent checks exports lines
    // before it writes them, and refuses one whose path is not a directory.
    fs::create_dir_all(root.join("srv/executor/tools")).expect("exported dir");
    let mut files: Vec<_> = (0..10)
        .map(|i| {
            file(
                &format!("/etc/mesos-slave/flag{i}"),
                &format!("v{i}"),
                0o644,
            )
        })
        .collect();
    let mut secret = file("/etc/mesos-slave/store/credentials.json", "{}", 0o600);
    secret.secret = true;
    files.push(secret);
    let service = match driver {
        Driver::Linux => {
            install_script(root);
            ServiceSpec {
                name: "idled".into(),
                state: ServiceState::Running,
                enabled: true,
                restart_on: vec!["/etc/mesos-slave/flag0".into()],
                restart_token: Some("t1".into()),
                after: vec![],
                slow_start: false,
            }
        }
        Driver::Sim => ServiceSpec {
            name: "mesos-master".into(),
            state: ServiceState::Masked,
            enabled: false,
            restart_on: vec![],
            restart_token: None,
            after: vec![],
            slow_start: false,
        },
    };
    PlanSlice {
        controller: "node".into(),
        fencing_token: 1,
        files,
        services: vec![service],
        mounts: vec![MountSpec {
            source: "10.0.0.5:/srv/executor/database".into(),
            target: "/srv/executor/database".into(),
            fstype: "nfs".into(),
            options: "defaults".into(),
            dump: 0,
            pass: 0,
            ensure: Ensure::Present,
        }],
        exports: vec![ExportSpec {
            path: "/srv/executor/tools".into(),
            client: "10.0.0.30".into(),
            options: "rw,sync,no_subtree_check,no_root_squash".into(),
        }],
        ..Default::default()
    }
}

/// `root/etc/init.d/idled`: a SysV script driving a long-running `sleep`.
fn install_script(root: &Path) {
    let dir = root.join("etc/init.d");
    fs::create_dir_all(&dir).expect("init.d");
    let run = root.join("run");
    fs::create_dir_all(&run).expect("run dir");
    let script = format!(
        "#!/bin/sh\nP={run}/idled.pid\nrunning() {{ [ -f $P ] && kill -0 $(cat $P) 2>/dev/null && ! grep -q '^State:.*Z' /proc/$(cat $P)/status; }}\n\
         case \"$1\" in start) running && exit 0; sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > $P;;\n\
         stop) [ -f $P ] && kill $(cat $P); rm -f $P;; status) running && exit 0; exit 3;; esac\n",
        run = run.display()
    );
    fs::write(dir.join("idled"), script).expect("write the script");
    fs::set_permissions(dir.join("idled"), fs::Permissions::from_mode(0o755))
        .expect("chmod the script");
}

/// Run the `bin` agent on a converged host for `seconds` and measure it.
pub async fn run(bin: &str, driver: Driver, seconds: u64, resync: &str, check: &str) -> Idle {
    let rig = Rig::new().await;
    let root = rig.root();
    let node = "idle1";
    rig.put_slice(node, &plan(&root, driver)).await;
    let mut cmd = Command::new(bin);
    cmd.args([
        "--store",
        &rig.etcd.url(),
        "--cluster",
        "test",
        "agent",
        "--node",
        node,
    ])
    .args(["--resync", resync, "--service-check", check]);
    match driver {
        Driver::Sim => cmd.args(["--driver", "sim"]),
        Driver::Linux => cmd.arg("--root").arg(&root),
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start omtd agent");
    let agent = AgentProcess(child);
    let pid = agent.0.id();
    rig.wait_converged(node).await;
    // Let the first report and heartbeat settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let writes = Arc::new(AtomicU64::new(0));
    let mut stream = rig
        .store
        .watch(rig.keys.prefix(), 0)
        .await
        .expect("watch the store");
    let w2 = Arc::clone(&writes);
    let counter = tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            println!("store write during idle: {}", ev.kv.key);
            w2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let rev0 = rig.store.current_revision().await.expect("revision");
    let mut max_rss = 0;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        max_rss = max_rss.max(rss_kib(pid).0);
    }
    let rev1 = rig.store.current_revision().await.expect("revision");
    let (rss, hwm, anon, file) = rss_kib(pid);
    let lease = rig
        .store
        .get(&rig.keys.agent_lease(node))
        .await
        .expect("read the heartbeat")
        .expect("heartbeat key alive");
    assert!(lease.lease.is_some(), "the heartbeat is a lease");
    counter.abort();
    drop(agent);
    if driver == Driver::Linux {
        let _ = Command::new(root.join("etc/init.d/idled"))
            .arg("stop")
            .status();
    }
    Idle {
        seconds,
        writes: writes.load(Ordering::SeqCst),
        rev0,
        rev1,
        rss,
        anon,
        file,
        max_rss,
        hwm,
    }
}
