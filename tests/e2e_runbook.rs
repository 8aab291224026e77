//! The runbook done by omtd, end to end: a real etcd, `omtd operator` probing the sim
//! world's Mesos, ZooKeeper and Prometheus, one `omtd agent --driver sim` process per node
//! of `deploy/examples/cluster.yaml`, and the `omtd` CLI for every user action. Each step
//! ends with every host converged on its plan, checked byte for byte, and `omtd status
//! --wait` converged. Removing a node, the wrong leader and a disconnected Chronos are in
//! `e2e_mesos.rs`.

use std::time::Duration;

use omtd::agent::drivers::sim::Fault;
use omtd_test_support::e2e::{text, Setup, World, EXAMPLE, NODES};
use omtd_test_support::poll;

const CONVERGE: Duration = Duration::from_secs(30);

const MASTER_CREDENTIALS: &str = "/etc/mesos-master/store/credentials.json";
const AGENT_CREDENTIALS: &str = "/etc/mesos-slave/store/credentials.json";
const CHRONOS_SECRET: &str = "/etc/chronos/store/mesos_authentication_secret";

const NODE4: &str = r#"apiVersion: omtd/v1
kind: Credential
metadata:
  name: node4.omtd
spec:
  principal: node4.omtd
  secret: {value: "n4-Tg5hY6uJ7k"}
  use: mesos-agent
---
apiVersion: omtd/v1
kind: Node
metadata:
  name: node4.omtd
  labels: {tier: mesos}
spec:
  address: 10.0.0.24
  roles: [worker]
  credential: node4.omtd
"#;

const NODE1_ROTATED: &str = r#"apiVersion: omtd/v1
kind: Credential
metadata:
  name: node1.omtd
spec:
  principal: node1.omtd
  secret: {value: "n1-Rotated0Q2w"}
  use: mesos-agent
"#;

fn log(step: &str, took: Duration) {
    eprintln!("[e2e] {step}: {:.2}s", took.as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runbook_on_sim_hosts() {
    let mut w = World::start(&NODES, Setup::default()).await;

    // ---- Bring the runbook's cluster up. ----
    let out = w.omtd(&["apply", "-f", EXAMPLE]).await;
    assert!(out.contains("node/node1.omtd created"), "{out}");
    w.converged("initial convergence").await;

    let manager = w.host("manager.omtd");
    assert_eq!(
        text(manager, MASTER_CREDENTIALS),
        r#"{"credentials":[{"principal":"node1.omtd","secret":"n1-Xq7vL2pR9s"},{"principal":"node2.omtd","secret":"n2-Hb4mW8tK3z"},{"principal":"node3.omtd","secret":"n3-Jd6yF1cN5q"},{"principal":"chronos.omtd","secret":"ch-Pw2eR7uT4v"}]}"#
    );
    assert_eq!(
        manager.file(MASTER_CREDENTIALS).map(|f| f.mode),
        Some(0o600)
    );
    assert_eq!(text(manager, CHRONOS_SECRET), "ch-Pw2eR7uT4v");
    assert_eq!(
        text(manager, "/etc/chronos/conf/mesos_authentication_principal"),
        "chronos.omtd"
    );
    assert_eq!(
        text(manager, "/etc/chronos/conf/http_credentials"),
        "galaxy:gx-Lk9aS3dF6g"
    );
    for svc in ["mesos-master", "chronos", "zookeeper"] {
        assert!(
            manager.service(svc).is_some_and(|s| s.running),
            "{svc} on the manager"
        );
    }
    assert!(
        manager.service("mesos-slave").is_some_and(|s| !s.running),
        "no agent beside the master"
    );
    for n in ["node1.omtd", "node2.omtd", "node3.omtd"] {
        let h = w.host(n);
        assert_eq!(text(h, "/etc/mesos/zk"), "zk://10.0.0.12:2181/mesos", "{n}");
        let master = h.service("mesos-master").unwrap_or_default();
        assert!(
            master.masked && !master.running,
            "mesos-master on {n}: {master:?}"
        );
        assert!(h.service("mesos-slave").is_some_and(|s| s.running), "{n}");
    }
    let node1 = w.host("node1.omtd");
    assert_eq!(
        text(node1, AGENT_CREDENTIALS),
        r#"{"principal":"node1.omtd","secret":"n1-Xq7vL2pR9s"}"#
    );
    assert_eq!(node1.file(AGENT_CREDENTIALS).map(|f| f.mode), Some(0o600));
    let exports = w.host("executor.omtd").state().exports_owned.clone();
    assert_eq!(
        exports,
        [
            "/srv/executor/database 10.0.0.21(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/database 10.0.0.22(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/database 10.0.0.23(rw,sync,no_subtree_check,no_root_squash)",
            "/srv/executor/tools 10.0.0.11(rw,sync,no_subtree_check,no_root_squash)",
        ]
    );

    // `omtd plan` says what the operator did: its files are the host's, byte for byte.
    let plan: serde_json::Value = serde_json::from_str(
        &w.omtd(&["plan", "node1.omtd", "-o", "json", "--show-secrets"])
            .await,
    )
    .expect("plan -o json");
    let files = plan["files"].as_array().cloned().unwrap_or_default();
    assert!(files.len() >= 7, "{plan}");
    for f in files {
        let path = f["path"].as_str().unwrap_or_default();
        if f["ensure"] == "present" {
            assert_eq!(
                Some(text(node1, path).as_str()),
                f["content"].as_str(),
                "{path}"
            );
        }
    }
    let shown = w.omtd(&["plan", "manager.omtd"]).await;
    assert!(
        !shown.contains("ch-Pw2eR7uT4v") && shown.contains("<redacted>"),
        "{shown}"
    );

    // ---- How to add a node: node4. ----
    w.start_agent("node4.omtd").await;
    let add = w.manifest("node4.yaml", NODE4);
    w.omtd(&["apply", "-f", &add]).await;
    let executor = w.host("executor.omtd").clone();
    let manager = w.host("manager.omtd").clone();
    let took = poll::within(CONVERGE)
        .every(Duration::from_millis(10))
        .expect("node4 exported and in the master's credentials", || {
            executor.state().exports_owned.contains(
                &"/srv/executor/database 10.0.0.24(rw,sync,no_subtree_check,no_root_squash)".into(),
            ) && text(&manager, MASTER_CREDENTIALS)
                .contains(r#"{"principal":"node4.omtd","secret":"n4-Tg5hY6uJ7k"}"#)
        })
        .await;
    log("add node4: export and principal", took);
    w.converged("add node4").await;
    let node4 = w.host("node4.omtd");
    assert_eq!(
        text(node4, AGENT_CREDENTIALS),
        r#"{"principal":"node4.omtd","secret":"n4-Tg5hY6uJ7k"}"#
    );
    assert!(node4.service("mesos-master").is_some_and(|s| s.masked));

    // ---- Rotate a credential: the master gets it first, then the agent. ----
    let node1 = w.host("node1.omtd").clone();
    let rotate = w.manifest("rotate.yaml", NODE1_ROTATED);
    let master_restarts = manager.service("mesos-master").map_or(0, |s| s.starts);
    w.omtd(&["apply", "-f", &rotate]).await;
    let new_master = r#"{"principal":"node1.omtd","secret":"n1-Rotated0Q2w"}"#;
    let new_agent = r#"{"principal":"node1.omtd","secret":"n1-Rotated0Q2w"}"#;
    let start = std::time::Instant::now();
    loop {
        // Sample the agent first: if it has the new secret, the master must have had it.
        // The manager's mirror may be older than node1's: read the manager afresh.
        let agent_new = text(&node1, AGENT_CREDENTIALS) == new_agent;
        if agent_new {
            w.refresh("manager.omtd").await;
            let master_new = text(&manager, MASTER_CREDENTIALS).contains(new_master);
            assert!(master_new, "node1 got its new secret before the master");
            break;
        }
        assert!(start.elapsed() < CONVERGE, "rotation never reached node1");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    log("rotate node1: agent has the new secret", start.elapsed());
    w.converged("rotate node1").await;
    assert!(
        manager.service("mesos-master").map_or(0, |s| s.starts) > master_restarts,
        "mesos-master was not restarted to read the rotated credential"
    );
    assert_eq!(text(&node1, AGENT_CREDENTIALS), new_agent);
    assert!(text(&manager, MASTER_CREDENTIALS).contains(new_master));

    // ---- A stray mesos-master on a worker ("most errors are caused by electing the
    // wrong leader"). ----
    let node2 = w.host("node2.omtd").clone();
    let log_from = node2.log().len();
    w.fault(
        "node2.omtd",
        Fault::StartStray {
            name: "mesos-master".into(),
        },
    )
    .await;
    // No assertion that it runs now: the agent may already have stopped it (it is woken by
    // the change). The host's log below proves the agent acted on the stray.
    let took = poll::within(CONVERGE)
        .every(Duration::from_millis(10))
        .expect("the stray master stopped and masked", || {
            node2
                .service("mesos-master")
                .is_some_and(|s| !s.running && s.masked)
        })
        .await;
    log("stray mesos-master on node2: stopped and masked", took);
    let acted = node2.log()[log_from..].to_vec();
    assert!(
        acted.iter().any(|l| l.contains("mesos-master")),
        "the agent never acted on the stray: {acted:?}"
    );
    w.converged("stray mesos-master").await;

    // ---- "No new line at the end. I kid you not!" ----
    let log_from = manager.log().len();
    w.fault(
        "manager.omtd",
        Fault::EditFile {
            path: CHRONOS_SECRET.into(),
            content: "ch-Pw2eR7uT4v\n".into(),
        },
    )
    .await;
    let took = poll::within(CONVERGE)
        .every(Duration::from_millis(10))
        .expect("the Chronos secret restored byte for byte", || {
            text(&manager, CHRONOS_SECRET) == "ch-Pw2eR7uT4v"
        })
        .await;
    log("trailing newline in the Chronos secret: restored", took);
    let acted = manager.log()[log_from..].to_vec();
    assert!(
        acted.iter().any(|l| l.contains(CHRONOS_SECRET)),
        "the agent never rewrote the secret: {acted:?}"
    );
    w.converged("trailing newline").await;

    // What omtd recorded says what it did, and never a secret.
    let events = w.omtd(&["events", "-o", "json"]).await;
    assert!(events.contains("node/node4.omtd"), "{events}");
    for secret in [
        "n1-Xq7vL2pR9s",
        "n1-Rotated0Q2w",
        "n4-Tg5hY6uJ7k",
        "ch-Pw2eR7uT4v",
        "gx-Lk9aS3dF6g",
        "rg-Zx5cV8bN1m",
    ] {
        assert!(!events.contains(secret), "a secret in the events");
        let statuses = w.store.list(&w.keys.statuses(), None).await.expect("list");
        for kv in statuses.kvs {
            assert!(
                !String::from_utf8_lossy(&kv.value).contains(secret),
                "a secret in {}",
                kv.key
            );
        }
    }

    // A converged cluster costs no writes: nothing is rewritten while nothing changes.
    let revision = w.revision().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.revision().await,
        revision,
        "the store was written while idle"
    );

    w.stop().await;
}

fn volume(name: &str, node: &str, device: &str, extra: &str) -> String {
    format!(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {{name: {name}}}\nspec:\n  node: {node}\n  device: {device}\n{extra}"
    )
}

const IN_NFSSTORE: &str = "  volumeGroup: nfsstore\n  logicalVolume: nfs_logical\n  filesystem: ext4\n  mountPoint: /srv/executor/database\n";

async fn volume_condition(w: &World, name: &str) -> Option<(omtd_crds::ConditionStatus, String)> {
    let kv = w
        .store
        .get(&w.keys.status(omtd_crds::Kind::Volume, name))
        .await
        .ok()??;
    let s: omtd_crds::Status = serde_json::from_slice(&kv.value).ok()?;
    s.condition("Ready").map(|c| (c.status, c.reason.clone()))
}

async fn wait_volume(w: &World, name: &str, status: omtd_crds::ConditionStatus, reason: &str) {
    let start = std::time::Instant::now();
    loop {
        let c = volume_condition(w, name).await;
        if c.as_ref().is_some_and(|(s, r)| *s == status && r == reason) {
            return;
        }
        assert!(
            start.elapsed() < CONVERGE,
            "volume/{name}: Ready never {status:?}/{reason}; last {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The runbook's storage procedures: mount a volume, add disk space, reduce disk space
/// (refused without room, as the runbook's own example is; allowed once a disk is added).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_procedures_on_sim_hosts() {
    use omtd_crds::ConditionStatus::{False, True};
    const GIB: u64 = 1024 * 1024 * 1024;
    let w = World::start(&NODES, Setup::default()).await;
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    w.converged("storage: initial convergence").await;
    let executor = w.host("executor.omtd").clone();
    let lv_size = || {
        executor
            .state()
            .devices
            .get("/dev/nfsstore/nfs_logical")
            .map(|d| (d.size, d.fs_size))
            .unwrap_or_default()
    };
    assert_eq!(lv_size(), (20 * GIB, 20 * GIB), "vdb + vdc, all of it");
    assert!(executor.state().mounted.contains("/srv/executor/database"));

    // ---- Mount a volume: a blank disk gets ext4, an fstab line by UUID, a mount. ----
    let registry = w.host("registry.omtd").clone();
    w.fault(
        "registry.omtd",
        Fault::AddDevice {
            path: "/dev/vdb".into(),
            size: 5 * GIB,
        },
    )
    .await;
    let m = w.manifest(
        "registry-data.yaml",
        &volume(
            "registry-data",
            "registry.omtd",
            "/dev/vdb",
            "  filesystem: ext4\n  mountPoint: /mnt/registry\n",
        ),
    );
    let start = std::time::Instant::now();
    w.omtd(&["apply", "-f", &m]).await;
    wait_volume(&w, "registry-data", True, "Ready").await;
    log("mount a volume: Ready", start.elapsed());
    let dev = registry.state().devices["/dev/vdb"].clone();
    assert_eq!(dev.signature.as_deref(), Some("ext4"));
    let uuid = dev.uuid.unwrap_or_default();
    assert!(
        registry.fstab().contains(&format!(
            "UUID={uuid} /mnt/registry ext4 errors=remount-ro 0 1"
        )),
        "{}",
        registry.fstab()
    );
    assert!(registry.state().mounted.contains("/mnt/registry"));
    w.converged("mount a volume").await;

    // ---- Add disk space: pvcreate, vgextend, lvextend, resize2fs, online. ----
    w.fault(
        "executor.omtd",
        Fault::AddDevice {
            path: "/dev/vdd".into(),
            size: 10 * GIB,
        },
    )
    .await;
    let m = w.manifest(
        "vdd.yaml",
        &volume("nfsstore-vdd", "executor.omtd", "/dev/vdd", IN_NFSSTORE),
    );
    let start = std::time::Instant::now();
    w.omtd(&["apply", "-f", &m]).await;
    wait_volume(&w, "nfsstore-vdd", True, "Ready").await;
    log("add disk space: Ready", start.elapsed());
    assert_eq!(
        lv_size(),
        (30 * GIB, 30 * GIB),
        "grown over vdd, filesystem too"
    );
    w.converged("add disk space").await;

    // ---- Reduce disk space: refused while the other PVs have no room (VFree 0). ----
    let m = w.manifest(
        "vdd-absent.yaml",
        &volume(
            "nfsstore-vdd",
            "executor.omtd",
            "/dev/vdd",
            &format!("{IN_NFSSTORE}  state: absent\n"),
        ),
    );
    w.omtd(&["apply", "-f", &m]).await;
    wait_volume(&w, "nfsstore-vdd", False, "RemovalRefused").await;
    let described = w.omtd(&["describe", "volume", "nfsstore-vdd"]).await;
    assert!(described.contains("VFree 0"), "{described}");
    w.wait_converged(CONVERGE).await;
    let (code, out, _) = w
        .omtd_status(&["status", "--wait", "--timeout", "2s"])
        .await;
    assert_eq!(code, 1, "a refused removal is not converged:\n{out}");
    assert!(
        out.contains("nfsstore-vdd"),
        "status names what is pending:\n{out}"
    );
    assert!(executor.state().vgs["nfsstore"]
        .pvs
        .contains_key("/dev/vdd"));
    assert_eq!(lv_size(), (30 * GIB, 30 * GIB), "nothing was touched");

    // ... and allowed once a disk adds room: pvmove, vgreduce, pvremove.
    w.fault(
        "executor.omtd",
        Fault::AddDevice {
            path: "/dev/vde".into(),
            size: 10 * GIB,
        },
    )
    .await;
    let m = w.manifest(
        "vde.yaml",
        &volume("nfsstore-vde", "executor.omtd", "/dev/vde", IN_NFSSTORE),
    );
    let start = std::time::Instant::now();
    w.omtd(&["apply", "-f", &m]).await;
    wait_volume(&w, "nfsstore-vdd", True, "Removed").await;
    log("reduce disk space: vdd removed", start.elapsed());
    w.converged("reduce disk space").await;
    let vg = executor.state().vgs["nfsstore"].clone();
    assert!(!vg.pvs.contains_key("/dev/vdd"), "{vg:?}");
    assert!(vg.pvs.contains_key("/dev/vde"), "{vg:?}");
    assert_eq!(
        lv_size(),
        (30 * GIB, 30 * GIB),
        "no data lost: vdd's extents moved"
    );
    assert_ne!(
        executor.state().devices["/dev/vdd"].signature.as_deref(),
        Some("LVM2_member"),
        "pvremove wiped the label"
    );

    w.stop().await;
}
