//! Apache sites omtd does not manage: a leftover `sites-enabled/*.conf` (an old vhost from
//! the hand-run days, a test site) is served beside omtd's and can take its requests, but it
//! is the operator's, not omtd's, to delete. The agent lists it in its report
//! (`Report::unmanaged`) and `omtd status` shows it; nothing removes it.

use std::collections::BTreeSet;

use super::Pass;

/// Where Debian's Apache reads its sites (`IncludeOptional sites-enabled/*.conf`).
pub const SITES_ENABLED: &str = "/etc/apache2/sites-enabled";

impl Pass<'_> {
    /// Only where omtd manages a site (the plan has one): elsewhere Apache is not omtd's.
    pub(super) fn unmanaged_sites(&mut self) {
        let prefix = format!("{SITES_ENABLED}/");
        let planned: BTreeSet<&str> = self
            .plan
            .files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| p.starts_with(&prefix))
            .collect();
        if planned.is_empty() {
            return;
        }
        // The sim host has no directory to list (host_path is None): nothing is left over.
        let Some(dir) = self.host.files.host_path(SITES_ENABLED) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            // What Apache loads; omtd's own temporary files start with a dot.
            .filter(|name| name.ends_with(".conf") && !name.starts_with('.'))
            .map(|name| format!("{prefix}{name}"))
            .filter(|path| !planned.contains(path.as_str()))
            .collect();
        found.sort();
        self.out.unmanaged = found;
    }
}
