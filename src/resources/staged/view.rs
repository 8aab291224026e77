//! How readers honour a staged apply: the keys it has written so far read as they were
//! before it began, until its release makes them all current at once.

use std::collections::{BTreeMap, BTreeSet};

use super::{parse_progress, StoredLock};
use crate::resources::Keys;
use crate::store::{KeyValue, ListResult, Revision, Store, StoreError};

/// A staged apply under way (or interrupted), as a reader must account for it.
#[derive(Debug, Clone)]
pub struct Held {
    pub lock: StoredLock,
    /// Whether the applier's holder key is there (false: interrupted, to be rolled back).
    pub holder_alive: bool,
    /// Keys the apply's chunks have written.
    pub keys: BTreeSet<String>,
    /// A progress record did not parse: hold every spec and status rather than guess.
    pub all_objects: bool,
}

impl Held {
    /// The staged apply recorded in `kvs` (a listing that includes the `apply/` keys), if
    /// one holds the lock.
    pub fn from_kvs(keys: &Keys, kvs: &[KeyValue]) -> Option<Held> {
        let lock_key = keys.apply_lock();
        let lock = kvs.iter().find(|kv| kv.key == lock_key)?;
        let mut held = Held {
            lock: StoredLock::from_kv(lock),
            holder_alive: kvs.iter().any(|kv| kv.key == keys.apply_holder()),
            keys: BTreeSet::new(),
            all_objects: false,
        };
        let progress = keys.apply_progress();
        for kv in kvs.iter().filter(|kv| kv.key.starts_with(&progress)) {
            held.add_progress(&kv.value);
        }
        Some(held)
    }

    /// Takes in one chunk's progress record.
    pub fn add_progress(&mut self, value: &[u8]) {
        match parse_progress(value) {
            Some(p) => self.keys.extend(p.keys().cloned()),
            None => self.all_objects = true,
        }
    }

    /// Whether a reader must show `key` as it was before the apply.
    pub fn holds(&self, keys: &Keys, key: &str) -> bool {
        self.keys.contains(key) || (self.all_objects && keys.parse_object_key(key).is_some())
    }
}

/// `current` with every key `held` holds replaced by its value in `base` (or dropped where
/// it did not exist then), sorted by key.
pub fn overlay(
    keys: &Keys,
    current: Vec<KeyValue>,
    base: Vec<KeyValue>,
    held: &Held,
) -> Vec<KeyValue> {
    let mut out: BTreeMap<String, KeyValue> = current
        .into_iter()
        .filter(|kv| !held.holds(keys, &kv.key))
        .map(|kv| (kv.key.clone(), kv))
        .collect();
    for kv in base.into_iter().filter(|kv| held.holds(keys, &kv.key)) {
        out.insert(kv.key.clone(), kv);
    }
    out.into_values().collect()
}

/// A consistent read of the cluster as the operator sees it: one revision, and a staged
/// apply's writes hidden until it is released.
#[derive(Debug, Clone)]
pub struct View {
    pub revision: Revision,
    pub held: Option<Held>,
}

impl View {
    /// Pins the current revision and whether a staged apply holds the lock at it.
    pub async fn read(store: &dyn Store, keys: &Keys) -> Result<View, StoreError> {
        let listed = store.list(&keys.applies(), None).await?;
        Ok(View {
            revision: listed.revision,
            held: Held::from_kvs(keys, &listed.kvs),
        })
    }

    /// Every key under `prefix` at the view's revision, as readers must see it.
    pub async fn list(
        &self,
        store: &dyn Store,
        keys: &Keys,
        prefix: &str,
    ) -> Result<ListResult, StoreError> {
        let current = store.list(prefix, Some(self.revision)).await?;
        let Some(held) = &self.held else {
            return Ok(current);
        };
        let base = store.list(prefix, Some(held.lock.base)).await?;
        Ok(ListResult {
            kvs: overlay(keys, current.kvs, base.kvs, held),
            revision: self.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: None,
        }
    }

    fn listing(progress: &str) -> Vec<KeyValue> {
        vec![
            kv(
                "/omtd/c/apply/lock",
                r#"{"by":"me","started":"now","changes":3}"#,
                10,
            ),
            kv("/omtd/c/apply/progress/0000", progress, 11),
        ]
    }

    #[test]
    fn held_keys_read_as_before_the_lock_and_others_as_now() {
        let keys = Keys::for_cluster("c");
        let held = Held::from_kvs(
            &keys,
            &listing(r#"{"put":["/omtd/c/spec/node/a","/omtd/c/spec/node/new"],"delete":["/omtd/c/spec/node/gone"]}"#),
        )
        .unwrap();
        assert_eq!(held.lock.base, 9);
        assert!(!held.holder_alive);
        let current = vec![
            kv("/omtd/c/spec/node/a", "a-new", 11),
            kv("/omtd/c/spec/node/new", "n", 11),
            kv("/omtd/c/spec/node/untouched", "u", 12),
        ];
        let base = vec![
            kv("/omtd/c/spec/node/a", "a-old", 3),
            kv("/omtd/c/spec/node/gone", "g", 4),
            kv("/omtd/c/spec/node/untouched", "u-old", 5),
        ];
        let seen: Vec<(String, String)> = overlay(&keys, current, base, &held)
            .into_iter()
            .map(|kv| (kv.key, String::from_utf8(kv.value).unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("/omtd/c/spec/node/a".into(), "a-old".into()),
                ("/omtd/c/spec/node/gone".into(), "g".into()),
                ("/omtd/c/spec/node/untouched".into(), "u".into()),
            ]
        );
    }

    #[test]
    fn an_unreadable_progress_record_holds_every_object_but_not_reports() {
        let keys = Keys::for_cluster("c");
        let held = Held::from_kvs(&keys, &listing("{garbage")).unwrap();
        assert!(held.holds(&keys, "/omtd/c/spec/node/x"));
        assert!(held.holds(&keys, "/omtd/c/status/node/x"));
        assert!(!held.holds(&keys, "/omtd/c/reports/x"));
    }

    #[test]
    fn no_lock_no_hold() {
        let keys = Keys::for_cluster("c");
        assert!(Held::from_kvs(&keys, &listing("{}")[1..]).is_none());
    }
}
