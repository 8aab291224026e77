//! The key layout under the cluster prefix (DESIGN.md §4):
//! `spec/<kind>/<name>`, `status/<kind>/<name>`, `plans/<node>/<controller>`,
//! `reports/<node>`, `leases/agents/<node>`, `leader`, `events/<time>-<seq>`,
//! `apply/{lock,holder,progress/<n>}` (a staged apply in progress).

use omtd_crds::Kind;

/// Builds keys for one cluster. The prefix always ends with '/'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `/omtd/<cluster>/`.
    pub fn for_cluster(cluster: &str) -> Self {
        Keys {
            prefix: format!("/omtd/{cluster}/"),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Prefix of every spec of every kind.
    pub fn specs(&self) -> String {
        format!("{}spec/", self.prefix)
    }

    pub fn spec(&self, kind: Kind, name: &str) -> String {
        format!("{}spec/{}/{name}", self.prefix, kind.lower())
    }

    /// Prefix of every status.
    pub fn statuses(&self) -> String {
        format!("{}status/", self.prefix)
    }

    pub fn status(&self, kind: Kind, name: &str) -> String {
        format!("{}status/{}/{name}", self.prefix, kind.lower())
    }

    /// Prefix of one node's plan slices.
    /// Every node's plan slices.
    pub fn plans(&self) -> String {
        format!("{}plans/", self.prefix)
    }

    pub fn plans_of(&self, node: &str) -> String {
        format!("{}plans/{node}/", self.prefix)
    }

    pub fn plan(&self, node: &str, controller: &str) -> String {
        format!("{}plans/{node}/{controller}", self.prefix)
    }

    /// Prefix of every node's report.
    pub fn reports(&self) -> String {
        format!("{}reports/", self.prefix)
    }

    pub fn report(&self, node: &str) -> String {
        format!("{}reports/{node}", self.prefix)
    }

    /// Prefix of every agent's heartbeat key.
    pub fn agent_leases(&self) -> String {
        format!("{}leases/agents/", self.prefix)
    }

    pub fn agent_lease(&self, node: &str) -> String {
        format!("{}leases/agents/{node}", self.prefix)
    }

    /// The cluster epoch (see `omtd_crds::plan_manifest::newer_epoch`).
    pub fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    pub fn events(&self) -> String {
        format!("{}events/", self.prefix)
    }

    /// The kind and name of a `spec/` or `status/` key, if it is one.
    /// Where a staged apply keeps its lock, holder and progress (`resources::staged`).
    pub fn applies(&self) -> String {
        format!("{}apply/", self.prefix)
    }

    /// An apply too big for one transaction holds this while it writes.
    pub fn apply_lock(&self) -> String {
        format!("{}apply/lock", self.prefix)
    }

    /// On the applier's lease: gone while the lock stays means the apply was interrupted.
    pub fn apply_holder(&self) -> String {
        format!("{}apply/holder", self.prefix)
    }

    /// One key per written chunk of a staged apply, naming the keys that chunk wrote.
    pub fn apply_progress(&self) -> String {
        format!("{}apply/progress/", self.prefix)
    }

    pub fn parse_object_key(&self, key: &str) -> Option<(Kind, String)> {
        let rest = key.strip_prefix(&self.prefix)?;
        let rest = rest
            .strip_prefix("spec/")
            .or_else(|| rest.strip_prefix("status/"))?;
        let (kind, name) = rest.split_once('/')?;
        let kind = Kind::ALL.into_iter().find(|k| k.lower() == kind)?;
        Some((kind, name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::for_cluster("prod");
        assert_eq!(
            k.spec(Kind::Node, "node1.omtd"),
            "/omtd/prod/spec/node/node1.omtd"
        );
        assert_eq!(k.status(Kind::Volume, "v"), "/omtd/prod/status/volume/v");
        assert_eq!(k.plan("n", "storage"), "/omtd/prod/plans/n/storage");
        assert_eq!(
            k.parse_object_key("/omtd/prod/status/node/a.b"),
            Some((Kind::Node, "a.b".into()))
        );
        assert_eq!(k.parse_object_key("/omtd/other/spec/node/a"), None);
    }
}
