//! The reflector's side of a staged apply (`resources::staged`): while an apply holds its
//! lock, the changes to the keys its chunks wrote wait here, and reach the cache (and the
//! controllers) together with the release. Changes to other keys pass at once, so the
//! operator's own writes, reports and leases are not held up by an apply.

use crate::resources::staged::Held;
use crate::resources::Keys;
use crate::store::{EventKind, WatchEvent};

#[derive(Debug, Default)]
pub(super) struct ApplyHold {
    held: Option<Held>,
    waiting: Vec<WatchEvent>,
}

impl ApplyHold {
    /// The hold a fresh list found (its keys already read as before the apply).
    pub(super) fn listed(held: Option<Held>) -> Self {
        ApplyHold {
            held,
            waiting: Vec::new(),
        }
    }

    /// Whether changes are being held back.
    pub(super) fn active(&self) -> bool {
        self.held.is_some()
    }

    /// The events of `batch` the cache may apply now, in order: the held ones come out
    /// just before the lock's delete that releases them.
    pub(super) fn pass(&mut self, keys: &Keys, batch: Vec<WatchEvent>) -> Vec<WatchEvent> {
        let lock = keys.apply_lock();
        let progress = keys.apply_progress();
        let mut out = Vec::with_capacity(batch.len());
        for ev in batch {
            if ev.kv.key == lock {
                match ev.kind {
                    EventKind::Put => {
                        if self.held.is_some() {
                            // A new lock without the old one's delete in between cannot
                            // come from one store; release rather than hold forever.
                            out.append(&mut self.waiting);
                        }
                        self.held = Some(Held {
                            lock: crate::resources::staged::StoredLock::from_kv(&ev.kv),
                            holder_alive: true,
                            keys: Default::default(),
                            all_objects: false,
                        });
                    }
                    EventKind::Delete => {
                        self.held = None;
                        out.append(&mut self.waiting);
                    }
                }
                out.push(ev);
                continue;
            }
            let Some(held) = self.held.as_mut() else {
                out.push(ev);
                continue;
            };
            if ev.kind == EventKind::Put && ev.kv.key.starts_with(&progress) {
                // Put first in its chunk's transaction: the keys are known before their
                // new values arrive.
                held.add_progress(&ev.kv.value);
                out.push(ev);
            } else if held.holds(keys, &ev.kv.key) {
                self.waiting.push(ev);
            } else {
                out.push(ev);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyValue;

    fn put(key: &str, value: &str, rev: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value: value.as_bytes().to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: None,
            },
        }
    }

    fn del(key: &str, rev: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.into(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: None,
            },
        }
    }

    fn keys_of(events: &[WatchEvent]) -> Vec<&str> {
        events.iter().map(|e| e.kv.key.as_str()).collect()
    }

    #[test]
    fn an_apply_reaches_the_cache_whole_with_its_release() {
        let keys = Keys::for_cluster("c");
        let mut hold = ApplyHold::default();
        let first = hold.pass(
            &keys,
            vec![
                put("/omtd/c/apply/lock", "{}", 10),
                put(
                    "/omtd/c/apply/progress/000000",
                    r#"{"put":["/omtd/c/spec/node/a"]}"#,
                    11,
                ),
                put("/omtd/c/spec/node/a", "new", 11),
                put("/omtd/c/reports/b", "r", 12),
            ],
        );
        assert_eq!(
            keys_of(&first),
            [
                "/omtd/c/apply/lock",
                "/omtd/c/apply/progress/000000",
                "/omtd/c/reports/b"
            ]
        );
        assert!(hold.active());
        // A later write to a held key stays behind the earlier one: order per key is kept.
        let second = hold.pass(
            &keys,
            vec![
                put(
                    "/omtd/c/apply/progress/000001",
                    r#"{"put":["/omtd/c/spec/node/z"]}"#,
                    13,
                ),
                put("/omtd/c/spec/node/z", "z", 13),
                del("/omtd/c/apply/lock", 14),
            ],
        );
        assert_eq!(
            keys_of(&second),
            [
                "/omtd/c/apply/progress/000001",
                "/omtd/c/spec/node/a",
                "/omtd/c/spec/node/z",
                "/omtd/c/apply/lock"
            ]
        );
        assert!(!hold.active());
        let after = hold.pass(&keys, vec![put("/omtd/c/spec/node/a", "x", 15)]);
        assert_eq!(keys_of(&after), ["/omtd/c/spec/node/a"]);
    }
}
