//! The keys a process holds, and which of them seals or opens the value at a store key.
//!
//! - **Master keys** (the operator's and the admin's): the first one seals, every one opens,
//!   so a rotation adds a new first key and keeps the old ones until nothing is sealed with
//!   them any more.
//! - **Node keys**: `HKDF-SHA256(master, info = "omtd plan key v1\0<cluster>\0<node>")`.
//!   A node's plans (slices and manifest) are sealed with its node key, so an agent can be
//!   given only that key: it opens its own plans and nothing else, not the credentials,
//!   not another node's plans. The envelope names the master key's id in both cases, since
//!   that is what an admin rotates.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::envelope::{valid_key_id, EnvelopeError};

/// 32 bytes of key, wiped from memory when dropped, never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    /// A new key from the operating system's random number generator.
    pub fn random() -> Result<Self, EnvelopeError> {
        let mut key = SecretKey::from_bytes([0; 32]);
        getrandom::fill(&mut key.0[..]).map_err(|e| EnvelopeError::Random(e.to_string()))?;
        Ok(key)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A master key: opens credentials and, through derivation, every node's plans.
#[derive(Debug, Clone)]
pub struct MasterKey {
    pub id: String,
    pub key: SecretKey,
}

/// One node's plan key, derived from the master key `id`.
#[derive(Debug, Clone)]
pub struct NodeKey {
    pub id: String,
    pub cluster: String,
    pub node: String,
    pub key: SecretKey,
}

/// What the value at a store key is, as far as sealing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// `/omtd/<cluster>/spec/credential/<name>`: sealed with the master key.
    Credential,
    /// `/omtd/<cluster>/plans/<node>/<slice or manifest>`: sealed with the node's key.
    Plan { cluster: &'a str, node: &'a str },
}

/// Which scope a store key is in; `None`: its value is stored as it is. Parsed from the key
/// itself (`/omtd/<cluster>/...`, the layout of `resources::Keys`), so one store handle
/// serves every cluster.
pub fn scope_of(key: &str) -> Option<Scope<'_>> {
    let (cluster, rest) = key.strip_prefix("/omtd/")?.split_once('/')?;
    if cluster.is_empty() {
        return None;
    }
    if rest
        .strip_prefix("spec/credential/")
        .is_some_and(|name| !name.is_empty())
    {
        return Some(Scope::Credential);
    }
    let (node, entry) = rest.strip_prefix("plans/")?.split_once('/')?;
    (!node.is_empty() && !entry.is_empty()).then_some(Scope::Plan { cluster, node })
}

/// A node's plan key from a master key.
pub fn derive_node_key(master: &SecretKey, cluster: &str, node: &str) -> SecretKey {
    let mut info = Vec::with_capacity(20 + cluster.len() + node.len());
    info.extend_from_slice(b"omtd plan key v1\0");
    info.extend_from_slice(cluster.as_bytes());
    info.push(0);
    info.extend_from_slice(node.as_bytes());
    let mut okm = SecretKey::from_bytes([0; 32]);
    // 32 bytes is far below HKDF-SHA256's limit (255 * 32), so expand cannot fail.
    if Hkdf::<Sha256>::new(None, master.bytes())
        .expand(&info, &mut okm.0[..])
        .is_err()
    {
        unreachable!("HKDF-SHA256 expands to 32 bytes");
    }
    okm
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("key id {0:?} is not valid: use letters, digits, '-', '_' and '.' (at most 64)")]
    InvalidId(String),
    #[error("key id {0} appears twice")]
    DuplicateId(String),
    #[error(
        "cannot seal {store_key}: this process holds node keys only (for {nodes}), which \
         seal nothing but their own node's plans; pass the master key file with --secrets-key"
    )]
    NoMasterKey { store_key: String, nodes: String },
}

/// The keys one process holds. Empty: nothing is sealed, nothing opens (see `SealedStore`).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    masters: Vec<MasterKey>,
    nodes: Vec<NodeKey>,
}

impl Keyring {
    pub fn empty() -> Self {
        Keyring::default()
    }

    /// `masters[0]` (if any) is the active key.
    pub fn new(masters: Vec<MasterKey>, nodes: Vec<NodeKey>) -> Result<Self, KeyringError> {
        let mut seen = std::collections::BTreeSet::new();
        for id in masters.iter().map(|m| &m.id) {
            if !valid_key_id(id) {
                return Err(KeyringError::InvalidId(id.clone()));
            }
            if !seen.insert(id.clone()) {
                return Err(KeyringError::DuplicateId(id.clone()));
            }
        }
        let mut seen_nodes = std::collections::BTreeSet::new();
        for n in &nodes {
            if !valid_key_id(&n.id) {
                return Err(KeyringError::InvalidId(n.id.clone()));
            }
            if !seen_nodes.insert((&n.id, &n.cluster, &n.node)) {
                return Err(KeyringError::DuplicateId(n.id.clone()));
            }
        }
        Ok(Keyring { masters, nodes })
    }

    pub fn is_empty(&self) -> bool {
        self.masters.is_empty() && self.nodes.is_empty()
    }

    /// The master key that seals.
    pub fn active(&self) -> Option<&MasterKey> {
        self.masters.first()
    }

    pub fn masters(&self) -> &[MasterKey] {
        &self.masters
    }

    pub fn nodes(&self) -> &[NodeKey] {
        &self.nodes
    }

    /// Whether some key of this keyring has this id (a node key counts).
    pub fn holds(&self, key_id: &str) -> bool {
        self.masters.iter().any(|m| m.id == key_id) || self.nodes.iter().any(|n| n.id == key_id)
    }

    /// The key id and key that seal a value at `store_key` (in `scope`); `None` when this
    /// keyring is empty (the value is stored as it is).
    pub fn sealing_key(
        &self,
        store_key: &str,
        scope: Scope<'_>,
    ) -> Result<Option<(String, SecretKey)>, KeyringError> {
        if let Some(active) = self.active() {
            let key = match scope {
                Scope::Credential => active.key.clone(),
                Scope::Plan { cluster, node } => derive_node_key(&active.key, cluster, node),
            };
            return Ok(Some((active.id.clone(), key)));
        }
        if self.nodes.is_empty() {
            return Ok(None);
        }
        if let Scope::Plan { cluster, node } = scope {
            if let Some(n) = self.node_key(cluster, node, None) {
                return Ok(Some((n.id.clone(), n.key.clone())));
            }
        }
        Err(KeyringError::NoMasterKey {
            store_key: store_key.to_owned(),
            nodes: self
                .nodes
                .iter()
                .map(|n| format!("{} in cluster {}", n.node, n.cluster))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The key that opens a value sealed with `key_id` in `scope`, if this keyring has it.
    pub fn opening_key(&self, key_id: &str, scope: Scope<'_>) -> Option<SecretKey> {
        if let Some(m) = self.masters.iter().find(|m| m.id == key_id) {
            return Some(match scope {
                Scope::Credential => m.key.clone(),
                Scope::Plan { cluster, node } => derive_node_key(&m.key, cluster, node),
            });
        }
        match scope {
            Scope::Plan { cluster, node } => self
                .node_key(cluster, node, Some(key_id))
                .map(|n| n.key.clone()),
            Scope::Credential => None,
        }
    }

    fn node_key(&self, cluster: &str, node: &str, id: Option<&str>) -> Option<&NodeKey> {
        self.nodes
            .iter()
            .find(|n| n.cluster == cluster && n.node == node && id.is_none_or(|id| n.id == id))
    }

    /// One node's keys, derived from every master key (the active one first), for a node key
    /// file: during a rotation the agent then opens plans sealed with the old key and the new.
    pub fn derive_node_keys(&self, cluster: &str, node: &str) -> Vec<NodeKey> {
        self.masters
            .iter()
            .map(|m| NodeKey {
                id: m.id.clone(),
                cluster: cluster.to_owned(),
                node: node.to_owned(),
                key: derive_node_key(&m.key, cluster, node),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(id: &str, b: u8) -> MasterKey {
        MasterKey {
            id: id.into(),
            key: SecretKey::from_bytes([b; 32]),
        }
    }

    #[test]
    fn scopes() {
        let plan = |cluster, node| Some(Scope::Plan { cluster, node });
        let table: [(&str, Option<Scope>); 10] = [
            ("/omtd/prod/spec/credential/node1", Some(Scope::Credential)),
            ("/omtd/prod/plans/n1.lab/node", plan("prod", "n1.lab")),
            ("/omtd/prod/plans/n1.lab/manifest", plan("prod", "n1.lab")),
            ("/omtd/prod/spec/node/n1.lab", None),
            ("/omtd/prod/status/credential/node1", None),
            ("/omtd/prod/reports/n1.lab", None),
            ("/omtd/prod/plans/n1.lab/", None),
            ("/omtd/prod/spec/credential/", None),
            ("/omtd//spec/credential/x", None),
            ("/other/prod/spec/credential/x", None),
        ];
        for (key, want) in table {
            assert_eq!(scope_of(key), want, "{key}");
        }
    }

    #[test]
    fn node_keys_are_per_cluster_and_node_and_deterministic() {
        let m = SecretKey::from_bytes([7; 32]);
        let a = derive_node_key(&m, "c", "n1");
        assert_eq!(a.bytes(), derive_node_key(&m, "c", "n1").bytes());
        for (c, n) in [("c", "n2"), ("d", "n1"), ("c\0n", "1"), ("", "cn1")] {
            assert_ne!(a.bytes(), derive_node_key(&m, c, n).bytes(), "{c:?} {n:?}");
        }
        assert_ne!(a.bytes(), m.bytes());
    }

    #[test]
    fn who_seals_and_who_opens() {
        let ring = Keyring::new(vec![master("new", 2), master("old", 1)], vec![]).unwrap();
        let cred = "/omtd/c/spec/credential/x";
        let n1 = Scope::Plan {
            cluster: "c",
            node: "n1",
        };
        let n2 = Scope::Plan {
            cluster: "c",
            node: "n2",
        };
        let (id, _) = ring.sealing_key(cred, Scope::Credential).unwrap().unwrap();
        assert_eq!(id, "new", "the first key seals");
        assert!(
            ring.opening_key("old", Scope::Credential).is_some(),
            "every key opens"
        );
        assert!(ring.opening_key("gone", Scope::Credential).is_none());

        // A node's key file: its own plans only, under either master id.
        let agent = Keyring::new(vec![], ring.derive_node_keys("c", "n1")).unwrap();
        let own = agent.opening_key("old", n1).unwrap();
        assert_eq!(own.bytes(), ring.opening_key("old", n1).unwrap().bytes());
        assert!(agent.opening_key("new", n1).is_some());
        assert!(agent.opening_key("new", n2).is_none());
        assert!(agent.opening_key("new", Scope::Credential).is_none());
        let (id, _) = agent
            .sealing_key("/omtd/c/plans/n1/x", n1)
            .unwrap()
            .unwrap();
        assert_eq!(id, "new");
        let refused = agent.sealing_key(cred, Scope::Credential).unwrap_err();
        assert!(refused.to_string().contains("n1 in cluster c"), "{refused}");

        assert!(Keyring::empty()
            .sealing_key(cred, Scope::Credential)
            .unwrap()
            .is_none());
        assert_eq!(
            Keyring::new(vec![master("a", 1), master("a", 2)], vec![]).unwrap_err(),
            KeyringError::DuplicateId("a".into())
        );
        assert!(Keyring::new(vec![master("a:b", 1)], vec![]).is_err());
    }

    #[test]
    fn a_key_never_prints() {
        let m = master("k1", 0xab);
        let shown = format!("{m:?}");
        assert!(
            shown.contains("k1") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("abab"));
    }
}
