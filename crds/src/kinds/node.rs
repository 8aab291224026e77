//! `Node`: one host of the cluster and the roles it plays.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A host and its roles. A worker needs a `credential` (a Credential with
/// `use: mesos-agent`) so its Mesos agent can authenticate to the master.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// IPv4 or IPv6 address (or DNS name) other hosts reach this node at.
    pub address: String,
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Name of the Credential the Mesos agent uses (required for a worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What a node does. The names follow the runbook's hosts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Galaxy for execution, NFS server, Apache.
    Executor,
    /// Galaxy for editing, NFS client of the tools share, Apache.
    Editor,
    /// ZooKeeper, Mesos master, Chronos.
    Manager,
    /// Docker registry behind Apache basic auth.
    Registry,
    /// Prometheus and Grafana.
    Monitor,
    /// Mesos agent, docker, node exporter, cAdvisor, NFS client of the database share.
    Worker,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Executor,
        Role::Editor,
        Role::Manager,
        Role::Registry,
        Role::Monitor,
        Role::Worker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Executor => "executor",
            Role::Editor => "editor",
            Role::Manager => "manager",
            Role::Registry => "registry",
            Role::Monitor => "monitor",
            Role::Worker => "worker",
        }
    }

    /// Roles held by exactly one host in the cluster (all but worker).
    pub fn is_single_host(self) -> bool {
        self != Role::Worker
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
