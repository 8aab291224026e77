//! Reading objects from the store: specs joined with their statuses, with `generation` and
//! `resourceVersion` filled in from the store's bookkeeping.

use std::collections::BTreeMap;
use std::sync::Arc;

use omtd_crds::{Kind, Object, ObjectKey, Status};

use super::keys::Keys;
use super::staged::View;
use crate::store::{Revision, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value that does not parse: written by a newer omtd, or corrupted.
    #[error("stored object at {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
    /// A sealed value this process has no key for (`store::sealed::sealed_value_problem`).
    #[error("stored object at {key} is {message}")]
    Sealed { key: String, message: String },
}

/// An object as stored, with the store revision of its spec key.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub object: Object,
    /// `mod_revision` of the spec key (the object's resourceVersion).
    pub mod_revision: Revision,
}

/// A consistent read of every object of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ObjectsAt {
    pub objects: BTreeMap<ObjectKey, Stored>,
    /// The revision the snapshot was read at.
    pub revision: Revision,
    /// Specs sealed with a key this process was not given, with the message naming it.
    /// Kept apart rather than failing the read: `omtd get nodes` needs no credential key.
    pub sealed: BTreeMap<ObjectKey, SealedSpec>,
}

/// A spec this process cannot open: its store key and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSpec {
    pub key: String,
    pub message: String,
}

impl ObjectsAt {
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Stored> {
        self.objects.get(&ObjectKey {
            kind,
            name: name.to_owned(),
        })
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Stored> {
        self.objects
            .values()
            .filter(move |s| s.object.kind() == kind)
    }

    /// The first sealed spec among those `wanted` picks (by kind and name), as an error:
    /// a command that shows or changes them cannot go on without its key.
    pub fn unsealed(&self, wanted: impl Fn(&ObjectKey) -> bool) -> Result<(), RepoError> {
        match self.sealed.iter().find(|(k, _)| wanted(k)) {
            Some((_, s)) => Err(RepoError::Sealed {
                key: s.key.clone(),
                message: s.message.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Objects of one cluster in a store.
#[derive(Clone)]
pub struct Repo {
    pub store: Arc<dyn Store>,
    pub keys: Keys,
}

impl Repo {
    pub fn new(store: Arc<dyn Store>, keys: Keys) -> Self {
        Repo { store, keys }
    }

    /// Every object with its status, read at one revision so specs and statuses agree, and
    /// with a staged apply's writes hidden until it is released (as the operator sees it).
    pub async fn snapshot(&self) -> Result<ObjectsAt, RepoError> {
        let view = View::read(self.store.as_ref(), &self.keys).await?;
        let specs = view
            .list(self.store.as_ref(), &self.keys, &self.keys.specs())
            .await?;
        let statuses = view
            .list(self.store.as_ref(), &self.keys, &self.keys.statuses())
            .await?;
        let mut status_by_key: BTreeMap<(Kind, String), Status> = BTreeMap::new();
        for kv in statuses.kvs {
            let Some(id) = self.keys.parse_object_key(&kv.key) else {
                continue;
            };
            let status = serde_json::from_slice(&kv.value).map_err(|e| RepoError::Corrupt {
                key: kv.key.clone(),
                message: e.to_string(),
            })?;
            status_by_key.insert(id, status);
        }
        let mut objects = BTreeMap::new();
        let mut sealed = BTreeMap::new();
        for kv in specs.kvs {
            let mut object = match decode(&kv.key, &kv.value) {
                Ok(o) => o,
                Err(RepoError::Sealed { key, message }) => {
                    if let Some((kind, name)) = self.keys.parse_object_key(&key) {
                        sealed.insert(ObjectKey { kind, name }, SealedSpec { key, message });
                        continue;
                    }
                    return Err(RepoError::Sealed { key, message });
                }
                Err(e) => return Err(e),
            };
            object.meta_mut().resource_version = Some(kv.mod_revision.to_string());
            object.set_status(status_by_key.remove(&(object.kind(), object.name().to_owned())));
            objects.insert(
                object.key(),
                Stored {
                    object,
                    mod_revision: kv.mod_revision,
                },
            );
        }
        Ok(ObjectsAt {
            objects,
            revision: specs.revision,
            sealed,
        })
    }
}

/// Parses a stored spec value. One still sealed (no key for it) says which key it needs
/// rather than what JSON makes of an envelope.
pub fn decode(key: &str, value: &[u8]) -> Result<Object, RepoError> {
    if let Some(message) = crate::store::sealed::sealed_value_problem(value) {
        return Err(RepoError::Sealed {
            key: key.to_owned(),
            message,
        });
    }
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| RepoError::Corrupt {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    Object::from_value(json).map_err(|e| RepoError::Corrupt {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// The bytes stored for an object's spec: the object without status and resourceVersion
/// (both live elsewhere: status under `status/`, resourceVersion is the key's revision).
pub fn encode(object: &Object) -> Vec<u8> {
    let mut obj = object.clone();
    obj.set_status(None);
    obj.meta_mut().resource_version = None;
    serde_json::to_vec(&obj).unwrap_or_default()
}
