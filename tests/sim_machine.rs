//! `omtd agent --driver sim --sim-api`: a sim machine in its own process, as the
//! end-to-end tests run one per node. What a test (or a person with curl) relies on: the
//! flags refuse bad input by name, the machine has the packages and disks it was given,
//! faults land on it, and its agent service stops and starts while the machine stays up.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omtd::agent::drivers::sim::Fault;
use omtd::resources::Keys;
use omtd::sim::remote::RemoteHost;
use omtd::store::sqlite::SqliteStore;
use omtd::store::Store;

fn omtd(store: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("omtd"));
    c.env("OMTD_STORE", format!("sqlite://{}", store.display()))
        .env("OMTD_CLUSTER", "simtest");
    c
}

struct Machine(Child);

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_sim_flags_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("s.db");
    let cases: [(&[&str], &str); 6] = [
        // The sim API has no authentication: loopback only, and the error names the flag.
        (&["--sim-api", "0.0.0.0:0"], "'--sim-api"),
        (&["--sim-api", "10.0.0.12:7000"], "not a loopback address"),
        (&["--sim-disk", "vdb=10GiB"], "/dev/"),
        (&["--sim-disk", "/dev/vdb"], "PATH=SIZE"),
        (&["--sim-disk", "/dev/vdb=lots"], "not a size"),
        (&["--sim-roles", "worker,wizard"], "not a role"),
    ];
    for (args, says) in cases {
        let out = omtd(&store)
            .args(["agent", "--node", "n1.omtd", "--driver", "sim"])
            .args(args)
            .output()
            .expect("run omtd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = omtd(&store)
        .args(["agent", "--node", "n1.omtd", "--driver", "linux"])
        .args([
            "--root",
            &dir.path().to_string_lossy(),
            "--sim-api",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run omtd");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need --driver sim"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_sim_machine_serves_its_state_takes_faults_and_stops_its_agent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_path = dir.path().join("s.db");
    let api = dir.path().join("api");
    let _machine = Machine(
        omtd(&store_path)
            .args(["agent", "--node", "n1.omtd", "--driver", "sim"])
            .args(["--lease-ttl", "2s", "--sim-roles", "worker"])
            .args(["--sim-disk", "/dev/vdb=3GiB", "--sim-api", "127.0.0.1:0"])
            .arg("--sim-api-file")
            .arg(&api)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the sim machine"),
    );
    let start = Instant::now();
    let url = loop {
        if let Ok(url) = std::fs::read_to_string(&api) {
            break url;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no API file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let remote = RemoteHost::new(&url);
    remote.refresh().await.expect("GET /state");
    let host = remote.mirror();
    // A worker's packages, installed and stopped; the disk attached, blank.
    let slave = host.service("mesos-slave").expect("mesos-slave installed");
    assert!(slave.installed && !slave.running);
    assert!(host.service("chronos").is_none(), "not a manager's package");
    let disk = host.state().devices["/dev/vdb"].clone();
    assert_eq!((disk.size, disk.signature), (3 << 30, None));

    remote
        .inject(&Fault::StartStray {
            name: "mesos-master".into(),
        })
        .await
        .expect("POST /fault");
    assert!(host.service("mesos-master").is_some_and(|s| s.running));

    // The agent service: its heartbeat is in the store while it runs, gone once stopped
    // (the machine still answers), back once started.
    let store = SqliteStore::open(&store_path).expect("open the store");
    let lease = Keys::for_cluster("simtest").agent_lease("n1.omtd");
    let heartbeat = |want: bool| {
        let store = &store;
        let lease = &lease;
        async move {
            let start = Instant::now();
            loop {
                let present = store.get(lease).await.ok().flatten().is_some();
                if present == want {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "heartbeat present={present}, wanted {want}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    heartbeat(true).await;
    remote.stop_agent().await.expect("POST /agent/stop");
    heartbeat(false).await;
    remote.refresh().await.expect("the machine is still up");
    remote.start_agent().await.expect("POST /agent/start");
    heartbeat(true).await;
}
