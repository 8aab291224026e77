//! Which credential the operator presents to the Mesos master, and how it follows a
//! rotation of its own `use: operator` credential.
//!
//! With user-info in `--mesos-url` that credential is used as given, always. Without it,
//! the operator's own credential comes from the store (see [`super::store_credentials`]).
//! Mesos 1.4 reads `credentials.json` at start only, so after a rotation the master keeps
//! accepting the old secret until the credentials controller's file is applied and the
//! leader guard's restart of mesos-master is done; switching at once would lock the
//! operator out of every probe and drain for that window. So the operator keeps the
//! credential it last used successfully and tries the store's: a 401 to the store's
//! means the master is not there yet, and the previous one is used for this round; a
//! success makes the store's the one in use (a timeout or an unreachable master proves
//! nothing either way and changes nothing). Once the master restarted with the new secret
//! the old one is refused and the new one works: from then on only the new one is
//! presented.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use super::maintenance::MaintenanceApi;
use crate::probes::mesos::{MachineId, MesosMaster};
use crate::probes::{BasicAuth, ProbeError};

/// The HTTP status a master answers to a credential it does not know.
const UNAUTHORIZED: u16 = 401;

/// The operator's Mesos credential, shared by the probe loop (which learns which one
/// works) and the maintenance loop (which uses the one that does).
#[derive(Debug)]
pub struct MesosAuth {
    /// The credential from `--mesos-url`'s user-info: used as is, the store never asked.
    fixed: bool,
    /// The credential presented last with a successful answer (`None`: none yet, or none
    /// at all).
    in_use: Mutex<Option<BasicAuth>>,
}

/// What to present this round: the store's credential, and the previous one to fall back
/// to on a 401 (only when it differs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub first: Option<BasicAuth>,
    pub fallback: Option<Option<BasicAuth>>,
}

impl MesosAuth {
    /// For `master`: fixed when its URL carried the credential.
    pub fn for_master(master: &MesosMaster) -> MesosAuth {
        let from_url = master.target().auth().cloned();
        MesosAuth {
            fixed: from_url.is_some(),
            in_use: Mutex::new(from_url),
        }
    }

    /// Whether the credential came with the URL (the store's is never used then).
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// The credential the maintenance calls present now.
    pub fn in_use(&self) -> Option<BasicAuth> {
        self.in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What to try with `stored`, the store's operator credential.
    pub fn attempt(&self, stored: Option<&BasicAuth>) -> Attempt {
        let in_use = self.in_use();
        if self.fixed {
            return Attempt {
                first: in_use,
                fallback: None,
            };
        }
        let first = stored.cloned();
        let fallback = match in_use {
            Some(prev) if Some(&prev) != first.as_ref() => Some(Some(prev)),
            _ => None,
        };
        Attempt { first, fallback }
    }

    /// Records what `presented` got: a success makes it the one in use. Returns whether
    /// the credential in use changed.
    pub fn answered<T>(
        &self,
        presented: &Option<BasicAuth>,
        result: &Result<T, ProbeError>,
    ) -> bool {
        if self.fixed || result.is_err() {
            return false;
        }
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        if *in_use == *presented {
            return false;
        }
        *in_use = presented.clone();
        true
    }
}

/// Whether `result` is the master refusing the credential.
pub fn refused<T>(result: &Result<T, ProbeError>) -> bool {
    matches!(result, Err(e) if e.status() == Some(UNAUTHORIZED))
}

/// The maintenance calls, presenting the credential in use at the time of each call.
pub struct AuthedMaster {
    master: MesosMaster,
    auth: Arc<MesosAuth>,
}

impl AuthedMaster {
    pub fn new(master: MesosMaster, auth: Arc<MesosAuth>) -> AuthedMaster {
        AuthedMaster { master, auth }
    }

    fn now(&self) -> MesosMaster {
        self.master.presenting(self.auth.in_use())
    }
}

#[async_trait]
impl MaintenanceApi for AuthedMaster {
    async fn schedule(&self, machines: &[MachineId], start: SystemTime) -> Result<(), ProbeError> {
        self.now().schedule(machines, start).await
    }
    async fn down(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        self.now().down(machines).await
    }
    async fn up(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        self.now().up(machines).await
    }
    async fn unschedule(&self, machines: &[MachineId]) -> Result<(), ProbeError> {
        self.now().unschedule(machines).await
    }
    async fn set_agent_active(&self, agent_id: &str, active: bool) -> Result<(), ProbeError> {
        self.now().set_agent_active(agent_id, active).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::{HttpProbe, HttpTarget, ProbeConfig};

    fn master(url: &str) -> MesosMaster {
        let http = HttpProbe::new(ProbeConfig::default()).expect("client");
        MesosMaster::new(http, HttpTarget::parse(url).expect("url"))
    }

    fn refused_now() -> Result<(), ProbeError> {
        Err(ProbeError::BadStatus {
            url: "http://m:5050/master/state".into(),
            status: 401,
            body: String::new(),
        })
    }

    #[test]
    fn a_rotated_secret_is_used_once_the_master_takes_it() {
        let auth = MesosAuth::for_master(&master("http://m:5050"));
        let old = BasicAuth::new("omtd-operator", "old");
        let new = BasicAuth::new("omtd-operator", "new");
        // First round: the store's credential works and becomes the one in use.
        let a = auth.attempt(Some(&old));
        assert_eq!(a.first, Some(old.clone()));
        assert_eq!(a.fallback, None);
        assert!(auth.answered(&a.first, &Ok::<(), ProbeError>(())));
        assert_eq!(auth.in_use(), Some(old.clone()));
        // Rotated in the store; the master still runs the old secret: the new is refused,
        // the old is kept (for the maintenance calls too).
        let a = auth.attempt(Some(&new));
        assert_eq!(a.fallback, Some(Some(old.clone())));
        assert!(!auth.answered(&a.first, &refused_now()));
        assert_eq!(auth.in_use(), Some(old.clone()));
        // The master restarted with the new secret: the new works and is kept.
        assert!(auth.answered(&a.first, &Ok::<(), ProbeError>(())));
        assert_eq!(auth.in_use(), Some(new.clone()));
        assert_eq!(auth.attempt(Some(&new)).fallback, None);
    }

    #[test]
    fn user_info_in_the_url_is_used_as_given() {
        let auth = MesosAuth::for_master(&master("http://node1.omtd:pw@m:5050"));
        assert!(auth.is_fixed());
        let store = BasicAuth::new("omtd-operator", "s");
        let a = auth.attempt(Some(&store));
        assert_eq!(a.first, Some(BasicAuth::new("node1.omtd", "pw")));
        assert!(!auth.answered(&Some(store), &Ok::<(), ProbeError>(())));
        assert_eq!(auth.in_use(), Some(BasicAuth::new("node1.omtd", "pw")));
    }
}
