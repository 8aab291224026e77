//! The chaos run's store: one etcd member, or three (a member can die and the cluster
//! keeps a quorum).

use std::path::Path;
use std::sync::Arc;

use omtd::store::Store;

use crate::etcd::{EtcdCluster, EtcdServer};

pub enum Etcd {
    One(EtcdServer),
    Three(EtcdCluster),
}

impl Etcd {
    pub fn start(three: bool) -> Etcd {
        if three {
            Etcd::Three(EtcdCluster::start(3))
        } else {
            Etcd::One(EtcdServer::start())
        }
    }

    pub fn url(&self) -> String {
        match self {
            Etcd::One(e) => e.url(),
            Etcd::Three(c) => c.url(),
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        match self {
            Etcd::One(e) => e.store().await,
            Etcd::Three(c) => c.store().await,
        }
    }

    /// The whole store down (one member only; a cluster loses one member instead).
    pub fn kill(&mut self) {
        match self {
            Etcd::One(e) => e.kill(),
            Etcd::Three(c) => c.kill_member(0),
        }
    }

    pub fn restart(&mut self) {
        match self {
            Etcd::One(e) => e.restart(),
            Etcd::Three(c) => c.restart_member(0),
        }
    }

    pub fn kill_member(&mut self, i: usize) {
        match self {
            Etcd::One(e) => e.kill(),
            Etcd::Three(c) => c.kill_member(i),
        }
    }

    pub fn restart_member(&mut self, i: usize) {
        match self {
            Etcd::One(e) => e.restart(),
            Etcd::Three(c) => c.restart_member(i),
        }
    }

    /// Snapshot rounds run on one member only (restoring a cluster is another procedure).
    pub fn save_snapshot(&self, to: &Path) {
        if let Etcd::One(e) = self {
            e.save_snapshot(to);
        }
    }

    pub fn restore_snapshot(&mut self, from: &Path) {
        if let Etcd::One(e) = self {
            e.restore_snapshot(from);
        }
    }

    /// Cut member `i` off from the other two (three members only; one member has no peers).
    pub fn isolate_member(&self, i: usize) {
        if let Etcd::Three(c) = self {
            c.isolate_member(i);
        }
    }

    pub fn heal(&self) {
        if let Etcd::Three(c) = self {
            c.heal();
        }
    }
}
