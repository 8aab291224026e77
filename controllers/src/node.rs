//! The node controller: each node's role services and configuration, its readiness, its
//! heartbeat, and the retirement of a worker.
//!
//! | role | services | files, containers |
//! |---|---|---|
//! | executor | galaxy, nfs-server, apache2 | Apache site: `/` → localhost:8080 |
//! | editor | galaxy, apache2 | Apache site: `/` → localhost:8080 |
//! | manager | zookeeper | `/etc/mesos/zk`, ZooKeeper `myid`, `/etc/mesos-master/{quorum,ip,hostname,cluster}`, `/etc/chronos/conf/{hostname,http_port,https_port,cluster_name}` |
//! | registry | docker, apache2 | `registry` container on 127.0.0.1:5000 with `/mnt/registry`; Apache guards `/v2` with basic auth |
//! | monitor | prometheus, grafana-server, apache2 | `prometheus.yml`, file_sd targets of every member worker, Apache: `/` → 3000, `/prometheus/` → 9090 |
//! | worker | docker, prometheus-node-exporter (zookeeper disabled) | `/etc/mesos/zk`, `/etc/mesos-slave/{ip,hostname,containerizers,executor_registration_timeout}`, `cadvisor` container on 8080 |
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
//! Removal: see [`crate::removal`] for the phases; this controller moves them.

use std::collections::BTreeMap;
use std::time::Duration;

use omtd_crds::plan::{Ensure, FileSpec, PlanSlice, ResourceState, ServiceSpec};
use omtd_crds::{Node, Role};
use serde::Serialize;

use crate::desired::{node_key, Desired};
use crate::error::Error;
use crate::health::Health;
use crate::observed::{Liveness, Observed};
use crate::output::{not_true, Cond, Machine, MachineMode, Output, StatusEdit};
use crate::paths::{
    AGENT_CONTAINERIZERS, AGENT_HOSTNAME, AGENT_IP, AGENT_REGISTRATION_TIMEOUT,
    APACHE_DEFAULT_SITE, APACHE_SITE, CHRONOS_CLUSTER_NAME, CHRONOS_HOSTNAME, CHRONOS_HTTPS_PORT,
    CHRONOS_HTTP_PORT, MASTER_CLUSTER, MASTER_HOSTNAME, MASTER_IP, MASTER_QUORUM,
    PROMETHEUS_CONFIG, PROMETHEUS_DEFAULTS, PROMETHEUS_TARGETS, REGISTRY_HTPASSWD, ZK_FILE,
    ZK_MYID,
};
use crate::removal::{RemovalPhase, RemovalRecord, RETIRE_TOKEN, STATUS_KEY};
use crate::render::{container, disabled, file, prometheus_label, running};
use crate::settings::Settings;

pub const NAME: &str = "node";

/// The node exporter runs with this token, so that a report of it stopped with
/// [`RETIRE_TOKEN`] (or not installed: no token) is told apart from an old report.
pub const NODE_EXPORTER_RUN_TOKEN: &str = "omtd-run";

pub fn reconcile(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Result<Output, Error> {
    let mut out = Output::default();
    let health = Health::assess(desired, observed, settings);

    // Removal first: a phase decided now shapes this node's slice now.
    let mut phases: BTreeMap<String, Option<RemovalPhase>> = BTreeMap::new();
    for name in desired.nodes.keys() {
        let step = removal_step(desired, observed, &health, name);
        phases.insert(name.clone(), step.phase);
        if step.release {
            out.release.push(node_key(name));
        }
        if step.phase.is_some() {
            out.requeue(Duration::from_secs(10));
        }
        node_status(desired, observed, settings, &health, name, &step, &mut out);
    }

    for n in desired.nodes.values() {
        let name = &n.metadata.name;
        let phase = phases.get(name).copied().flatten();
        out.slices
            .insert(name.clone(), node_slice(desired, n, phase, settings));
        if desired.has_role(name, Role::Worker) {
            out.maintenance.push(Machine {
                node: name.clone(),
                hostname: n.spec.address.clone(),
                ip: n.spec.address.clone(),
                mode: if phase.is_some() {
                    MachineMode::Down
                } else {
                    MachineMode::Up
                },
            });
        }
    }

    if let Some(key) = desired.cluster_key() {
        let mut edit = StatusEdit::new(desired, key, observed.now);
        edit.set(if health.mass_loss {
            Cond::no(
                "AgentsReachable",
                "MassAgentLoss",
                health.mass_loss_message(),
            )
        } else {
            Cond::yes(
                "AgentsReachable",
                "AgentsReachable",
                format!("{} of {} agents lost", health.lost.len(), health.known),
            )
        });
        edit.finish(&mut out, not_true);
    }

    // Look again when a missing lease would pass the grace period.
    for a in observed.agents.values() {
        if !a.lease_present && a.since_heartbeat <= settings.agent_grace {
            out.requeue(settings.agent_grace - a.since_heartbeat + Duration::from_secs(1));
        }
    }
    Ok(out)
}

/// What this controller plans on one node.
pub fn node_slice(
    desired: &Desired,
    node: &Node,
    phase: Option<RemovalPhase>,
    settings: &Settings,
) -> PlanSlice {
    let name = node.metadata.name.as_str();
    let roles = desired.roles(name);
    let addr = node.spec.address.as_str();
    let mut s = PlanSlice {
        controller: NAME.to_owned(),
        ..Default::default()
    };
    let mut services: Vec<ServiceSpec> = Vec::new();
    let mut web = WebSite::default();

    if roles.contains(&Role::Executor) {
        let mut galaxy = running("galaxy");
        galaxy.restart_on = vec![crate::credentials::job_conf_path(desired)];
        services.push(galaxy);
        services.push(running("nfs-server"));
        web.root = Some(desired.spec.ports.galaxy);
    }
    if roles.contains(&Role::Editor) {
        services.push(running("galaxy"));
        web.root.get_or_insert(desired.spec.ports.galaxy);
    }
    if roles.contains(&Role::Manager) {
        let mut zk = running("zookeeper");
        zk.restart_on = vec![ZK_MYID.to_owned()];
        services.push(zk);
        if let Some(zk_url) = desired.zk_url() {
            s.files.push(file(ZK_FILE, zk_url));
        }
        let cluster = desired.cluster_name();
        s.files.extend([
            file(ZK_MYID, "1"),
            file(MASTER_QUORUM, "1"),
            file(MASTER_IP, addr),
            file(MASTER_HOSTNAME, addr),
            file(MASTER_CLUSTER, cluster),
            file(CHRONOS_HOSTNAME, addr),
            file(
                CHRONOS_HTTP_PORT,
                desired.spec.ports.chronos_http.to_string(),
            ),
            file(
                CHRONOS_HTTPS_PORT,
                desired.spec.ports.chronos_https.to_string(),
            ),
            file(CHRONOS_CLUSTER_NAME, cluster),
        ]);
    }
    if roles.contains(&Role::Registry) {
        services.push(running("docker"));
        let port = desired.spec.ports.registry;
        let ports = format!("127.0.0.1:{port}:5000");
        let volume = format!("{}:/var/lib/registry", desired.spec.paths.registry_data);
        s.containers.push(container(
            "registry",
            &settings.registry_image,
            &[&ports],
            &[&volume],
        ));
        web.registry = Some(port);
    }
    if roles.contains(&Role::Monitor) {
        let mut prometheus = running("prometheus");
        prometheus.restart_on = vec![PROMETHEUS_CONFIG.into(), PROMETHEUS_DEFAULTS.into()];
        services.push(prometheus);
        services.push(running("grafana-server"));
        s.files.extend(monitor_files(desired, addr));
        web.prometheus = Some(desired.spec.ports.prometheus);
        web.root.get_or_insert(desired.spec.ports.grafana);
    }
    if roles.contains(&Role::Worker) {
        let retired = phase.is_some_and(|p| p >= RemovalPhase::Stopping);
        services.push(running("docker"));
        let mut exporter = if retired {
            disabled("prometheus-node-exporter")
        } else {
            running("prometheus-node-exporter")
        };
        exporter.restart_token = Some(
            if retired {
                RETIRE_TOKEN
            } else {
                NODE_EXPORTER_RUN_TOKEN
            }
            .to_owned(),
        );
        services.push(exporter);
        // The original playbooks left ZooKeeper installed on the nodes: stopped, disabled.
        services.push(disabled("zookeeper"));
        if let Some(zk_url) = desired.zk_url() {
            s.files.push(file(ZK_FILE, zk_url));
        }
        s.files.extend([
            file(AGENT_IP, addr),
            file(AGENT_HOSTNAME, addr),
            file(AGENT_CONTAINERIZERS, "docker,mesos"),
            file(AGENT_REGISTRATION_TIMEOUT, "5mins"),
        ]);
        let port = desired.spec.ports.cadvisor;
        let ports = format!("{port}:8080");
        let mut cadvisor = container(
            "cadvisor",
            &settings.cadvisor_image,
            &[&ports],
            &[
                "/:/rootfs:ro",
                "/var/run:/var/run:ro",
                "/sys:/sys:ro",
                "/var/lib/docker/:/var/lib/docker:ro",
            ],
        );
        if retired {
            cadvisor.ensure = Ensure::Absent;
        }
        s.containers.push(cadvisor);
    }
    if !web.is_empty() {
        let files = web.files();
        let mut apache = running("apache2");
        apache.restart_on = files
            .iter()
            .filter(|f| f.ensure == Ensure::Present)
            .map(|f| f.path.clone())
            .collect();
        services.push(apache);
        s.files.extend(files);
    }
    // One entry per service even when two roles want it (docker on a registry worker).
    let mut seen = std::collections::BTreeSet::new();
    services.retain(|svc| seen.insert(svc.name.clone()));
    s.services = services;
    s
}

/// What Apache proxies on a node, from its roles.
#[derive(Default)]
struct WebSite {
    /// `/` → this local port (Galaxy, or Grafana on the monitor).
    root: Option<u16>,
    /// `/v2` → the registry on this port, behind basic auth.
    registry: Option<u16>,
    /// `/prometheus/` → Prometheus on this port.
    prometheus: Option<u16>,
}

impl WebSite {
    fn is_empty(&self) -> bool {
        self.root.is_none() && self.registry.is_none() && self.prometheus.is_none()
    }

    fn modules(&self) -> Vec<(&'static str, &'static str)> {
        let mut m = vec![
            (
                "proxy",
                "proxy_module /usr/lib/apache2/modules/mod_proxy.so",
            ),
            (
                "proxy_http",
                "proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so",
            ),
        ];
        if self.root.is_some() {
            m.push((
                "rewrite",
                "rewrite_module /usr/lib/apache2/modules/mod_rewrite.so",
            ));
        }
        if self.registry.is_some() {
            m.extend([
                (
                    "headers",
                    "headers_module /usr/lib/apache2/modules/mod_headers.so",
                ),
                (
                    "auth_basic",
                    "auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so",
                ),
                (
                    "authn_core",
                    "authn_core_module /usr/lib/apache2/modules/mod_authn_core.so",
                ),
                (
                    "authn_file",
                    "authn_file_module /usr/lib/apache2/modules/mod_authn_file.so",
                ),
                (
                    "authz_core",
                    "authz_core_module /usr/lib/apache2/modules/mod_authz_core.so",
                ),
                (
                    "authz_user",
                    "authz_user_module /usr/lib/apache2/modules/mod_authz_user.so",
                ),
            ]);
        }
        m
    }

    fn site(&self) -> String {
        let mut body = String::new();
        if let Some(port) = self.registry {
            body.push_str(&format!(
                "    <Location /v2>\n\
                 \x20       AuthType Basic\n\
                 \x20       AuthName \"Docker Registry\"\n\
                 \x20       AuthUserFile {htpasswd}\n\
                 \x20       Require valid-user\n\
                 \x20   </Location>\n\
                 \x20   Header always set \"Docker-Distribution-Api-Version\" \"registry/2.0\"\n\
                 \x20   ProxyPass /v2 http://127.0.0.1:{port}/v2\n\
                 \x20   ProxyPassReverse /v2 http://127.0.0.1:{port}/v2\n",
                htpasswd = REGISTRY_HTPASSWD,
            ));
        }
        if let Some(port) = self.prometheus {
            body.push_str(&format!(
                "    ProxyPass /prometheus/ http://127.0.0.1:{port}/prometheus/\n\
                 \x20   ProxyPassReverse /prometheus/ http://127.0.0.1:{port}/prometheus/\n"
            ));
        }
        if let Some(port) = self.root {
            body.push_str(&format!(
                "    ProxyPass / http://localhost:{port}/\n\
                 \x20   ProxyPassReverse / http://localhost:{port}/\n"
            ));
        }
        format!(
            "# Managed by omtd (node controller). Changes here are overwritten.\n\
             <VirtualHost *:80>\n\
             \x20   ProxyPreserveHost On\n\
             \x20   ProxyRequests Off\n\
             {body}\
             </VirtualHost>\n"
        )
    }

    fn files(&self) -> Vec<FileSpec> {
        let mut files = vec![
            file(APACHE_SITE, self.site()),
            crate::render::absent_file(APACHE_DEFAULT_SITE),
        ];
        for (module, load) in self.modules() {
            files.push(file(
                format!("/etc/apache2/mods-enabled/{module}.load"),
                format!("LoadModule {load}\n"),
            ));
        }
        files
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

#[derive(Serialize)]
struct TargetGroup {
    targets: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// The file_sd targets: one group per member worker, `[{"targets":["ip:9100","ip:8080"],
/// "labels":{...}}]`, compact. Prometheus picks up the change by itself.
pub fn prometheus_targets(desired: &Desired) -> String {
    let groups: Vec<TargetGroup> = desired
        .member_workers(RemovalPhase::Cleanup)
        .map(|w| {
            let mut labels: BTreeMap<String, String> = w
                .metadata
                .labels
                .iter()
                .map(|(k, v)| (prometheus_label(k), v.clone()))
                .collect();
            labels.insert("node".into(), w.metadata.name.clone());
            TargetGroup {
                targets: vec![
                    host_port(&w.spec.address, desired.spec.ports.node_exporter),
                    host_port(&w.spec.address, desired.spec.ports.cadvisor),
                ],
                labels,
            }
        })
        .collect();
    serde_json::to_string(&groups).unwrap_or_default()
}

fn monitor_files(desired: &Desired, addr: &str) -> Vec<FileSpec> {
    let port = desired.spec.ports.prometheus;
    let config = format!(
        "# Managed by omtd (node controller). Changes here are overwritten.\n\
         global:\n\
         \x20 scrape_interval: 15s\n\
         \x20 evaluation_interval: 15s\n\
         scrape_configs:\n\
         \x20 - job_name: prometheus\n\
         \x20   metrics_path: /prometheus/metrics\n\
         \x20   static_configs:\n\
         \x20     - targets: ['127.0.0.1:{port}']\n\
         \x20 - job_name: omtd-workers\n\
         \x20   file_sd_configs:\n\
         \x20     - files: ['{PROMETHEUS_TARGETS}']\n"
    );
    let mut config = file(PROMETHEUS_CONFIG, config);
    config.validate = Some("promtool check config {}".into());
    let defaults = format!(
        "# Managed by omtd (node controller).\n\
         ARGS=\"--web.listen-address=127.0.0.1:{port} \
         --web.external-url=http://{addr}/prometheus/ --web.route-prefix=/prometheus/\"\n"
    );
    vec![
        config,
        file(PROMETHEUS_DEFAULTS, defaults),
        file(PROMETHEUS_TARGETS, prometheus_targets(desired)),
    ]
}

/// The removal decision for one node this reconcile.
#[derive(Debug, Clone, Default)]
pub struct RemovalStep {
    pub phase: Option<RemovalPhase>,
    /// When the phase began (kept from the stored record when the phase did not move).
    pub since: String,
    pub waiting_for: String,
    /// Removal asked but not progressing: why (blocked, paused by mass loss).
    pub blocked: Option<(String, String)>,
    pub release: bool,
    pub cancelled: bool,
}

/// Moves a node's removal at most one phase, on evidence.
pub fn removal_step(
    desired: &Desired,
    observed: &Observed,
    health: &Health,
    name: &str,
) -> RemovalStep {
    let stored = desired
        .node(name)
        .and_then(|n| n.status.as_ref())
        .and_then(RemovalRecord::from_status);
    let now = crate::time::format(observed.now);
    if !desired.deleting(name) {
        return RemovalStep {
            cancelled: stored.is_some(),
            ..Default::default()
        };
    }
    let Some(node) = desired.node(name) else {
        return RemovalStep::default();
    };
    let roles = desired.roles(name);
    let keep = |phase: RemovalPhase, since: &str, waiting: String| RemovalStep {
        phase: Some(phase),
        since: since.to_owned(),
        waiting_for: waiting,
        release: phase == RemovalPhase::Released,
        ..Default::default()
    };
    let advance = |phase: RemovalPhase| RemovalStep {
        phase: Some(phase),
        since: now.clone(),
        release: phase == RemovalPhase::Released,
        ..Default::default()
    };

    if !roles.contains(&Role::Worker) {
        if let Some(role) = roles.iter().find(|r| r.is_single_host()) {
            return RemovalStep {
                blocked: Some((
                    "RemovalBlocked".into(),
                    format!(
                        "node/{name} holds the {role} role, which no other node has: give \
                         the role to another node first, then delete this one"
                    ),
                )),
                ..Default::default()
            };
        }
        // A node with no role left has nothing to drain or clean up.
        return advance(RemovalPhase::Released);
    }

    let current = stored.as_ref().map(|r| r.phase);
    let since = stored.as_ref().map_or(now.clone(), |r| r.since.clone());
    if health.mass_loss {
        let mut step = match current {
            Some(p) => keep(p, &since, "the mass agent loss to clear".into()),
            None => RemovalStep::default(),
        };
        step.release = false;
        step.blocked = Some((
            "RemovalPaused".into(),
            "removal paused: most agents are lost at once (see the Cluster's \
             AgentsReachable condition)"
                .into(),
        ));
        return step;
    }
    let names = [name, node.spec.address.as_str()];
    let addr = node.spec.address.as_str();
    match current {
        None => advance(RemovalPhase::Draining),
        Some(RemovalPhase::Draining) => match &observed.mesos {
            Some(m) if m.machine_down(&names) => advance(RemovalPhase::Stopping),
            Some(_) => keep(
                RemovalPhase::Draining,
                &since,
                format!("Mesos to mark machine {addr} down (maintenance)"),
            ),
            None => keep(
                RemovalPhase::Draining,
                &since,
                "an answer from the Mesos master".into(),
            ),
        },
        Some(RemovalPhase::Stopping) => {
            if health.is_lost(name) {
                return keep(
                    RemovalPhase::Stopping,
                    &since,
                    format!(
                        "the agent on {name}, which is lost, to confirm its Mesos agent and \
                         node exporter stopped"
                    ),
                );
            }
            let stopped = |svc: &str| observed.service_stopped_with(name, svc, RETIRE_TOKEN);
            if stopped("mesos-slave") && stopped("prometheus-node-exporter") {
                advance(RemovalPhase::Cleanup)
            } else {
                keep(
                    RemovalPhase::Stopping,
                    &since,
                    format!("the agent on {name} to stop mesos-slave and the node exporter"),
                )
            }
        }
        Some(RemovalPhase::Cleanup) => {
            let mut waiting = Vec::new();
            if !crate::credentials::master_applied(desired, observed) {
                waiting.push("mesos-master to restart without the node's principal".to_owned());
            }
            if let Some(ex) = desired.executor() {
                let export = format!("export:{} {addr}", desired.database_path());
                let gone = observed
                    .reports
                    .get(&ex.metadata.name)
                    .is_some_and(|r| r.resources.iter().all(|x| x.id != export));
                if !gone || health.is_lost(&ex.metadata.name) {
                    waiting.push(format!("{} to drop the export to {addr}", ex.metadata.name));
                }
            }
            if let Some(targets) = &observed.prometheus_targets {
                let ours = [
                    host_port(addr, desired.spec.ports.node_exporter),
                    host_port(addr, desired.spec.ports.cadvisor),
                ];
                if targets.iter().any(|t| ours.contains(t)) {
                    waiting.push(format!("Prometheus to drop the targets of {addr}"));
                }
            }
            if waiting.is_empty() {
                advance(RemovalPhase::Released)
            } else {
                keep(RemovalPhase::Cleanup, &since, waiting.join("; "))
            }
        }
        Some(RemovalPhase::Released) => keep(RemovalPhase::Released, &since, String::new()),
    }
}

fn node_status(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    health: &Health,
    name: &str,
    step: &RemovalStep,
    out: &mut Output,
) {
    let mut edit = StatusEdit::new(desired, node_key(name), observed.now);
    let record = step.phase.map(|phase| RemovalRecord {
        phase,
        since: step.since.clone(),
        waiting_for: step.waiting_for.clone(),
    });
    edit.extra(
        STATUS_KEY,
        record.and_then(|r| serde_json::to_value(r).ok()),
    );
    edit.set(ready(desired, observed, settings, health, name, step));
    if step.cancelled {
        out.events.push(crate::output::Event {
            object: node_key(name),
            type_: crate::output::EventType::Normal,
            reason: "RemovalCancelled".into(),
            message: format!("omtd/deleting was removed: node/{name} stays in the cluster"),
        });
    }
    edit.finish(out, not_true);
}

fn ready(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    health: &Health,
    name: &str,
    step: &RemovalStep,
) -> Cond {
    const T: &str = "Ready";
    if let Some((reason, message)) = &step.blocked {
        return Cond::no(T, reason.clone(), message.clone());
    }
    if let Some(phase) = step.phase {
        let waiting = if step.waiting_for.is_empty() {
            String::new()
        } else {
            format!(", waiting for {}", step.waiting_for)
        };
        return Cond::no(
            T,
            "Removing",
            format!("being removed: phase {}{waiting}", phase.as_str()),
        );
    }
    match observed.liveness(name, settings) {
        Liveness::NeverSeen => {
            return Cond::unknown(
                T,
                "AgentNotSeen",
                format!("no omtd agent has reported from {name} yet: start `omtd agent --node {name}` there"),
            )
        }
        Liveness::Lost(d) => {
            let note = if health.mass_loss {
                " (most agents are lost: see the Cluster's AgentsReachable condition)"
            } else {
                ""
            };
            return Cond::no(
                T,
                "AgentLost",
                format!(
                    "the omtd agent's heartbeat stopped {} ago; nothing destructive is \
                     planned for this node until it is back{note}",
                    crate::time::short(d)
                ),
            );
        }
        Liveness::Alive => {}
    }
    let Some(report) = observed.reports.get(name) else {
        return Cond::unknown(T, "NoReport", "the agent has not reported yet");
    };
    if !observed.report_is_current(name) {
        return Cond::no(
            T,
            "Applying",
            "the plan changed; the agent has not reported on the new one yet",
        );
    }
    if !report.converged {
        let bad: Vec<String> = report
            .resources
            .iter()
            .filter(|r| r.state != ResourceState::Converged)
            .map(|r| {
                if r.message.is_empty() {
                    format!("{} is {:?}", r.id, r.state)
                } else {
                    format!("{} is {:?}: {}", r.id, r.state, r.message)
                }
            })
            .collect();
        let mut message = bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
        if bad.len() > 3 {
            message.push_str(&format!("; and {} more", bad.len() - 3));
        }
        if message.is_empty() {
            message = "the agent is still applying the plan".into();
        }
        return Cond::no(T, "NotConverged", message);
    }
    if desired.has_role(name, Role::Worker) {
        let Some(node) = desired.node(name) else {
            return Cond::unknown(T, "Unknown", "");
        };
        let names = [name, node.spec.address.as_str()];
        return match &observed.mesos {
            None => Cond::unknown(
                T,
                "MesosUnreachable",
                "converged; the Mesos master did not answer, so its agent registration is unknown",
            ),
            Some(m) if m.agent_active(&names) => Cond::yes(
                T,
                "Ready",
                "converged and registered with the Mesos master as an active agent",
            ),
            Some(_) => Cond::no(
                T,
                "NotRegistered",
                format!(
                    "converged, but the Mesos master does not list {} as an active agent \
                     (credentials, ZooKeeper URL, or the leader; the leader guard watches this)",
                    node.spec.address
                ),
            ),
        };
    }
    Cond::yes(T, "Ready", "every planned resource is converged")
}
