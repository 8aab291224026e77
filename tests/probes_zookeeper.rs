//! The ZooKeeper probe against a real ZooKeeper: Mesos masters' leader-election entries,
//! ordered by sequence, and the runbook's "wrong leader" — a stray master on a worker
//! taking over when the manager's master restarts.

use std::time::{Duration, Instant};

use omtd::probes::zookeeper::{mesos_masters, ZkTarget};
use omtd::probes::ProbeError;
use omtd_controllers::observed::{zk_leader, MasterEntry};
use omtd_test_support::zookeeper::ZooKeeperServer;
use zookeeper_client as zk;

const LIMIT: Duration = Duration::from_secs(2);

/// MasterInfo as a Mesos 1.4 master writes it into its `json.info_` znode.
fn master_info(hostname: &str, ip: &str, ip_u32: u32) -> Vec<u8> {
    serde_json::json!({
        "address": {"hostname": hostname, "ip": ip, "port": 5050},
        "hostname": hostname,
        "id": format!("{hostname}-id"),
        "ip": ip_u32,
        "pid": format!("master@{ip}:5050"),
        "port": 5050,
        "version": "1.4.1"
    })
    .to_string()
    .into_bytes()
}

/// A Mesos master's session contending for leadership: an ephemeral sequential entry.
async fn contend(server: &ZooKeeperServer, hostname: &str, ip: &str) -> (zk::Client, u64) {
    let client = zk::Client::connect(&server.endpoint())
        .await
        .expect("connect to ZooKeeper");
    let ip_u32 = u32::from_le_bytes(
        ip.parse::<std::net::Ipv4Addr>()
            .expect("an IPv4 address")
            .octets(),
    );
    let (_, seq) = client
        .create(
            "/mesos/json.info_",
            &master_info(hostname, ip, ip_u32),
            &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .expect("create the election entry");
    let seq = u64::try_from(seq.into_i64()).expect("a non-negative sequence");
    (client, seq)
}

fn entry(hostname: &str, sequence: u64) -> MasterEntry {
    MasterEntry {
        hostname: hostname.into(),
        sequence,
    }
}

/// Polls the probe until `want` (ephemeral removal follows a session close asynchronously).
async fn wait_for(target: &ZkTarget, want: &[MasterEntry]) -> Vec<MasterEntry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = mesos_masters(target, LIMIT).await.expect("probe");
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn lowest_sequence_leads_and_a_stray_master_can_steal_leadership() {
    let server = ZooKeeperServer::start();
    let target = ZkTarget::parse(&server.zk_url("/mesos")).expect("zk url");

    // No master ever ran: no /mesos, nobody leads (an answer, not an error).
    assert_eq!(mesos_masters(&target, LIMIT).await.expect("probe"), vec![]);

    // The manager's master creates /mesos (with the replicated log's node beside the
    // entries) and contends first.
    let admin = zk::Client::connect(&server.endpoint())
        .await
        .expect("connect");
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    admin
        .create("/mesos", b"", &persistent)
        .await
        .expect("/mesos");
    admin
        .create("/mesos/log_replicas", b"", &persistent)
        .await
        .expect("log_replicas");
    let (manager, m1) = contend(&server, "manager.omtd", "10.0.0.1").await;
    // A stray mesos-master on a worker (the runbook's cause of "wrong leader").
    let (_stray, s1) = contend(&server, "node1.omtd", "10.0.0.11").await;
    assert!(m1 < s1);

    let entries = mesos_masters(&target, LIMIT).await.expect("probe");
    assert_eq!(
        entries,
        vec![entry("manager.omtd", m1), entry("node1.omtd", s1)]
    );
    assert_eq!(
        zk_leader(&entries).map(|e| e.hostname.as_str()),
        Some("manager.omtd")
    );

    // The manager's master restarts: its session ends, its entry goes, and it contends
    // again behind the stray, which now leads.
    drop(manager);
    let (_manager, m2) = contend(&server, "manager.omtd", "10.0.0.1").await;
    assert!(m2 > s1);
    let entries = wait_for(
        &target,
        &[entry("node1.omtd", s1), entry("manager.omtd", m2)],
    )
    .await;
    assert_eq!(
        entries,
        vec![entry("node1.omtd", s1), entry("manager.omtd", m2)]
    );
    assert_eq!(
        zk_leader(&entries).map(|e| e.hostname.as_str()),
        Some("node1.omtd")
    );

    // A malformed entry is reported, not skipped: skipping it could hide the real leader.
    let (_bad, _) = {
        let c = zk::Client::connect(&server.endpoint())
            .await
            .expect("connect");
        let (_, seq) = c
            .create(
                "/mesos/json.info_",
                b"not json",
                &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .expect("create");
        (c, seq)
    };
    let e = mesos_masters(&target, LIMIT).await.expect_err("bad entry");
    assert!(matches!(e, ProbeError::BadJson { .. }), "{e:?}");
    assert!(e.to_string().contains("/mesos/json.info_"), "{e}");
}

#[tokio::test]
async fn an_unreachable_or_silent_zookeeper_fails_within_the_limit() {
    let limit = Duration::from_millis(500);

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let target = ZkTarget::parse(&format!("zk://{closed}/mesos")).expect("zk url");
    let started = Instant::now();
    let e = mesos_masters(&target, limit)
        .await
        .expect_err("unreachable");
    assert!(
        matches!(
            e,
            ProbeError::Unreachable { .. } | ProbeError::Timeout { .. }
        ),
        "{e:?}"
    );
    assert!(started.elapsed() < limit + Duration::from_millis(500));
    assert!(e.to_string().contains(&closed.to_string()), "{e}");

    // Accepts, never answers (a hung JVM).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let target = ZkTarget::parse(&format!("zk://user:Zk-Secret@{addr}/mesos")).expect("zk url");
    let started = Instant::now();
    let e = mesos_masters(&target, limit).await.expect_err("silent");
    assert!(
        matches!(
            e,
            ProbeError::Timeout { .. } | ProbeError::Unreachable { .. }
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < limit + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{e} {e:?}").contains("Zk-Secret"), "{e}");
    drop(silent);
}
