//! Drift repair on the real driver (issue #11 item 6): the `omtd agent` binary, linux
//! driver under a temp `--root`, on a converged host against a real etcd; managed files
//! edited by hand one at a time, each timed from the edit to its planned bytes being back.
//!
//! The agent repairs one resource at most `RepairPolicy::default().burst` times per window
//! (a fight or a loop is backed off, not repaired a hundred times a second), so the edits
//! go round as many managed files as that needs, each edited at most `burst` times: every
//! edit meets a repair the limiter allows, and none waits for a backoff.
//!
//! The edit is made in place (`open(O_TRUNC)`, write, close: what `echo x > file` does).
//! The test side watches the file's inode, which the agent's atomic write (temp file and
//! rename) replaces, with `stat` every 0.5 ms; `stat` raises no inotify event, so polling
//! does not feed the agent's watch. Its content is read to confirm (and every 10 ms in any
//! case), so the figure is never a rename of other bytes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use omtd::agent::repair_limit::RepairPolicy;
use omtd::bench::latency::Latencies;
use omtd_crds::plan::PlanSlice;

use super::idle::{self, Driver};
use super::{file, Rig};

/// What a run measured.
#[derive(Debug)]
pub struct DriftRepair {
    pub edits: usize,
    /// How many managed files the edits went round.
    pub files: usize,
    pub latencies: Latencies,
    /// Edits not repaired within the limit (each counted, not timed).
    pub unrepaired: usize,
}

/// How long one repair may take before it counts as not repaired.
const LIMIT: Duration = Duration::from_secs(5);

/// The worker-like plan of the idle bench (files, a secret, a mount, an export, a SysV
/// service) and as many more flag files as `edits` need.
fn plan(root: &Path, edits: usize) -> (PlanSlice, Vec<(String, String)>) {
    let mut slice = idle::plan(root, Driver::Linux);
    let burst = RepairPolicy::default().burst.max(1);
    let files = edits.div_ceil(burst).max(1);
    let mut edited = Vec::new();
    for i in 0..files {
        let path = format!("/etc/mesos-slave/drift{i}");
        let content = format!("planned-{i}");
        slice.files.push(file(&path, &content, 0o644));
        edited.push((path, content));
    }
    (slice, edited)
}

fn inode(p: &Path) -> Option<u64> {
    fs::symlink_metadata(p).ok().map(|m| m.ino())
}

/// Edits `path` by hand and waits until it holds `planned` again.
fn edit_and_wait(path: &Path, planned: &[u8], k: usize) -> Option<Duration> {
    let before = inode(path);
    let t = Instant::now();
    if fs::write(path, format!("edited by hand {k}\n")).is_err() {
        return None;
    }
    let mut last_read = Instant::now();
    while t.elapsed() < LIMIT {
        let replaced = inode(path) != before;
        if replaced || last_read.elapsed() >= Duration::from_millis(10) {
            if fs::read(path).is_ok_and(|b| b == planned) {
                return Some(t.elapsed());
            }
            last_read = Instant::now();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

/// Runs the `bin` agent on a converged host and times `edits` hand edits.
pub async fn run(bin: &str, edits: usize) -> DriftRepair {
    let rig = Rig::new().await;
    let root = rig.root();
    let node = "drift1";
    let (slice, edited) = plan(&root, edits);
    rig.put_slice(node, &slice).await;
    let child = Command::new(bin)
        .args(["--store", &rig.etcd.url(), "--cluster", "test", "agent"])
        .args(["--node", node, "--root"])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start omtd agent");
    let agent = super::idle::AgentProcess(child);
    rig.wait_converged(node).await;
    // The first report and the watches in place.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let paths: Vec<(PathBuf, Vec<u8>)> = edited
        .iter()
        .map(|(p, c)| (rig.path(p), c.clone().into_bytes()))
        .collect();
    let files = paths.len();
    let (latencies, unrepaired) = tokio::task::spawn_blocking(move || {
        let mut latencies = Latencies::default();
        let mut unrepaired = 0;
        for k in 0..edits {
            let (path, planned) = &paths[k % paths.len()];
            match edit_and_wait(path, planned, k) {
                Some(took) => latencies.push(took),
                None => unrepaired += 1,
            }
            // One edit at a time: the next starts on a quiet host.
            std::thread::sleep(Duration::from_millis(5));
        }
        (latencies, unrepaired)
    })
    .await
    .expect("the edit loop");
    drop(agent);
    let _ = Command::new(root.join("etc/init.d/idled"))
        .arg("stop")
        .status();
    DriftRepair {
        edits,
        files,
        latencies,
        unrepaired,
    }
}
