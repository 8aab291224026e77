//! The reader that looks at every host's managed files at random moments while the faults
//! land: a torn file (bytes of no whole version) or a wanted export/fstab line gone at any
//! moment is counted, with the first few examples kept for the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::plan::{
    is_whole, known_export_line, known_mount_line, EXPORTS_FOREIGN, FILES, FSTAB_FOREIGN,
    STABLE_EXPORT, STABLE_MOUNT,
};

#[derive(Default)]
pub struct Findings {
    pub reads: AtomicU64,
    pub torn: AtomicU64,
    pub unsafe_steps: AtomicU64,
    pub examples: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Findings {
    fn note(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut ex = self.examples.lock().unwrap_or_else(|e| e.into_inner());
        if ex.len() < 10 {
            ex.push(what);
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads every (node, root) in a loop on its own thread until [`Findings::stop`]. Started
/// once every host converged for the first time: from then on each file must exist.
pub fn spawn(hosts: Vec<(String, PathBuf)>) -> (Arc<Findings>, std::thread::JoinHandle<()>) {
    let findings = Arc::new(Findings::default());
    let f = Arc::clone(&findings);
    let handle = std::thread::spawn(move || {
        while !f.stop.load(Ordering::Relaxed) {
            for (node, root) in &hosts {
                check_host(&f, node, root);
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    (findings, handle)
}

fn under(root: &Path, plan_path: &str) -> PathBuf {
    root.join(plan_path.trim_start_matches('/'))
}

pub fn check_host(f: &Findings, node: &str, root: &Path) {
    for path in FILES {
        let bytes = std::fs::read(under(root, path)).unwrap_or_default();
        f.reads.fetch_add(1, Ordering::Relaxed);
        if !is_whole(node, path, &bytes) {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            f.note(
                &f.torn,
                format!("{node} {path}: {} bytes, starting {head:?}", bytes.len()),
            );
        }
    }
    let tables = [
        (
            "/etc/exports",
            EXPORTS_FOREIGN,
            STABLE_EXPORT,
            known_export_line as fn(&str) -> bool,
        ),
        ("/etc/fstab", FSTAB_FOREIGN, STABLE_MOUNT, known_mount_line),
    ];
    for (path, foreign, stable, known) in tables {
        let text = std::fs::read_to_string(under(root, path)).unwrap_or_default();
        f.reads.fetch_add(1, Ordering::Relaxed);
        let lines: Vec<&str> = text.lines().collect();
        let foreign: Vec<&str> = foreign.lines().collect();
        if foreign.iter().any(|l| !lines.contains(l)) || !lines.contains(&stable) {
            f.note(
                &f.unsafe_steps,
                format!("{node} {path}: a wanted line is gone:\n{text}"),
            );
        }
        let strange = lines
            .iter()
            .any(|l| !foreign.contains(l) && !l.starts_with("# ") && !known(l));
        if strange || (!text.is_empty() && !text.ends_with('\n')) {
            f.note(&f.torn, format!("{node} {path}: torn:\n{text}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::content;
    use super::*;

    /// A root as a converged host leaves it in version `v`.
    fn host(root: &Path, node: &str, v: u64) {
        std::fs::create_dir_all(root.join("etc/chaos")).unwrap();
        for p in FILES {
            std::fs::write(under(root, p), content(node, p, v)).unwrap();
        }
        let exports = format!("{EXPORTS_FOREIGN}# BEGIN x\n{STABLE_EXPORT}\n# END x\n");
        std::fs::write(root.join("etc/exports"), exports).unwrap();
        let fstab = format!("{FSTAB_FOREIGN}# BEGIN x\n{STABLE_MOUNT}\n# END x\n");
        std::fs::write(root.join("etc/fstab"), fstab).unwrap();
    }

    #[test]
    fn the_reader_counts_what_it_must_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        host(root, "n1", 7);
        let f = Findings::default();
        check_host(&f, "n1", root);
        assert_eq!(f.torn.load(Ordering::Relaxed), 0);
        assert_eq!(f.unsafe_steps.load(Ordering::Relaxed), 0);
        // Half of a version: torn.
        let whole = content("n1", FILES[1], 8);
        std::fs::write(under(root, FILES[1]), &whole[..whole.len() / 2]).unwrap();
        check_host(&f, "n1", root);
        assert_eq!(f.torn.load(Ordering::Relaxed), 1);
        // The stable export gone: unsafe; another node's content: torn.
        std::fs::write(root.join("etc/exports"), EXPORTS_FOREIGN).unwrap();
        std::fs::write(under(root, FILES[0]), content("n2", FILES[0], 7)).unwrap();
        check_host(&f, "n1", root);
        assert_eq!(f.unsafe_steps.load(Ordering::Relaxed), 1);
        assert_eq!(f.torn.load(Ordering::Relaxed), 3);
    }
}
