//! The operator's own Mesos credential (`use: operator`) over real HTTP against the sim's
//! Mesos 1.4 master: with no user-info in the Mesos URL the probes and the maintenance
//! calls present the store's credential, and a rotation waits for the master — while the
//! master still runs the old secret the operator keeps presenting the old one; once the
//! master has the new one, the new one is used.

use std::time::{Duration, SystemTime};

use omtd::operator::probes::{HttpProbes, ProbeSource, ProbeTargets};
use omtd::operator::store_credentials::StoreCredentials;
use omtd::probes::mesos::MachineId;
use omtd::probes::BasicAuth;
use omtd_test_support::mesos::{Cluster, LEADER, PRINCIPAL, SECRET};

const CREDENTIALS: &str = "/etc/mesos-master/store/credentials.json";
const NEW_SECRET: &str = "Qm4-rotated-operator-secret";

fn operator(secret: &str) -> StoreCredentials {
    StoreCredentials {
        operator: Some(BasicAuth::new(PRINCIPAL, secret)),
        ..StoreCredentials::default()
    }
}

/// The master "restarted" with `secret` for the operator's principal (the sim master reads
/// its credentials file on every request).
fn master_runs(cluster: &Cluster, secret: &str) {
    let file = serde_json::json!({"credentials": [{"principal": PRINCIPAL, "secret": secret}]});
    cluster
        .world
        .host(LEADER)
        .expect("the leader's host")
        .edit_file(CREDENTIALS, file.to_string().as_bytes());
}

#[tokio::test]
async fn a_rotated_operator_secret_is_presented_once_the_master_has_it() {
    let cluster = Cluster::new();
    let front = cluster.front(LEADER).await;
    let probes = HttpProbes::new(&ProbeTargets {
        mesos_url: Some(format!("http://{}", front.addr())),
        timeout: Duration::from_secs(2),
        ..ProbeTargets::default()
    })
    .expect("probes");
    let drains = probes.maintenance().expect("maintenance calls");
    let node1 = [MachineId::new("node1.omtd", "10.0.0.11")];

    // No operator credential in the store: the master refuses, Mesos is unknown.
    assert_eq!(probes.probe(&StoreCredentials::default()).await.mesos, None);
    // The store's credential, known to the master: answers.
    assert!(probes.probe(&operator(SECRET)).await.mesos.is_some());

    // Rotated in the store; the master has not restarted with it: the probe still
    // answers (the previous secret), and so do the maintenance calls.
    let rotated = operator(NEW_SECRET);
    let mid = probes.probe(&rotated).await;
    assert!(mid.mesos.is_some(), "the previous secret is kept meanwhile");
    drains
        .schedule(&node1, SystemTime::now())
        .await
        .expect("a drain during the rotation presents the secret the master has");

    // The master restarted with the new secret: the old one is refused now, and the
    // operator moves to the new one for probes and maintenance.
    master_runs(&cluster, NEW_SECRET);
    assert!(probes.probe(&rotated).await.mesos.is_some());
    drains
        .unschedule(&node1)
        .await
        .expect("maintenance presents the new secret");
}
