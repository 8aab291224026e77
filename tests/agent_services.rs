//! Services with real processes: SysV-style init scripts under the test root drive a real
//! long-running program (`sleep`) with a pid file. The agent, against a real etcd, restarts
//! a crashed service, restarts on a change of a file in `restart_on` and on a new restart
//! token, stops (and disables) a stray service planned `masked`, and backs off a service
//! whose start always dies, reporting it `CrashLooping`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use omtd::agent::repair_limit::RepairPolicy;
use omtd::agent::Agent;
use omtd_crds::plan::{PlanSlice, ResourceState, ServiceSpec, ServiceState};
use omtd_test_support::agent::{file, state_of, with_timeout, Rig, Running};
use omtd_test_support::poll;

/// An LSB-ish init script. `crash` makes the daemon die at once (a crash loop). Status
/// treats a zombie as dead: the test machine's PID 1 may not reap orphans.
fn init_script(root: &Path, name: &str, crash: bool) {
    let run = root.join("run");
    fs::create_dir_all(&run).unwrap();
    let daemon = if crash {
        "sh -c 'exit 1'"
    } else {
        "sleep 1000"
    };
    let script = format!(
        r#"#!/bin/sh
PIDFILE={run}/{name}.pid
LOG={run}/{name}.log
running() {{
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null || return 1
  ! grep -q '^State:.*Z' /proc/"$pid"/status 2>/dev/null
}}
case "$1" in
  start)
    running && exit 0
    {daemon} </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    echo start >> "$LOG"
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null; rm -f "$PIDFILE"; fi
    echo stop >> "$LOG"
    ;;
  restart)
    "$0" stop
    "$0" start
    ;;
  status)
    running && exit 0
    exit 3
    ;;
  *) exit 2 ;;
esac
"#,
        run = run.display()
    );
    let dir = root.join("etc/init.d");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn pid(root: &Path, name: &str) -> Option<i32> {
    fs::read_to_string(root.join(format!("run/{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    !status.is_empty()
        && !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
}

fn starts(root: &Path, name: &str) -> usize {
    fs::read_to_string(root.join(format!("run/{name}.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == "start")
        .count()
}

fn script(root: &Path, name: &str) -> PathBuf {
    root.join("etc/init.d").join(name)
}

/// Kills whatever the scripts started, even when a test fails.
struct Cleanup(PathBuf, Vec<&'static str>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = Command::new(script(&self.0, n)).arg("stop").status();
        }
    }
}

fn svc(name: &str, state: ServiceState) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        state,
        enabled: state == ServiceState::Running,
        restart_on: vec![],
        restart_token: None,
        after: vec![],
        slow_start: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_processes_restart_stop_and_back_off() {
    with_timeout(Duration::from_secs(80), async {
        let rig = Rig::new().await;
        let root = rig.root();
        init_script(&root, "fakesvc", false);
        init_script(&root, "strayd", false);
        init_script(&root, "crashd", true);
        let _cleanup = Cleanup(root.clone(), vec!["fakesvc", "strayd", "crashd"]);

        let mut config = rig.config("svc1");
        config.service_check = Duration::from_millis(200);
        config.resync = Duration::from_secs(60);
        config.repair = RepairPolicy {
            burst: 3,
            window: Duration::from_secs(30),
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), config);
        let running = Running::start(rig.store.clone(), agent);

        let mut fake = svc("fakesvc", ServiceState::Running);
        fake.restart_on = vec!["/etc/fakesvc.conf".into()];
        let mut slice = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            files: vec![file("/etc/fakesvc.conf", "v1", 0o644)],
            services: vec![fake, svc("strayd", ServiceState::Masked)],
            ..Default::default()
        };
        rig.put_slice("svc1", &slice).await;
        rig.wait_converged("svc1").await;
        let p1 = pid(&root, "fakesvc").expect("fakesvc started");
        assert!(alive(p1));
        assert!(root.join("etc/rc2.d/S01fakesvc").symlink_metadata().is_ok(), "enabled");

        // 1. Crash: kill the process; the agent starts it again.
        let t = std::time::Instant::now();
        Command::new("kill").arg("-9").arg(p1.to_string()).status().unwrap();
        poll::within(Duration::from_secs(5))
.every(Duration::from_millis(20))
.expect("restart after a crash", || {
            pid(&root, "fakesvc").is_some_and(|p| p != p1 && alive(p))
        })
.await;
        println!("crashed service restarted after {:?}", t.elapsed());
        let p2 = pid(&root, "fakesvc").unwrap();

        // 2. A file in restart_on changes (plan change): the service restarts.
        slice.files[0].content = "v2".into();
        rig.put_slice("svc1", &slice).await;
        poll::within(Duration::from_secs(5))
.every(Duration::from_millis(20))
.expect("restart on file change", || {
            pid(&root, "fakesvc").is_some_and(|p| p != p2 && alive(p))
        })
.await;
        assert_eq!(fs::read(root.join("etc/fakesvc.conf")).unwrap(), b"v2");
        assert!(!alive(p2), "the old process is gone");
        let p3 = pid(&root, "fakesvc").unwrap();

        // 3. A new restart token: one restart, not more.
        slice.services[0].restart_token = Some("rotate-1".into());
        rig.put_slice("svc1", &slice).await;
        poll::within(Duration::from_secs(5))
.every(Duration::from_millis(20))
.expect("restart on token", || {
            pid(&root, "fakesvc").is_some_and(|p| p != p3 && alive(p))
        })
.await;
        let p4 = pid(&root, "fakesvc").unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(pid(&root, "fakesvc"), Some(p4), "the token restarts once");

        // 4. A stray: someone starts strayd (planned masked); the agent stops it.
        assert!(Command::new(script(&root, "strayd")).arg("start").status().unwrap().success());
        let stray = pid(&root, "strayd").unwrap();
        let t = std::time::Instant::now();
        poll::within(Duration::from_secs(5))
.every(Duration::from_millis(20))
.expect("stray stopped", || !alive(stray))
.await;
        println!("stray service stopped after {:?}", t.elapsed());
        assert!(
            root.join("etc/rc2.d/S01strayd").symlink_metadata().is_err(),
            "not enabled at boot"
        );

        // 5. A crash loop: its start always dies. Restarts are bounded and it is reported.
        slice.services.push(svc("crashd", ServiceState::Running));
        rig.put_slice("svc1", &slice).await;
        let r = rig
            .wait_report("svc1", Duration::from_secs(10), |r| {
                state_of(r, "service:crashd") == Some(ResourceState::CrashLooping)
            })
            .await;
        let msg = &r.resources.iter().find(|x| x.id == "service:crashd").unwrap().message;
        println!("crashd: {msg}");
        let first = starts(&root, "crashd");
        tokio::time::sleep(Duration::from_secs(4)).await;
        let later = starts(&root, "crashd");
        println!(
            "crashd started {first} times before being reported crash-looping, {} more in the next 4 s (checked every 200 ms)",
            later - first
        );
        // Without backoff 4 s of 200 ms checks would be 20 starts; with it, at most 2-3.
        assert!(later - first <= 3, "{first} then {later}");
        assert!(first <= 5);
        // The healthy service was not disturbed meanwhile.
        assert_eq!(pid(&root, "fakesvc"), Some(p4));
        let r = rig.report("svc1").await.unwrap();
        assert!(r.corrective_changes >= 2, "{r:?}");
        running.stop().await;
    })
    .await;
}
