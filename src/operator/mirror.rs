//! Owned copies of the snapshot's shared maps, kept up to date by copying only what
//! changed.
//!
//! The pure controllers read `Observed`, whose maps own their values
//! (`BTreeMap<String, Report>`), while the snapshot shares its values
//! (`BTreeMap<String, Arc<Report>>`). Copying every report into a fresh map on every pass
//! was the largest single cost of a pass at a thousand nodes. A [`Mirror`] remembers
//! which `Arc` each of its entries was made from and, handed a newer map, remakes only the
//! entries whose `Arc` is another one.
//!
//! A [`Pool`] keeps mirrors for passes that run at once: the owned map moves into the
//! `Observed` of one pass and back into its mirror afterwards.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use imbl::ordmap::DiffItem;
use imbl::OrdMap;

/// An owned map (`U` values) made from a persistent map of shared values (`V`).
#[derive(Debug)]
pub struct Mirror<V: Clone, U> {
    /// The map it was last made from: the next sync visits only what differs from it
    /// (the persistent map skips the parts both share).
    source: OrdMap<String, V>,
    pub owned: BTreeMap<String, U>,
    /// Whether `owned` is the one made from `source` (not taken away by a pass that never
    /// gave it back).
    whole: bool,
}

impl<V: Clone, U> Default for Mirror<V, U> {
    fn default() -> Self {
        Mirror {
            source: OrdMap::new(),
            owned: BTreeMap::new(),
            whole: true,
        }
    }
}

impl<V: Clone + PartialEq, U> Mirror<V, U> {
    /// Makes `owned` hold `make(v)` for every `(key, v)` of `from` for which it is `Some`
    /// and nothing else, calling `make` only for entries that are new or changed since the
    /// last sync. `make` must be a function of the value alone.
    pub fn sync(&mut self, from: &OrdMap<String, V>, make: impl Fn(&V) -> Option<U>) {
        if !self.whole {
            self.source = OrdMap::new();
            self.owned.clear();
            self.whole = true;
        }
        for item in self.source.diff(from) {
            match item {
                DiffItem::Add(key, value)
                | DiffItem::Update {
                    new: (key, value), ..
                } => match make(value) {
                    Some(made) => {
                        self.owned.insert(key.clone(), made);
                    }
                    None => {
                        self.owned.remove(key);
                    }
                },
                DiffItem::Remove(key, _) => {
                    self.owned.remove(key);
                }
            }
        }
        self.source = from.clone();
    }

    /// Moves the owned map out (into a pass's `Observed`); [`Mirror::give_back`] returns
    /// it. Until then the mirror counts as empty: a pass that panicked with it is rebuilt.
    pub fn take(&mut self) -> BTreeMap<String, U> {
        self.whole = false;
        std::mem::take(&mut self.owned)
    }

    pub fn give_back(&mut self, owned: BTreeMap<String, U>) {
        self.owned = owned;
        self.whole = true;
    }
}

/// Mirrors for passes that run at once.
#[derive(Debug)]
pub struct Pool<M> {
    free: Mutex<Vec<M>>,
}

impl<M> Default for Pool<M> {
    fn default() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }
}

impl<M: Default> Pool<M> {
    /// A mirror no other pass uses (a new, empty one when all are taken).
    pub fn take(&self) -> M {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Hands a mirror back for the next pass.
    pub fn give(&self, mirror: M) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(mirror);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn remakes_only_what_changed_and_drops_what_went() {
        let a = Arc::new(1);
        let b = Arc::new(2);
        let mut from: OrdMap<String, Arc<i32>> =
            [("a".to_owned(), Arc::clone(&a)), ("b".to_owned(), b)]
                .into_iter()
                .collect();
        let made = std::cell::Cell::new(0);
        let make = |v: &Arc<i32>| {
            made.set(made.get() + 1);
            Some(**v * 10)
        };
        let mut m: Mirror<Arc<i32>, i32> = Mirror::default();
        m.sync(&from, make);
        assert_eq!(m.owned, [("a".to_owned(), 10), ("b".to_owned(), 20)].into());
        assert_eq!(made.get(), 2);
        // b changes, c arrives, a stays.
        from.insert("b".into(), Arc::new(3));
        from.insert("c".into(), Arc::new(4));
        m.sync(&from, make);
        assert_eq!(made.get(), 4, "only b and c were remade");
        from.remove("a");
        m.sync(&from, make);
        assert_eq!(m.owned, [("b".to_owned(), 30), ("c".to_owned(), 40)].into());
        // An entry `make` leaves out is absent.
        from.insert("d".into(), Arc::new(-1));
        m.sync(&from, |v| (**v > 0).then(|| **v * 10));
        assert!(!m.owned.contains_key("d"));
        // An owned map taken and never given back (a pass that panicked) is rebuilt.
        let _lost = m.take();
        m.sync(&from, make);
        assert_eq!(m.owned.len(), 3);
        let owned = m.take();
        m.give_back(owned);
        let before = made.get();
        m.sync(&from, make);
        assert_eq!(made.get(), before, "given back: nothing to remake");
    }
}
