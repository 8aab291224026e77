//! What a controller derived on its last pass, kept for the next (issue #11: a change costs
//! what it changes).
//!
//! A [`Memo`] holds one result per key (a node's slice, a worker's scrape-target group)
//! under a [`Print`] of every input it was derived from. A pass asks for each key's result
//! with the print of that key's inputs now: the same print hands back the kept result, a
//! different one derives it anew. The controllers stay pure: the memo is an input and an
//! output of a pass (`&mut`), never hidden state, and a pass with an empty memo (from
//! scratch) gives the same outcome as one with a kept memo (`tests/incremental.rs` checks
//! it on random sequences of changes).
//!
//! The print must cover everything the derivation reads: a record is printed by its
//! `resourceVersion` (the store's mod revision, which every change of the record moves)
//! and, when it has none (a record made by hand, not read from a store), by its whole
//! content; everything else the derivation reads from outside the record (the Cluster, a
//! removal phase from a status, a setting) goes into the print as the value read.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use omtd_crds::object::Resource;
use serde::Serialize;

/// A digest of the inputs one result was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Print(u64);

/// Builds a [`Print`] from the inputs fed to it, in order.
#[derive(Debug, Default)]
pub struct Printer(DefaultHasher);

impl Printer {
    pub fn new() -> Printer {
        Printer::default()
    }

    /// Feeds one input.
    pub fn feed(mut self, value: impl Hash) -> Printer {
        value.hash(&mut self.0);
        self
    }

    /// Feeds a record: by its resource version, or whole when it has none.
    pub fn record<S: Serialize>(self, record: &Resource<S>) -> Printer {
        match &record.metadata.resource_version {
            Some(version) => self.feed(("rv", &record.metadata.name, version)),
            // A record not read from a store: its bytes (spec, metadata, status) are the
            // only thing that says it changed.
            None => self.feed(("whole", serde_json::to_vec(record).unwrap_or_default())),
        }
    }

    pub fn finish(&self) -> Print {
        Print(self.0.finish())
    }
}

/// One kept result per key, each under the print of its inputs.
#[derive(Clone)]
pub struct Memo<V> {
    entries: HashMap<String, Entry<V>>,
    /// The pass now running: an entry not asked for in it is gone from the cluster.
    pass: u64,
    derived: u64,
}

/// Keys and counts only: a kept value may hold secrets (the master's `credentials.json`
/// entries), and a state printed for debugging must not show them.
impl<V> std::fmt::Debug for Memo<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        f.debug_struct("Memo")
            .field("keys", &keys)
            .field("pass", &self.pass)
            .field("derived", &self.derived)
            .finish()
    }
}

#[derive(Clone)]
struct Entry<V> {
    print: Print,
    value: V,
    /// The last pass that asked for it.
    pass: u64,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo {
            entries: HashMap::new(),
            pass: 0,
            derived: 0,
        }
    }
}

impl<V> Memo<V> {
    /// `key`'s result for inputs printed `print`: the kept one when the print is the same,
    /// else `derive()` (kept for the next pass).
    pub fn get(&mut self, key: &str, print: Print, derive: impl FnOnce() -> V) -> &V {
        let pass = self.pass;
        match self.entries.entry(key.to_owned()) {
            MapEntry::Occupied(kept) => {
                let kept = kept.into_mut();
                if kept.print != print {
                    self.derived += 1;
                    kept.value = derive();
                    kept.print = print;
                }
                kept.pass = pass;
                &kept.value
            }
            MapEntry::Vacant(slot) => {
                self.derived += 1;
                &slot
                    .insert(Entry {
                        print,
                        value: derive(),
                        pass,
                    })
                    .value
            }
        }
    }

    /// Forgets every key not asked for since the last sweep (a node gone, a worker no
    /// longer a member): a pass calls it at its end so the memo holds only the cluster of
    /// now.
    pub fn sweep(&mut self) {
        let pass = self.pass;
        self.entries.retain(|_, e| e.pass == pass);
        self.pass += 1;
    }

    /// How many results were derived (not taken from the memo) since it was made: what a
    /// test or a bench reads to see that a pass recomputed only what changed.
    pub fn derived(&self) -> u64 {
        self.derived
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_only_what_a_new_print_asks_for_and_forgets_what_went() {
        let mut memo: Memo<String> = Memo::default();
        let p = |s: &str| Printer::new().feed(s).finish();
        assert_eq!(memo.get("a", p("1"), || "a1".into()), "a1");
        assert_eq!(memo.get("b", p("1"), || "b1".into()), "b1");
        memo.sweep();
        assert_eq!(memo.derived(), 2);
        // Same prints: kept; a new print: derived anew.
        assert_eq!(memo.get("a", p("1"), || "never".into()), "a1");
        assert_eq!(memo.get("b", p("2"), || "b2".into()), "b2");
        memo.sweep();
        assert_eq!(memo.derived(), 3);
        // "a" not asked for in this pass: gone after the sweep.
        memo.get("b", p("2"), || "never".into());
        memo.sweep();
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get("a", p("1"), || "a again".into()), "a again");
    }

    #[test]
    fn debug_shows_keys_never_values() {
        let mut memo: Memo<String> = Memo::default();
        memo.get("node1.omtd", Printer::new().finish(), || {
            "s3cr3t-value".into()
        });
        let shown = format!("{memo:?}");
        assert!(shown.contains("node1.omtd"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }
}
