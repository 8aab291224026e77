//! A PV removal's pvmove progress reaches `reports/<node>` while the move runs: an agent on
//! a sim host (whose pvmove advances in timed steps) against a real etcd; the test watches
//! the report key and sees the percent climb, rate-limited, then the PV gone. A move killed
//! halfway resumes in a restarted agent from where it stopped.

use std::time::{Duration, Instant};

use futures::StreamExt;
use omtd::agent::drivers::sim::SimHost;
use omtd::agent::Agent;
use omtd_crds::plan::{
    Ensure, LogicalVolumeSpec, PhysicalVolumeSpec, PlanSlice, Report, ResourceState,
};
use omtd_test_support::agent::{with_timeout, Rig, Running};

const GIB: u64 = 1024 * 1024 * 1024;
const NODE: &str = "nfs1";
const PV: &str = "pv:/dev/vdb";

fn pv(device: &str, ensure: Ensure) -> PhysicalVolumeSpec {
    PhysicalVolumeSpec {
        device: device.into(),
        volume_group: "nfsstore".into(),
        ensure,
    }
}

fn lv() -> LogicalVolumeSpec {
    LogicalVolumeSpec {
        volume_group: "nfsstore".into(),
        name: "nfs_logical".into(),
        grow_to_fill: false,
    }
}

/// A sim host whose LV fills /dev/vdb, with /dev/vdc joined empty: room to move vdb away.
fn host() -> SimHost {
    let sim = SimHost::new();
    sim.add_device("/dev/vdb", GIB);
    sim.add_device("/dev/vdc", GIB);
    let mut h = sim.host();
    let none = &mut |_: u8| {};
    h.storage
        .ensure_pv(&pv("/dev/vdb", Ensure::Present), true, none)
        .expect("vdb joins");
    h.storage.ensure_lv(&lv()).expect("lv on vdb");
    h.storage
        .ensure_pv(&pv("/dev/vdc", Ensure::Present), true, none)
        .expect("vdc joins");
    assert_eq!(sim.pv_extents("/dev/vdb"), Some((256, 0)));
    sim
}

/// The runbook's "reduce disk space": vdb leaves the group.
fn slice() -> PlanSlice {
    PlanSlice {
        controller: "nfs".into(),
        fencing_token: 1,
        physical_volumes: vec![
            pv("/dev/vdb", Ensure::Absent),
            pv("/dev/vdc", Ensure::Present),
        ],
        logical_volumes: vec![lv()],
        ..Default::default()
    }
}

fn start(rig: &Rig, sim: &SimHost) -> Running {
    let mut config = rig.config(NODE);
    config.watch_files = false;
    config.progress_interval = Duration::from_millis(300);
    let agent = Agent::new(rig.store.clone(), sim.host(), config).with_signal(sim.drift_signal());
    Running::start(rig.store.clone(), agent)
}

/// One `reports/<node>` write as seen by a watcher.
struct Seen {
    at: Instant,
    state: Option<ResourceState>,
    percent: Option<u8>,
}

/// The revision to watch from so that nothing written after this call is missed.
async fn next_rev(rig: &Rig) -> i64 {
    rig.store.current_revision().await.expect("revision") + 1
}

/// Watch the report key from `from` until `until` holds for a report; every write seen,
/// in order.
async fn watch_report(rig: &Rig, from: i64, until: impl Fn(&Report) -> bool) -> Vec<Seen> {
    let mut stream = rig
        .store
        .watch(&rig.keys.report(NODE), from)
        .await
        .expect("watch the report");
    let mut seen = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = ev.expect("watch event");
        let Ok(r) = serde_json::from_slice::<Report>(&ev.kv.value) else {
            continue;
        };
        let pv = r.resources.iter().find(|x| x.id == PV);
        seen.push(Seen {
            at: Instant::now(),
            state: pv.map(|x| x.state),
            percent: pv.and_then(|x| x.percent),
        });
        if until(&r) {
            break;
        }
    }
    seen
}

fn pv_state(r: &Report) -> Option<ResourceState> {
    r.resources.iter().find(|x| x.id == PV).map(|x| x.state)
}

fn progress(seen: &[Seen]) -> Vec<u8> {
    seen.iter()
        .filter(|s| s.state == Some(ResourceState::Progressing))
        .filter_map(|s| s.percent)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pvmove_progress_is_reported_while_the_move_runs() {
    with_timeout(Duration::from_secs(60), async {
        let rig = Rig::new().await;
        let sim = host();
        // 20 steps of 100 ms: a 2 s move, reported at most every 300 ms.
        sim.set_pvmove_pace(20, Duration::from_millis(100));
        rig.put_slice(NODE, &slice()).await;
        let from = next_rev(&rig).await;
        let agent = start(&rig, &sim);
        let watcher = watch_report(&rig, from, |r| {
            pv_state(r) == Some(ResourceState::Converged)
        });
        let seen = watcher.await;
        let percents = progress(&seen);
        println!("pvmove progress reported: {percents:?}");
        assert!(
            percents.len() >= 3,
            "expected several progress reports during a 2 s move: {percents:?}"
        );
        assert!(
            percents.windows(2).all(|w| w[0] < w[1]),
            "progress must increase: {percents:?}"
        );
        assert!(percents.iter().all(|p| *p <= 100));
        // Rate limit: progress writes are at least the interval apart (a little slack for
        // the watch's delivery jitter).
        let times: Vec<Instant> = seen
            .iter()
            .filter(|s| s.state == Some(ResourceState::Progressing))
            .map(|s| s.at)
            .collect();
        for w in times.windows(2) {
            let gap = w[1].duration_since(w[0]);
            assert!(gap >= Duration::from_millis(200), "writes {gap:?} apart");
        }
        // The move finished: the PV is gone, its data on vdc.
        assert_eq!(sim.pv_extents("/dev/vdb"), None);
        assert_eq!(sim.pv_extents("/dev/vdc"), Some((256, 0)));
        let last = rig.report(NODE).await.expect("a report");
        let pv = last.resources.iter().find(|x| x.id == PV).expect("pv row");
        assert_eq!(pv.percent, None, "no stale percent once done");
        agent.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_halfway_resumes_after_a_restart() {
    with_timeout(Duration::from_secs(60), async {
        let rig = Rig::new().await;
        let sim = host();
        sim.set_pvmove_pace(10, Duration::from_millis(100));
        sim.interrupt_pvmove_at(40);
        rig.put_slice(NODE, &slice()).await;
        let from = next_rev(&rig).await;
        let first = start(&rig, &sim);
        let watcher = watch_report(&rig, from, |r| pv_state(r) == Some(ResourceState::Failed));
        let seen = watcher.await;
        // The crash: the agent goes away with the move half done.
        first.stop().await;
        let before = progress(&seen);
        println!("before the kill: {before:?}");
        // 4 steps of 26 extents moved (104 of 256, 40%), the rest still on vdb.
        assert_eq!(sim.pv_extents("/dev/vdb"), Some((256, 104)));

        let from = next_rev(&rig).await;
        let second = start(&rig, &sim);
        let watcher = watch_report(&rig, from, |r| {
            pv_state(r) == Some(ResourceState::Converged)
        });
        let seen = watcher.await;
        let after = progress(&seen);
        println!("after the restart: {after:?}");
        assert!(!after.is_empty(), "the resumed move reports progress");
        assert!(
            after[0] > 40,
            "the move resumed where it stopped, not from 0: {after:?}"
        );
        assert!(after.windows(2).all(|w| w[0] < w[1]), "{after:?}");
        assert_eq!(sim.pv_extents("/dev/vdb"), None);
        assert_eq!(sim.pv_extents("/dev/vdc"), Some((256, 0)));
        second.stop().await;
    })
    .await;
}
