//! The Cluster's front-door conditions: whether the services people and jobs reach answer
//! as the node controller configured them.
//!
//! - `RegistryReady`: Apache guards the registry — `GET /v2/` is refused (401) without
//!   credentials and let through (200) with the checked registry credential.
//! - `ChronosReady`: Chronos answers `/ping` and the Mesos master lists it as an active
//!   framework (Chronos pings even when Mesos refused it, so the ping alone proves little).
//! - `PrometheusTargetsReady`: Prometheus scrapes every member worker's node exporter (the
//!   targets this controller writes to file_sd).
//!
//! Each is `Unknown` when its probe is not configured (or, for Chronos's registration,
//! when the Mesos probe has no answer), and set only when the cluster has the node that
//! runs the service or the probe answered: a cluster without a registry gets no
//! `RegistryReady` to wonder about.

use super::prometheus::host_port;
use super::reason;
use crate::declaration::condition::{CHRONOS_READY, PROMETHEUS_TARGETS_READY, REGISTRY_READY};
use crate::desired::Desired;
use crate::leader_guard::CHRONOS_FRAMEWORK;
use crate::observed::{Observed, RegistryAnswer, RegistryCheck};
use crate::output::Cond;
use crate::removal::RemovalPhase;

/// At most this many missing targets are named in a message.
const NAMED: usize = 5;

/// The front-door conditions to set on the Cluster.
pub(super) fn conditions(desired: &Desired, observed: &Observed) -> Vec<Cond> {
    let mut out = Vec::new();
    if desired.registry().is_some() || observed.registry.is_some() {
        out.push(registry(observed.registry.as_ref()));
    }
    if desired.manager().is_some() || observed.chronos_ping.is_some() {
        out.push(chronos(observed));
    }
    if desired.monitor().is_some() {
        out.push(prometheus_targets(desired, observed));
    }
    out
}

fn registry(check: Option<&RegistryCheck>) -> Cond {
    let Some(check) = check else {
        return Cond::unknown(
            REGISTRY_READY,
            reason::NOT_PROBED,
            "the registry is not probed (omtd operator --registry-url)",
        );
    };
    match &check.anonymous {
        RegistryAnswer::Ok => {
            return Cond::no(
                REGISTRY_READY,
                reason::REGISTRY_OPEN,
                "GET /v2/ without credentials answered 200: the registry is open to anyone \
                 (Apache's basic-auth guard on /v2 is missing)",
            )
        }
        RegistryAnswer::Failed(why) => {
            return Cond::no(
                REGISTRY_READY,
                reason::REGISTRY_UNREACHABLE,
                format!("GET /v2/ without credentials: {why}"),
            )
        }
        RegistryAnswer::Unauthorized => {}
    }
    match &check.authenticated {
        None => Cond::unknown(
            REGISTRY_READY,
            reason::NO_CREDENTIAL,
            "GET /v2/ without credentials is refused (401), but there is no registry \
             credential to check the way in with (add a Credential with use: registry, or \
             name one with omtd operator --registry-credential)",
        ),
        Some(RegistryAnswer::Ok) => Cond::yes(
            REGISTRY_READY,
            reason::READY,
            "GET /v2/ is refused without credentials (401) and answers with them (200)",
        ),
        Some(RegistryAnswer::Unauthorized) => Cond::no(
            REGISTRY_READY,
            reason::CREDENTIAL_REFUSED,
            "GET /v2/ with the registry credential answered 401: the registry refuses it \
             (is the htpasswd on the registry host applied? see the Credential's Ready)",
        ),
        Some(RegistryAnswer::Failed(why)) => Cond::no(
            REGISTRY_READY,
            reason::REGISTRY_UNREACHABLE,
            format!("GET /v2/ with the registry credential: {why}"),
        ),
    }
}

fn chronos(observed: &Observed) -> Cond {
    let Some(ping) = &observed.chronos_ping else {
        return Cond::unknown(
            CHRONOS_READY,
            reason::NOT_PROBED,
            "Chronos is not probed (omtd operator --chronos-url)",
        );
    };
    if let Err(why) = ping {
        return Cond::no(
            CHRONOS_READY,
            reason::CHRONOS_UNREACHABLE,
            format!("Chronos does not answer /ping: {why}"),
        );
    }
    match &observed.mesos {
        None => Cond::unknown(
            CHRONOS_READY,
            reason::MESOS_UNREACHABLE,
            "Chronos answers /ping; whether it is registered is unknown: the Mesos probe \
             has no answer",
        ),
        Some(m) if m.framework_active(CHRONOS_FRAMEWORK) => Cond::yes(
            CHRONOS_READY,
            reason::READY,
            "Chronos answers /ping and is an active framework of the Mesos master",
        ),
        Some(_) => Cond::no(
            CHRONOS_READY,
            reason::NOT_REGISTERED,
            format!(
                "Chronos answers /ping but the Mesos master lists no active framework \
                 {CHRONOS_FRAMEWORK:?} (its principal or secret refused? see the Cluster's \
                 MesosConnected)"
            ),
        ),
    }
}

fn prometheus_targets(desired: &Desired, observed: &Observed) -> Cond {
    let Some(active) = &observed.prometheus_targets else {
        return Cond::unknown(
            PROMETHEUS_TARGETS_READY,
            reason::NOT_PROBED,
            "Prometheus is not probed or did not answer (omtd operator --prometheus-url)",
        );
    };
    let port = desired.spec.ports.node_exporter;
    let workers: Vec<(&str, String)> = desired
        .member_workers(RemovalPhase::Cleanup)
        .map(|w| (w.metadata.name.as_str(), host_port(&w.spec.address, port)))
        .collect();
    let missing: Vec<String> = workers
        .iter()
        .filter(|(_, target)| !active.contains(target))
        .map(|(name, target)| format!("{name} ({target})"))
        .collect();
    if missing.is_empty() {
        return Cond::yes(
            PROMETHEUS_TARGETS_READY,
            reason::READY,
            format!(
                "Prometheus scrapes the node exporter of every member worker ({})",
                workers.len()
            ),
        );
    }
    let mut named = missing[..missing.len().min(NAMED)].join(", ");
    if missing.len() > NAMED {
        named.push_str(&format!(" and {} more", missing.len() - NAMED));
    }
    Cond::no(
        PROMETHEUS_TARGETS_READY,
        reason::TARGETS_MISSING,
        format!(
            "{} of {} member workers' node exporters are not scrape targets: {named} \
             (file_sd not applied on the monitor yet?)",
            missing.len(),
            workers.len()
        ),
    )
}
