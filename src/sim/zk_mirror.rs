//! The sim world's Mesos leader election written into a real ZooKeeper, so an `omtd
//! operator` process reads it with its real ZooKeeper probe (`crate::probes::zookeeper`)
//! as it would on the cluster: one `json.info_<sequence>` znode per contending master
//! under the ensemble's path, with the master's MasterInfo as JSON.
//!
//! The sim decides the election (see [`super::election`]); this only copies it. Entries are
//! created in the sim's sequence order and the sim's sequences only grow, so ZooKeeper's
//! sequences sort the same way and the same master leads in both. The znodes are
//! persistent (one writer session stands for every master) and removed when the sim drops
//! the entry.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use super::SimWorld;

/// Why the mirror could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZkMirrorError {
    #[error("cannot reach ZooKeeper at {hosts}: {source}")]
    Connect {
        hosts: String,
        #[source]
        source: zk::Error,
    },
    #[error("cannot create {path} in ZooKeeper: {source}")]
    Create {
        path: String,
        #[source]
        source: zk::Error,
    },
}

/// Copies the election of the ensemble at `sim_url` (`zk://10.0.0.12:2181/mesos`, as the
/// hosts' `/etc/mesos/zk` names it) into the ZooKeeper at `hosts` under `path`, every
/// `every`, until `stop`.
pub async fn spawn(
    world: SimWorld,
    sim_url: &str,
    hosts: &str,
    path: &str,
    every: Duration,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, ZkMirrorError> {
    let client = zk::Client::connect(hosts)
        .await
        .map_err(|source| ZkMirrorError::Connect {
            hosts: hosts.to_owned(),
            source,
        })?;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.create(path, b"", &persistent).await {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(source) => {
            return Err(ZkMirrorError::Create {
                path: path.to_owned(),
                source,
            })
        }
    }
    let sim_url = sim_url.to_owned();
    let path = path.to_owned();
    Ok(tokio::spawn(async move {
        // (hostname, sim sequence) → the znode written for it.
        let mut written: BTreeMap<(String, u64), String> = BTreeMap::new();
        loop {
            if let Ok(mut entries) = world.zk_entries(&sim_url) {
                entries.sort_by_key(|e| e.sequence);
                let wanted: Vec<(String, u64)> = entries
                    .into_iter()
                    .map(|e| (e.hostname, e.sequence))
                    .collect();
                sync(&client, &path, &wanted, &mut written).await;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }))
}

async fn sync(
    client: &zk::Client,
    path: &str,
    wanted: &[(String, u64)],
    written: &mut BTreeMap<(String, u64), String>,
) {
    let gone: Vec<(String, u64)> = written
        .keys()
        .filter(|k| !wanted.contains(k))
        .cloned()
        .collect();
    for key in gone {
        if let Some(znode) = written.remove(&key) {
            match client.delete(&znode, None).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => tracing::warn!(%znode, error = %e, "sim ZooKeeper mirror: delete failed"),
            }
        }
    }
    let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    for key in wanted {
        if written.contains_key(key) {
            continue;
        }
        let host = &key.0;
        let info = json!({
            "hostname": host,
            "address": {"hostname": host, "ip": host, "port": 5050},
            "pid": format!("master@{host}:5050"),
            "port": 5050,
            "version": "1.4.0",
        });
        let prefix = format!("{path}/json.info_");
        match client
            .create(&prefix, info.to_string().as_bytes(), &sequential)
            .await
        {
            Ok((_, seq)) => {
                written.insert(key.clone(), format!("{prefix}{seq}"));
            }
            Err(e) => tracing::warn!(error = %e, "sim ZooKeeper mirror: create failed"),
        }
    }
}
