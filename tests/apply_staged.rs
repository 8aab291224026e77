//! Applies of any size on a stock etcd (its default `--max-txn-ops`, 128), still all or
//! nothing for every reader: a 1,000-node spec applies through `omtd apply`; the
//! operator's reflector and the CLI's reads never see part of it; an apply cut off part
//! way stays hidden and the next apply rolls it back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use async_trait::async_trait;
use omtd::resources::apply::{execute_within, plan_apply, ApplyOptions, ExecuteError};
use omtd::resources::{Keys, Repo};
use omtd::runtime::{reflector, Metrics};
use omtd::store::{
    etcd::EtcdStore, KeyValue, Lease, LeaseId, ListResult, Result, Revision, Store, StoreError,
    Txn, TxnResult, WatchStream,
};
use omtd_crds::Kind;
use omtd_test_support::etcd::EtcdServer;
use omtd_test_support::poll;
use tokio_util::sync::CancellationToken;

const NODES: usize = 1000;

fn omtd(etcd: &EtcdServer, cluster: &str) -> Command {
    let mut cmd = Command::cargo_bin("omtd").expect("the omtd binary is built");
    cmd.env("OMTD_STORE", etcd.url())
        .env("OMTD_CLUSTER", cluster)
        .env_remove("OMTD_SECRETS_KEY");
    cmd
}

async fn connect(etcd: &EtcdServer) -> Arc<dyn Store> {
    Arc::new(
        EtcdStore::connect(&etcd.endpoints())
            .await
            .expect("etcd answers"),
    )
}

/// Nodes the reflector's cache holds now.
fn cached_nodes(cache: &reflector::Cache) -> usize {
    cache.snapshot().of_kind(Kind::Node).count()
}

/// Objects (of every kind) the reflector's cache holds now.
fn cached_objects(cache: &reflector::Cache) -> usize {
    cache.snapshot().objects.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_node_spec_applies_on_a_stock_etcd_and_readers_see_all_or_nothing() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let keys = Keys::for_cluster("big");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.yaml");
    let manifests = omtd::bench::cluster::manifests(NODES);
    let objects = omtd::bench::cluster::parse(&manifests).unwrap().len();
    assert!(
        objects > 1900,
        "{objects} objects: more than a stock etcd takes at once"
    );
    std::fs::write(&spec, manifests).unwrap();

    // The operator's view: a reflector, checked at every batch it announces.
    let shutdown = CancellationToken::new();
    let (cache, task) = reflector::spawn(
        Arc::clone(&store),
        keys.clone(),
        Arc::new(Metrics::new()),
        shutdown.clone(),
    );
    let mut changes = cache.subscribe();
    let seen_counts = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let watcher = {
        let cache = Arc::clone(&cache);
        let seen = Arc::clone(&seen_counts);
        tokio::spawn(async move {
            while changes.recv().await.is_ok() {
                let n = cached_objects(&cache);
                seen.lock().unwrap().insert(n);
                if cached_nodes(&cache) == NODES {
                    return;
                }
            }
        })
    };
    // The CLI's view: `Repo::snapshot` polled throughout.
    let done = Arc::new(AtomicBool::new(false));
    let partial_reads = Arc::new(AtomicUsize::new(0));
    let poller = {
        let repo = Repo::new(Arc::clone(&store), keys.clone());
        let (done, partial) = (Arc::clone(&done), Arc::clone(&partial_reads));
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let n = repo.snapshot().await.unwrap().of_kind(Kind::Node).count();
                if n != 0 && n != NODES {
                    partial.fetch_add(1, Ordering::SeqCst);
                }
                reads += 1;
            }
            reads
        })
    };

    let started = std::time::Instant::now();
    let out = omtd(&etcd, "big")
        .args(["apply", "-f"])
        .arg(&spec)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    assert!(
        out.status.success(),
        "apply of {NODES} nodes on a stock etcd failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(" created")).count(),
        objects,
        "every node, credential and the cluster are created:\n{stdout}"
    );
    let reads = poller.await.unwrap();
    println!("applied {objects} objects in {took:?}; {reads} CLI reads during it");
    assert_eq!(
        partial_reads.load(Ordering::SeqCst),
        0,
        "a CLI read saw part of the apply"
    );

    tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the reflector sees the whole apply")
        .unwrap();
    let seen = seen_counts.lock().unwrap().clone();
    assert!(
        seen.iter().all(|n| *n == 0 || *n == objects),
        "the reflector announced a partial apply: object counts {seen:?}"
    );
    // Nothing of the staging is left behind.
    assert!(store
        .list(&keys.applies(), None)
        .await
        .unwrap()
        .kvs
        .is_empty());

    // Applying the same spec again changes nothing and says so.
    let again = omtd(&etcd, "big")
        .args(["apply", "-f"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stdout).contains(" created"));
    shutdown.cancel();
    let _ = task.await;
}

/// A real etcd that stops taking transactions after `allow` of them: the applier's host
/// lost the store (or died) part way through.
struct CutOff {
    inner: Arc<dyn Store>,
    allow: AtomicUsize,
}

#[async_trait]
impl Store for CutOff {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        self.inner.list(prefix, revision).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let left = self.allow.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Unavailable("cut off by the test".into()));
        }
        self.allow.store(left - 1, Ordering::SeqCst);
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        self.inner.watch(prefix, from).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.inner.keep_alive(id).await
    }
    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.inner.revoke_lease(id).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_cut_off_part_way_stays_hidden_and_the_next_apply_rolls_it_back() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let keys = Keys::for_cluster("cut");
    let dir = tempfile::tempdir().unwrap();
    // A small cluster first, in one transaction.
    let small = dir.path().join("small.yaml");
    std::fs::write(&small, omtd::bench::cluster::manifests(10)).unwrap();
    assert!(omtd(&etcd, "cut")
        .args(["apply", "-f"])
        .arg(&small)
        .output()
        .unwrap()
        .status
        .success());
    let repo = Repo::new(Arc::clone(&store), keys.clone());
    let before = repo.snapshot().await.unwrap();
    assert_eq!(before.of_kind(Kind::Node).count(), 10);

    // A 300-node apply whose applier loses the store after its lock and two chunks.
    let cut: Arc<dyn Store> = Arc::new(CutOff {
        inner: Arc::clone(&store),
        allow: AtomicUsize::new(3),
    });
    let cut_repo = Repo::new(Arc::clone(&cut), keys.clone());
    let objects = omtd::bench::cluster::parse(&omtd::bench::cluster::manifests(300)).unwrap();
    let opts = ApplyOptions {
        source: "test".into(),
        prune: false,
    };
    let plan = plan_apply(&before, objects, &opts);
    let err = execute_within(&cut_repo, &plan, 128).await.unwrap_err();
    assert!(matches!(err, ExecuteError::Repo(_)), "{err}");
    let stored_nodes = store.list(&keys.specs(), None).await.unwrap().kvs.len();
    assert!(
        stored_nodes > 19 + 200,
        "two chunks were written ({stored_nodes} specs)"
    );

    // Every reader sees the state before it: the CLI, `omtd get`, a fresh reflector.
    let seen = repo.snapshot().await.unwrap();
    assert_eq!(
        seen.of_kind(Kind::Node).count(),
        10,
        "the CLI's read shows part of a cut-off apply"
    );
    let get = omtd(&etcd, "cut").args(["get", "nodes"]).output().unwrap();
    let listed = String::from_utf8_lossy(&get.stdout);
    assert!(
        !listed.contains("node200.omtd") && listed.contains("node5.omtd"),
        "{listed}"
    );
    let shutdown = CancellationToken::new();
    let (cache, task) = reflector::spawn(
        Arc::clone(&store),
        keys.clone(),
        Arc::new(Metrics::new()),
        shutdown.clone(),
    );
    poll::within(Duration::from_secs(10))
        .expect("the reflector lists", || cache.snapshot().revision > 0)
        .await;
    assert_eq!(
        cached_nodes(&cache),
        10,
        "the operator's cache shows part of a cut-off apply"
    );

    // `omtd status` says why the cluster waits, and what to do.
    let status = omtd(&etcd, "cut").arg("status").output().unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(
        said.contains("apply: interrupted") && said.contains("rolls it back"),
        "{said}"
    );

    // The next apply, through the CLI, rolls it back first and says so; then applies.
    let next = dir.path().join("next.yaml");
    std::fs::write(&next, omtd::bench::cluster::manifests(12)).unwrap();
    let out = omtd(&etcd, "cut")
        .args(["apply", "-f"])
        .arg(&next)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rolled back an interrupted apply"),
        "{stderr}"
    );
    let after = repo.snapshot().await.unwrap();
    let names: BTreeSet<String> = after
        .of_kind(Kind::Node)
        .map(|s| s.object.name().to_owned())
        .collect();
    assert_eq!(names.len(), 12, "exactly the next apply's nodes: {names:?}");
    assert!(store
        .list(&keys.applies(), None)
        .await
        .unwrap()
        .kvs
        .is_empty());
    poll::within(Duration::from_secs(10))
        .expect("the reflector sees the next apply", || {
            cached_nodes(&cache) == 12
        })
        .await;
    shutdown.cancel();
    let _ = task.await;
}
