//! Secrets at rest, as a user sees them: with a key, no secret of the example cluster is in
//! the SQLite file, its WAL or an etcd snapshot, yet `get --show-secrets` shows them;
//! rotation keeps everything readable once the old key is gone; an agent given only its
//! node key converges its own host, and one without the right key holds and names it.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use omtd::resources::Keys;
use omtd::store::sealed::keyfile;
use omtd::store::sealed::{is_envelope, SealedStore};
use omtd::store::sqlite::SqliteStore;
use omtd::store::Store;
use omtd_crds::plan::{PlanSlice, Report};
use omtd_crds::plan_manifest::{HOLD_ID, MANIFEST_KEY};
use omtd_test_support::e2e::{example_secrets, EXAMPLE};
use omtd_test_support::etcd::EtcdServer;
use omtd_test_support::poll;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `omtd` with the store and cluster set, `key` as `--secrets-key` (when given).
fn omtd(store: &str, key: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = assert_cmd::Command::cargo_bin("omtd").unwrap();
    cmd.env("OMTD_STORE", store)
        .env_remove("OMTD_CLUSTER")
        .env_remove("OMTD_SECRETS_KEY");
    if let Some(key) = key {
        cmd.arg("--secrets-key").arg(key);
    }
    let out = cmd.args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r
}

fn new_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    // new-key opens no store: the URL only shows that none is needed.
    let r = ok(omtd(
        "sqlite:///nonexistent/omtd.db",
        None,
        &["secrets", "new-key", "--out", path.to_str().unwrap()],
    ));
    assert!(r.stdout.contains("wrote key omtd-"), "{}", r.stdout);
    path
}

/// The id of the active (first) key of a key file.
fn active_id(path: &Path) -> String {
    keyfile::load(path).unwrap().active().unwrap().id.clone()
}

/// Which of `secrets` occur in `bytes`.
/// `get cred --show-secrets` with `key` shows each of `secrets` (else panics with `why`).
fn shows_every_secret(store: &str, key: &Path, secrets: &[String], why: &str) {
    let shown = ok(omtd(
        store,
        Some(key),
        &["get", "cred", "-o", "json", "--show-secrets"],
    ));
    for s in secrets {
        assert!(
            shown.stdout.contains(s.as_str()),
            "{s} {why}:\n{}",
            shown.stdout
        );
    }
}

fn leaked<'a>(bytes: &[u8], secrets: &'a [String]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
        .map(String::as_str)
        .collect()
}

/// The SQLite store file and its -wal (if SQLite left one), concatenated.
fn sqlite_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

#[test]
fn sqlite_holds_no_secret_get_shows_them_with_the_key_and_rotation_keeps_them_readable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("omtd.db");
    let store = format!("sqlite://{}", db.display());
    let secrets = example_secrets();
    let key = new_key(dir.path(), "master.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let again = omtd(
        &store,
        None,
        &["secrets", "new-key", "--out", key.to_str().unwrap()],
    );
    assert_ne!(again.code, 0, "a key file is never overwritten");
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let first = active_id(&key);

    ok(omtd(&store, Some(&key), &["apply", "-f", EXAMPLE]));
    let bytes = sqlite_bytes(&db);
    assert!(
        leaked(&bytes, &["executor.omtd".to_owned()]).len() == 1,
        "the grep must see plain records (nodes are not sealed)"
    );
    assert_eq!(
        leaked(&bytes, &secrets),
        Vec::<&str>::new(),
        "secrets in the store file"
    );

    // With the key, every secret shows when asked; without, the error names the key.
    shows_every_secret(&store, &key, &secrets, "not shown");
    let one = ok(omtd(
        &store,
        Some(&key),
        &["get", "credential", "node1.omtd", "--show-secrets"],
    ));
    assert!(one.stdout.contains("n1-Xq7vL2pR9s"), "{}", one.stdout);
    let denied = omtd(
        &store,
        None,
        &["get", "credential", "node1.omtd", "--show-secrets"],
    );
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains(&format!(
            "sealed with key {first}, which this process was not given"
        )) && denied
            .stderr
            .contains("--secrets-key FILE or OMTD_SECRETS_KEY"),
        "{}",
        denied.stderr
    );
    assert!(leaked(denied.stderr.as_bytes(), &secrets).is_empty());
    let described = omtd(&store, None, &["describe", "credential", "node1.omtd"]);
    assert!(
        described.stderr.contains("sealed with key"),
        "{}",
        described.stderr
    );
    // What needs no credential needs no key.
    let nodes = ok(omtd(&store, None, &["get", "nodes"]));
    assert!(nodes.stdout.contains("node1.omtd"), "{}", nodes.stdout);
    // An apply without the key would take the sealed records for absent: refused.
    let blind = omtd(&store, None, &["apply", "-f", EXAMPLE]);
    assert_ne!(blind.code, 0);
    assert!(blind.stderr.contains("sealed with key"), "{}", blind.stderr);

    let status = ok(omtd(&store, Some(&key), &["secrets", "status"]));
    assert!(
        status.stdout.contains(&first) && status.stdout.contains("active"),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains("<plain>"), "{}", status.stdout);
    assert!(leaked(status.stdout.as_bytes(), &secrets).is_empty());

    // A key file others can read is refused, as ssh refuses one.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let open = omtd(&store, Some(&key), &["get", "cred"]);
    assert_ne!(open.code, 0);
    assert!(open.stderr.contains("chmod 600"), "{}", open.stderr);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // Rotation: a new active key, re-seal, then the old key dropped from the file.
    ok(omtd(
        &store,
        None,
        &[
            "secrets",
            "new-key",
            "--add",
            "--out",
            key.to_str().unwrap(),
        ],
    ));
    let second = active_id(&key);
    assert_ne!(first, second);
    let rotated = ok(omtd(&store, Some(&key), &["secrets", "rotate-key"]));
    assert!(
        rotated.stdout.contains(&format!(
            "re-sealed 6 value(s) of cluster default with key {second}"
        )),
        "{}",
        rotated.stdout
    );
    let idle = ok(omtd(&store, Some(&key), &["secrets", "rotate-key"]));
    assert!(
        idle.stdout.contains("re-sealed 0 value(s)") && idle.stdout.contains("6 already"),
        "{}",
        idle.stdout
    );
    // Dropping the old key as an admin would: edit the file, keep the first entry.
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let entries = file["keys"].as_array_mut().unwrap();
    assert_eq!(entries[1]["id"], first.as_str());
    entries.truncate(1);
    std::fs::write(&key, serde_json::to_vec(&file).unwrap()).unwrap();
    shows_every_secret(&store, &key, &secrets, "lost with the old key");
    let status = ok(omtd(&store, Some(&key), &["secrets", "status"]));
    assert!(!status.stdout.contains(&first), "{}", status.stdout);
    assert_eq!(leaked(&sqlite_bytes(&db), &secrets), Vec::<&str>::new());
}

#[tokio::test]
async fn values_written_in_the_clear_are_read_and_rotate_key_seals_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("omtd.db");
    let store = format!("sqlite://{}", db.display());
    let applied = ok(omtd(&store, None, &["apply", "-f", EXAMPLE]));
    assert!(
        applied.stderr.contains("secrets are stored in the clear")
            && applied.stderr.contains("omtd secrets new-key"),
        "without a key, apply says so: {}",
        applied.stderr
    );
    assert_eq!(
        applied.stderr.matches("stored in the clear").count(),
        1,
        "once per process: {}",
        applied.stderr
    );
    let key = new_key(dir.path(), "k");
    let status = ok(omtd(&store, Some(&key), &["secrets", "status"]));
    assert!(status.stdout.contains("<plain>"), "{}", status.stdout);
    // Plain records still read with a key.
    let shown = ok(omtd(
        &store,
        Some(&key),
        &["get", "credential", "node2.omtd", "--show-secrets"],
    ));
    assert!(shown.stdout.contains("n2-Hb4mW8tK3z"), "{}", shown.stdout);
    let rotated = ok(omtd(&store, Some(&key), &["secrets", "rotate-key"]));
    assert!(
        rotated.stdout.contains("re-sealed 6 value(s)"),
        "{}",
        rotated.stdout
    );
    let raw = SqliteStore::open(&db).unwrap();
    let creds = raw
        .list("/omtd/default/spec/credential/", None)
        .await
        .unwrap();
    assert_eq!(creds.kvs.len(), 6);
    assert!(creds.kvs.iter().all(|kv| is_envelope(&kv.value)));
    let shown = ok(omtd(
        &store,
        Some(&key),
        &["get", "credential", "node2.omtd", "--show-secrets"],
    ));
    assert!(shown.stdout.contains("n2-Hb4mW8tK3z"), "{}", shown.stdout);
}

/// A child process, killed when dropped; its output goes to a log file.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(store: &str, key: Option<&Path>, args: &[&str], log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("omtd"));
        cmd.env("OMTD_STORE", store)
            .env("OMTD_CLUSTER", "sealed")
            .env_remove("OMTD_SECRETS_KEY");
        if let Some(key) = key {
            cmd.arg("--secrets-key").arg(key);
        }
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start omtd");
        Process { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), self.log());
        }
    }
}

fn operator(store: &str, key: &Path, dir: &Path) -> Process {
    Process::start(
        store,
        Some(key),
        &[
            "operator",
            "--metrics-addr",
            "127.0.0.1:0",
            "--identity",
            "sealed-op",
        ],
        dir.join("operator.log"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_snapshot_holds_no_secret() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = new_key(dir.path(), "master.key");
    let secrets = example_secrets();
    let applied = omtd(
        &etcd.url(),
        Some(&key),
        &["--cluster", "sealed", "apply", "-f", EXAMPLE],
    );
    let _ = ok(applied);
    // The operator renders the credentials into the workers' plans: those are sealed too.
    let _op = operator(&etcd.url(), &key, dir.path());
    let raw = etcd.store().await;
    let keys = Keys::for_cluster("sealed");
    // Through the key, node1's plan comes to hold its credential (the node and credentials
    // controllers write their slices after the others).
    let sealed = SealedStore::new(Arc::clone(&raw), keyfile::load(&key).unwrap());
    let node1 = keys.plans_of("node1.omtd");
    poll::within(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .until_async(|| {
            let (sealed, node1, secrets) = (&sealed, &node1, &secrets);
            async move {
                let Ok(opened) = sealed.list(node1, None).await else {
                    return false;
                };
                opened
                    .kvs
                    .iter()
                    .any(|kv| leaked(&kv.value, secrets) == ["n1-Xq7vL2pR9s"])
            }
        })
        .await
        .expect("the operator renders node1.omtd's credential into its plan");
    let plans = raw.list(&keys.plans(), None).await.unwrap();
    assert!(plans.kvs.iter().any(|kv| kv.key.ends_with(MANIFEST_KEY)));
    assert!(
        plans.kvs.iter().all(|kv| is_envelope(&kv.value)),
        "every plan value is sealed"
    );

    let snapshot = dir.path().join("snap.db");
    etcd.save_snapshot(&snapshot);
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(
        leaked(&bytes, &["executor.omtd".to_owned()]).len() == 1,
        "the snapshot holds the records"
    );
    assert_eq!(
        leaked(&bytes, &secrets),
        Vec::<&str>::new(),
        "secrets in the etcd snapshot"
    );
}

const SMALL: &str = "\
apiVersion: omtd/v1
kind: Node
metadata: {name: manager}
spec: {address: 10.0.0.1, roles: [manager]}
---
apiVersion: omtd/v1
kind: Node
metadata: {name: worker1}
spec: {address: 10.0.0.11, roles: [worker], credential: worker1}
---
apiVersion: omtd/v1
kind: Credential
metadata: {name: worker1}
spec: {principal: worker1, secret: {value: w1-sealed-S3cr3t}, use: mesos-agent}
";

fn agent(
    store: &str,
    key: Option<&Path>,
    node: &str,
    roles: &str,
    dir: &Path,
    log: &str,
) -> Process {
    Process::start(
        store,
        key,
        &[
            "agent",
            "--node",
            node,
            "--driver",
            "sim",
            "--sim-roles",
            roles,
            "--service-check",
            "1s",
            "--lease-ttl",
            "3s",
            "--sim-api",
            "127.0.0.1:0",
            "--sim-api-file",
            &dir.join(format!("{log}.api")).to_string_lossy(),
        ],
        dir.join(log),
    )
}

/// The sim host's mesos-slave credentials file, as it is now.
async fn creds_now(remote: &omtd::sim::remote::RemoteHost) -> Vec<u8> {
    remote.refresh().await.expect("the sim machine's state");
    remote
        .mirror()
        .file("/etc/mesos-slave/store/credentials.json")
        .map(|f| f.content)
        .unwrap_or_default()
}

async fn report(store: &dyn Store, keys: &Keys, node: &str) -> Option<Report> {
    let kv = store.get(&keys.report(node)).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

/// Waits until `node`'s agent holds with a message that names `key_id`; returns it.
async fn hold_naming(store: &dyn Store, keys: &Keys, node: &str, key_id: &str) -> String {
    let want = format!("sealed with key {key_id}, which this process was not given");
    hold_saying(store, keys, node, &want).await
}

/// Waits until `node`'s agent holds with a message that contains `want`; returns it.
async fn hold_saying(store: &dyn Store, keys: &Keys, node: &str, want: &str) -> String {
    let last = std::cell::RefCell::new(String::new());
    let found = poll::within(Duration::from_secs(20))
        .every(Duration::from_millis(100))
        .until_async(|| {
            let last = &last;
            async move {
                let Some(r) = report(store, keys, node).await else {
                    return false;
                };
                let hold = r.resources.iter().find(|x| x.id == HOLD_ID);
                *last.borrow_mut() = format!("{:?}", hold.map(|h| &h.message));
                !r.converged && hold.is_some_and(|h| h.message.contains(want))
            }
        })
        .await;
    let last = last.into_inner();
    assert!(
        found.is_some(),
        "{node} did not hold saying {want:?}; last hold: {last}"
    );
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_only_its_node_key_converges_and_one_without_it_holds_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("omtd.db");
    let store = format!("sqlite://{}", db.display());
    let master = new_key(dir.path(), "master.key");
    let id = active_id(&master);
    let manifest = dir.path().join("cluster.yaml");
    std::fs::write(&manifest, SMALL).unwrap();
    ok(omtd(
        &store,
        Some(&master),
        &[
            "--cluster",
            "sealed",
            "apply",
            "-f",
            manifest.to_str().unwrap(),
        ],
    ));
    let worker_key = dir.path().join("worker1.key");
    let made = ok(omtd(
        &store,
        Some(&master),
        &[
            "--cluster",
            "sealed",
            "secrets",
            "node-key",
            "worker1",
            "--out",
            worker_key.to_str().unwrap(),
        ],
    ));
    assert!(
        made.stdout
            .contains("plan key of worker1 in cluster sealed"),
        "{}",
        made.stdout
    );
    let op = operator(&store, &master, dir.path());
    let keys = Keys::for_cluster("sealed");
    let raw: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    let opened = SealedStore::new(Arc::clone(&raw), keyfile::load(&master).unwrap());

    // worker1's agent, given worker1's key only, converges on the plan now stored.
    let worker = agent(
        &store,
        Some(&worker_key),
        "worker1",
        "worker",
        dir.path(),
        "worker1.log",
    );
    let why = std::cell::RefCell::new(String::from("no report"));
    let converged = poll::within(Duration::from_secs(40))
        .every(Duration::from_millis(100))
        .until_async(|| {
            let why = &why;
            let (raw, opened, keys) = (&raw, &opened, &keys);
            async move {
                let Some(r) = report(raw.as_ref(), keys, "worker1").await else {
                    return false;
                };
                let prefix = keys.plans_of("worker1");
                let Ok(list) = opened.list(&prefix, None).await else {
                    return false;
                };
                let stored: std::collections::BTreeMap<String, String> = list
                    .kvs
                    .iter()
                    .filter_map(|kv| {
                        let c = kv.key.strip_prefix(&prefix)?;
                        let s: PlanSlice = serde_json::from_slice(&kv.value).ok()?;
                        Some((c.to_owned(), s.digest()))
                    })
                    .collect();
                *why.borrow_mut() = format!(
                    "converged {} slices {:?} stored {stored:?}; {:?}",
                    r.converged,
                    r.slices,
                    r.resources
                        .iter()
                        .filter(|x| x.state != omtd_crds::plan::ResourceState::Converged)
                        .map(|x| (&x.id, &x.message))
                        .collect::<Vec<_>>()
                );
                r.converged && !stored.is_empty() && r.slices == stored
            }
        })
        .await;
    let why = why.into_inner();
    assert!(
        converged.is_some(),
        "worker1 did not converge: {why}\n{}",
        worker.log()
    );
    // The host holds the credential it was sealed for, rendered from the opened plan.
    let api = std::fs::read_to_string(dir.path().join("worker1.log.api")).unwrap();
    let remote = omtd::sim::remote::RemoteHost::new(&api);
    let creds = creds_now(&remote).await;
    assert!(
        leaked(&creds, &["w1-sealed-S3cr3t".to_owned()]).len() == 1,
        "{}",
        String::from_utf8_lossy(&creds)
    );
    // Its plan, the secret included, is sealed in the store.
    let plans = raw.list(&keys.plans_of("worker1"), None).await.unwrap();
    assert!(plans.kvs.iter().all(|kv| is_envelope(&kv.value)));
    assert!(leaked(&sqlite_bytes(&db), &["w1-sealed-S3cr3t".to_owned()]).is_empty());

    // A slice sealed for another node, copied into worker1's plan while no operator runs to
    // write it again: worker1 holds (its host as it is) and says the value does not open.
    drop(op);
    let manager_plan = raw.list(&keys.plans_of("manager"), None).await.unwrap();
    let foreign = manager_plan
        .kvs
        .iter()
        .find(|kv| !kv.key.ends_with(MANIFEST_KEY))
        .expect("a slice of the manager's plan");
    raw.put(&keys.plan("worker1", "node"), foreign.value.clone())
        .await
        .unwrap();
    let msg = hold_saying(
        raw.as_ref(),
        &keys,
        "worker1",
        &format!("sealed with key {id}, which this process holds but which does not open it"),
    )
    .await;
    assert!(msg.contains("slice of node"), "{msg}");
    assert!(
        leaked(&creds_now(&remote).await, &["w1-sealed-S3cr3t".to_owned()]).len() == 1,
        "the host keeps its credential while holding"
    );

    // The manager's agent given worker1's key: not its plan, so it holds and names the key.
    let wrong = agent(
        &store,
        Some(&worker_key),
        "manager",
        "manager",
        dir.path(),
        "manager-wrong.log",
    );
    let msg = hold_naming(raw.as_ref(), &keys, "manager", &id).await;
    assert!(msg.contains("--secrets-key"), "{msg}");
    drop(wrong);
    // With no key at all: the same.
    raw.delete(&keys.report("manager")).await.unwrap();
    let _none = agent(
        &store,
        None,
        "manager",
        "manager",
        dir.path(),
        "manager-none.log",
    );
    hold_naming(raw.as_ref(), &keys, "manager", &id).await;
}
