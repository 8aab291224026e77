//! Which agents are lost, and whether so many are lost at once that the fault is more
//! likely the operator's view (control plane, network) than the hosts.
//!
//! Kubernetes' node lifecycle controller stops evicting when most nodes of a zone go
//! NotReady together: evicting then would turn a network partition into an outage. omtd
//! applies the same rule to everything destructive it does: no drain, no removal step, no
//! recovery restart while [`ClusterHealth::mass_loss`] holds. Each lost node also gets nothing
//! destructive on its own (its plan does not change under it).

use std::time::Duration;

use crate::desired::Desired;
use crate::observed::{Liveness, Observed};
use crate::settings::Settings;

/// Fewer lost agents than this are never a "mass" loss (one dead host is just that).
pub const MASS_LOSS_MIN: usize = 2;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterHealth {
    /// Nodes whose agent has been gone longer than the grace period, with how long.
    pub lost: Vec<(String, Duration)>,
    /// Nodes whose agent was seen at least once (new hosts do not count either way).
    pub known: usize,
    /// Most known agents lost at once.
    pub mass_loss: bool,
}

impl ClusterHealth {
    pub fn assess(desired: &Desired, observed: &Observed, settings: &Settings) -> ClusterHealth {
        let mut h = ClusterHealth::default();
        for name in desired.nodes.keys() {
            match observed.liveness(name, settings) {
                Liveness::NeverSeen => {}
                Liveness::Alive => h.known += 1,
                Liveness::Lost(d) => {
                    h.known += 1;
                    h.lost.push((name.clone(), d));
                }
            }
        }
        h.mass_loss = h.lost.len() >= MASS_LOSS_MIN && h.lost.len() * 2 > h.known;
        h
    }

    pub fn is_lost(&self, node: &str) -> bool {
        self.lost.iter().any(|(n, _)| n == node)
    }

    /// The message of the cluster condition while mass loss holds.
    pub fn mass_loss_message(&self) -> String {
        let names: Vec<&str> = self.lost.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "{} of {} agents lost at once ({}): treating it as a fault of the control plane \
             or the network, not of the hosts; no drain, removal or recovery restart until \
             it clears",
            self.lost.len(),
            self.known,
            names.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::AgentLiveness;
    use std::time::SystemTime;

    fn desired(n: usize) -> Desired {
        let yaml: Vec<String> = (1..=n)
            .map(|i| {
                format!(
                    "apiVersion: omtd/v1\nkind: Node\nmetadata: {{name: n{i}}}\nspec: {{address: 10.0.0.{i}}}\n"
                )
            })
            .collect();
        let objs = omtd_crds::manifest::parse(&yaml.join("---\n")).unwrap_or_default();
        Desired::from_objects(&objs)
    }

    fn observed(alive: usize, lost: usize) -> Observed {
        let mut o = Observed::at(SystemTime::UNIX_EPOCH);
        for i in 1..=alive + lost {
            let a = if i <= alive {
                AgentLiveness {
                    lease_present: true,
                    since_heartbeat: Duration::ZERO,
                }
            } else {
                AgentLiveness {
                    lease_present: false,
                    since_heartbeat: Duration::from_secs(300),
                }
            };
            o.agents.insert(format!("n{i}"), a);
        }
        o
    }

    #[test]
    fn mass_loss_table() {
        let s = Settings::default();
        // (nodes, alive, lost, mass loss?)
        let table = [
            (8, 8, 0, false),
            (8, 7, 1, false),
            (8, 4, 4, false), // half is not most
            (8, 3, 5, true),
            (2, 1, 1, false), // one dead host is just that
            (2, 0, 2, true),
            (1, 0, 1, false),
        ];
        for (nodes, alive, lost, mass) in table {
            let h = ClusterHealth::assess(&desired(nodes), &observed(alive, lost), &s);
            assert_eq!(h.lost.len(), lost, "{nodes}/{alive}/{lost}");
            assert_eq!(
                h.mass_loss, mass,
                "{nodes} nodes, {alive} alive, {lost} lost"
            );
        }
    }

    #[test]
    fn never_seen_agents_do_not_count() {
        let s = Settings::default();
        // 8 nodes, only 3 ever seen (a cluster coming up): 2 lost of 3 is mass loss, but
        // the 5 new hosts neither dilute nor add to it.
        let h = ClusterHealth::assess(&desired(8), &observed(1, 2), &s);
        assert_eq!(h.known, 3);
        assert!(h.mass_loss);
    }

    #[test]
    fn lease_gone_within_grace_is_alive() {
        let s = Settings::default();
        let d = desired(1);
        let mut o = Observed::at(SystemTime::UNIX_EPOCH);
        o.agents.insert(
            "n1".into(),
            AgentLiveness {
                lease_present: false,
                since_heartbeat: s.agent_grace,
            },
        );
        assert!(ClusterHealth::assess(&d, &o, &s).lost.is_empty());
    }
}
