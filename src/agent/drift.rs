//! Noticing drift of managed files at once, with inotify (the `notify` crate).
//!
//! - One watch per *parent directory* of the managed files, never one per file: editors
//!   replace files by rename (a per-file watch dies with the old inode), and per-file
//!   watches are how mgmt's users ran into ENOSPC and leaked descriptors. Watches follow the
//!   plan: directories no longer needed are unwatched.
//! - The agent's own writes must not wake it into a loop: an event only counts when the
//!   file's fingerprint (SHA-256 of content and mode) differs from what the agent expects
//!   (what it just wrote, or what the file held after its last pass). Temporary files and
//!   unmanaged neighbours are ignored.
//! - Access events are dropped: reading a file to fingerprint it opens it, and counting
//!   opens would wake the agent forever.
//! - A queue overflow or a watch error asks for a full look (`Drift::Rescan`).
//! - The agent repairs a drifted file once its writer is done with it: at once when the
//!   last event on it says so (the writer closed it after writing, or renamed a new file
//!   over it), else once it has been quiet for 50 ms (see `settle` in the agent loop): a
//!   writer that truncates then writes must not have the file renamed away under it.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// SHA-256 of a file's bytes and mode.
pub fn fingerprint(content: &[u8], mode: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(content);
    h.update(mode.to_le_bytes());
    h.finalize().into()
}

/// The fingerprint of a file on disk now (None: missing).
pub fn fingerprint_of(path: &Path) -> Option<[u8; 32]> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        // Not a regular file: never what the agent wrote.
        return Some([0xff; 32]);
    }
    let content = fs::read(path).ok()?;
    Some(fingerprint(&content, meta.mode() & 0o7777))
}

/// What woke the drift watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftSignal {
    /// A watched file no longer looks as the agent left it.
    Changed(PathBuf),
    /// Events were lost: look at everything.
    Rescan,
}

/// One event on a watched path: the path, and whether the event says its writer is done
/// (closed it after writing, or renamed a finished file over it).
type Seen = (PathBuf, bool);

/// Whether an event ends a write: after it nobody is writing the file through the path.
fn ends_a_write(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
}

pub struct Drift {
    watcher: notify::RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<Option<Seen>>,
    /// Whether the event behind the last drift `next` returned ended its write.
    written: bool,
    dirs: BTreeSet<PathBuf>,
    expected: HashMap<PathBuf, Option<[u8; 32]>>,
}

impl Drift {
    pub fn new() -> notify::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) => {
                    if ev.need_rescan() {
                        let _ = tx.send(None);
                    }
                    let counts = match ev.kind {
                        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                        EventKind::Access(_) => false,
                        _ => true,
                    };
                    if counts {
                        let done = ends_a_write(&ev.kind);
                        for p in ev.paths {
                            let _ = tx.send(Some((p, done)));
                        }
                    }
                }
                Err(_) => {
                    let _ = tx.send(None);
                }
            })?;
        Ok(Drift {
            watcher,
            rx,
            written: false,
            dirs: BTreeSet::new(),
            expected: HashMap::new(),
        })
    }

    /// Set what to watch: managed files with the fingerprint they should have, and files
    /// (fstab, exports) whose current content is taken as the expected one.
    pub fn update(&mut self, expected: Vec<(PathBuf, Option<[u8; 32]>)>, snapshot: Vec<PathBuf>) {
        self.expected = expected.into_iter().collect();
        for p in snapshot {
            let fp = fingerprint_of(&p);
            self.expected.insert(p, fp);
        }
        let wanted: BTreeSet<PathBuf> = self
            .expected
            .keys()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| d.is_dir())
            .collect();
        for gone in self.dirs.difference(&wanted).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&gone);
            self.dirs.remove(&gone);
        }
        for new in wanted.difference(&self.dirs).cloned().collect::<Vec<_>>() {
            match self.watcher.watch(&new, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(new);
                }
                Err(e) => {
                    // The periodic resync still covers these files.
                    tracing::warn!(dir = %new.display(), error = %e, "cannot watch directory");
                }
            }
        }
    }

    /// How many directories are watched (one inotify watch each).
    pub fn watched_dirs(&self) -> usize {
        self.dirs.len()
    }

    /// Whether the drift `next` returned last came with its writer done (see
    /// [`ends_a_write`]): then the repair need not wait for the file to be quiet.
    pub fn writer_done(&self) -> bool {
        self.written
    }

    /// The next real drift. Never returns while nothing drifts.
    pub async fn next(&mut self) -> DriftSignal {
        loop {
            let Some(msg) = self.rx.recv().await else {
                return std::future::pending().await;
            };
            let Some((path, done)) = msg else {
                self.written = false;
                return DriftSignal::Rescan;
            };
            self.written = done;
            if self.dirs.remove(&path) {
                // A watched directory itself went away: its watch is gone; the next update
                // watches it again once the pass has recreated it.
                return DriftSignal::Changed(path);
            }
            if let Some(want) = self.expected.get(&path) {
                if fingerprint_of(&path) != *want {
                    return DriftSignal::Changed(path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn own_writes_are_quiet_foreign_edits_are_not() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let a = dir.join("a");
        let b = dir.join("b");
        fs::write(&a, "1").unwrap();
        fs::write(&b, "x").unwrap();
        let mut drift = Drift::new().unwrap();
        let fp = fingerprint_of(&a);
        drift.update(
            vec![(a.clone(), fp), (b.clone(), fingerprint_of(&b))],
            vec![],
        );
        assert_eq!(drift.watched_dirs(), 1, "one watch for the directory");
        // Rewriting the same bytes (as the agent would) and touching an unmanaged file: quiet.
        crate::agent::drivers::linux::atomic::write(&a, b"1", 0o644, Default::default()).unwrap();
        fs::write(dir.join("unmanaged"), "y").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), drift.next())
                .await
                .is_err()
        );
        fs::write(&b, "edited").unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), drift.next())
            .await
            .unwrap();
        assert_eq!(ev, DriftSignal::Changed(b));
        drift.update(vec![], vec![]);
        assert_eq!(drift.watched_dirs(), 0, "unwatched when no longer managed");
    }

    async fn next(drift: &mut Drift) -> DriftSignal {
        tokio::time::timeout(Duration::from_secs(5), drift.next())
            .await
            .unwrap()
    }

    /// A file still open for writing is not done; its close, or a rename over the file,
    /// says the writer is (so the repair need not wait out the quiet window).
    #[tokio::test]
    async fn the_writer_is_done_when_it_closes_or_renames_over() {
        use std::io::Write as _;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let f = dir.join("managed");
        fs::write(&f, "agent's").unwrap();
        let mut drift = Drift::new().unwrap();
        drift.update(vec![(f.clone(), fingerprint_of(&f))], vec![]);

        let mut writer = fs::File::create(&f).unwrap(); // truncates: the first drift event
        writer.write_all(b"half").unwrap();
        assert_eq!(next(&mut drift).await, DriftSignal::Changed(f.clone()));
        assert!(!drift.writer_done(), "still open for writing");
        drop(writer);
        loop {
            assert_eq!(next(&mut drift).await, DriftSignal::Changed(f.clone()));
            if drift.writer_done() {
                break;
            }
        }

        fs::write(&f, "agent's").unwrap();
        drift.update(vec![(f.clone(), fingerprint_of(&f))], vec![]);
        let tmp = dir.join(".managed.swp");
        fs::write(&tmp, "an editor's save").unwrap();
        fs::rename(&tmp, &f).unwrap();
        loop {
            assert_eq!(next(&mut drift).await, DriftSignal::Changed(f.clone()));
            if drift.writer_done() {
                break;
            }
        }
    }
}
