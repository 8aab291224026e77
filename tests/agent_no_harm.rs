//! First, do no harm (issue 21): the agent on real files under a temporary `--root`, against
//! a real etcd.
//!
//! - An agent that finds no plan at all for its node (a mistyped `--cluster`, plan keys
//!   deleted) keeps `/etc/exports` and `/etc/fstab` byte for byte and says it is holding.
//! - A restarted agent removes the temporary files an interrupted write left beside the
//!   files it manages, and nothing else.

use std::fs;
use std::time::Duration;

use omtd::agent::merge::HOLD_ID;
use omtd::agent::{Agent, AgentConfig};
use omtd::resources::Keys;
use omtd::store::Store;
use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice, Report, ResourceState};
use omtd_test_support::agent::{file, read, with_timeout, Rig, Running};

const NODE: &str = "exe.lab";
const FSTAB_FOREIGN: &str = "# /etc/fstab\nUUID=0b4c-root / ext4 errors=remount-ro 0 1\n";
const EXPORTS_FOREIGN: &str = "# /etc/exports\n/srv/other 10.0.0.99(ro,sync)\n";

fn slice() -> PlanSlice {
    PlanSlice {
        controller: "node".into(),
        fencing_token: 1,
        files: vec![file("/etc/mesos/zk", "zk://10.0.0.5:2181/mesos", 0o644)],
        mounts: vec![MountSpec {
            source: "10.0.0.5:/srv/executor/database".into(),
            target: "/srv/executor/database".into(),
            fstype: "nfs".into(),
            options: "defaults".into(),
            dump: 0,
            pass: 0,
            ensure: Ensure::Present,
        }],
        exports: vec![ExportSpec {
            path: "/srv/executor/database".into(),
            client: "10.0.0.21".into(),
            options: "rw,sync,no_subtree_check,no_root_squash".into(),
        }],
        ..Default::default()
    }
}

/// Short periods, so that many full and light passes run while the test watches.
fn fast(mut config: AgentConfig) -> AgentConfig {
    config.resync = Duration::from_millis(300);
    config.service_check = Duration::from_millis(100);
    config
}

fn reload_cmd(rig: &Rig) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("echo reload >> {}", rig.path("/reloads").display()),
    ]
}

/// A root converged on `slice()`: returns the exports and fstab bytes it ended with.
async fn converged(rig: &Rig) -> (Vec<u8>, Vec<u8>) {
    fs::create_dir_all(rig.path("/etc")).unwrap();
    fs::write(rig.path("/etc/fstab"), FSTAB_FOREIGN).unwrap();
    fs::write(rig.path("/etc/exports"), EXPORTS_FOREIGN).unwrap();
    let agent = Agent::new(
        rig.store.clone(),
        rig.linux_host(Some(reload_cmd(rig))),
        fast(rig.config(NODE)),
    );
    let running = Running::start(rig.store.clone(), agent);
    rig.put_slice(NODE, &slice()).await;
    rig.wait_converged(NODE).await;
    running.stop().await;
    let exports = read(&rig.path("/etc/exports"));
    let fstab = read(&rig.path("/etc/fstab"));
    let e = String::from_utf8_lossy(&exports);
    assert!(e.contains("/srv/executor/database 10.0.0.21("), "{e}");
    let f = String::from_utf8_lossy(&fstab);
    assert!(
        f.contains("10.0.0.5:/srv/executor/database /srv/executor/database nfs"),
        "{f}"
    );
    (exports, fstab)
}

async fn report_at(store: &dyn Store, keys: &Keys) -> Option<Report> {
    let kv = store.get(&keys.report(NODE)).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

/// Wait for the report under `keys` to name the hold; panics with the last one.
async fn wait_hold(store: &dyn Store, keys: &Keys, cluster: &str) -> Report {
    let want = format!("no plan for {NODE} in cluster {cluster}: holding the host as it is");
    wait_hold_saying(store, keys, &want).await
}

/// Wait for the report under `keys` to hold with exactly `want`; panics with the last one.
async fn wait_hold_saying(store: &dyn Store, keys: &Keys, want: &str) -> Report {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = report_at(store, keys).await;
        if let Some(r) = &r {
            let hold = r.resources.iter().find(|x| x.id == HOLD_ID);
            if hold.is_some_and(|h| h.state == ResourceState::Refused && h.message == want) {
                return r.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no hold reported; last: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Watch for `secs` seconds that exports and fstab keep exactly these bytes.
async fn unchanged_for(rig: &Rig, secs: u64, exports: &[u8], fstab: &[u8]) {
    for _ in 0..secs * 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            String::from_utf8_lossy(&read(&rig.path("/etc/exports"))),
            String::from_utf8_lossy(exports),
            "/etc/exports changed while holding"
        );
        assert_eq!(
            String::from_utf8_lossy(&read(&rig.path("/etc/fstab"))),
            String::from_utf8_lossy(fstab),
            "/etc/fstab changed while holding"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_cluster_holds_exports_and_fstab_byte_for_byte() {
    with_timeout(Duration::from_secs(90), async {
        let rig = Rig::new().await;
        let (exports, fstab) = converged(&rig).await;
        // Restarted with `--cluster typo`: no slice there at all.
        let typo = Keys::for_cluster("typo");
        let agent = Agent::new(
            rig.store.clone(),
            rig.linux_host(Some(reload_cmd(&rig))),
            fast(AgentConfig::new(NODE, typo.clone())),
        );
        let running = Running::start(rig.store.clone(), agent);
        unchanged_for(&rig, 6, &exports, &fstab).await;
        let report = wait_hold(rig.store.as_ref(), &typo, "typo").await;
        assert!(!report.converged, "a holding agent is not converged");
        assert!(
            running
                .stats
                .passes
                .load(std::sync::atomic::Ordering::Relaxed)
                > 5
        );
        running.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_keys_deleted_under_a_running_agent_hold_the_host() {
    with_timeout(Duration::from_secs(90), async {
        let rig = Rig::new().await;
        let (exports, fstab) = converged(&rig).await;
        let agent = Agent::new(
            rig.store.clone(),
            rig.linux_host(Some(reload_cmd(&rig))),
            fast(rig.config(NODE)),
        );
        let running = Running::start(rig.store.clone(), agent);
        rig.wait_converged(NODE).await;
        // Someone deletes one slice by hand: the manifest still names it.
        let slice_key = rig.keys.plan(NODE, "node");
        let kept = rig.store.get(&slice_key).await.unwrap().expect("slice");
        rig.store.delete(&slice_key).await.expect("delete slice");
        unchanged_for(&rig, 4, &exports, &fstab).await;
        let want = format!(
            "the plan for {NODE} does not match its manifest (the slice of node named by \
             the manifest is missing): holding the host as it is"
        );
        wait_hold_saying(rig.store.as_ref(), &rig.keys, &want).await;
        // Then every plan key goes (or the store is emptied).
        rig.store.put(&slice_key, kept.value).await.unwrap();
        rig.wait_converged(NODE).await;
        for kv in rig
            .store
            .list(&rig.keys.plans_of(NODE), None)
            .await
            .unwrap()
            .kvs
        {
            rig.store.delete(&kv.key).await.expect("delete plan key");
        }
        unchanged_for(&rig, 4, &exports, &fstab).await;
        wait_hold(rig.store.as_ref(), &rig.keys, "test").await;
        // A complete plan that no longer lists the export still removes it.
        let mut without = slice();
        without.exports.clear();
        without.fencing_token = 2;
        rig.put_slice(NODE, &without).await;
        rig.wait_converged(NODE).await;
        let e = String::from_utf8_lossy(&read(&rig.path("/etc/exports"))).into_owned();
        assert!(!e.contains("/srv/executor/database"), "{e}");
        assert!(e.starts_with(EXPORTS_FOREIGN), "{e}");
        running.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_removes_its_stale_temp_files_only() {
    with_timeout(Duration::from_secs(60), async {
        let rig = Rig::new().await;
        let dir = rig.path("/etc/mesos");
        fs::create_dir_all(&dir).unwrap();
        // What `kill -9` mid-write leaves: a temp of an earlier agent's pid.
        let stale = dir.join(".zk.omtd-4242-7");
        fs::write(&stale, "zk://old").unwrap();
        let unrelated = [
            dir.join(".zk.swp"),
            dir.join(".zk.omtd-notes"),
            dir.join(".other"),
        ];
        for p in &unrelated {
            fs::write(p, "keep").unwrap();
        }
        let agent = Agent::new(
            rig.store.clone(),
            rig.linux_host(Some(reload_cmd(&rig))),
            fast(rig.config(NODE)),
        );
        let running = Running::start(rig.store.clone(), agent);
        rig.put_slice(NODE, &slice()).await;
        rig.wait_converged(NODE).await;
        assert!(!stale.exists(), "stale temp file left behind");
        for p in &unrelated {
            assert_eq!(read(p), b"keep", "{} touched", p.display());
        }
        assert_eq!(
            read(&rig.path("/etc/mesos/zk")),
            b"zk://10.0.0.5:2181/mesos"
        );
        running.stop().await;
    })
    .await;
}
