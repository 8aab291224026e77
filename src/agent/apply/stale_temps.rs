//! After a crash: an agent killed between writing a temporary file and renaming it over the
//! target leaves `.NAME.omtd-PID-N` behind — possibly a copy of a secret. Each managed
//! file's directory is cleared of such files once per agent run, the first time the agent
//! manages that file (the plan may arrive, or grow, after the start).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::Pass;
use crate::agent::drivers::linux::atomic;

impl Pass<'_> {
    pub(super) fn stale_temps(&mut self) {
        let mut targets: BTreeSet<PathBuf> = self
            .plan
            .files
            .iter()
            .filter_map(|f| self.host.files.host_path(&f.path))
            .collect();
        targets.extend(self.host.extra_watch_paths());
        for target in targets {
            if self.mem.temps_checked.contains(&target) {
                continue;
            }
            for p in atomic::remove_stale_temps(&target) {
                tracing::info!(path = %p.display(), "removed a stale temporary file of an interrupted write");
            }
            self.mem.temps_checked.insert(target);
        }
    }
}
