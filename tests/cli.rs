//! The `omtd` CLI as a user runs it: the binary, a real store (a SQLite file, and a real
//! etcd), the runbook's example cluster.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use omtd_test_support::etcd::EtcdServer;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/cluster.yaml");

/// A store for one test, and the omtd commands against it.
struct Env {
    url: String,
    dir: tempfile::TempDir,
    _etcd: Option<EtcdServer>,
}

impl Env {
    fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("omtd.db").display());
        Env {
            url,
            dir,
            _etcd: None,
        }
    }

    fn etcd() -> Env {
        let etcd = EtcdServer::start();
        Env {
            url: etcd.url(),
            dir: tempfile::tempdir().unwrap(),
            _etcd: Some(etcd),
        }
    }

    fn omtd(&self, args: &[&str]) -> Run {
        self.omtd_env(args, &[])
    }

    fn omtd_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let out = Command::cargo_bin("omtd")
            .unwrap()
            .envs(vars.iter().copied())
            .env("OMTD_STORE", &self.url)
            .env_remove("OMTD_CLUSTER")
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A copy of the example cluster in the test's folder, to edit.
    fn example_copy(&self) -> PathBuf {
        let path = self.dir.path().join("cluster.yaml");
        std::fs::copy(EXAMPLE, &path).unwrap();
        path
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Everything in the store, secrets included, to prove a failed command changed nothing.
    fn dump(&self) -> String {
        let r = self.omtd(&["get", "all", "-o", "json", "--show-secrets"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The issue's walk-through: apply, list, re-apply, diff, edit, diff again.
fn apply_list_reapply_diff(env: &Env) {
    let file = env.example_copy();
    let r = env.omtd(&["apply", "-f", p(&file)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 17, "{}", r.stdout);
    assert!(
        r.stdout.lines().all(|l| l.ends_with(" created")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("node/node1.omtd created"));

    let r = env.omtd(&["get", "nodes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let names: Vec<&str> = r
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "editor.omtd",
            "executor.omtd",
            "manager.omtd",
            "monitor.omtd",
            "node1.omtd",
            "node2.omtd",
            "node3.omtd",
            "registry.omtd"
        ]
    );

    let r = env.omtd(&["apply", "-f", p(&file)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.lines().all(|l| l.ends_with(" unchanged")),
        "{}",
        r.stdout
    );
    let r = env.omtd(&["diff", "-f", p(&file)]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");

    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("address: 10.0.0.22", "address: 10.0.0.42");
    std::fs::write(&file, edited).unwrap();
    let r = env.omtd(&["diff", "-f", p(&file)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("-  address: 10.0.0.22\n+  address: 10.0.0.42"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("node/node2.omtd"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("node/node1.omtd"),
        "only the edited node differs:\n{}",
        r.stdout
    );

    let r = env.omtd(&["apply", "-f", p(&file)]);
    assert!(
        r.stdout.contains("node/node2.omtd configured"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("configured").count(), 1, "{}", r.stdout);
    let r = env.omtd(&["get", "no", "node2.omtd", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["spec"]["address"], "10.0.0.42");
    assert_eq!(v["metadata"]["generation"], 2);
}

#[test]
fn sqlite_apply_list_reapply_diff() {
    apply_list_reapply_diff(&Env::sqlite());
}

#[test]
fn etcd_apply_list_reapply_diff() {
    apply_list_reapply_diff(&Env::etcd());
}

/// One bad manifest per validation rule: each is refused with the field named, exit code
/// non-zero, and the store exactly as before.
fn bad_inputs_change_nothing(env: &Env) {
    let file = env.example_copy();
    assert_eq!(env.omtd(&["apply", "-f", p(&file)]).code, 0);
    let before = env.dump();
    let example = std::fs::read_to_string(&file).unwrap();
    let node = |name: &str, spec: &str| {
        format!("apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {spec}\n")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown field", node("node4.omtd", "{adress: 10.0.0.24, roles: [worker], credential: node1.omtd}"), "spec.adress"),
        ("bad address", node("node4.omtd", "{address: 10.0.0.300, roles: [editor]}"), "spec.address"),
        ("bad name", node("Node_4", "{address: 10.0.0.24, roles: [editor]}"), "metadata.name"),
        (
            "duplicate principal",
            "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node4.omtd}\nspec: {principal: node1.omtd, secret: {value: x}, use: mesos-agent}\n".into(),
            "spec.principal",
        ),
        ("worker without credential", node("node4.omtd", "{address: 10.0.0.24, roles: [worker]}"), "spec.credential"),
        ("missing reference", node("node4.omtd", "{address: 10.0.0.24, roles: [worker], credential: nobody}"), "spec.credential"),
        (
            "empty secret",
            "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node1.omtd}\nspec: {principal: node1.omtd, secret: {value: ''}, use: mesos-agent}\n".into(),
            "spec.secret.value",
        ),
        (
            "secret with newline",
            "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node1.omtd}\nspec: {principal: node1.omtd, secret: {value: \"topsecret\\n\"}, use: mesos-agent}\n".into(),
            "spec.secret.value",
        ),
        (
            "relative path",
            "apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: extra}\nspec: {node: executor.omtd, device: dev/vdd}\n".into(),
            "spec.device",
        ),
        (
            "dot-dot path",
            "apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: extra}\nspec: {node: executor.omtd, device: /dev/vdd, filesystem: ext4, mountPoint: /srv/../etc}\n".into(),
            "spec.mountPoint",
        ),
        ("two managers", node("manager2.omtd", "{address: 10.0.0.50, roles: [manager]}"), "managers"),
        ("unknown kind", "apiVersion: omtd/v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n".into(), "kind"),
        ("yaml syntax", "apiVersion: omtd/v1\nkind: [Node\n".into(), "document 2"),
    ];
    for (what, bad, words) in cases {
        // Good objects next to the bad one: all or nothing means none of them lands either.
        let good = "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: editor2.omtd}\nspec: {address: 10.0.0.60, roles: []}\n";
        let path = env.write("bad.yaml", &format!("{good}---\n{bad}"));
        let r = env.omtd(&["apply", "-f", p(&path)]);
        assert_ne!(r.code, 0, "{what}: accepted\n{r:?}");
        assert!(
            r.stderr.contains(words),
            "{what}: stderr does not name {words:?}:\n{}",
            r.stderr
        );
        assert!(r.stderr.contains("error"), "{what}: {}", r.stderr);
        assert!(
            !r.stderr.contains("topsecret"),
            "{what}: secret leaked:\n{}",
            r.stderr
        );
        assert_eq!(env.dump(), before, "{what}: the store changed");
        // The same through a directory of manifests, with the example beside it.
        let dir = env
            .dir
            .path()
            .join(format!("set-{}", what.replace(' ', "-")));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a-cluster.yaml"), &example).unwrap();
        std::fs::write(dir.join("b-bad.yaml"), bad).unwrap();
        let r = env.omtd(&["apply", "-f", p(&dir)]);
        assert_ne!(r.code, 0, "{what} (dir): accepted\n{r:?}");
        assert_eq!(env.dump(), before, "{what} (dir): the store changed");
    }
}

#[test]
fn sqlite_bad_inputs_change_nothing() {
    bad_inputs_change_nothing(&Env::sqlite());
}

#[test]
fn etcd_bad_inputs_change_nothing() {
    bad_inputs_change_nothing(&Env::etcd());
}

#[test]
fn dry_run_writes_nothing_and_unused_credential_warns() {
    let env = Env::sqlite();
    let extra = env.write(
        "extra.yaml",
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: spare}\nspec: {principal: spare.omtd, secret: {value: s}, use: mesos-agent}\n",
    );
    let r = env.omtd(&["apply", "-f", EXAMPLE, "-f", p(&extra), "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("node/node1.omtd created (dry run)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("warning: credential/spare"),
        "{}",
        r.stderr
    );
    let r = env.omtd(&["get", "nodes"]);
    assert!(r.stderr.contains("No nodes found"), "{r:?}");
}

#[test]
fn prune_deletes_only_what_the_same_source_created() {
    let env = Env::sqlite();
    let node = |n: &str, ip: &str| {
        format!("apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: {n}}}\nspec: {{address: {ip}, roles: []}}\n")
    };
    let a = env.write(
        "a/nodes.yaml",
        &format!("{}---\n{}", node("a1", "10.1.0.1"), node("a2", "10.1.0.2")),
    );
    let b = env.write("b/nodes.yaml", &node("b1", "10.2.0.1"));
    assert_eq!(env.omtd(&["apply", "-f", p(&a)]).code, 0);
    assert_eq!(env.omtd(&["apply", "-f", p(&b)]).code, 0);
    std::fs::write(&a, node("a1", "10.1.0.1")).unwrap();
    let r = env.omtd(&["diff", "-f", p(&a), "--prune"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("node/a2 (pruned)"), "{}", r.stdout);
    let r = env.omtd(&["apply", "-f", p(&a), "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "node/a1 unchanged\nnode/a2 pruned\n");
    let r = env.omtd(&["get", "nodes"]);
    let names: Vec<&str> = r
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["a1", "b1"], "b1 belongs to another source");
    // A pipeline whose checkout moves names its source explicitly.
    let r = env.omtd(&["apply", "-f", p(&b), "--source", "gitops/prod"]);
    assert!(r.stdout.contains("node/b1 configured"), "{r:?}");
    let empty = env.write("c/none.yaml", &node("c1", "10.3.0.1"));
    let r = env.omtd(&[
        "apply",
        "-f",
        p(&empty),
        "--source",
        "gitops/prod",
        "--prune",
    ]);
    assert!(r.stdout.contains("node/b1 pruned"), "{r:?}");
}

#[test]
fn secrets_from_file_and_env_are_resolved_and_redacted() {
    let env = Env::sqlite();
    env.write("secrets/node1", "file-secret-1\n");
    let manifest = env.write(
        "creds.yaml",
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: c1}\nspec: {principal: p1, secret: {fromFile: secrets/node1}, use: mesos-agent}\n---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: c2}\nspec: {principal: p2, secret: {fromEnv: OMTD_TEST_SECRET}, use: mesos-agent}\n",
    );
    let secret_env = [("OMTD_TEST_SECRET", "env-secret-2")];
    let r = env.omtd_env(&["apply", "-f", p(&manifest)], &secret_env);
    assert_eq!(r.code, 0, "{r:?}");
    for args in [
        &["get", "cred"][..],
        &["get", "cred", "-o", "yaml"],
        &["get", "cred", "c1", "-o", "json"],
        &["describe", "cred", "c1"],
    ] {
        let r = env.omtd(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stdout.contains("<redacted>"), "{args:?}: {}", r.stdout);
        assert!(
            !r.stdout.contains("file-secret") && !r.stdout.contains("env-secret"),
            "{args:?} leaked: {}",
            r.stdout
        );
    }
    let r = env.omtd(&["get", "cred", "-o", "json", "--show-secrets"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // The file's trailing newline is dropped: Mesos reads secrets byte for byte.
    assert_eq!(
        v[0]["spec"]["secret"],
        serde_json::json!({"value": "file-secret-1"})
    );
    assert_eq!(
        v[1]["spec"]["secret"],
        serde_json::json!({"value": "env-secret-2"})
    );

    // An unset variable is an error naming it, and nothing is written.
    let before = env.dump();
    let m2 = env.write(
        "creds2.yaml",
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: c3}\nspec: {principal: p3, secret: {fromEnv: OMTD_TEST_UNSET_VAR}, use: mesos-agent}\n",
    );
    let r = env.omtd(&["apply", "-f", p(&m2)]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("OMTD_TEST_UNSET_VAR"), "{}", r.stderr);
    assert_eq!(env.dump(), before);

    // A changed secret shows in diff as changed, without either value.
    env.write("secrets/node1", "file-secret-NEW\n");
    let r = env.omtd_env(&["diff", "-f", p(&manifest)], &secret_env);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stdout.matches("credential/").count(),
        2,
        "only c1 changed: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("value: <redacted> (changed)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("file-secret"), "{}", r.stdout);
}

#[test]
fn delete_refuses_to_break_references() {
    let env = Env::sqlite();
    assert_eq!(env.omtd(&["apply", "-f", EXAMPLE]).code, 0);
    let r = env.omtd(&["delete", "credential", "node1.omtd"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("node/node1.omtd") && r.stderr.contains("spec.credential"),
        "{}",
        r.stderr
    );
    // A node is retired by the operator, not deleted at once: the record stays, marked.
    let r = env.omtd(&["delete", "node", "node1.omtd"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "node/node1.omtd marked for deletion (omtd drains and retires it; see omtd describe node node1.omtd)\n"
        ),
        "{r:?}"
    );
    let r = env.omtd(&["describe", "node", "node1.omtd"]);
    assert!(r.stdout.contains("omtd/deleting=true"), "{}", r.stdout);
    // Still there, so its credential is still referenced.
    let r = env.omtd(&["delete", "cred", "node1.omtd"]);
    assert_ne!(r.code, 0);
    // --force keeps the immediate delete, for a record with nothing to retire (--now is
    // now the retire-and-kill-tasks path).
    let r = env.omtd(&["delete", "node", "node1.omtd", "--force"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "node/node1.omtd deleted\n"),
        "{r:?}"
    );
    let r = env.omtd(&["delete", "cred", "node1.omtd"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = env.omtd(&["delete", "node", "node1.omtd"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    assert_eq!(
        env.omtd(&["delete", "node", "node1.omtd", "--ignore-not-found"])
            .code,
        0
    );
}

#[test]
fn kind_names_and_errors_are_kubectl_like() {
    let env = Env::sqlite();
    assert_eq!(env.omtd(&["apply", "-f", EXAMPLE]).code, 0);
    let nodes = env.omtd(&["get", "nodes"]).stdout;
    assert_eq!(env.omtd(&["get", "node"]).stdout, nodes);
    assert_eq!(env.omtd(&["get", "no"]).stdout, nodes);
    assert_eq!(env.omtd(&["get", "vol"]).stdout.lines().count(), 3);
    let r = env.omtd(&["get", "pods"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("unknown kind \"pods\""), "{}", r.stderr);
    let r = env.omtd(&["get", "node", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    let r = env.omtd(&["describe", "node", "node1.omtd"]);
    assert!(
        r.stdout.contains("Name:              node1.omtd")
            && r.stdout.contains("credential: node1.omtd"),
        "{}",
        r.stdout
    );
    let r = env.omtd(&["describe", "cred", "node1.omtd"]);
    assert!(
        r.stdout.contains("Used By:           node/node1.omtd"),
        "{}",
        r.stdout
    );
    // The same facts for scripts, the secret still redacted.
    let r = env.omtd(&["describe", "cred", "node1.omtd", "-o", "json"]);
    let described: serde_json::Value = serde_json::from_str(&r.stdout).expect("describe -o json");
    assert_eq!(described["usedBy"], serde_json::json!(["node/node1.omtd"]));
    assert_eq!(described["object"]["metadata"]["name"], "node1.omtd");
    assert_eq!(described["object"]["spec"]["secret"]["value"], "<redacted>");
    assert!(described["events"].is_array(), "{described}");
    assert!(!r.stdout.contains("n1-Xq7vL2pR9s"), "{}", r.stdout);
    // `get -o yaml` output applies back unchanged when it keeps its source.
    let yaml = env.write(
        "all.yaml",
        &env.omtd(&["get", "all", "-o", "yaml", "--show-secrets"])
            .stdout,
    );
    let src = std::fs::canonicalize(EXAMPLE).unwrap();
    let r = env.omtd(&["apply", "-f", p(&yaml), "--source", p(&src)]);
    assert!(
        r.stdout.lines().all(|l| l.ends_with("unchanged")),
        "{}",
        r.stdout
    );
}

#[test]
fn diff_exits_2_on_error_and_bad_store_urls_are_explained() {
    let env = Env::sqlite();
    let bad = env.write(
        "bad.yaml",
        "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: x}\nspec: {address: 1.2.3.999}\n",
    );
    assert_eq!(env.omtd(&["diff", "-f", p(&bad)]).code, 2);
    assert_eq!(env.omtd(&["diff", "-f", "/nonexistent/file.yaml"]).code, 2);
    let r = env.omtd(&["--store", "mysql://x", "get", "nodes"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("sqlite://PATH"), "{}", r.stderr);
    // Nothing listens on port 1: a clear error, quickly, not a hang.
    let t = std::time::Instant::now();
    let r = env.omtd(&["--store", "etcd://127.0.0.1:1", "get", "nodes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("127.0.0.1:1"), "{}", r.stderr);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
}

/// `omtd plan NODE`: the controllers' merged plan, computed from the store alone, with
/// owners, exact contents and secrets redacted unless asked.
#[test]
fn plan_shows_a_nodes_merged_configuration() {
    let env = Env::sqlite();
    assert_eq!(env.omtd(&["apply", "-f", EXAMPLE]).code, 0);
    let r = env.omtd(&["plan", "node1.omtd"]);
    assert_eq!(r.code, 0, "{r:?}");
    for expected in [
        "Plan for node/node1.omtd",
        "  /etc/mesos/zk [node]\n    mode 0644\n    | zk://10.0.0.12:2181/mesos\n    \\ No newline at end of file\n",
        "  /etc/mesos-slave/store/credentials.json [credentials]\n    mode 0600, secret\n    <redacted>\n",
        "mesos-master",
        "leader-guard",
        "10.0.0.10:/srv/executor/database on /srv/executor/database type nfs",
        "cadvisor image",
    ] {
        assert!(r.stdout.contains(expected), "{expected:?} not in:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("n1-Xq7vL2pR9s"), "{}", r.stdout);
    let shown = env.omtd(&["plan", "node1.omtd", "--show-secrets"]);
    assert!(
        shown
            .stdout
            .contains(r#"| {"principal":"node1.omtd","secret":"n1-Xq7vL2pR9s"}"#),
        "{}",
        shown.stdout
    );
    let yaml = env.omtd(&["plan", "executor.omtd", "-o", "yaml"]);
    assert_eq!(yaml.code, 0, "{yaml:?}");
    let v: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    let exports = v["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 4, "{v}");
    assert!(exports.iter().all(|e| e["controller"] == "storage"));
    let job_conf = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/srv/executor/config/job_conf.xml")
        .unwrap();
    assert_eq!(job_conf["content"], "<redacted>");
    assert_eq!(job_conf["mode"], "0600");
    let json = env.omtd(&["plan", "manager.omtd", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(!json.stdout.contains("ch-Pw2eR7uT4v"));
    assert!(v["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "mesos-master" && s["controller"] == "leader-guard"));
    let r = env.omtd(&["plan", "nope.omtd"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("node/nope.omtd not found"),
        "{}",
        r.stderr
    );
}

/// A command that only reads, on a SQLite path with no store, names the path and the fix and
/// leaves no empty store behind; a writer creates the store private to its owner.
#[test]
fn read_commands_refuse_a_missing_sqlite_store_and_writers_create_it_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::sqlite();
    let path = env.dir.path().join("omtd.db");
    let reads: [&[&str]; 8] = [
        &["get", "nodes"],
        &["describe", "node", "node1.omtd"],
        &["status"],
        &["events"],
        &["plan", "node1.omtd"],
        &["diff", "-f", EXAMPLE],
        &["epoch"],
        &["delete", "node", "node3.omtd"],
    ];
    for args in reads {
        let r = env.omtd(args);
        assert_ne!(r.code, 0, "{args:?}: {r:?}");
        for says in [
            path.to_str().unwrap(),
            "does not exist",
            "omtd apply",
            "--store",
        ] {
            assert!(
                r.stderr.contains(says),
                "{args:?}: {says:?} not in {}",
                r.stderr
            );
        }
        assert!(!path.exists(), "{args:?} created the store");
    }
    assert_eq!(env.omtd(&["apply", "-f", EXAMPLE]).code, 0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(env.omtd(&["get", "nodes"]).code, 0);
}

/// The runbook's "turn use_remote_user to False ... don't forget to turn it back" as an
/// override that ends by itself: recorded on the editor with its end time, shown by
/// `omtd status`, ended by `--off`; a duration past a day or none at all is refused and
/// changes nothing.
#[test]
fn debug_editor_ui_access_is_recorded_with_its_end_and_shown() {
    let env = Env::sqlite();
    assert_eq!(env.omtd(&["apply", "-f", EXAMPLE]).code, 0);
    let before = env.dump();
    for bad in [&["--for", "48h"][..], &[][..]] {
        let mut args = vec!["debug", "editor", "--ui-access"];
        args.extend_from_slice(bad);
        let r = env.omtd(&args);
        assert_ne!(r.code, 0, "{args:?}: {r:?}");
        assert_eq!(env.dump(), before, "{args:?} changed nothing");
    }
    let r = env.omtd(&["debug", "editor", "--ui-access", "--for", "1h"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("node/editor.omtd: Galaxy's UI open")
            && r.stdout.contains("turns use_remote_user back to True"),
        "{}",
        r.stdout
    );
    let r = env.omtd(&["describe", "node", "editor.omtd"]);
    assert!(
        r.stdout.contains("omtd/debug-ui-access-until="),
        "{}",
        r.stdout
    );
    let r = env.omtd(&["status"]);
    assert!(
        r.stdout.contains("DEBUG OVERRIDE")
            && r.stdout
                .contains("Galaxy UI access (use_remote_user = False)")
            && r.stdout.contains("in force"),
        "{}",
        r.stdout
    );
    let r = env.omtd(&["debug", "editor", "--ui-access", "--off"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "node/editor.omtd: debug override off (use_remote_user = True)\n"
        ),
        "{r:?}"
    );
    let r = env.omtd(&["status"]);
    assert!(!r.stdout.contains("DEBUG OVERRIDE"), "{}", r.stdout);
}

/// kubectl's ways to pick records: a label selector, several names, KIND/NAME, several
/// kinds, `-o name`; delete takes the same and deletes what it picks together.
fn select_and_name_records(env: &Env) {
    assert_eq!(env.omtd(&["apply", "-f", EXAMPLE]).code, 0);
    let names = |args: &[&str]| {
        let r = env.omtd(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        r.stdout.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&["get", "nodes", "-l", "tier=galaxy", "-o", "name"]),
        ["node/editor.omtd", "node/executor.omtd"]
    );
    // `!=` and `notin` also pick the nodes without the label (registry, monitor here).
    let not_mesos = names(&["get", "nodes", "-l", "tier!=mesos", "-o", "name"]);
    assert_eq!(
        not_mesos,
        [
            "node/editor.omtd",
            "node/executor.omtd",
            "node/monitor.omtd",
            "node/registry.omtd"
        ]
    );
    assert_eq!(
        names(&[
            "get",
            "nodes",
            "-l",
            "tier notin (galaxy),!tier",
            "-o",
            "name"
        ]),
        ["node/monitor.omtd", "node/registry.omtd"]
    );
    assert_eq!(
        names(&["get", "no", "-l", "tier in (mesos)", "-o", "name"]).len(),
        4
    );
    // A table narrowed by the selector.
    let mut table = names(&["get", "nodes", "-l", "tier=galaxy"]);
    table.retain(|l| !l.trim().is_empty());
    assert_eq!(table.len(), 3, "{table:?}");
    assert!(table[1].starts_with("editor.omtd"), "{table:?}");
    // Several names, KIND/NAME, several kinds.
    assert_eq!(
        names(&["get", "node", "node2.omtd", "node1.omtd", "-o", "name"]),
        ["node/node2.omtd", "node/node1.omtd"]
    );
    assert_eq!(
        names(&["get", "node/node1.omtd", "cred/node1.omtd", "-o", "name"]),
        ["node/node1.omtd", "credential/node1.omtd"]
    );
    let both = names(&["get", "cl,vol", "-o", "name"]);
    assert_eq!(both[0], "cluster/omtd");
    assert!(
        both[1..].iter().all(|n| n.starts_with("volume/")),
        "{both:?}"
    );
    // One name: its JSON is the object; two: a list.
    let one: serde_json::Value =
        serde_json::from_str(&names(&["get", "node/node1.omtd", "-o", "json"]).join("\n")).unwrap();
    assert!(one.is_object(), "{one}");
    let two: serde_json::Value = serde_json::from_str(
        &names(&["get", "node", "node1.omtd", "node2.omtd", "-o", "json"]).join("\n"),
    )
    .unwrap();
    assert_eq!(two.as_array().map(Vec::len), Some(2), "{two}");
    // Nothing matched: said on stderr, exit 0 (as kubectl).
    let r = env.omtd(&["get", "nodes", "-l", "tier=nope"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    assert!(
        r.stderr.contains("No nodes matching tier=nope found."),
        "{r:?}"
    );

    // Bad input names the fix and changes nothing.
    let before = env.dump();
    for (args, says) in [
        (
            &["get", "nodes", "-l", "tier in (galaxy"][..],
            "closing parenthesis",
        ),
        (
            &["delete", "nodes", "-l", "tier galaxy"],
            "operator is missing",
        ),
        (&["get", "node/a", "b"], "write every one as KIND/NAME"),
        (&["get", "node", "a", "-l", "tier=galaxy"], "without names"),
        (&["delete", "nodes"], "nothing was deleted"),
        (
            &["get", "node", "node1.omtd", "nope", "gone"],
            "node/nope, node/gone not found",
        ),
        // One missing name: the others are not deleted either.
        (
            &["delete", "node", "node1.omtd", "nope", "--force"],
            "node/nope not found (omtd get nodes lists them); nothing was deleted",
        ),
        // The credential alone would leave node3 without it: refused as a whole.
        (
            &["delete", "cred/node3.omtd", "node/node2.omtd", "--force"],
            "spec.credential",
        ),
    ] {
        let r = env.omtd(args);
        assert_ne!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    assert_eq!(env.dump(), before, "a refused command changed the store");

    // A worker and its credential together, in one change.
    let r = env.omtd(&["delete", "node/node3.omtd", "cred/node3.omtd", "--force"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "node/node3.omtd deleted\ncredential/node3.omtd deleted\n"
        ),
        "{r:?}"
    );
    // Retiring by selector: each picked node marked, the rest untouched.
    let r = env.omtd(&["delete", "nodes", "-l", "tier=mesos,!role", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert!(
        r.stdout.lines().all(|l| l.ends_with("(dry run)")),
        "{}",
        r.stdout
    );
    assert_eq!(
        names(&["get", "nodes", "-l", "tier=mesos", "-o", "name"]).len(),
        3,
        "a dry run deletes nothing"
    );
    let r = env.omtd(&["delete", "nodes", "-l", "tier=mesos"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout.matches("marked for deletion").count(),
        3,
        "{}",
        r.stdout
    );
    for n in ["manager.omtd", "node1.omtd", "node2.omtd"] {
        let d = env.omtd(&["describe", "node", n]).stdout;
        assert!(d.contains("omtd/deleting=true"), "{n}: {d}");
    }
    let d = env.omtd(&["describe", "node", "executor.omtd"]).stdout;
    assert!(!d.contains("omtd/deleting"), "{d}");
    let r = env.omtd(&["delete", "nodes", "-l", "tier=nope"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "no nodes matching tier=nope")
    );
}

#[test]
fn select_and_name_records_on_sqlite() {
    select_and_name_records(&Env::sqlite());
}

#[test]
fn select_and_name_records_on_etcd() {
    select_and_name_records(&Env::etcd());
}

/// What the operator would write: a status for `node`, computed from `generation`.
fn put_status(env: &Env, node: &str, generation: i64, ready: &str, reason: &str) {
    let status = serde_json::json!({
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": ready, "reason": reason}],
    });
    let url: omtd::store::StoreUrl = env.url.parse().unwrap();
    let key = omtd::resources::Keys::for_cluster("default").status(omtd_crds::Kind::Node, node);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = omtd::store::open(&url).await.unwrap();
        store
            .put(&key, serde_json::to_vec(&status).unwrap())
            .await
            .unwrap();
    });
}

/// `omtd wait`: a condition of the spec's current generation, several records, a
/// selector, a change arriving while it waits, and `--for=delete`.
fn wait_for_conditions_and_deletes(env: &Env) {
    let file = env.example_copy();
    assert_eq!(env.omtd(&["apply", "-f", p(&file)]).code, 0);
    let ready = |args: &[&str]| {
        let mut v = vec!["wait", "--for=condition=Ready", "--timeout", "1s"];
        v.extend_from_slice(args);
        env.omtd(&v)
    };
    let r = ready(&["node/node1.omtd", "node/node2.omtd"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("node/node1.omtd: no status yet"),
        "{}",
        r.stderr
    );
    put_status(env, "node1.omtd", 1, "True", "Ready");
    put_status(env, "node2.omtd", 1, "False", "NotConverged");
    let r = ready(&["node", "node1.omtd", "node2.omtd"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "node/node1.omtd condition Ready=True met\n");
    assert!(
        r.stderr
            .contains("node/node2.omtd: Ready is False (NotConverged)"),
        "{}",
        r.stderr
    );
    let r = env.omtd(&["wait", "--for=condition=Ready=False", "node/node2.omtd"]);
    assert_eq!(r.code, 0, "{r:?}");
    // A selector picks the waited records.
    let r = ready(&["nodes", "-l", "tier=galaxy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("node/editor.omtd") && r.stderr.contains("node/executor.omtd"),
        "{}",
        r.stderr
    );
    // A new spec: the old Ready does not count until the operator has seen it.
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("10.0.0.21", "10.0.0.31");
    std::fs::write(&file, edited).unwrap();
    assert_eq!(env.omtd(&["apply", "-f", p(&file)]).code, 0);
    let r = ready(&["node/node1.omtd"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("status is of generation 1, the spec is at 2"),
        "{}",
        r.stderr
    );
    // Waiting while the operator catches up.
    let waiting = std::process::Command::new(assert_cmd::cargo::cargo_bin("omtd"))
        .env("OMTD_STORE", &env.url)
        .env_remove("OMTD_CLUSTER")
        .args([
            "wait",
            "--for=condition=Ready",
            "node/node1.omtd",
            "--timeout",
            "30s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let started = std::time::Instant::now();
    put_status(env, "node1.omtd", 2, "True", "Ready");
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the wait ended {:?} after the status",
        started.elapsed()
    );
    // --for=delete.
    let r = env.omtd(&["wait", "--for=delete", "node/node1.omtd", "--timeout", "1s"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("still in the store"), "{}", r.stderr);
    assert_eq!(
        env.omtd(&["delete", "node", "node3.omtd", "--force"]).code,
        0
    );
    let r = env.omtd(&["wait", "--for=delete", "node/node3.omtd"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "node/node3.omtd deleted\n"),
        "{r:?}"
    );
    // Bad input names the fix.
    let r = env.omtd(&["wait", "--for=Ready", "node/node1.omtd"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--for=condition=Ready"), "{}", r.stderr);
}

#[test]
fn wait_for_conditions_and_deletes_on_sqlite() {
    wait_for_conditions_and_deletes(&Env::sqlite());
}

#[test]
fn wait_for_conditions_and_deletes_on_etcd() {
    wait_for_conditions_and_deletes(&Env::etcd());
}
