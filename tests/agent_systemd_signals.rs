//! The agent hears systemd's D-Bus signals: a private `dbus-daemon` and a small fake
//! `org.freedesktop.systemd1` (zbus, in this test) that takes `Subscribe()` and emits
//! `PropertiesChanged` from unit objects as systemd does. The watcher must wake within
//! ~100 ms of a managed unit's signal, ignore other units, and an agent whose periodic
//! service check is an hour away must still repair a dead service at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omtd::agent::drivers::sim::SimHost;
use omtd::agent::unit_watch::{path_of_unit, Bus, UnitWatch, WatchError};
use omtd::agent::Agent;
use omtd_crds::plan::{PlanSlice, ServiceSpec, ServiceState};
use omtd_test_support::agent::{with_timeout, Rig, Running};
use tokio::sync::Notify;
use zbus::zvariant::Value;

/// A private bus; killed on drop.
struct DbusDaemon {
    child: Child,
    address: String,
}

impl DbusDaemon {
    fn start() -> DbusDaemon {
        let mut child = match Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                panic!("cannot run dbus-daemon ({e}): apt-get update && apt-get install -y dbus")
            }
        };
        let stdout = child.stdout.take().expect("dbus-daemon stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("dbus-daemon prints its address");
        let address = line.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        DbusDaemon { child, address }
    }
}

impl Drop for DbusDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The part of systemd's Manager the watcher uses.
struct FakeManager {
    subscribed: Arc<AtomicU32>,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeManager {
    fn subscribe(&self) {
        self.subscribed.fetch_add(1, Ordering::SeqCst);
    }
}

struct FakeSystemd {
    conn: zbus::Connection,
    subscribed: Arc<AtomicU32>,
}

impl FakeSystemd {
    async fn start(address: &str) -> FakeSystemd {
        let subscribed = Arc::new(AtomicU32::new(0));
        let conn = zbus::connection::Builder::address(address)
            .expect("bus address")
            .name("org.freedesktop.systemd1")
            .expect("name")
            .serve_at(
                "/org/freedesktop/systemd1",
                FakeManager {
                    subscribed: Arc::clone(&subscribed),
                },
            )
            .expect("serve the manager")
            .build()
            .await
            .expect("fake systemd on the bus");
        FakeSystemd { conn, subscribed }
    }

    /// What systemd sends when a unit's state changes.
    async fn unit_changed(&self, unit: &str, active_state: &str) {
        let changed: HashMap<&str, Value<'_>> = HashMap::from([
            ("ActiveState", Value::from(active_state)),
            ("SubState", Value::from("dead")),
        ]);
        self.conn
            .emit_signal(
                None::<&str>,
                path_of_unit(unit).as_str(),
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                &("org.freedesktop.systemd1.Unit", changed, Vec::<&str>::new()),
            )
            .await
            .expect("emit PropertiesChanged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_wakes_within_100ms_for_managed_units_only() {
    with_timeout(Duration::from_secs(30), async {
        let bus = DbusDaemon::start();
        let systemd = FakeSystemd::start(&bus.address).await;
        let wake = Arc::new(Notify::new());
        let watch = UnitWatch::start(&Bus::Address(bus.address.clone()), Arc::clone(&wake))
            .await
            .expect("watcher on the private bus");
        assert_eq!(
            systemd.subscribed.load(Ordering::SeqCst),
            1,
            "Subscribe() called"
        );
        watch.set_units(["mesos-slave".to_owned(), "docker".to_owned()]);

        // Another unit: no wake-up.
        systemd.unit_changed("cron.service", "inactive").await;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), wake.notified())
                .await
                .is_err(),
            "woken by a unit the plan does not manage"
        );
        for _ in 0..5 {
            let sent = Instant::now();
            systemd
                .unit_changed("mesos-slave.service", "inactive")
                .await;
            tokio::time::timeout(Duration::from_secs(2), wake.notified())
                .await
                .expect("woken by the managed unit's signal");
            let latency = sent.elapsed();
            println!("signal → wake-up: {:.2} ms", latency.as_secs_f64() * 1000.0);
            assert!(latency < Duration::from_millis(100), "{latency:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bus_is_an_error_the_agent_survives_by_polling() {
    let d = tempfile::tempdir().expect("tempdir");
    let addr = format!("unix:path={}", d.path().join("no-bus").display());
    let r = UnitWatch::start(&Bus::Address(addr), Arc::new(Notify::new())).await;
    assert!(
        matches!(r, Err(WatchError::Connect { .. })),
        "{:?}",
        r.err()
    );

    // An agent told to listen on a dead bus still repairs by its periodic check.
    let rig = Rig::new().await;
    let sim = SimHost::new();
    sim.install_service("idled");
    rig.put_slice("web1", &slice()).await;
    let mut config = rig.config("web1");
    config.watch_files = false;
    config.service_check = Duration::from_millis(200);
    config.systemd_bus = Some(Bus::Address(format!(
        "unix:path={}",
        d.path().join("no-bus").display()
    )));
    let agent = Running::start(
        rig.store.clone(),
        Agent::new(rig.store.clone(), sim.host(), config),
    );
    with_timeout(Duration::from_secs(20), rig.wait_converged("web1")).await;
    silently_kill(&sim, "idled");
    with_timeout(Duration::from_secs(5), async {
        while !sim.service("idled").is_some_and(|s| s.running) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    agent.stop().await;
}

fn slice() -> PlanSlice {
    PlanSlice {
        controller: "node".into(),
        fencing_token: 1,
        services: vec![ServiceSpec {
            name: "idled".into(),
            state: ServiceState::Running,
            enabled: true,
            restart_on: vec![],
            restart_token: None,
            after: vec![],
            slow_start: false,
        }],
        ..Default::default()
    }
}

/// The process dies without the sim's fault signal: only systemd (here, the fake) tells.
fn silently_kill(sim: &SimHost, name: &str) {
    if let Some(s) = sim.state().services.get_mut(name) {
        s.running = false;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_gets_a_dead_service_restarted_before_any_periodic_check() {
    with_timeout(Duration::from_secs(60), async {
        let bus = DbusDaemon::start();
        let systemd = FakeSystemd::start(&bus.address).await;
        let rig = Rig::new().await;
        let sim = SimHost::new();
        sim.install_service("idled");
        rig.put_slice("web1", &slice()).await;
        let mut config = rig.config("web1");
        config.watch_files = false;
        // Nothing periodic within the test: only the signal can wake the agent.
        config.service_check = Duration::from_secs(3600);
        config.resync = Duration::from_secs(3600);
        config.systemd_bus = Some(Bus::Address(bus.address.clone()));
        let agent = Running::start(
            rig.store.clone(),
            Agent::new(rig.store.clone(), sim.host(), config),
        );
        rig.wait_converged("web1").await;
        let passes = agent.stats.passes.load(Ordering::Relaxed);

        silently_kill(&sim, "idled");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !sim.service("idled").is_some_and(|s| s.running),
            "restarted without a signal: something else woke the agent"
        );
        assert_eq!(agent.stats.passes.load(Ordering::Relaxed), passes);

        let sent = Instant::now();
        systemd.unit_changed("idled.service", "inactive").await;
        while !sim.service("idled").is_some_and(|s| s.running) {
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "the signal did not wake the agent"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let latency = sent.elapsed();
        println!(
            "signal → service restarted by the agent: {:.2} ms",
            latency.as_secs_f64() * 1000.0
        );
        assert!(latency < Duration::from_millis(100), "{latency:?}");
        agent.stop().await;
    })
    .await;
}
