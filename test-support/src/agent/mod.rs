//! Helpers for the agent's integration tests: a real etcd, an agent running in-process on a
//! linux host confined to a temporary root, plan slices in, reports out.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use omtd::agent::drivers::{linux, Host};
use omtd::agent::{Agent, AgentConfig, AgentError, Stats};
use omtd::resources::Keys;
use omtd::store::{Op, Store, Txn};
use omtd_crds::plan::{Ensure, FileSpec, PlanSlice, Report, ResourceState};
use omtd_crds::plan_manifest::{PlanManifest, MANIFEST_KEY};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::etcd::EtcdServer;

pub mod apache;
pub mod drift_repair;
pub mod fleet;
pub mod idle;

pub struct Rig {
    pub etcd: EtcdServer,
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub root: tempfile::TempDir,
}

impl Rig {
    pub async fn new() -> Rig {
        let etcd = EtcdServer::start();
        let store = etcd.store().await;
        Rig {
            etcd,
            store,
            keys: Keys::for_cluster("test"),
            root: tempfile::tempdir().expect("temp root"),
        }
    }

    /// The root directory (canonical: inotify reports canonical paths).
    pub fn root(&self) -> PathBuf {
        self.root.path().canonicalize().expect("canonical root")
    }

    /// A plan path's place under the root.
    pub fn path(&self, plan_path: &str) -> PathBuf {
        self.root().join(plan_path.trim_start_matches('/'))
    }

    pub fn linux_host(&self, exports_reload: Option<Vec<String>>) -> Host {
        linux::host(&linux::LinuxOptions {
            root: Some(self.root()),
            exports_reload,
        })
        .expect("linux host")
    }

    pub fn config(&self, node: &str) -> AgentConfig {
        AgentConfig::new(node, self.keys.clone())
    }

    /// Writes `slice` as the operator would: with the node's plan manifest naming it (and
    /// every slice put before), in one transaction.
    pub async fn put_slice(&self, node: &str, slice: &PlanSlice) {
        let manifest_key = self.keys.plan(node, MANIFEST_KEY);
        let mut manifest: PlanManifest = match self.store.get(&manifest_key).await.expect("get") {
            Some(kv) => serde_json::from_slice(&kv.value).expect("manifest"),
            None => PlanManifest::default(),
        };
        // The writer's own token, as the runtime's writer does: a deposed leader's manifest
        // carries its lower token.
        manifest.fencing_token = slice.fencing_token;
        manifest.controllers.insert(slice.controller.clone());
        manifest.decide(&slice.controller, Some(slice));
        let txn = Txn::new()
            .then(Op::put(
                self.keys.plan(node, &slice.controller),
                serde_json::to_vec(slice).expect("encode slice"),
            ))
            .then(Op::put(
                manifest_key,
                serde_json::to_vec(&manifest).expect("encode manifest"),
            ));
        assert!(self.store.txn(txn).await.expect("put slice").succeeded);
    }

    pub async fn report(&self, node: &str) -> Option<Report> {
        let kv = self.store.get(&self.keys.report(node)).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Wait until the report satisfies `f`; panics with the last report after `timeout`.
    pub async fn wait_report(
        &self,
        node: &str,
        timeout: Duration,
        f: impl Fn(&Report) -> bool,
    ) -> Report {
        crate::poll::within(timeout)
            .every(Duration::from_millis(20))
            .until_ok(|| async {
                match self.report(node).await {
                    Some(r) if f(&r) => Ok(r),
                    last => Err(last),
                }
            })
            .await
            .map(|(r, _)| r)
            .unwrap_or_else(|r| panic!("report never matched within {timeout:?}; last: {r:#?}"))
    }

    pub async fn wait_converged(&self, node: &str) -> Report {
        self.wait_report(node, Duration::from_secs(15), |r| r.converged)
            .await
    }
}

pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
    pub stats: Arc<Stats>,
}

impl Running {
    pub fn start(store: Arc<dyn Store>, agent: Agent) -> Running {
        let (tx, rx) = oneshot::channel();
        let stats = Arc::new(Stats::default());
        let s2 = Arc::clone(&stats);
        let _ = store;
        let task = tokio::spawn(agent.run_with_stats(s2, async move {
            let _ = rx.await;
        }));
        Running {
            stop: Some(tx),
            task,
            stats,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

pub fn file(path: &str, content: &str, mode: u32) -> FileSpec {
    FileSpec {
        path: path.into(),
        ensure: Ensure::Present,
        content: content.into(),
        mode,
        owner: None,
        group: None,
        secret: false,
        validate: None,
        render: None,
    }
}

pub fn state_of(r: &Report, id: &str) -> Option<ResourceState> {
    r.resources.iter().find(|x| x.id == id).map(|x| x.state)
}

pub async fn with_timeout<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .expect("test timed out")
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}
