//! ZooKeeper's Mesos leader election, modelled from the hosts' services.
//!
//! Every running mesos-master whose `/etc/mesos/zk` reaches a running ZooKeeper holds an
//! ephemeral sequential znode `json.info_<seq>` under the URL's path; a master that
//! (re)starts — its pid changed — gets the next sequence of that parent, as ZooKeeper's
//! per-parent counter would give it, and the lowest sequence leads. A master whose session
//! expires re-contends with a new, higher sequence: that is how a stray master on a worker
//! ends up leading.

use std::collections::BTreeMap;

use omtd_controllers::observed::MasterEntry;

use super::config::{self, ZkUrl};
use super::SimNode;

/// Where masters meet: the sim host running the ZooKeeper they reach, and the znode path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ensemble {
    pub zk_host: String,
    pub path: String,
}

#[derive(Debug, Clone)]
struct Entry {
    ensemble: Ensemble,
    /// The master process the znode belongs to.
    pid: u64,
    sequence: u64,
}

/// The znodes, and each parent's sequence counter (which, as in ZooKeeper, never goes
/// back, even when every child is gone).
#[derive(Debug, Default)]
pub struct Election {
    entries: BTreeMap<String, Entry>,
    counters: BTreeMap<Ensemble, u64>,
}

/// The ensemble a ZooKeeper URL reaches from `from`: the first of its hosts that names a
/// sim node (by name or address; `localhost` is `from` itself) running zookeeper.
pub fn reach(nodes: &BTreeMap<String, SimNode>, from: &str, url: &ZkUrl) -> Option<Ensemble> {
    url.hosts.iter().find_map(|h| {
        let name = if h == "localhost" || h == "127.0.0.1" {
            from.to_owned()
        } else {
            nodes
                .iter()
                .find(|(name, n)| *name == h || n.address == *h)
                .map(|(name, _)| name.clone())?
        };
        let zk_running = nodes
            .get(&name)?
            .host
            .service("zookeeper")
            .is_some_and(|s| s.running);
        zk_running.then(|| Ensemble {
            zk_host: name,
            path: url.path.clone(),
        })
    })
}

/// The ensemble a Mesos service on `name` takes part in (through its `/etc/mesos/zk`).
pub fn ensemble_of(nodes: &BTreeMap<String, SimNode>, name: &str) -> Option<Ensemble> {
    let node = nodes.get(name)?;
    reach(nodes, name, &config::zk(&node.host)?)
}

impl Election {
    /// Brings the znodes in line with the hosts: drops those of stopped or restarted masters
    /// (and of unreachable ZooKeepers), then gives every contending master without one the
    /// next sequence, in host order.
    pub fn refresh(&mut self, nodes: &BTreeMap<String, SimNode>) {
        let mut contenders = Vec::new();
        for (name, node) in nodes {
            let master = node.host.service("mesos-master").filter(|s| s.running);
            let ensemble = master.as_ref().and_then(|_| ensemble_of(nodes, name));
            match (master, ensemble) {
                (Some(svc), Some(ens)) => {
                    let same = self
                        .entries
                        .get(name)
                        .is_some_and(|e| e.pid == svc.pid && e.ensemble == ens);
                    if !same {
                        self.entries.remove(name);
                        contenders.push((name.clone(), svc.pid, ens));
                    }
                }
                _ => {
                    self.entries.remove(name);
                }
            }
        }
        for (name, pid, ensemble) in contenders {
            let counter = self.counters.entry(ensemble.clone()).or_default();
            let sequence = *counter;
            *counter += 1;
            self.entries.insert(
                name,
                Entry {
                    ensemble,
                    pid,
                    sequence,
                },
            );
        }
    }

    /// The session of `name`'s master expires: its znode goes (it re-contends at the next
    /// refresh, with a new sequence).
    pub fn expire(&mut self, name: &str) {
        self.entries.remove(name);
    }

    /// The leading master of `ensemble`: the lowest sequence.
    pub fn leader(&self, ensemble: &Ensemble) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, e)| &e.ensemble == ensemble)
            .min_by_key(|(_, e)| e.sequence)
            .map(|(name, _)| name.as_str())
    }

    /// The ensemble `name`'s master contends in, if it does.
    pub fn ensemble(&self, name: &str) -> Option<&Ensemble> {
        self.entries.get(name).map(|e| &e.ensemble)
    }

    /// The znodes of `ensemble`, sorted by sequence, as the ZooKeeper probe reports them:
    /// each master's MasterInfo hostname (its `hostname` flag, else its node name).
    pub fn entries(
        &self,
        nodes: &BTreeMap<String, SimNode>,
        ensemble: &Ensemble,
    ) -> Vec<MasterEntry> {
        let mut out: Vec<MasterEntry> = self
            .entries
            .iter()
            .filter(|(_, e)| &e.ensemble == ensemble)
            .map(|(name, e)| MasterEntry {
                hostname: nodes
                    .get(name)
                    .map_or_else(|| name.clone(), |n| n.master_hostname(name)),
                sequence: e.sequence,
            })
            .collect();
        out.sort_by_key(|e| e.sequence);
        out
    }
}
