//! Secrets at rest: a [`Store`] decorator that seals credentials and plans before they reach
//! the backend and opens them on the way back (DESIGN.md §6a).
//!
//! - **What is sealed**: values under `<prefix>spec/credential/` (the master key) and under
//!   `<prefix>plans/<node>/` (that node's key, see [`keyring`]). Everything else passes
//!   through untouched: it holds no secret, and tools (`etcdctl get`) still read it.
//! - **Writes** seal with the active key. A compare on the value of a sealed key is refused:
//!   the stored ciphertext never equals a plaintext, so the compare would always fail
//!   silently.
//! - **Reads** (`get`, `list`, watch events) open what the keyring can open and pass
//!   everything else through as stored: a plaintext value written before encryption was
//!   turned on, or an envelope this process has no key for. Such an envelope then reaches a
//!   parser, which asks [`sealed_value_problem`] for a message naming the key instead of
//!   failing on JSON.
//!   An envelope whose key this process holds but which does not authenticate (altered,
//!   or copied from another key) is passed up still sealed, marked so the message says so.
//! - **No key given**: the store is wrapped all the same (an envelope is recognised
//!   everywhere) but values are written as they are, as Kubernetes stores Secrets until an
//!   EncryptionConfiguration is given; a warning says so once per process.

pub mod envelope;
pub mod keyfile;
pub mod keyring;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

pub use self::envelope::{is_envelope, Envelope};
pub use self::keyring::{scope_of, Keyring, Scope};
use super::{
    CompareTarget, KeyValue, Lease, LeaseId, ListResult, Op, Result, Revision, Store, StoreError,
    Txn, TxnResult, WatchStream,
};

/// The store keys whose values are sealed, for one cluster prefix (`/omtd/<cluster>/`).
pub fn sealed_prefixes(cluster_prefix: &str) -> [String; 2] {
    [
        format!("{cluster_prefix}spec/credential/"),
        format!("{cluster_prefix}plans/"),
    ]
}

/// For a value that is still an envelope when it reaches a parser (this process could not
/// open it): what to tell the user, naming the key it was sealed with and the fix.
/// `None` for anything else (a plaintext value, readable or not).
pub fn sealed_value_problem(bytes: &[u8]) -> Option<String> {
    if !is_envelope(bytes) {
        return None;
    }
    Some(match Envelope::parse(bytes) {
        Ok(env) if env.refused => format!(
            "sealed with key {}, which this process holds but which does not open it: the \
             value was altered, or copied from another record or node; its writer must \
             write it again (the operator rewrites plans; omtd apply rewrites a credential)",
            env.key_id
        ),
        Ok(env) => format!(
            "sealed with key {}, which this process was not given: pass --secrets-key FILE \
             or OMTD_SECRETS_KEY (a node key opens only its own node's plans)",
            env.key_id
        ),
        Err(e) => format!("a sealed value that cannot be read ({e})"),
    })
}

/// Set once the no-key warning was logged: once per process is enough to be seen.
static WARNED_PLAIN: AtomicBool = AtomicBool::new(false);

/// The decorator. Cheap to share behind an `Arc`; every method may run concurrently.
pub struct SealedStore {
    inner: Arc<dyn Store>,
    keyring: Arc<Keyring>,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn Store>, keyring: Keyring) -> Self {
        SealedStore {
            inner,
            keyring: Arc::new(keyring),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The store underneath, values as stored (for `omtd secrets status` and `rotate-key`).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// A value as stored, opened if this keyring can (else as it is).
    pub fn open_stored(&self, kv: KeyValue) -> KeyValue {
        open_kv(&self.keyring, kv)
    }

    fn seal_op(&self, op: Op) -> Result<Op> {
        match op {
            Op::Put { key, value, lease } => {
                let value = seal_value(&self.keyring, &key, value)?;
                Ok(Op::Put { key, value, lease })
            }
            other => Ok(other),
        }
    }
}

/// The bytes to store for `value` at `key`.
fn seal_value(keyring: &Keyring, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
    let Some(scope) = scope_of(key) else {
        return Ok(value);
    };
    let sealing = keyring
        .sealing_key(key, scope)
        .map_err(|e| StoreError::Config(e.to_string()))?;
    match sealing {
        Some((id, k)) => envelope::seal(&k, &id, key, &value)
            .map_err(|e| StoreError::Backend(format!("cannot seal {key}: {e}"))),
        None => {
            if !WARNED_PLAIN.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "secrets are stored in the clear (credentials, plans): no secrets key was \
                     given. To encrypt them: omtd secrets new-key --out FILE, then pass \
                     --secrets-key FILE (or OMTD_SECRETS_KEY) to every omtd command, and \
                     omtd secrets rotate-key to seal what is stored"
                );
            }
            Ok(value)
        }
    }
}

/// The value as the layers above should see it: opened if this keyring can, else as stored.
fn open_value(keyring: &Keyring, key: &str, value: Vec<u8>) -> Vec<u8> {
    if !is_envelope(&value) {
        return value;
    }
    let Some(scope) = scope_of(key) else {
        return value;
    };
    let Ok(env) = Envelope::parse(&value) else {
        return value;
    };
    let Some(k) = keyring.opening_key(env.key_id, scope) else {
        return value;
    };
    match env.open(&k, key) {
        Ok(plain) => plain,
        Err(e) => {
            // The key is held but does not authenticate the value: altered bytes, or a
            // value copied from another record or node. Passed up still sealed (its reader
            // holds it as unreadable) and marked, so the reader says that rather than
            // "key not given".
            tracing::warn!(key, error = %e, "a sealed value does not open");
            env.refused_bytes()
        }
    }
}

fn open_kv(keyring: &Keyring, mut kv: KeyValue) -> KeyValue {
    kv.value = open_value(keyring, &kv.key, std::mem::take(&mut kv.value));
    kv
}

#[async_trait]
impl Store for SealedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self
            .inner
            .get(key)
            .await?
            .map(|kv| open_kv(&self.keyring, kv)))
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<ListResult> {
        let mut listed = self.inner.list(prefix, revision).await?;
        listed.kvs = listed
            .kvs
            .into_iter()
            .map(|kv| open_kv(&self.keyring, kv))
            .collect();
        Ok(listed)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        if let Some(c) = txn
            .compares
            .iter()
            .find(|c| matches!(c.target, CompareTarget::Value(_)) && scope_of(&c.key).is_some())
        {
            return Err(StoreError::Config(format!(
                "a compare on the value of {} cannot work: its value is sealed (the stored \
                 bytes never equal a plaintext); compare its mod revision instead",
                c.key
            )));
        }
        let sealed = Txn {
            compares: txn.compares,
            success: txn
                .success
                .into_iter()
                .map(|op| self.seal_op(op))
                .collect::<Result<_>>()?,
            failure: txn
                .failure
                .into_iter()
                .map(|op| self.seal_op(op))
                .collect::<Result<_>>()?,
        };
        self.inner.txn(sealed).await
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let keyring = Arc::clone(&self.keyring);
        let stream = self.inner.watch(prefix, from_revision).await?;
        Ok(Box::pin(stream.map(move |ev| {
            ev.map(|mut ev| {
                ev.kv = open_kv(&keyring, ev.kv);
                ev
            })
        })))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.inner.keep_alive(id).await
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        self.inner.revoke_lease(id).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::keyring::{MasterKey, SecretKey};
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Compare, CompareOp, EventKind};

    fn ring(ids: &[(&str, u8)]) -> Keyring {
        Keyring::new(
            ids.iter()
                .map(|(id, b)| MasterKey {
                    id: (*id).into(),
                    key: SecretKey::from_bytes([*b; 32]),
                })
                .collect(),
            vec![],
        )
        .unwrap()
    }

    struct Fx {
        raw: Arc<dyn Store>,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        Fx { raw, _dir: dir }
    }

    const CRED: &str = "/omtd/c/spec/credential/w1";
    const PLAN: &str = "/omtd/c/plans/n1/node";
    const NODE: &str = "/omtd/c/spec/node/n1";

    #[tokio::test]
    async fn seals_what_it_should_and_reads_back_through_get_list_and_watch() {
        let fx = fixture();
        let s = SealedStore::new(Arc::clone(&fx.raw), ring(&[("k1", 1)]));
        let mut watch = s.watch("/omtd/c/", 0).await.unwrap();
        for (k, v) in [(CRED, "cred"), (PLAN, "plan"), (NODE, "node")] {
            s.put(k, v.as_bytes().to_vec()).await.unwrap();
        }
        let raw = |k: &'static str| {
            let raw = Arc::clone(&fx.raw);
            async move { raw.get(k).await.unwrap().unwrap().value }
        };
        assert!(raw(CRED).await.starts_with(b"omtd:enc:v1:k1:"));
        assert!(raw(PLAN).await.starts_with(b"omtd:enc:v1:k1:"));
        assert_eq!(raw(NODE).await, b"node", "other keys pass through");
        assert_eq!(s.get(CRED).await.unwrap().unwrap().value, b"cred");
        let listed = s.list("/omtd/c/", None).await.unwrap();
        let values: Vec<&[u8]> = listed.kvs.iter().map(|kv| kv.value.as_slice()).collect();
        assert_eq!(values, [&b"plan"[..], b"cred", b"node"]);
        for want in [&b"cred"[..], b"plan", b"node"] {
            let ev = watch.next().await.unwrap().unwrap();
            assert_eq!((ev.kind, ev.kv.value.as_slice()), (EventKind::Put, want));
        }
        // Revision bookkeeping is the backend's, untouched.
        let kv = s.get(CRED).await.unwrap().unwrap();
        assert_eq!((kv.version, kv.create_revision), (1, kv.mod_revision));
    }

    #[tokio::test]
    async fn without_the_key_values_pass_through_and_plain_ones_still_read() {
        let fx = fixture();
        // Written before encryption was turned on.
        fx.raw.put(CRED, b"plain".to_vec()).await.unwrap();
        let keyed = SealedStore::new(Arc::clone(&fx.raw), ring(&[("k1", 1)]));
        assert_eq!(keyed.get(CRED).await.unwrap().unwrap().value, b"plain");
        keyed.put(PLAN, b"plan".to_vec()).await.unwrap();
        for other in [Keyring::empty(), ring(&[("k2", 2)])] {
            let s = SealedStore::new(Arc::clone(&fx.raw), other);
            let v = s.get(PLAN).await.unwrap().unwrap().value;
            let problem = sealed_value_problem(&v).expect("still sealed");
            assert!(problem.contains("sealed with key k1"), "{problem}");
            assert!(problem.contains("--secrets-key FILE or OMTD_SECRETS_KEY"));
        }
        assert_eq!(sealed_value_problem(b"{\"not\":1}"), None);
        // An empty keyring writes as it is.
        let none = SealedStore::new(Arc::clone(&fx.raw), Keyring::empty());
        none.put(CRED, b"clear".to_vec()).await.unwrap();
        assert_eq!(fx.raw.get(CRED).await.unwrap().unwrap().value, b"clear");
    }

    #[tokio::test]
    async fn a_value_compare_on_a_sealed_key_is_refused_by_name() {
        let fx = fixture();
        let s = SealedStore::new(Arc::clone(&fx.raw), ring(&[("k1", 1)]));
        s.put(CRED, b"v".to_vec()).await.unwrap();
        let err = s
            .txn(Txn::new().when(Compare::value(CRED, CompareOp::Equal, "v")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Config(m) if m.contains(CRED)),
            "{err}"
        );
        // On other keys it is the backend's compare.
        s.put(NODE, b"v".to_vec()).await.unwrap();
        let ok = s
            .txn(Txn::new().when(Compare::value(NODE, CompareOp::Equal, "v")))
            .await
            .unwrap();
        assert!(ok.succeeded);
    }

    #[tokio::test]
    async fn a_value_moved_to_another_key_does_not_open() {
        let fx = fixture();
        let s = SealedStore::new(Arc::clone(&fx.raw), ring(&[("k1", 1)]));
        s.put(CRED, b"secret".to_vec()).await.unwrap();
        let sealed = fx.raw.get(CRED).await.unwrap().unwrap().value;
        let other = "/omtd/c/spec/credential/w2";
        fx.raw.put(other, sealed).await.unwrap();
        let v = s.get(other).await.unwrap().unwrap().value;
        assert!(is_envelope(&v), "moved value must not open");
        let problem = sealed_value_problem(&v).unwrap();
        assert!(
            problem.contains("holds but which does not open it"),
            "{problem}"
        );
        // Still as stored underneath.
        assert_eq!(
            fx.raw.get(other).await.unwrap().unwrap().value,
            fx.raw.get(CRED).await.unwrap().unwrap().value
        );
    }
}
