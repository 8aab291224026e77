//! Files: exact bytes, mode (secrets 0600), owner and group where the agent may chown.

use std::collections::BTreeMap;

use omtd_crds::plan::{Ensure, FileSpec, ResourceState};

use super::{Pass, ResourceOutcome};
use crate::agent::drift::fingerprint;
use crate::agent::drivers::FileState;
use crate::agent::merge::id;

/// The mode a file gets: secrets are 0600 whatever the plan says.
pub fn effective_mode(spec: &FileSpec) -> u32 {
    if spec.secret {
        0o600
    } else {
        spec.mode & 0o7777
    }
}

fn in_sync(spec: &FileSpec, mode: u32, cur: &FileState, ownership: bool) -> bool {
    cur.content == spec.content.as_bytes()
        && cur.mode == mode
        && (!ownership
            || (spec.owner.as_ref().is_none_or(|o| *o == cur.owner)
                && spec.group.as_ref().is_none_or(|g| *g == cur.group)))
}

impl Pass<'_> {
    pub(super) fn files(&mut self) {
        let plan = self.plan;
        for spec in &plan.files {
            self.file(spec);
        }
    }

    fn file(&mut self, spec: &FileSpec) {
        let rid = id::file(spec);
        let corrective = self.is_corrective(&rid, super::super::memory::spec_hash(spec));
        let mode = effective_mode(spec);
        let current = match self.host.files.read(&spec.path) {
            Ok(c) => c,
            Err(e) => return self.record_failure(rid, spec, corrective, &e),
        };
        let expected = match spec.ensure {
            Ensure::Present => Some(fingerprint(spec.content.as_bytes(), mode)),
            Ensure::Absent => None,
        };
        let needs = match (spec.ensure, &current) {
            (Ensure::Absent, None) => false,
            (Ensure::Absent, Some(_)) => true,
            (Ensure::Present, None) => true,
            (Ensure::Present, Some(cur)) => {
                !in_sync(spec, mode, cur, self.host.files.enforces_ownership())
            }
        };
        if !needs {
            self.out.expected_files.push((spec.path.clone(), expected));
            return self.record(
                rid,
                spec,
                corrective,
                ResourceOutcome::InSync(BTreeMap::new()),
            );
        }
        if let Err(pause) = self.may_touch(&rid, corrective) {
            return self.backing_off(rid, pause, ResourceState::Failed);
        }
        let result = match spec.ensure {
            Ensure::Present => self.host.files.write(spec, mode),
            Ensure::Absent => self.host.files.remove(&spec.path),
        };
        match result {
            Ok(()) => {
                // Never the content: it may be a secret.
                tracing::info!(path = %spec.path, corrective, "file written");
                self.changed_files.insert(spec.path.clone(), corrective);
                self.out.expected_files.push((spec.path.clone(), expected));
                self.record_changed(rid, spec, corrective);
            }
            Err(e) => self.record_failure(rid, spec, corrective, &e),
        }
    }
}
