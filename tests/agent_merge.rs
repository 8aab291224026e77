//! Merging through the store: a deposed leader's slice (lower fencing token) is ignored, two
//! owners of one file are reported as a conflict and neither is applied, and the report is
//! written only when it changes — counted with a watch on `reports/`.

use omtd::agent::merge::HOLD_ID;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use omtd::agent::Agent;
use omtd_crds::plan::{PlanSlice, ResourceState};
use omtd_test_support::agent::{file, read, state_of, with_timeout, Rig, Running};

fn slice(controller: &str, token: i64, files: Vec<omtd_crds::plan::FileSpec>) -> PlanSlice {
    PlanSlice {
        controller: controller.into(),
        fencing_token: token,
        files,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_conflicts_and_writes_only_on_change() {
    with_timeout(Duration::from_secs(60), async {
        let rig = Rig::new().await;
        // Count every write to reports/ with a watch.
        let writes = Arc::new(AtomicU64::new(0));
        let mut stream = rig
            .store
            .watch(&format!("{}reports/", rig.keys.prefix()), 0)
            .await
            .unwrap();
        let w2 = Arc::clone(&writes);
        let counter = tokio::spawn(async move {
            while let Some(Ok(_)) = stream.next().await {
                w2.fetch_add(1, Ordering::SeqCst);
            }
        });

        let mut config = rig.config("m1");
        // Full passes every 300 ms: each one finds nothing to change and must write nothing.
        config.resync = Duration::from_millis(300);
        config.service_check = Duration::from_millis(100);
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), config);
        let running = Running::start(rig.store.clone(), agent);

        rig.put_slice("m1", &slice("node", 5, vec![file("/a", "node-v1", 0o644)]))
            .await;
        rig.put_slice(
            "m1",
            &slice("storage", 5, vec![file("/b", "storage-v1", 0o644)]),
        )
        .await;
        rig.wait_report("m1", Duration::from_secs(10), |r| {
            r.converged && r.applied.len() == 2
        })
        .await;
        assert_eq!(read(&rig.path("/a")), b"node-v1");

        // Idle: many passes, no write.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = writes.load(Ordering::SeqCst);
        let passes = running.stats.passes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_passes = running.stats.passes.load(Ordering::SeqCst) - passes;
        assert!(idle_passes >= 10, "passes ran: {idle_passes}");
        assert_eq!(
            writes.load(Ordering::SeqCst),
            before,
            "{idle_passes} passes on a converged host wrote the report"
        );
        println!("{idle_passes} idle passes in 2 s, 0 report writes");

        // A deposed leader (token 3) rewrites node's slice and the manifest: ignored, the
        // agent holds and says so, the file is kept.
        rig.put_slice("m1", &slice("node", 3, vec![file("/a", "deposed", 0o644)]))
            .await;
        let r = rig
            .wait_report("m1", Duration::from_secs(5), |r| {
                state_of(r, HOLD_ID) == Some(ResourceState::Refused)
            })
            .await;
        assert!(!r.converged);
        assert_eq!(r.applied.get("node"), Some(&5), "still the accepted slice");
        assert_eq!(read(&rig.path("/a")), b"node-v1");

        // The new leader's slice is taken.
        rig.put_slice("m1", &slice("node", 6, vec![file("/a", "node-v2", 0o644)]))
            .await;
        let r = rig
            .wait_report("m1", Duration::from_secs(5), |r| {
                r.applied.get("node") == Some(&6)
                    && state_of(r, "file:/a") == Some(ResourceState::Converged)
            })
            .await;
        assert_eq!(read(&rig.path("/a")), b"node-v2");
        // storage's token-5 slice, unchanged, is vouched for by the new leader's manifest.
        assert_eq!(state_of(&r, "file:/b"), Some(ResourceState::Converged));
        assert_eq!(state_of(&r, HOLD_ID), None);
        rig.put_slice(
            "m1",
            &slice("storage", 6, vec![file("/b", "storage-v1", 0o644)]),
        )
        .await;
        rig.wait_converged("m1").await;

        // Two owners of /b: a conflict, nothing applied, the file left as it is.
        rig.put_slice(
            "m1",
            &slice("credentials", 6, vec![file("/b", "creds", 0o600)]),
        )
        .await;
        let r = rig
            .wait_report("m1", Duration::from_secs(5), |r| {
                state_of(r, "file:/b") == Some(ResourceState::Conflict)
            })
            .await;
        let msg = &r
            .resources
            .iter()
            .find(|x| x.id == "file:/b")
            .unwrap()
            .message;
        assert!(msg.contains("credentials and storage"), "{msg}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(read(&rig.path("/b")), b"storage-v1");

        // Each change above wrote the report a bounded number of times, and idling again
        // writes nothing.
        let total = writes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(writes.load(Ordering::SeqCst), total);
        assert_eq!(running.stats.report_writes.load(Ordering::SeqCst), total);
        println!("report writes in the whole test: {total}");

        // A restarted agent finds its last report and writes nothing on a converged host.
        running.stop().await;
        let mut config = rig.config("m1");
        config.resync = Duration::from_millis(300);
        let again = Running::start(
            rig.store.clone(),
            Agent::new(rig.store.clone(), rig.linux_host(None), config),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(again.stats.passes.load(Ordering::SeqCst) >= 2);
        assert_eq!(
            writes.load(Ordering::SeqCst),
            total,
            "restart rewrote the report"
        );
        again.stop().await;
        counter.abort();
    })
    .await;
}
