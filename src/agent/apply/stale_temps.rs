//! After a crash: an agent killed between writing a temporary file and renaming it over the
//! target leaves `.NAME.omtd-PID-N` behind — possibly a copy of a secret. Each managed
//! file's directory is cleared of such files once per agent run, the first time the agent
//! manages that file (the plan may arrive, or grow, after the start).

use super::Pass;
use crate::agent::drivers::linux::atomic;

impl Pass<'_> {
    pub(super) fn stale_temps(&mut self) {
        let plan_paths = self
            .plan
            .files
            .iter()
            .filter_map(|f| self.host.files.host_path(&f.path));
        for target in plan_paths.chain(self.host.extra_watch_paths()) {
            // Checked already this run: nothing of ours can be stale there since.
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
