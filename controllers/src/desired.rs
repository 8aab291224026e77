//! The desired state as the controllers read it: the records with their stored statuses,
//! cluster settings with defaults, nodes by role, credentials by use, volumes.

use std::collections::BTreeSet;

use imbl::OrdMap;

use omtd_crds::{
    Cluster, ClusterSpec, Credential, CredentialUse, Kind, Node, Object, ObjectKey, Role, Status,
    Volume,
};

use crate::removal::{RemovalPhase, DELETING_ANNOTATION};

/// The Mesos cluster name when there is no Cluster record.
pub const DEFAULT_CLUSTER_NAME: &str = "omtd";

/// Every record of the cluster, indexed. Built once per reconcile from the store's objects.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The Cluster record, if any (its status holds cluster-wide conditions).
    pub cluster: Option<Cluster>,
    /// Its spec, or the defaults when there is no record.
    pub spec: ClusterSpec,
    // Persistent maps: the operator patches one Desired per change and passes still
    // reading the last one keep theirs (a clone shares every record).
    pub nodes: OrdMap<String, Node>,
    pub credentials: OrdMap<String, Credential>,
    pub volumes: OrdMap<String, Volume>,
}

impl Desired {
    /// Indexes `objects`. A second Cluster is ignored (validation reports it).
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Desired {
        let mut d = Desired::default();
        for obj in objects {
            d.insert(obj);
        }
        d
    }

    /// Adds or replaces one record. A Cluster record is taken only when there is none yet:
    /// a Cluster that changed needs a build from every object (`from_objects`).
    pub fn insert(&mut self, obj: &Object) {
        match obj {
            Object::Cluster(c) => {
                if self.cluster.is_none() {
                    self.spec = c.spec.clone();
                    self.cluster = Some(c.clone());
                }
            }
            Object::Node(n) => {
                self.nodes.insert(n.metadata.name.clone(), n.clone());
            }
            Object::Credential(c) => {
                self.credentials.insert(c.metadata.name.clone(), c.clone());
            }
            Object::Volume(v) => {
                self.volumes.insert(v.metadata.name.clone(), v.clone());
            }
        }
    }

    /// Takes out one record (not a Cluster: see [`Desired::insert`]).
    pub fn remove(&mut self, key: &ObjectKey) {
        match key.kind {
            Kind::Cluster => {}
            Kind::Node => {
                self.nodes.remove(&key.name);
            }
            Kind::Credential => {
                self.credentials.remove(&key.name);
            }
            Kind::Volume => {
                self.volumes.remove(&key.name);
            }
        }
    }

    /// The Mesos cluster name: the Cluster record's name.
    pub fn cluster_name(&self) -> &str {
        self.cluster
            .as_ref()
            .map_or(DEFAULT_CLUSTER_NAME, |c| c.metadata.name.as_str())
    }

    /// Where cluster-wide conditions go; `None` without a Cluster record.
    pub fn cluster_key(&self) -> Option<ObjectKey> {
        self.cluster.as_ref().map(|c| ObjectKey {
            kind: Kind::Cluster,
            name: c.metadata.name.clone(),
        })
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// The roles a node plays: its own list plus the Cluster's role assignments. A worker
    /// role on the manager is dropped: no Mesos agent runs beside the master (the runbook's
    /// leader trouble starts that way).
    pub fn roles(&self, node: &str) -> BTreeSet<Role> {
        let Some(n) = self.nodes.get(node) else {
            return BTreeSet::new();
        };
        let mut roles: BTreeSet<Role> = n.spec.roles.iter().copied().collect();
        for (role_name, holder) in self.spec.roles.entries() {
            if holder == Some(node) {
                if let Some(r) = Role::ALL.into_iter().find(|r| r.as_str() == role_name) {
                    roles.insert(r);
                }
            }
        }
        if roles.contains(&Role::Manager) {
            roles.remove(&Role::Worker);
        }
        roles
    }

    pub fn has_role(&self, node: &str, role: Role) -> bool {
        self.roles(node).contains(&role)
    }

    /// The node holding a single-host role (the first by name if the records disagree:
    /// validation flags that case on the nodes).
    pub fn holder(&self, role: Role) -> Option<&Node> {
        self.nodes
            .values()
            .find(|n| self.has_role(&n.metadata.name, role))
    }

    pub fn manager(&self) -> Option<&Node> {
        self.holder(Role::Manager)
    }
    pub fn executor(&self) -> Option<&Node> {
        self.holder(Role::Executor)
    }
    pub fn editor(&self) -> Option<&Node> {
        self.holder(Role::Editor)
    }
    pub fn registry(&self) -> Option<&Node> {
        self.holder(Role::Registry)
    }
    pub fn monitor(&self) -> Option<&Node> {
        self.holder(Role::Monitor)
    }

    /// The registry's name as Docker engines reach it: its front-door name (the Cluster's
    /// `frontDoors.names.registry`, else the registry node's address).
    pub fn registry_name(&self) -> Option<String> {
        let r = self.registry()?;
        Some(
            omtd_crds::front_door::server_name(&self.spec, Role::Registry, &r.spec.address)
                .to_owned(),
        )
    }

    /// Every worker, by name, removal in progress or not.
    pub fn workers(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .values()
            .filter(|n| self.has_role(&n.metadata.name, Role::Worker))
    }

    /// Workers that are members of the cluster up to (not including) `phase` of their
    /// removal: e.g. `member_workers(RemovalPhase::Cleanup)` are the workers whose
    /// credentials, export and scrape targets still belong in the plans.
    pub fn member_workers(&self, phase: RemovalPhase) -> impl Iterator<Item = &Node> {
        self.workers().filter(move |n| {
            self.removal_phase(&n.metadata.name)
                .is_none_or(|p| p < phase)
        })
    }

    /// The Mesos agent credential of a worker.
    pub fn worker_credential(&self, node: &str) -> Option<&Credential> {
        let name = self.nodes.get(node)?.spec.credential.as_deref()?;
        self.credentials
            .get(name)
            .filter(|c| c.spec.usage == CredentialUse::MesosAgent)
    }

    /// Credentials for one use, by name.
    pub fn credentials_for(&self, usage: CredentialUse) -> impl Iterator<Item = &Credential> {
        self.credentials
            .values()
            .filter(move |c| c.spec.usage == usage)
    }

    /// The one credential of a single-use kind (Chronos's framework or HTTP credential).
    pub fn credential_for(&self, usage: CredentialUse) -> Option<&Credential> {
        self.credentials_for(usage).next()
    }

    /// The ZooKeeper URL Mesos uses: the Cluster's, or `zk://<manager>:2181/mesos`.
    pub fn zk_url(&self) -> Option<String> {
        if let Some(url) = &self.spec.zookeeper {
            return Some(url.clone());
        }
        self.manager().map(|m| {
            format!(
                "zk://{}:{}/mesos",
                m.spec.address, self.spec.ports.zookeeper
            )
        })
    }

    /// `<executor path>/database`, the share every worker mounts.
    pub fn database_path(&self) -> String {
        format!("{}/database", self.spec.paths.executor)
    }

    /// `<executor path>/tools`, the share the editor mounts.
    pub fn tools_path(&self) -> String {
        format!("{}/tools", self.spec.paths.executor)
    }

    /// Whether someone asked for the node to go (the CLI's `omtd delete node` sets the
    /// annotation instead of deleting the record; omtd deletes it when it is retired).
    pub fn deleting(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| {
            n.metadata
                .annotations
                .get(DELETING_ANNOTATION)
                .is_some_and(|v| v == "true")
        })
    }

    /// The removal phase recorded in the node's status by the node controller.
    pub fn removal_phase(&self, node: &str) -> Option<RemovalPhase> {
        let n = self.nodes.get(node)?;
        RemovalPhase::from_status(n.status.as_ref()?)
    }

    /// The stored status of an object.
    pub fn status(&self, key: &ObjectKey) -> Option<&Status> {
        match key.kind {
            Kind::Cluster => self
                .cluster
                .as_ref()
                .filter(|c| c.metadata.name == key.name)
                .and_then(|c| c.status.as_ref()),
            Kind::Node => self.nodes.get(&key.name)?.status.as_ref(),
            Kind::Credential => self.credentials.get(&key.name)?.status.as_ref(),
            Kind::Volume => self.volumes.get(&key.name)?.status.as_ref(),
        }
    }

    /// The metadata generation of an object (0 when unknown).
    pub fn generation(&self, key: &ObjectKey) -> i64 {
        match key.kind {
            Kind::Cluster => self.cluster.as_ref().map_or(0, |c| c.metadata.generation),
            Kind::Node => self
                .nodes
                .get(&key.name)
                .map_or(0, |n| n.metadata.generation),
            Kind::Credential => self
                .credentials
                .get(&key.name)
                .map_or(0, |c| c.metadata.generation),
            Kind::Volume => self
                .volumes
                .get(&key.name)
                .map_or(0, |v| v.metadata.generation),
        }
    }
}

/// `node/<name>`.
pub fn node_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Node,
        name: name.to_owned(),
    }
}

/// `volume/<name>`.
pub fn volume_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Volume,
        name: name.to_owned(),
    }
}

/// `credential/<name>`.
pub fn credential_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Credential,
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/examples/cluster.yaml");

    fn example() -> Desired {
        let objects = omtd_crds::manifest::parse(EXAMPLE).expect("example parses");
        Desired::from_objects(&objects)
    }

    #[test]
    fn runbook_cluster_roles() {
        let d = example();
        assert_eq!(d.cluster_name(), "omtd");
        assert_eq!(
            d.manager().map(|n| n.metadata.name.as_str()),
            Some("manager.omtd")
        );
        assert_eq!(
            d.executor().map(|n| n.metadata.name.as_str()),
            Some("executor.omtd")
        );
        let workers: Vec<_> = d.workers().map(|n| n.metadata.name.as_str()).collect();
        assert_eq!(workers, ["node1.omtd", "node2.omtd", "node3.omtd"]);
        assert_eq!(d.zk_url().as_deref(), Some("zk://10.0.0.12:2181/mesos"));
        assert_eq!(d.database_path(), "/srv/executor/database");
        assert_eq!(
            d.worker_credential("node2.omtd")
                .map(|c| c.spec.principal.as_str()),
            Some("node2.omtd")
        );
        assert_eq!(
            d.credential_for(CredentialUse::ChronosFramework)
                .map(|c| c.spec.principal.as_str()),
            Some("chronos.omtd")
        );
    }

    #[test]
    fn worker_role_on_the_manager_is_dropped() {
        let mut d = example();
        if let Some(m) = d.nodes.get_mut("manager.omtd") {
            m.spec.roles.push(Role::Worker);
        }
        assert!(!d.has_role("manager.omtd", Role::Worker));
        assert_eq!(d.workers().count(), 3);
    }

    #[test]
    fn cluster_role_assignment_counts() {
        let mut d = example();
        d.spec.roles.monitor = Some("editor.omtd".into());
        assert!(d.has_role("editor.omtd", Role::Monitor));
        assert!(d.has_role("editor.omtd", Role::Editor));
    }
}
