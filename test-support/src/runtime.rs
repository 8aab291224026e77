//! The runtime and operator tests' rig: stores of both backends, a probe controller that
//! records what it saw, and a raw HTTP GET.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use omtd::runtime::{Changed, Controller, Outcome, ReconcileError, Snapshot, WorkKey};
use omtd::store::{etcd::EtcdStore, sqlite::SqliteStore, Store};
use tokio::time::Instant;

/// A store of the named backend; the guard keeps its server or file alive.
pub enum Guard {
    Etcd(Box<crate::etcd::EtcdServer>),
    Sqlite(tempfile::TempDir),
}

pub async fn store(backend: &str) -> (Arc<dyn Store>, Guard) {
    match backend {
        "etcd" => {
            let server = crate::etcd::EtcdServer::start();
            let store = EtcdStore::connect(&server.endpoints())
                .await
                .expect("connect to the test etcd");
            (Arc::new(store), Guard::Etcd(Box::new(server)))
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(&dir.path().join("omtd.db")).expect("open sqlite");
            (Arc::new(store), Guard::Sqlite(dir))
        }
    }
}

/// One reconcile as the probe saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub key: String,
    /// The value of `<prefix>test/<key>` at that reconcile (None: absent).
    pub value: Option<String>,
    pub at: Instant,
}

/// Reconciles keys `test/<name>` under the cluster prefix: records every reconcile, fails
/// for keys in `failing`, and sleeps `work` per reconcile to model a real reconcile's cost.
pub struct Probe {
    pub prefix: String,
    pub seen: Mutex<Vec<Seen>>,
    pub failing: Mutex<HashSet<String>>,
    pub work: Duration,
}

impl Probe {
    pub fn new(prefix: &str) -> Arc<Probe> {
        Arc::new(Probe {
            prefix: prefix.to_owned(),
            seen: Mutex::new(Vec::new()),
            failing: Mutex::new(HashSet::new()),
            work: Duration::ZERO,
        })
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn seen_of(&self, key: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.key == key).collect()
    }
}

impl Controller for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn all_keys(&self, snapshot: &Snapshot) -> Vec<WorkKey> {
        let test = format!("{}test/", self.prefix);
        snapshot
            .raw
            .keys()
            .filter_map(|k| k.strip_prefix(&test).map(str::to_owned))
            .collect()
    }

    fn keys_for(&self, changed: &Changed, _snapshot: &Snapshot) -> Vec<WorkKey> {
        match changed {
            Changed::Other(path) => path
                .strip_prefix("test/")
                .map(|k| vec![k.to_owned()])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn reconcile(
        &self,
        key: &str,
        snapshot: &Snapshot,
        _now: SystemTime,
    ) -> Result<Outcome, ReconcileError> {
        let value = snapshot
            .raw
            .get(&format!("{}test/{key}", self.prefix))
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        self.seen.lock().unwrap().push(Seen {
            key: key.to_owned(),
            value,
            at: Instant::now(),
        });
        if !self.work.is_zero() {
            std::thread::sleep(self.work);
        }
        if self.failing.lock().unwrap().contains(key) {
            return Err(ReconcileError::Other(
                format!("{key} is set to fail").into(),
            ));
        }
        Ok(Outcome::default())
    }
}

/// `GET path` on 127.0.0.1:port: (status code, body); `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The value of one sample line of a metrics exposition (`name{labels} value`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
