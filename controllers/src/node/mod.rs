//! The node controller: each node's role services and configuration, its readiness, its
//! heartbeat, and the retirement of a worker.
//!
//! | role | services | files, containers |
//! |---|---|---|
//! | executor | galaxy (`slowStart`), nfs-server, apache2 | `/etc/systemd/system/galaxy.service` (`<executor>/run.sh`, `activating` until Galaxy answers); vhost `/` → localhost:8080 |
//! | editor | galaxy, apache2 | `galaxy.service` (`<editor>/run.sh`); `<editor>/config/galaxy.ini`'s `use_remote_user` (`True`; `False` until `omtd/debug-ui-access-until`); vhost `/galaxy` → localhost:8080/galaxy |
//! | manager | zookeeper | `/etc/mesos/zk`, ZooKeeper `myid` and `zoo.cfg` (standalone, admin server off), `/etc/mesos-master/{quorum,ip,hostname,cluster}`, `/etc/chronos/conf/{hostname,http_port,https_port,cluster_name}` |
//! | registry | docker, apache2 | `registry` container on 127.0.0.1:5000 with `/mnt/registry`; vhost `/v2` → 127.0.0.1:5000 behind basic auth |
//! | monitor | prometheus, grafana-server, apache2 | `prometheus.yml`, file_sd targets of every member worker; vhost `/` → 127.0.0.1:3000, `/prometheus/` → 127.0.0.1:9090 |
//! | worker | docker, prometheus-node-exporter (zookeeper disabled) | `/etc/mesos/zk`, `/etc/mesos-slave/{ip,hostname,containerizers,executor_registration_timeout}`, `cadvisor` container on 8080; with a registry and a TLS CA, `/etc/docker/certs.d/<registry name>/ca.crt` |
//!
//! Front doors ([`omtd_crds::front_door`]): each vhost's `ServerName` is the Cluster's
//! `frontDoors.names.<role>` or the node's address; roles on one host under one name share
//! a vhost, and a path two of them claim is left out of the second's (a `FrontDoorClash`
//! warning; validation refuses it first). Apache modules are the runbook's per host:
//! rewrite, proxy, proxy_http for the Galaxy and monitor hosts; authn_file, authn_core,
//! authz_groupfile, authz_user, authz_core, auth_basic, access_compat, headers, proxy,
//! proxy_http for the registry; ssl (with socache_shmcb and alias) with TLS. With
//! `frontDoors.tls` every vhost is on `*:443` with `/etc/apache2/omtd-tls/<credential>.{crt,key}`
//! (planned in this slice, before the site that names them) and `*:80` redirects to it; without,
//! plain `*:80`.
//!
//! Not here: mesos-master, chronos and mesos-slave belong to the leader guard (one owner
//! per service: it masks, orders and restarts them); secrets to the credentials
//! controller; exports, mounts and volumes to the storage controller.
//!
//! `Ready` = the agent reports every resource converged, and for a worker, the Mesos master
//! lists it as an active agent. An agent gone past the grace period makes the node
//! `Ready=False, AgentLost`; when most agents go at once the Cluster gets
//! `AgentsReachable=False` and no removal moves (see [`crate::health`]).
//!
//! The Cluster's front-door conditions (`RegistryReady`, `ChronosReady`,
//! `PrometheusTargetsReady`) say whether the services people and jobs reach answer as
//! configured, from the probes: see [`front_doors`].
//!
//! Removal: see [`crate::removal`] for the phases; this controller moves them.

mod apache;
mod drain;
mod front_doors;
mod galaxy;
mod prometheus;
mod ready;
mod removal;
mod slice;
mod zookeeper;

use std::collections::BTreeMap;
use std::time::Duration;

use omtd_crds::plan::PlanSlice;
use omtd_crds::Role;
use omtd_crds::{ConditionStatus, Kind};

use crate::declaration::{condition, Declaration, Owned, Plans, Reports, Wakes};
use crate::desired::{node_key, Desired};
use crate::health::ClusterHealth;
use crate::memo::{Memo, Printer};
use crate::observed::Observed;
use crate::output::{
    Cond, EventType, Intent, MachineMode, MachineWish, Notice, Reconciled, StatusEdit,
};
use crate::removal::RemovalPhase;
use crate::settings::Settings;

pub use drain::drain_timeout;
pub use galaxy::{DebugOverride, DEBUG_UI_ACCESS_ANNOTATION, GALAXY_INI_SECTION};
pub use prometheus::prometheus_targets;
pub use removal::{removal_step, NodeRemovalStep};
pub use slice::node_slice;

pub const NAME: &str = "node";

/// The node exporter runs with this token, so that a report of it stopped with
/// [`RETIRE_TOKEN`] (or not installed: no token) is told apart from an old report.
pub const NODE_EXPORTER_RUN_TOKEN: &str = "omtd-run";

/// What this controller owns and what wakes it.
pub const DECLARATION: Declaration = Declaration {
    name: NAME,
    owns: &[
        Owned {
            kind: Kind::Node,
            conditions: &[condition::READY],
            status_keys: &[crate::removal::STATUS_KEY],
        },
        Owned {
            kind: Kind::Cluster,
            conditions: &[
                condition::AGENTS_REACHABLE,
                condition::CHRONOS_READY,
                condition::PROMETHEUS_TARGETS_READY,
                condition::REGISTRY_READY,
            ],
            status_keys: &[],
        },
    ],
    reasons: &[
        reason::AGENT_LOST,
        reason::AGENT_NOT_SEEN,
        reason::AGENTS_REACHABLE,
        reason::APPLYING,
        reason::CHRONOS_UNREACHABLE,
        reason::CREDENTIAL_REFUSED,
        reason::DRAIN_HELD,
        reason::DRAIN_TIMED_OUT,
        reason::MASS_AGENT_LOSS,
        reason::MESOS_UNREACHABLE,
        reason::NO_REPORT,
        reason::NOT_CONVERGED,
        reason::NOT_PROBED,
        reason::NOT_REGISTERED,
        reason::NO_CREDENTIAL,
        reason::READY,
        reason::REGISTRY_OPEN,
        reason::REGISTRY_UNREACHABLE,
        reason::REMOVAL_BLOCKED,
        reason::REMOVAL_CANCELLED,
        reason::REMOVAL_PAUSED,
        reason::REMOVING,
        reason::TARGETS_MISSING,
        reason::UNKNOWN,
    ],
    wakes: Wakes {
        reports: Reports::All,
        heartbeats: true,
        probes: true,
        plans: Plans::All,
        labels: true,
    },
};

/// The reasons of the conditions this controller sets.
pub mod reason {
    pub const AGENT_LOST: &str = "AgentLost";
    pub const AGENT_NOT_SEEN: &str = "AgentNotSeen";
    pub const AGENTS_REACHABLE: &str = "AgentsReachable";
    pub const APPLYING: &str = "Applying";
    /// Chronos does not answer `/ping` (Cluster `ChronosReady`).
    pub const CHRONOS_UNREACHABLE: &str = "ChronosUnreachable";
    /// The registry answers 401 to the checked credential (Cluster `RegistryReady`).
    pub const CREDENTIAL_REFUSED: &str = "CredentialRefused";
    /// A drain that cannot tell its deadline (an unparsable `omtd/drain-timeout`): held.
    pub const DRAIN_HELD: &str = "DrainHeld";
    /// A drain's deadline passed with tasks still running: the machine goes down anyway.
    pub const DRAIN_TIMED_OUT: &str = "DrainTimedOut";
    pub const MASS_AGENT_LOSS: &str = "MassAgentLoss";
    pub const MESOS_UNREACHABLE: &str = "MesosUnreachable";
    pub const NO_REPORT: &str = "NoReport";
    pub const NOT_CONVERGED: &str = "NotConverged";
    /// A front door whose probe is not configured (or did not answer).
    pub const NOT_PROBED: &str = "NotProbed";
    pub const NOT_REGISTERED: &str = "NotRegistered";
    /// No registry credential to check the registry's way in with.
    pub const NO_CREDENTIAL: &str = "NoCredential";
    pub const READY: &str = "Ready";
    /// The registry answers 200 without credentials: its guard is missing.
    pub const REGISTRY_OPEN: &str = "RegistryOpen";
    pub const REGISTRY_UNREACHABLE: &str = "RegistryUnreachable";
    pub const REMOVAL_BLOCKED: &str = "RemovalBlocked";
    pub const REMOVAL_CANCELLED: &str = "RemovalCancelled";
    pub const REMOVAL_PAUSED: &str = "RemovalPaused";
    pub const REMOVING: &str = "Removing";
    /// Member workers' node exporters missing from Prometheus's targets.
    pub const TARGETS_MISSING: &str = "TargetsMissing";
    pub const UNKNOWN: &str = "Unknown";
}

pub fn reconcile(desired: &Desired, observed: &Observed, settings: &Settings) -> Reconciled {
    reconcile_with(&mut State::default(), desired, observed, settings)
}

/// What the node controller keeps between passes (see [`crate::memo`]): each node's slice
/// and each member worker's scrape-target group, under the prints of their inputs. Removal
/// steps and statuses are derived anew on every pass: they read the time and the agents'
/// reports, and they are cheap next to rendering.
#[derive(Debug, Clone, Default)]
pub struct State {
    slices: Memo<PlanSlice>,
    targets: Memo<String>,
}

impl State {
    /// How many slices were rendered (not taken from the state) since it was made.
    pub fn slices_rendered(&self) -> u64 {
        self.slices.derived()
    }
}

/// [`reconcile`] with the state kept from the last pass: the same outcome as from scratch,
/// rendering only what the change touched.
pub fn reconcile_with(
    state: &mut State,
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Reconciled {
    let mut out = Intent::default();
    let health = ClusterHealth::assess(desired, observed, settings);
    // Removal first: a phase decided now shapes this node's slice now.
    let phases = removals(desired, observed, settings, &health, &mut out);
    slices(state, desired, observed, settings, &phases, &mut out);
    front_door_notices(desired, observed, &mut out);
    cluster_conditions(desired, observed, &health, &mut out);
    requeue_at_grace(observed, settings, &mut out);
    Ok(out)
}

/// A node's removal phase and how its machine should stand in Mesos maintenance.
#[derive(Debug, Clone, Copy, Default)]
struct Standing {
    phase: Option<RemovalPhase>,
    machine: MachineMode,
    unavailable_from: Option<std::time::SystemTime>,
}

/// Moves every node's removal, sets its status, and returns how each node stands.
fn removals(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    health: &ClusterHealth,
    out: &mut Intent,
) -> BTreeMap<String, Standing> {
    let mut phases = BTreeMap::new();
    for name in desired.nodes.keys() {
        let step = removal_step(desired, observed, settings, health, name);
        phases.insert(
            name.clone(),
            Standing {
                phase: step.phase,
                machine: step.machine,
                unavailable_from: step.deadline.as_deref().and_then(crate::time::parse),
            },
        );
        if step.release {
            out.release.push(node_key(name));
        }
        if step.phase.is_some() {
            out.requeue(Duration::from_secs(10));
        }
        if let Some(after) = step.requeue {
            out.requeue(after);
        }
        if let Some((reason, message)) = &step.notice {
            out.events.push(Notice {
                object: node_key(name),
                type_: EventType::Warning,
                reason: reason.clone(),
                message: message.clone(),
            });
        }
        let seen = ready::Seen {
            desired,
            observed,
            settings,
            health,
        };
        ready::node_status(seen, name, &step, out);
    }
    phases
}

/// Every node's slice, and how each worker should stand in Mesos maintenance.
fn slices(
    state: &mut State,
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    phases: &BTreeMap<String, Standing>,
    out: &mut Intent,
) {
    // What every slice reads besides its own record: the Cluster (ports, paths, role
    // assignments, front doors), the ZooKeeper URL (the manager's address), the registry's
    // name (its node's address), the TLS credential (certificate, key, CA) and the
    // settings.
    let context = Printer::new()
        .feed(desired.zk_url())
        .feed(desired.cluster_name())
        .feed(desired.registry_name())
        .feed(format!("{settings:?}"));
    let context = match &desired.cluster {
        Some(cluster) => context.record(cluster),
        None => context.feed("no Cluster record"),
    };
    let context = match apache::tls_credential(desired) {
        Some(c) => context.record(c),
        None => context.feed("no TLS credential"),
    };
    let targets = desired
        .monitor()
        .map(|_| prometheus::targets_from(&mut state.targets, desired))
        .unwrap_or_default();
    let targets_print = Printer::new().feed(&targets).finish();
    for n in desired.nodes.values() {
        let name = &n.metadata.name;
        let standing = phases.get(name).copied().unwrap_or_default();
        let phase = standing.phase;
        let roles = desired.roles(name);
        // The override's effect at this time (the annotation itself is in the record).
        let debug = DebugOverride::of(n, observed.now);
        let mut print = Printer::new()
            .feed(context.finish())
            .record(n)
            .feed(phase)
            .feed(&roles)
            .feed(debug.ui_access());
        if roles.contains(&Role::Monitor) {
            print = print.feed(targets_print);
        }
        let slice = state.slices.get(name, print.finish(), || {
            node_slice(desired, n, &roles, phase, settings, &targets, &debug)
        });
        out.slices.insert(name.clone(), slice.clone());
        if roles.contains(&Role::Worker) {
            out.maintenance.push(MachineWish {
                node: name.clone(),
                hostname: n.spec.address.clone(),
                ip: n.spec.address.clone(),
                mode: standing.machine,
                unavailable_from: standing.unavailable_from,
            });
        }
    }
    state.slices.sweep();
}

/// Warnings about the front doors, and a look again when a debug override expires: a
/// clash left out of a site, a TLS credential that cannot be served, an override in force
/// or ignored.
fn front_door_notices(desired: &Desired, observed: &Observed, out: &mut Intent) {
    let mut expiries = Vec::new();
    let mut warn = |object, reason: &str, message: String| {
        out.events.push(Notice {
            object,
            type_: EventType::Warning,
            reason: reason.to_owned(),
            message,
        })
    };
    let mut doors = false;
    for n in desired.nodes.values() {
        let name = &n.metadata.name;
        let roles = desired.roles(name);
        if let Some(door) = apache::front_door(desired, n, &roles) {
            doors = true;
            for clash in &door.clashes {
                warn(
                    node_key(name),
                    event::FRONT_DOOR_CLASH,
                    format!(
                        "{clash}: the {} keeps {} and the {}'s route is left out of the site (fix: {})",
                        clash.first,
                        clash.path,
                        clash.second,
                        clash.fix()
                    ),
                );
            }
        }
        if !roles.contains(&Role::Editor) {
            continue;
        }
        let debug = DebugOverride::of(n, observed.now);
        match debug {
            DebugOverride::Until(until) => {
                warn(
                    node_key(name),
                    event::DEBUG_OVERRIDE,
                    format!(
                        "Galaxy's UI is open without Apache's remote user (use_remote_user = False) until {}, when omtd turns it back",
                        crate::time::format(until)
                    ),
                );
                expiries.push(crate::time::since(until, observed.now));
            }
            DebugOverride::Unparsable(value) => warn(
                node_key(name),
                event::DEBUG_OVERRIDE_IGNORED,
                format!(
                    "{DEBUG_UI_ACCESS_ANNOTATION}={value:?} is not an RFC 3339 time: ignored, use_remote_user stays True (fix: write a time such as 2026-01-31T18:00:00Z, or remove the annotation)"
                ),
            ),
            DebugOverride::None | DebugOverride::Expired => {}
        }
    }
    if let (true, Some(key)) = (doors, desired.cluster_key()) {
        if let Err(problem) = apache::tls_files(desired) {
            warn(
                key,
                event::TLS_UNAVAILABLE,
                format!("{problem}: the front doors serve plain HTTP until it is fixed"),
            );
        }
    }
    for after in expiries {
        out.requeue(after);
    }
}

/// The reasons of the events this controller records about the front doors.
pub mod event {
    /// Two roles on one host claim one path under one name.
    pub const FRONT_DOOR_CLASH: &str = "FrontDoorClash";
    /// `omtd/debug-ui-access-until` holds: Galaxy's UI is open.
    pub const DEBUG_OVERRIDE: &str = "DebugOverride";
    /// `omtd/debug-ui-access-until` is not a time: ignored.
    pub const DEBUG_OVERRIDE_IGNORED: &str = "DebugOverrideIgnored";
    /// `frontDoors.tls` cannot be served.
    pub const TLS_UNAVAILABLE: &str = "TlsUnavailable";
}

/// The Cluster's conditions: `AgentsReachable` and the front doors (see [`front_doors`]).
fn cluster_conditions(
    desired: &Desired,
    observed: &Observed,
    health: &ClusterHealth,
    out: &mut Intent,
) {
    if let Some(key) = desired.cluster_key() {
        let mut edit = StatusEdit::new(desired, key, observed.now);
        edit.set(if health.mass_loss {
            Cond::no(
                condition::AGENTS_REACHABLE,
                reason::MASS_AGENT_LOSS,
                health.mass_loss_message(),
            )
        } else {
            Cond::yes(
                condition::AGENTS_REACHABLE,
                reason::AGENTS_REACHABLE,
                format!("{} of {} agents lost", health.lost.len(), health.known),
            )
        });
        for c in front_doors::conditions(desired, observed) {
            edit.set(c);
        }
        // A front door that is not probed is Unknown on every cluster that does not
        // configure that probe: a normal event, not a warning; False is one.
        edit.finish(out, |c| c.status == ConditionStatus::False);
    }
}

/// Look again when a missing lease would pass the grace period.
fn requeue_at_grace(observed: &Observed, settings: &Settings, out: &mut Intent) {
    for a in observed.agents.values() {
        if !a.lease_present && a.since_heartbeat <= settings.agent_grace {
            out.requeue(settings.agent_grace - a.since_heartbeat + Duration::from_secs(1));
        }
    }
}
