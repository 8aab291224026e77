//! The probe loop: asks Mesos, ZooKeeper, Prometheus, the registry and Chronos how they
//! stand, keeps the latest answers where the controllers read them, and wakes the
//! controllers when an answer changes. The credentials the registry, Chronos and (without
//! user-info in its URL) Mesos probes present come from the store's Credential records,
//! read each round (see [`super::store_credentials`]).
//!
//! A probe that is not configured, or that failed this round, is `None`: the controllers
//! then decide nothing that depends on it and say so in conditions. Failures are logged
//! when they start, change or end — not every round, or a dead Mesos would fill the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use omtd_controllers::{MasterEntry, MesosState, RegistryAnswer, RegistryCheck};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::maintenance::MaintenanceApi;
use super::mesos_auth::{refused, AuthedMaster, MesosAuth};
use super::store_credentials::StoreCredentials;
use crate::probes::chronos::Chronos;
use crate::probes::mesos::MesosMaster;
use crate::probes::prometheus::Prometheus;
use crate::probes::registry::{Registry, RegistryAccess};
use crate::probes::zookeeper::{self, ZkTarget};
use crate::probes::{redact_input, HttpProbe, HttpTarget, ProbeConfig, ProbeError};
use crate::runtime::Notifier;

/// What [`crate::runtime::Changed::External`] says when probe results changed.
pub const PROBES_CHANGED: &str = "probes";

/// The latest answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResults {
    pub mesos: Option<MesosState>,
    pub zookeeper: Option<Vec<MasterEntry>>,
    pub prometheus_targets: Option<Vec<String>>,
    /// Failures are kept here (with their reason), not `None`: see `Observed::registry`.
    pub registry: Option<RegistryCheck>,
    pub chronos_ping: Option<Result<(), String>>,
}

/// The answers shared between the probe loop (writer) and the controllers (readers).
#[derive(Debug, Default)]
pub struct SharedProbes {
    results: RwLock<ProbeResults>,
    /// Asks the loop for a round now (after a maintenance call, say).
    kick: Notify,
}

impl SharedProbes {
    pub fn new() -> Arc<SharedProbes> {
        Arc::default()
    }

    pub fn get(&self) -> ProbeResults {
        self.results
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stores `results`; returns whether they differ from before.
    pub fn set(&self, results: ProbeResults) -> bool {
        let mut current = self.results.write().unwrap_or_else(PoisonError::into_inner);
        if *current == results {
            return false;
        }
        *current = results;
        true
    }

    /// Probe again now rather than at the next interval.
    pub fn refresh(&self) {
        self.kick.notify_one();
    }
}

/// Anything that can produce a round of answers (the real probes, or a test's fake).
#[async_trait]
pub trait ProbeSource: Send + Sync {
    /// One round, presenting `credentials` (from the store) where a probe needs them.
    async fn probe(&self, credentials: &StoreCredentials) -> ProbeResults;
}

/// Where the services answer; each one optional.
#[derive(Debug, Clone, Default)]
pub struct ProbeTargets {
    /// A Mesos master's base URL. The master authenticates even read-only HTTP: without
    /// user-info the operator presents its own `use: operator` credential from the store;
    /// user-info (`http://principal:secret@host:5050`) overrides it (older setups).
    pub mesos_url: Option<String>,
    /// The Mesos ZooKeeper URL, `zk://host:2181/mesos`.
    pub zookeeper: Option<String>,
    /// Prometheus's base URL with its route prefix, `http://host:9090/prometheus`.
    pub prometheus_url: Option<String>,
    /// The registry's base URL behind Apache, `https://10.0.0.13` (no user-info: the
    /// credential comes from the store).
    pub registry_url: Option<String>,
    /// The `use: registry` Credential the registry is checked with; `None`: the first.
    pub registry_credential: Option<String>,
    /// Chronos's base URL, `http://10.0.0.12:8080` (no user-info: the `use: chronos-http`
    /// credential comes from the store).
    pub chronos_url: Option<String>,
    /// The cluster CA (PEM) the HTTPS front doors are checked against, besides the
    /// system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

impl ProbeTargets {
    pub fn is_empty(&self) -> bool {
        self.mesos_url.is_none()
            && self.zookeeper.is_none()
            && self.prometheus_url.is_none()
            && self.registry_url.is_none()
            && self.chronos_url.is_none()
    }
}

/// `input` as a target that must not carry a credential (it comes from the store).
fn without_user_info(input: &str, flag: &str) -> Result<HttpTarget, ProbeError> {
    let target = HttpTarget::parse(input)?;
    if target.auth().is_some() {
        return Err(ProbeError::BadAddress {
            input: redact_input(input),
            reason: format!(
                "{flag} must not carry a user or password: the probe presents the store's \
                 Credential (and a URL on the command line is visible to every user)"
            ),
        });
    }
    Ok(target)
}

/// The real probes, over HTTP and ZooKeeper.
pub struct HttpProbes {
    http: HttpProbe,
    mesos: Option<MesosMaster>,
    /// Which credential the Mesos probe and the maintenance calls present.
    mesos_auth: Option<Arc<MesosAuth>>,
    zookeeper: Option<ZkTarget>,
    prometheus: Option<Prometheus>,
    registry: Option<HttpTarget>,
    chronos: Option<HttpTarget>,
    timeout: Duration,
    /// The last failure of each probe, to log changes only.
    failing: Mutex<BTreeMap<&'static str, String>>,
}

impl HttpProbes {
    /// Checks every configured address now, so a typo fails `omtd operator` at start.
    pub fn new(targets: &ProbeTargets) -> Result<HttpProbes, ProbeError> {
        let http = HttpProbe::new(ProbeConfig {
            timeout: targets.timeout,
            ca_file: targets.ca_file.clone(),
        })?;
        let mesos = match &targets.mesos_url {
            Some(url) => Some(MesosMaster::new(http.clone(), HttpTarget::parse(url)?)),
            None => None,
        };
        let prometheus = match &targets.prometheus_url {
            Some(url) => Some(Prometheus::new(http.clone(), HttpTarget::parse(url)?)),
            None => None,
        };
        let zookeeper = match &targets.zookeeper {
            Some(url) => Some(ZkTarget::parse(url)?),
            None => None,
        };
        let registry = match &targets.registry_url {
            Some(url) => Some(without_user_info(url, "--registry-url")?),
            None => None,
        };
        let chronos = match &targets.chronos_url {
            Some(url) => Some(without_user_info(url, "--chronos-url")?),
            None => None,
        };
        Ok(HttpProbes {
            mesos_auth: mesos.as_ref().map(|m| Arc::new(MesosAuth::for_master(m))),
            http,
            mesos,
            zookeeper,
            prometheus,
            registry,
            chronos,
            timeout: targets.timeout,
            failing: Mutex::default(),
        })
    }

    /// The Mesos master's maintenance calls, presenting the credential the probe found
    /// working.
    pub fn maintenance(&self) -> Option<Arc<dyn MaintenanceApi>> {
        let (master, auth) = (self.mesos.as_ref()?, self.mesos_auth.as_ref()?);
        Some(Arc::new(AuthedMaster::new(
            master.clone(),
            Arc::clone(auth),
        )))
    }

    /// `Some(value)` on success; on failure `None`, logged when the failure is new.
    fn keep<T>(&self, probe: &'static str, result: Result<T, ProbeError>) -> Option<T> {
        self.note(probe, &result);
        result.ok()
    }

    /// Logs a probe's failure when it starts or changes, and its end.
    fn note<T>(&self, probe: &'static str, result: &Result<T, ProbeError>) {
        // ProbeError messages never carry a credential (see crate::probes::error).
        self.note_problem(probe, result.as_ref().err().map(ToString::to_string));
    }

    /// Logs `problem` (never a secret) when it starts or changes, and its end (`None`).
    fn note_problem(&self, probe: &'static str, problem: Option<String>) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match problem {
            None => {
                if failing.remove(probe).is_some() {
                    tracing::info!(probe, "probe answers again");
                }
            }
            Some(message) => {
                if failing.get(probe) != Some(&message) {
                    tracing::warn!(probe, error = %message, "probe failed");
                    failing.insert(probe, message);
                }
            }
        }
    }

    /// The leader's state, presenting the store's operator credential, or the previous
    /// one while the master still refuses the store's (see [`super::mesos_auth`]).
    async fn mesos_state(
        &self,
        master: &MesosMaster,
        stored: Option<&crate::probes::BasicAuth>,
    ) -> Result<MesosState, ProbeError> {
        let Some(auth) = &self.mesos_auth else {
            return master.state().await;
        };
        let attempt = auth.attempt(stored);
        let result = master.presenting(attempt.first.clone()).state().await;
        // The 401 alone ("credentials missing or refused") does not say where the
        // credential should have come from.
        if stored.is_none() && !auth.is_fixed() && refused(&result) {
            self.note_problem(
                "mesos.credential",
                Some(
                    "the Mesos master wants a credential and the store has none for the \
                     operator: add a Credential with use: operator"
                        .to_owned(),
                ),
            );
        } else if stored.is_some() || result.is_ok() {
            self.note_problem("mesos.credential", None);
        }
        if auth.answered(&attempt.first, &result) {
            tracing::info!("the Mesos master takes the operator credential from the store");
        }
        match attempt.fallback {
            Some(previous) if refused(&result) => {
                tracing::debug!(
                    "the Mesos master refuses the operator credential's new secret (not \
                     restarted with it yet); presenting the previous one"
                );
                master.presenting(previous).state().await
            }
            _ => result,
        }
    }

    async fn registry_check(
        &self,
        target: &HttpTarget,
        credentials: &StoreCredentials,
    ) -> RegistryCheck {
        let answer = |r: Result<RegistryAccess, ProbeError>| match r {
            Ok(RegistryAccess::Open | RegistryAccess::Authenticated) => RegistryAnswer::Ok,
            Ok(RegistryAccess::AuthRequired | RegistryAccess::CredentialsRejected) => {
                RegistryAnswer::Unauthorized
            }
            Err(e) => RegistryAnswer::Failed(e.to_string()),
        };
        let anonymous = Registry::new(self.http.clone(), target.clone().presenting(None))
            .check()
            .await
            .map(|s| s.access);
        self.note("registry", &anonymous);
        let authenticated = match &credentials.registry {
            Some(cred) => {
                let r = Registry::new(
                    self.http.clone(),
                    target.clone().presenting(Some(cred.clone())),
                )
                .check()
                .await
                .map(|s| s.access);
                self.note("registry.authenticated", &r);
                Some(answer(r))
            }
            None => {
                let problem = credentials.registry_missing.as_ref().map(|name| {
                    format!(
                        "--registry-credential {name}: the store has no Credential of that \
                         name with use: registry; checking without one"
                    )
                });
                self.note_problem("registry.authenticated", problem);
                None
            }
        };
        RegistryCheck {
            anonymous: answer(anonymous),
            authenticated,
        }
    }
}

#[async_trait]
impl ProbeSource for HttpProbes {
    async fn probe(&self, credentials: &StoreCredentials) -> ProbeResults {
        let mesos = async {
            match &self.mesos {
                Some(m) => Some(self.mesos_state(m, credentials.operator.as_ref()).await),
                None => None,
            }
        };
        let zk = async {
            match &self.zookeeper {
                Some(t) => Some(zookeeper::mesos_masters(t, self.timeout).await),
                None => None,
            }
        };
        let prometheus = async {
            match &self.prometheus {
                Some(p) => Some(p.active_targets().await),
                None => None,
            }
        };
        let registry = async {
            match &self.registry {
                Some(t) => Some(self.registry_check(t, credentials).await),
                None => None,
            }
        };
        let chronos = async {
            match &self.chronos {
                Some(t) => {
                    let target = t.clone().presenting(credentials.chronos_http.clone());
                    let ping = Chronos::new(self.http.clone(), target).ping().await;
                    self.note("chronos", &ping);
                    Some(ping.map_err(|e| e.to_string()))
                }
                None => None,
            }
        };
        let (mesos, zk, prometheus, registry, chronos_ping) =
            tokio::join!(mesos, zk, prometheus, registry, chronos);
        ProbeResults {
            mesos: mesos.and_then(|r| self.keep("mesos", r)),
            zookeeper: zk.and_then(|r| self.keep("zookeeper", r)),
            prometheus_targets: prometheus.and_then(|r| self.keep("prometheus", r)),
            registry,
            chronos_ping,
        }
    }
}

/// Probes every `interval` (or at once when asked to refresh) until `shutdown`, storing
/// the answers in `shared` and waking the controllers when they change.
pub async fn run(
    source: Arc<dyn ProbeSource>,
    credentials: Arc<dyn Fn() -> StoreCredentials + Send + Sync>,
    shared: Arc<SharedProbes>,
    notifier: Notifier,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let current = credentials();
        let results = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = source.probe(&current) => r,
        };
        if shared.set(results) {
            tracing::debug!("probe results changed; waking the controllers");
            notifier.notify(PROBES_CHANGED);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = shared.kick.notified() => {}
        }
    }
}
