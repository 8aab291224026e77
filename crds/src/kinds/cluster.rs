//! `Cluster`: cluster-wide settings. There is at most one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Cluster-wide settings: the Mesos ZooKeeper URL, ports, paths, and which node holds a role
/// when the Node record does not say so itself. The object's name is the Mesos cluster name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// ZooKeeper URL Mesos and Chronos use, e.g. `zk://10.0.0.3:2181/mesos`. Default: built
    /// from the manager's address and `ports.zookeeper`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper: Option<String>,
    #[serde(default)]
    pub ports: ClusterPorts,
    #[serde(default)]
    pub paths: ClusterPaths,
    /// Role → node name, for roles not listed on the Node records themselves.
    #[serde(default, skip_serializing_if = "RoleAssignments::is_empty")]
    pub roles: RoleAssignments,
    /// What omtd adds to the monitor's Prometheus besides the workers' targets.
    #[serde(default, skip_serializing_if = "Monitoring::is_empty")]
    pub monitoring: Monitoring,
    /// How users and Docker engines reach the cluster's web front doors (the Apache vhosts
    /// of the executor, editor, registry and monitor): their names and TLS. Absent: every
    /// vhost answers on plain HTTP under its node's address. (Boxed: most clusters leave
    /// it out, and every record of any kind is as large as the largest.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_doors: Option<Box<FrontDoors>>,
}

/// omtd's own part of the monitor's Prometheus, off until asked for: the user's
/// `prometheus.yml` keeps its own jobs and rules either way (omtd writes only its marked
/// blocks in it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Monitoring {
    /// `host:port` of every `omtd operator --metrics-addr` (leader and standbys, e.g.
    /// `10.0.0.12:9464`). When set, Prometheus scrapes them as job `omtd-operator` and loads
    /// omtd's alert rules (`deploy/prometheus/omtd-alerts.yml`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<String>,
}

impl Monitoring {
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }
}

/// The public side of the Apache front doors. Apache picks a vhost by the `Host` header,
/// so each role's vhost needs the name users type; TLS needs a certificate for those names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontDoors {
    /// Per role, the `ServerName` of its vhost. Default: the node's `address`. Roles on one
    /// host under one name share a vhost, so two of them must not claim one path (executor
    /// and monitor both serve `/`): give one of them a name of its own.
    #[serde(default, skip_serializing_if = "FrontDoorNames::is_empty")]
    pub names: FrontDoorNames,
    /// Name of a Credential with `use: tls` whose certificate covers every front-door name.
    /// Set: every vhost listens on 443 with it and port 80 redirects there. Absent: plain
    /// HTTP only, and Docker engines refuse the registry unless they list it as insecure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Name of a Credential with `use: registry` that every worker's Docker engine logs in
    /// with (`/root/.docker/config.json`), so Mesos tasks can pull from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_pull: Option<String>,
}

/// The `ServerName` of each front-door role's vhost (see [`FrontDoors::names`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontDoorNames {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
}

impl FrontDoorNames {
    pub fn is_empty(&self) -> bool {
        self.entries().all(|(_, n)| n.is_none())
    }

    /// (field name, name) pairs, for validation.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> {
        [
            ("executor", self.executor.as_deref()),
            ("editor", self.editor.as_deref()),
            ("registry", self.registry.as_deref()),
            ("monitor", self.monitor.as_deref()),
        ]
        .into_iter()
    }

    /// The name given for `role`, if it is a front-door role and one is given.
    pub fn get(&self, role: crate::kinds::Role) -> Option<&str> {
        self.entries()
            .find(|(r, _)| *r == role.as_str())
            .and_then(|(_, n)| n)
    }
}

/// Ports of the cluster's services (the runbook's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClusterPorts {
    pub zookeeper: u16,
    pub mesos_master: u16,
    pub mesos_agent: u16,
    pub chronos_http: u16,
    pub chronos_https: u16,
    pub galaxy: u16,
    pub registry: u16,
    pub prometheus: u16,
    pub grafana: u16,
    pub node_exporter: u16,
    pub cadvisor: u16,
}

impl Default for ClusterPorts {
    fn default() -> Self {
        ClusterPorts {
            zookeeper: 2181,
            mesos_master: 5050,
            mesos_agent: 5051,
            chronos_http: 8080,
            chronos_https: 9443,
            galaxy: 8080,
            registry: 5000,
            prometheus: 9090,
            grafana: 3000,
            node_exporter: 9100,
            cadvisor: 8080,
        }
    }
}

/// Paths on the hosts (absolute, normalised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClusterPaths {
    /// Galaxy for execution; its `database` and `tools` folders are the NFS exports.
    pub executor: String,
    /// Galaxy for editing; mounts the executor's tools at `<editor>/tools`.
    pub editor: String,
    /// The registry container's storage.
    pub registry_data: String,
}

impl Default for ClusterPaths {
    fn default() -> Self {
        ClusterPaths {
            executor: "/srv/executor".into(),
            editor: "/srv/editor".into(),
            registry_data: "/mnt/registry".into(),
        }
    }
}

/// Which node holds each single-host role, when the Node record does not list it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignments {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
}

impl RoleAssignments {
    pub fn is_empty(&self) -> bool {
        self.entries().all(|(_, n)| n.is_none())
    }

    /// (field name, node name) pairs, for validation and role lookup.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> {
        [
            ("executor", self.executor.as_deref()),
            ("editor", self.editor.as_deref()),
            ("manager", self.manager.as_deref()),
            ("registry", self.registry.as_deref()),
            ("monitor", self.monitor.as_deref()),
        ]
        .into_iter()
    }
}
