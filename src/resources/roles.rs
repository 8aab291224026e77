//! Who may read and write which keys (DESIGN.md §4's layout, docs/security.md's trust
//! model), as etcd users and roles. One identity per host: an agent reads its own plan and
//! writes its own report and heartbeat, nothing else; so a worker running users' jobs that
//! is taken over can neither read a secret of another host nor command one.
//!
//! The user names are the common names `omtd pki issue` puts in the certificates.

use crate::resources::Keys;
use crate::store::etcd::{Grant, Identity};

/// The common name (etcd user) of a node's agent.
pub fn agent_user(node: &str) -> String {
    format!("agent-{node}")
}

/// The common name (etcd user) of the operator.
pub const OPERATOR_USER: &str = "omtd-operator";

/// The key the etcd backend reads to learn the store's revision (a count-only read of a key
/// that never exists): every identity may read it, and it holds nothing.
const REVISION_PROBE_KEY: &str = "\0";

/// A node's agent: its plan slices and manifest (read), its report and heartbeat (read and
/// write: it reads its last report back at start).
pub fn agent(keys: &Keys, cluster: &str, node: &str) -> Identity {
    Identity {
        user: agent_user(node),
        role: format!("omtd-{cluster}-agent-{node}"),
        grants: vec![
            Grant::read(REVISION_PROBE_KEY),
            Grant::read_prefix(keys.plans_of(node)),
            Grant::read_write(keys.report(node)),
            Grant::read_write(keys.agent_lease(node)),
        ],
    }
}

/// The operator: every key of its cluster (the controllers read specs and reports, write
/// statuses, plans, events and the leader key), nothing of another cluster.
pub fn operator(keys: &Keys, cluster: &str) -> Identity {
    Identity {
        user: OPERATOR_USER.to_owned(),
        role: format!("omtd-{cluster}-operator"),
        grants: vec![
            Grant::read(REVISION_PROBE_KEY),
            Grant::read_write_prefix(keys.prefix()),
        ],
    }
}

/// The identities of a cluster with these nodes.
pub fn cluster(cluster: &str, nodes: &[String]) -> Vec<Identity> {
    let keys = Keys::for_cluster(cluster);
    let mut ids = vec![operator(&keys, cluster)];
    ids.extend(nodes.iter().map(|n| agent(&keys, cluster, n)));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_gets_its_own_keys_only() {
        let keys = Keys::for_cluster("c");
        let a = agent(&keys, "c", "node1");
        assert_eq!(a.user, "agent-node1");
        let covers = |key: &str, write: bool| {
            a.grants.iter().any(|g| {
                (if g.prefix {
                    key.starts_with(&g.key)
                } else {
                    key == g.key
                }) && (g.write || !write)
            })
        };
        assert!(covers("/omtd/c/plans/node1/storage", false));
        assert!(covers("/omtd/c/reports/node1", true));
        assert!(covers("/omtd/c/leases/agents/node1", true));
        // Another node's plan, a prefix sibling, specs (credentials), writing a plan.
        assert!(!covers("/omtd/c/plans/node2/storage", false));
        assert!(!covers("/omtd/c/plans/node10/storage", false));
        assert!(!covers("/omtd/c/reports/node2", true));
        assert!(!covers("/omtd/c/spec/credential/chronos", false));
        assert!(!covers("/omtd/c/plans/node1/storage", true));
        assert!(!covers("/omtd/other/plans/node1/storage", false));
    }

    #[test]
    fn the_operator_gets_its_cluster_only() {
        let ids = cluster("c", &["n1".into(), "n2".into()]);
        assert_eq!(ids.len(), 3);
        let op = &ids[0];
        assert_eq!(op.user, OPERATOR_USER);
        assert!(op
            .grants
            .iter()
            .any(|g| g.prefix && g.write && g.key == "/omtd/c/"));
        assert!(op
            .grants
            .iter()
            .all(|g| g.key.starts_with("/omtd/c/") || g.key == "\0"));
    }
}
