//! NFS exports: omtd's `/etc/exports` lines, reloaded after a change. Owned lines the plan
//! no longer has are removed only when the plan is complete.

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::plan::ExportSpec;

use super::{Pass, ResourceOutcome};
use crate::agent::memory::spec_hash;
use crate::agent::merge::id;

impl Pass<'_> {
    pub(super) fn exports(&mut self) {
        let plan = self.plan;
        let current = match self.host.exports.owned_lines() {
            Ok(c) => c,
            Err(e) => return self.all_exports_failed(&e.to_string()),
        };
        let mut wanted: Vec<String> = plan.exports.iter().map(ExportSpec::line).collect();
        if !plan.complete {
            let planned: BTreeSet<String> = wanted.iter().cloned().collect();
            wanted.extend(current.iter().filter(|l| !planned.contains(*l)).cloned());
        }
        let mut added: BTreeSet<String> = BTreeSet::new();
        let same = super::same_lines(plan.complete, &wanted, &current);
        if !same {
            let before: BTreeSet<&String> = current.iter().collect();
            if let Err(e) = self.host.exports.write_owned_lines(&wanted) {
                return self.all_exports_failed(&e.to_string());
            }
            added = wanted
                .iter()
                .filter(|l| !before.contains(l))
                .cloned()
                .collect();
            if added.is_empty() {
                self.count_change(false);
            }
        } else if let Err(e) = self.host.exports.reload_if_pending() {
            return self.all_exports_failed(&e.to_string());
        }
        for e in &plan.exports {
            let rid = id::export(e);
            let corrective = self.is_corrective(&rid, spec_hash(e));
            let outcome = if added.contains(&e.line()) {
                ResourceOutcome::Changed {
                    observed: BTreeMap::new(),
                }
            } else {
                ResourceOutcome::InSync(BTreeMap::new())
            };
            self.record(rid, e, corrective, outcome);
        }
    }

    fn all_exports_failed(&mut self, msg: &str) {
        let plan = self.plan;
        for e in &plan.exports {
            let rid = id::export(e);
            let c = self.is_corrective(&rid, spec_hash(e));
            self.record(
                rid,
                e,
                c,
                ResourceOutcome::Failed(format!("/etc/exports: {msg}")),
            );
        }
    }
}
