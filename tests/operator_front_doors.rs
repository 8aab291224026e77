//! `omtd operator` probing the registry and Chronos over real HTTP on loopback, with the
//! credentials taken from the store (never from its command line), and `omtd status`
//! showing the Cluster's `RegistryReady` and `ChronosReady`: True while the registry
//! takes the store's credential, False once it refuses it (the credential was rotated in
//! the store, the registry's htpasswd not yet).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use omtd_test_support::fakes::{self, ChronosFake};
use omtd_test_support::poll;
use omtd_test_support::ports::free_port;
use serde_json::Value;

const OMTD: &str = env!("CARGO_BIN_EXE_omtd");
const REGISTRY_SECRET: &str = "rg-Front-Door-1";
const ROTATED_SECRET: &str = "rg-Rotated-Not-Yet-2";
const CHRONOS_SECRET: &str = "gx-Chronos-Http-3";

fn manifest(registry_secret: &str) -> String {
    format!(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {{name: omtd}}\nspec: {{}}\n---\n\
         apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: manager}}\nspec: {{address: 10.0.0.1, roles: [manager]}}\n---\n\
         apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: registry}}\nspec: {{address: 10.0.0.2, roles: [registry]}}\n---\n\
         apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: registry-user}}\nspec: {{principal: omtd, secret: {{value: {registry_secret}}}, use: registry}}\n---\n\
         apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: chronos-http}}\nspec: {{principal: galaxy, secret: {{value: {CHRONOS_SECRET}}}, use: chronos-http}}\n"
    )
}

fn omtd(store: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(OMTD)
        .env("OMTD_STORE", store)
        .env("NO_COLOR", "1")
        .env_remove("OMTD_CLUSTER")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run omtd")
}

fn apply(store: &str, dir: &Path, registry_secret: &str) {
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, manifest(registry_secret)).expect("write manifest");
    let out = omtd(
        store,
        dir,
        &["apply", "-f", path.to_str().expect("utf-8 path")],
    );
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (status, reason) of a Cluster condition as `omtd status -o json` shows it.
fn shown(store: &str, dir: &Path, type_: &str) -> Option<(String, String)> {
    let out = omtd(store, dir, &["status", "-o", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).ok()?;
    let row = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        row["status"].as_str()?.to_owned(),
        row["reason"].as_str().unwrap_or("").to_owned(),
    ))
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_ready_follows_whether_the_registry_takes_the_stores_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("omtd.db").display());
    let registry = fakes::registry(Some(("omtd".into(), REGISTRY_SECRET.into())), false).await;
    let chronos = fakes::chronos(ChronosFake {
        creds: Some(("galaxy".into(), CHRONOS_SECRET.into())),
        v3: true,
    })
    .await;
    apply(&store, dir.path(), REGISTRY_SECRET);

    let log_path = dir.path().join("operator.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(OMTD)
        .env("OMTD_STORE", &store)
        .env_remove("OMTD_CLUSTER")
        .env("OMTD_REGISTRY_URL", format!("http://{registry}"))
        .env("OMTD_CHRONOS_URL", format!("http://{chronos}"))
        .args(["-v", "operator", "--probe-interval", "200ms"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the operator");
    let op = Operator(child);

    let dir_path = dir.path().to_owned();
    let wait_for = |type_: &'static str, want: (&'static str, &'static str)| {
        let store = store.clone();
        let dir = dir_path.clone();
        async move {
            let mut last = None;
            let seen = poll::within(Duration::from_secs(30))
                .every(Duration::from_millis(250))
                .until(|| {
                    last = shown(&store, &dir, type_);
                    last.as_ref()
                        .is_some_and(|(s, r)| (s.as_str(), r.as_str()) == want)
                })
                .await
                .is_some();
            (seen, last)
        }
    };
    let (ok, last) = wait_for("RegistryReady", ("True", "Ready")).await;
    assert!(
        ok,
        "RegistryReady never True, last {last:?}: {}",
        read(&log_path)
    );
    // Chronos answers /ping to the store's chronos-http credential; with no Mesos probe its
    // registration is unknown, and `omtd status` says which.
    let (ok, last) = wait_for("ChronosReady", ("Unknown", "MesosUnreachable")).await;
    assert!(ok, "ChronosReady: last {last:?}: {}", read(&log_path));

    // Rotated in the store, not on the registry: it refuses the probe's credential now.
    apply(&store, dir.path(), ROTATED_SECRET);
    let (ok, last) = wait_for("RegistryReady", ("False", "CredentialRefused")).await;
    assert!(
        ok,
        "RegistryReady never refused, last {last:?}: {}",
        read(&log_path)
    );

    let text = omtd(&store, dir.path(), &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("node") && l.contains("RegistryReady") && l.contains("False")),
        "{text}"
    );
    drop(op);
    let log = read(&log_path);
    for secret in [REGISTRY_SECRET, ROTATED_SECRET, CHRONOS_SECRET] {
        assert!(!log.contains(secret), "a secret in the operator's log");
        assert!(!text.contains(secret), "a secret in omtd status");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
