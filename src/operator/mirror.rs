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
use std::sync::{Arc, Mutex, PoisonError};

/// An owned map (`U` values) made from a sorted sequence of `(key, Arc<T>)`.
#[derive(Debug)]
pub struct Mirror<T, U> {
    /// What each entry was made from.
    source: BTreeMap<String, Arc<T>>,
    pub owned: BTreeMap<String, U>,
}

impl<T, U> Default for Mirror<T, U> {
    fn default() -> Self {
        Mirror {
            source: BTreeMap::new(),
            owned: BTreeMap::new(),
        }
    }
}

impl<T, U> Mirror<T, U> {
    /// Makes `owned` hold `make(v)` for every `(key, v)` of `from` and nothing else,
    /// calling `make` only for entries that are new or whose `Arc` changed. `make` must be
    /// a function of the value alone.
    pub fn sync<'a, I>(&mut self, from: I, make: impl Fn(&T) -> U)
    where
        T: 'a,
        I: Iterator<Item = (&'a String, &'a Arc<T>)> + Clone,
    {
        let mut present = 0;
        for (key, value) in from.clone() {
            present += 1;
            match self.source.get(key) {
                Some(old) if Arc::ptr_eq(old, value) && self.owned.contains_key(key) => {}
                _ => {
                    self.source.insert(key.clone(), Arc::clone(value));
                    self.owned.insert(key.clone(), make(value));
                }
            }
        }
        if present != self.source.len() || present != self.owned.len() {
            let keep: std::collections::BTreeSet<&String> = from.map(|(k, _)| k).collect();
            self.source.retain(|k, _| keep.contains(k));
            self.owned.retain(|k, _| keep.contains(k));
        }
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

    #[test]
    fn remakes_only_what_changed_and_drops_what_went() {
        let a = Arc::new(1);
        let b = Arc::new(2);
        let mut from: BTreeMap<String, Arc<i32>> =
            [("a".to_owned(), Arc::clone(&a)), ("b".to_owned(), b)].into();
        let made = std::cell::Cell::new(0);
        let make = |v: &i32| {
            made.set(made.get() + 1);
            v * 10
        };
        let mut m: Mirror<i32, i32> = Mirror::default();
        m.sync(from.iter(), make);
        assert_eq!(m.owned, [("a".to_owned(), 10), ("b".to_owned(), 20)].into());
        assert_eq!(made.get(), 2);
        // b changes (a new Arc, even with an equal value), c arrives, a stays.
        from.insert("b".into(), Arc::new(3));
        from.insert("c".into(), Arc::new(4));
        m.sync(from.iter(), make);
        assert_eq!(made.get(), 4, "only b and c were remade");
        from.remove("a");
        m.sync(from.iter(), make);
        assert_eq!(m.owned, [("b".to_owned(), 30), ("c".to_owned(), 40)].into());
        // An owned map taken away (moved into a pass that panicked) is rebuilt.
        m.owned.clear();
        m.sync(from.iter(), make);
        assert_eq!(m.owned.len(), 2);
    }
}
