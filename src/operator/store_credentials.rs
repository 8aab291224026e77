//! The credentials the probes present, read from the store's Credential records on every
//! probe round (so a rotation reaches the probes without a restart, and no secret is ever
//! on the operator's command line or in its environment).
//!
//! - registry: the `use: registry` credential named by `--registry-credential`, or, without
//!   the flag, the first by name (the registry's htpasswd holds every one of them, so any
//!   proves the way in).
//! - Chronos: the `use: chronos-http` credential (there is at most one).
//! - Mesos: the `use: operator` credential (at most one), when the Mesos URL carries no
//!   user-info; see [`super::mesos_auth`] for how a rotation of it is followed.

use omtd_crds::{Credential, CredentialUse, Kind, Object};

use crate::probes::BasicAuth;
use crate::runtime::Snapshot;

/// The probes' credentials from the store. `Debug` never shows a secret (`BasicAuth`'s
/// does not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCredentials {
    pub registry: Option<BasicAuth>,
    pub chronos_http: Option<BasicAuth>,
    pub operator: Option<BasicAuth>,
    /// `--registry-credential` names a record that is missing or not `use: registry`:
    /// the registry probe then checks with none, and says so.
    pub registry_missing: Option<String>,
}

impl StoreCredentials {
    /// Picks them out of the records in `snapshot`; `registry` is `--registry-credential`.
    pub fn from_snapshot(snapshot: &Snapshot, registry: Option<&str>) -> StoreCredentials {
        let credentials: Vec<&Credential> = snapshot
            .of_kind(Kind::Credential)
            .filter_map(|s| match &s.object {
                Object::Credential(c) => Some(c),
                _ => None,
            })
            .collect();
        StoreCredentials::from_records(&credentials, registry)
    }

    /// [`StoreCredentials::from_snapshot`] from the records themselves, sorted by name.
    pub fn from_records(credentials: &[&Credential], registry: Option<&str>) -> StoreCredentials {
        let first = |usage: CredentialUse| {
            credentials
                .iter()
                .find(|c| c.spec.usage == usage)
                .map(|c| auth(c))
        };
        let (registry_auth, registry_missing) = match registry {
            Some(name) => match credentials
                .iter()
                .find(|c| c.metadata.name == name && c.spec.usage == CredentialUse::Registry)
            {
                Some(c) => (Some(auth(c)), None),
                None => (None, Some(name.to_owned())),
            },
            None => (first(CredentialUse::Registry), None),
        };
        StoreCredentials {
            registry: registry_auth,
            chronos_http: first(CredentialUse::ChronosHttp),
            operator: first(CredentialUse::Operator),
            registry_missing,
        }
    }
}

fn auth(c: &Credential) -> BasicAuth {
    let secret = c.spec.secret.value.as_ref().map_or("", |s| s.expose());
    BasicAuth::new(c.spec.principal.clone(), secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(yaml: &str) -> Vec<Credential> {
        omtd_crds::manifest::parse(yaml)
            .expect("manifest")
            .into_iter()
            .filter_map(|o| match o {
                Object::Credential(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_probe_gets_the_credential_of_its_use() {
        let all = creds(
            "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: a-reg}\nspec: {principal: alice, secret: {value: s1}, use: registry}\n---\n\
             apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: b-reg}\nspec: {principal: bob, secret: {value: s2}, use: registry}\n---\n\
             apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: http}\nspec: {principal: galaxy, secret: {value: s3}, use: chronos-http}\n---\n\
             apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: op}\nspec: {principal: omtd-operator, secret: {value: s4}, use: operator}\n",
        );
        let refs: Vec<&Credential> = all.iter().collect();
        let c = StoreCredentials::from_records(&refs, None);
        assert_eq!(c.registry, Some(BasicAuth::new("alice", "s1")));
        assert_eq!(c.chronos_http, Some(BasicAuth::new("galaxy", "s3")));
        assert_eq!(c.operator, Some(BasicAuth::new("omtd-operator", "s4")));
        let c = StoreCredentials::from_records(&refs, Some("b-reg"));
        assert_eq!(c.registry, Some(BasicAuth::new("bob", "s2")));
        // A name that is not a registry credential checks with none, and says which.
        let c = StoreCredentials::from_records(&refs, Some("http"));
        assert_eq!(c.registry, None);
        assert_eq!(c.registry_missing.as_deref(), Some("http"));
        assert!(!format!("{c:?}").contains("s3"));
    }
}
