//! An idle agent on a converged host: the `omtd agent` binary against a real etcd, with
//! files, a real SysV service, an export and a mount in its plan. It must make zero store
//! writes (the store's revision does not move; heartbeats are lease keep-alives, not writes)
//! and stay small. Prints writes and RSS.
//!
//! The suite runs an 8 s check; the 60 s benchmark is
//! `cargo test --test agent_idle -- --ignored --nocapture`, best with an optimised binary:
//! `OMTD_AGENT_BIN=target/release/omtd` (a debug binary maps ~19 MiB of code by itself).

mod agent_support;
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_support::{file, with_timeout, Rig};
use futures::StreamExt;
use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice, ServiceSpec, ServiceState};

struct Agent(Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (VmRSS, VmHWM, RssAnon, RssFile) in KiB.
fn rss_kib(pid: u32) -> (u64, u64, u64, u64) {
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

fn plan(root: &std::path::Path) -> PlanSlice {
    // A service driven by a real init script.
    let dir = root.join("etc/init.d");
    fs::create_dir_all(&dir).unwrap();
    let run = root.join("run");
    fs::create_dir_all(&run).unwrap();
    let script = format!(
        "#!/bin/sh\nP={run}/idled.pid\nrunning() {{ [ -f $P ] && kill -0 $(cat $P) 2>/dev/null && ! grep -q '^State:.*Z' /proc/$(cat $P)/status; }}\n\
         case \"$1\" in start) running && exit 0; sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > $P;;\n\
         stop) [ -f $P ] && kill $(cat $P); rm -f $P;; status) running && exit 0; exit 3;; esac\n",
        run = run.display()
    );
    fs::write(dir.join("idled"), script).unwrap();
    fs::set_permissions(dir.join("idled"), fs::Permissions::from_mode(0o755)).unwrap();
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
    PlanSlice {
        controller: "node".into(),
        fencing_token: 1,
        files,
        services: vec![ServiceSpec {
            name: "idled".into(),
            state: ServiceState::Running,
            enabled: true,
            restart_on: vec!["/etc/mesos-slave/flag0".into()],
            restart_token: Some("t1".into()),
            after: vec![],
        }],
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

async fn idle(seconds: u64, resync: &str, check: &str) {
    let rig = Rig::new().await;
    let root = rig.root();
    let slice = plan(&root);
    rig.put_slice("idle1", &slice).await;
    let bin =
        std::env::var("OMTD_AGENT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_omtd").to_owned());
    println!("agent binary: {bin}");
    let child = Command::new(&bin)
        .args([
            "--store",
            &rig.etcd.url(),
            "--cluster",
            "test",
            "agent",
            "--node",
            "idle1",
        ])
        .arg("--root")
        .arg(&root)
        .args(["--resync", resync, "--service-check", check])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start omtd agent");
    let agent = Agent(child);
    let pid = agent.0.id();
    rig.wait_converged("idle1").await;
    // Let the first report and heartbeat settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let writes = Arc::new(AtomicU64::new(0));
    let mut stream = rig.store.watch(rig.keys.prefix(), 0).await.unwrap();
    let w2 = Arc::clone(&writes);
    let counter = tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            println!("store write during idle: {}", ev.kv.key);
            w2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let rev0 = rig.store.current_revision().await.unwrap();
    let mut max_rss = 0;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        max_rss = max_rss.max(rss_kib(pid).0);
    }
    let rev1 = rig.store.current_revision().await.unwrap();
    let (rss, hwm, anon, file) = rss_kib(pid);
    let lease = rig
        .store
        .get(&rig.keys.agent_lease("idle1"))
        .await
        .unwrap()
        .expect("heartbeat key alive");
    assert!(lease.lease.is_some());
    println!(
        "idle agent over {seconds} s (resync {resync}, service check {check}): {} store writes \
         (revision {rev0} -> {rev1}); RSS {:.1} MiB (anon {:.1}, file-backed {:.1}; max sampled \
         {:.1} MiB, peak {:.1} MiB)",
        writes.load(Ordering::SeqCst),
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        max_rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "an idle agent wrote to the store"
    );
    assert_eq!(rev0, rev1);
    // The agent's own memory must stay well under 20 MiB. A debug binary also maps ~19 MiB
    // of unoptimised code (file-backed, shared, clean); the total is held to 20 MiB for an
    // optimised binary (OMTD_AGENT_BIN=target/release/omtd).
    assert!(anon < 20 * 1024, "anonymous RSS {anon} KiB >= 20 MiB");
    if bin.contains("/release/") {
        assert!(max_rss < 20 * 1024, "RSS {max_rss} KiB >= 20 MiB");
    }
    counter.abort();
    drop(agent);
    let _ = Command::new(root.join("etc/init.d/idled"))
        .arg("stop")
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_writes_nothing_and_stays_small() {
    // Short periods so that several full passes and service checks happen in the window.
    with_timeout(Duration::from_secs(60), idle(8, "2s", "500ms")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "60 s benchmark: cargo test --test agent_idle -- --ignored --nocapture"]
async fn bench_idle_agent_60s() {
    with_timeout(Duration::from_secs(120), idle(60, "30s", "5s")).await;
}
