//! The plan manifest: the operator's word on what one node's plan is.
//!
//! Finding no slice, or fewer slices than before, says nothing by itself: the store may be
//! a different cluster's (a mistyped `--cluster`), freshly emptied, or missing keys deleted
//! by mistake. So an agent takes its plan as complete — and so may remove what the plan no
//! longer lists — only when a manifest under `plans/<node>/`[`MANIFEST_KEY`] says which
//! slices make up the plan, and the slices it finds are exactly those.
//!
//! The operator writes the manifest in the same transaction as every change to one of the
//! node's slices, so the two never disagree in the store. Each controller that plans nodes
//! records its decision for the node: the digest of its slice, or `None` when it plans
//! nothing there. A controller that has not decided yet (an operator just started on an
//! empty store) leaves the plan incomplete, rather than letting an agent take "not yet
//! written" for "nothing wanted".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::plan::PlanSlice;

/// The name of the manifest's key under `plans/<node>/`. Not a controller name: controller
/// names never start with `_`.
pub const MANIFEST_KEY: &str = "_manifest";

/// The report id under which an agent says it holds its host (no complete plan), with the
/// reason as the message: what `omtd status` shows for the node.
pub const HOLD_ID: &str = "plan";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanManifest {
    /// The cluster epoch it was written in (the `epoch` key, see [`newer_epoch`]): fencing
    /// tokens are compared only within one epoch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// The fencing token of the leader that last wrote it.
    pub fencing_token: i64,
    /// Every controller whose decision the plan needs (all that plan nodes).
    pub controllers: BTreeSet<String>,
    /// Per controller that has decided: the digest ([`PlanSlice::digest`]) of its slice of
    /// this node, or `None` when it plans nothing on this node.
    #[serde(default)]
    pub slices: BTreeMap<String, Option<String>>,
}

/// Whether epoch `a` was made after epoch `b`. An epoch is `<creation time in unix
/// milliseconds, 16 hex digits>-<random>`, made when the cluster's keys are first created
/// and again by `omtd epoch renew` after a store restore (which brings back lower fencing
/// tokens): fixed-width time first, so later epochs sort after earlier ones. No epoch (an
/// operator older than epochs) is older than any.
pub fn newer_epoch(a: &str, b: &str) -> bool {
    a > b
}

/// Why the slices found do not make a complete plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("waiting for {} to decide its part of the plan", .0.join(", "))]
    Undecided(Vec<String>),
    #[error("the slice of {0} named by the manifest is missing")]
    Missing(String),
    #[error("the slice of {0} is not the one the manifest names")]
    Different(String),
    #[error("a slice of {0} is stored that the manifest does not name")]
    Unlisted(String),
}

impl PlanManifest {
    /// The manifest naming exactly `slices` (each controller decided, one slice each), at
    /// the highest of their tokens: what an operator whose only planners are these
    /// controllers writes. For tools and tests that write plans by hand.
    pub fn naming<'a>(slices: impl IntoIterator<Item = &'a PlanSlice>) -> PlanManifest {
        let mut m = PlanManifest::default();
        for s in slices {
            m.fencing_token = m.fencing_token.max(s.fencing_token);
            m.controllers.insert(s.controller.clone());
            m.decide(&s.controller, Some(s));
        }
        m
    }

    /// This manifest's entry for `controller` after it decided `slice` (as stored, with
    /// controller and fencing token set).
    pub fn decide(&mut self, controller: &str, slice: Option<&PlanSlice>) {
        self.slices
            .insert(controller.to_owned(), slice.map(PlanSlice::digest));
    }

    /// Whether `slices` (per controller, as parsed from the store) are exactly the plan
    /// this manifest names. The first mismatch found, in a stable order.
    pub fn check(&self, slices: &BTreeMap<String, PlanSlice>) -> Result<(), Mismatch> {
        let undecided: Vec<String> = self
            .controllers
            .iter()
            .filter(|c| !self.slices.contains_key(*c))
            .cloned()
            .collect();
        if !undecided.is_empty() {
            return Err(Mismatch::Undecided(undecided));
        }
        for (controller, digest) in &self.slices {
            match (digest, slices.get(controller)) {
                (Some(_), None) => return Err(Mismatch::Missing(controller.clone())),
                (Some(d), Some(s)) if *d != s.digest() => {
                    return Err(Mismatch::Different(controller.clone()))
                }
                (None, Some(_)) => return Err(Mismatch::Unlisted(controller.clone())),
                _ => {}
            }
        }
        match slices.keys().find(|c| !self.slices.contains_key(*c)) {
            Some(c) => Err(Mismatch::Unlisted(c.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(controller: &str, token: i64) -> PlanSlice {
        PlanSlice {
            controller: controller.into(),
            fencing_token: token,
            ..Default::default()
        }
    }

    fn manifest(controllers: &[&str]) -> PlanManifest {
        PlanManifest {
            fencing_token: 7,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn complete_when_every_controller_decided_and_slices_match() {
        let mut m = manifest(&["node", "storage"]);
        let node = slice("node", 7);
        m.decide("node", Some(&node));
        m.decide("storage", None);
        let found = BTreeMap::from([("node".to_owned(), node)]);
        assert_eq!(m.check(&found), Ok(()));
    }

    #[test]
    fn each_mismatch_is_named() {
        let node = slice("node", 7);
        let storage = slice("storage", 7);
        let mut m = manifest(&["node", "storage"]);
        m.decide("node", Some(&node));
        assert_eq!(
            m.check(&BTreeMap::new()),
            Err(Mismatch::Undecided(vec!["storage".into()]))
        );
        m.decide("storage", Some(&storage));
        let only_node = BTreeMap::from([("node".to_owned(), node.clone())]);
        assert_eq!(
            m.check(&only_node),
            Err(Mismatch::Missing("storage".into()))
        );
        let edited = BTreeMap::from([
            ("node".to_owned(), slice("node", 6)),
            ("storage".to_owned(), storage.clone()),
        ]);
        assert_eq!(m.check(&edited), Err(Mismatch::Different("node".into())));
        m.decide("storage", None);
        let extra = BTreeMap::from([
            ("node".to_owned(), node.clone()),
            ("storage".to_owned(), storage),
        ]);
        assert_eq!(m.check(&extra), Err(Mismatch::Unlisted("storage".into())));
        let stray = BTreeMap::from([
            ("node".to_owned(), node),
            ("other".to_owned(), slice("other", 7)),
        ]);
        assert_eq!(m.check(&stray), Err(Mismatch::Unlisted("other".into())));
    }

    #[test]
    fn an_empty_plan_is_complete_only_when_every_controller_says_so() {
        let mut m = manifest(&["node"]);
        assert!(m.check(&BTreeMap::new()).is_err());
        m.decide("node", None);
        assert_eq!(m.check(&BTreeMap::new()), Ok(()));
    }
}
