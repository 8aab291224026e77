//! `omtd demo` end to end: the binary sets up the runbook's cluster on sim hosts, plays
//! the classic failures and must end with every step repaired and exit 0.

use std::time::Duration;

use assert_cmd::Command;

#[test]
fn the_demo_repairs_every_classic_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::cargo_bin("omtd")
        .expect("the omtd binary")
        .current_dir(dir.path())
        .env_remove("OMTD_STORE")
        .env("NO_COLOR", "1")
        .args(["demo", "--timeout", "30s"])
        .timeout(Duration::from_secs(90))
        .output()
        .expect("run omtd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for line in [
        "initial convergence",
        "stray mesos-master on a worker",
        "trailing newline in Chronos's secret",
        "NFS server stopped",
        "new node node4.omtd",
        "disk space added",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no summary line {line:?} in:\n{stdout}"));
        assert!(row.contains(" yes "), "not repaired: {row}");
    }
    assert!(stdout.contains("all 6 steps converged"), "{stdout}");
    // Every secret of the example cluster stays out of the output.
    for secret in [
        "n1-Xq7vL2pR9s",
        "ch-Pw2eR7uT4v",
        "gx-Lk9aS3dF6g",
        "n4-Demo7kQ2wE9r",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
    // The temporary store is not left in the working directory.
    assert!(!dir.path().join("omtd.db").exists());
}

#[test]
fn the_demo_refuses_a_store_that_already_holds_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/cluster.yaml");
    Command::cargo_bin("omtd")
        .expect("the omtd binary")
        .args(["--store", &store, "apply", "-f", manifest])
        .assert()
        .success();
    let out = Command::cargo_bin("omtd")
        .expect("the omtd binary")
        .args(["--store", &store, "demo"])
        .timeout(Duration::from_secs(30))
        .output()
        .expect("run omtd demo");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds records"));
}

#[test]
fn bench_converges_a_small_cluster_and_prints_its_figures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("perf.md");
    let out = Command::cargo_bin("omtd")
        .expect("the omtd binary")
        .current_dir(dir.path())
        .env_remove("OMTD_STORE")
        .args(["bench", "--nodes", "8", "--changes", "3", "--idle", "1s"])
        .arg("--record")
        .arg(&record)
        .timeout(Duration::from_secs(90))
        .output()
        .expect("run omtd bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| 8 | sqlite |"), "{stdout}");
    let recorded = std::fs::read_to_string(&record).expect("the record");
    assert!(recorded.contains("Machine: ") && recorded.contains("| 8 | sqlite |"));
}
