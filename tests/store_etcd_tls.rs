//! The store locked (issue #16): etcd over TLS with `--client-cert-auth` and auth on, one
//! identity per host made by `omtd pki`, roles made by `omtd store secure`. The example
//! cluster converges with every process on its own certificate, and an agent's
//! certificate reaches its own node's keys only: not another node's plan, not a
//! credential, not a plan write, not another node's report; without a certificate, or
//! without TLS, etcd does not answer at all.

use std::time::Duration;

use omtd::store::etcd::{EtcdStore, EtcdTls};
use omtd::store::{Store, StoreError};
use omtd_test_support::e2e::{example_secrets, Setup, World, EXAMPLE, NODES};
use omtd_test_support::etcd::EtcdServer;

const CONVERGE: Duration = Duration::from_secs(90);

async fn connect_as(w: &World, tls: EtcdTls) -> Result<EtcdStore, StoreError> {
    EtcdStore::connect_with(&w.etcd.endpoints(), Some(&tls)).await
}

fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(StoreError::Denied(m)) => assert!(m.contains("docs/security.md"), "{what}: {m}"),
        other => panic!("{what}: expected permission denied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secured_cluster_converges_and_each_agent_reaches_only_its_own_keys() {
    let w = World::start(
        &NODES,
        Setup {
            secure: true,
            // Also the "no secret in any log line at -vv" check, at the end.
            verbose: true,
            ..Default::default()
        },
    )
    .await;
    w.omtd(&["apply", "-f", EXAMPLE]).await;
    w.wait_converged(CONVERGE).await;

    let pki = w.etcd.pki().expect("a TLS etcd");
    let (me, other) = ("node1.omtd", "node2.omtd");
    let agent = connect_as(&w, pki.tls(Some(&pki.agent(me))))
        .await
        .expect("node1's agent connects with its certificate");

    // Its own plan: readable, and what the operator wrote.
    let mine = agent
        .list(&w.keys.plans_of(me), None)
        .await
        .expect("node1 reads its own plan");
    assert!(!mine.kvs.is_empty(), "node1 has a plan");

    // Everything else of the cluster: refused, with a message that says where to look.
    denied(
        "read node2's plan",
        agent.list(&w.keys.plans_of(other), None).await,
    );
    denied(
        "read a credential",
        agent
            .get(&w.keys.spec(omtd_crds::Kind::Credential, other))
            .await,
    );
    denied("list the specs", agent.list(&w.keys.specs(), None).await);
    let plan_key = &mine.kvs[0].key;
    denied(
        "write its own plan",
        agent.put(plan_key, b"{\"files\":[]}".to_vec()).await,
    );
    let report_key = w.keys.report(other);
    let before = w.store.get(&report_key).await.expect("admin reads");
    denied(
        "write node2's report",
        agent.put(&report_key, b"{}".to_vec()).await,
    );
    // Refused means unchanged.
    assert_eq!(w.store.get(&report_key).await.expect("admin reads"), before);
    let plan_now = w.store.get(plan_key).await.expect("admin reads");
    assert_eq!(plan_now.as_ref(), mine.kvs.first());

    // The CLI with an agent's certificate is refused too, and says why.
    let out = std::process::Command::new(omtd_test_support::omtd_bin())
        .envs(w.etcd.client_env(&pki.agent(me)))
        .env("OMTD_CLUSTER", omtd_test_support::e2e::CLUSTER)
        .args(["get", "credentials", "--show-secrets"])
        .output()
        .expect("run omtd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an agent's identity read credentials"
    );
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("n1-"));

    // No certificate: the TLS handshake fails, and the error names the fix.
    let err = connect_as(&w, pki.tls(None)).await.unwrap_err().to_string();
    assert!(err.contains("--store-cert"), "{err}");
    // No TLS at all.
    let err = EtcdStore::connect(&w.etcd.endpoints())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("etcd+tls://"), "{err}");

    // Running `store secure` again changes nothing and succeeds (idempotent).
    let again = w.omtd(&["store", "secure"]).await;
    assert!(again.contains("auth is on"), "{again}");
    w.wait_converged(CONVERGE).await;
    // Converging the whole example at debug level wrote every credential file, yet no log
    // line of the operator or of any agent holds a secret.
    let logs = w.logs();
    w.stop().await;
    assert!(
        logs.len() > NODES.len(),
        "operator and agent logs: {logs:?}"
    );
    assert!(
        logs.iter().any(|(_, t)| t.contains("DEBUG")),
        "the processes did not log at debug"
    );
    for secret in example_secrets() {
        for (file, text) in &logs {
            assert!(!text.contains(&secret), "{file} holds a secret");
        }
    }
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let etcd = EtcdServer::start_tls();
    let other = tempfile::tempdir().expect("temp dir");
    let rogue = omtd_test_support::etcd_tls::TestPki::new(other.path());
    // The client trusts another CA than the one that signed etcd's certificate.
    let err = EtcdStore::connect_with(&etcd.endpoints(), Some(&rogue.tls(Some("admin"))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "expected a failed handshake, got {err:?}"
    );
    // The right CA and a certificate: answers.
    let pki = etcd.pki().expect("TLS");
    EtcdStore::connect_with(&etcd.endpoints(), Some(&pki.tls(Some("admin"))))
        .await
        .expect("the admin connects");
}

#[tokio::test]
async fn store_secure_needs_the_admin_certificate_and_etcd() {
    let etcd = EtcdServer::start_tls();
    let pki = etcd.pki().expect("TLS");
    let operator = pki.operator();
    let run = |env: Vec<(String, String)>| {
        std::process::Command::new(omtd_test_support::omtd_bin())
            .envs(env)
            .args(["store", "secure", "--node", "n1"])
            .output()
            .expect("run omtd")
    };
    // The operator's certificate works before auth is on, but once auth is on only root
    // manages users: run it as the admin first, then as the operator.
    let out = run(etcd.client_env("admin"));
    assert!(out.status.success(), "{out:?}");
    let out = run(etcd.client_env(&operator));
    assert!(!out.status.success(), "the operator managed users: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");
    // Not etcd: said plainly.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(omtd_test_support::omtd_bin())
        .env(
            "OMTD_STORE",
            format!("sqlite://{}", dir.path().join("s.db").display()),
        )
        .args(["store", "secure"])
        .output()
        .expect("run omtd");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("for etcd"));
}
