//! The node controller's slice: the role table (module doc of [`crate::node`]) turned into
//! services, files and containers.

use std::collections::BTreeSet;

use omtd_crds::plan::{Ensure, PlanSlice, ServiceSpec};
use omtd_crds::{Node, Role};

use super::apache::{front_door, tls_credential};
use super::galaxy::{self, DebugOverride};
use super::prometheus::monitor_files;
use super::{NAME, NODE_EXPORTER_RUN_TOKEN};
use crate::desired::Desired;
use crate::paths::{
    docker_registry_ca_path, galaxy_ini_path, job_conf_path, AGENT_CONTAINERIZERS, AGENT_HOSTNAME,
    AGENT_IP, AGENT_REGISTRATION_TIMEOUT, CHRONOS_CLUSTER_NAME, CHRONOS_HOSTNAME,
    CHRONOS_HTTPS_PORT, CHRONOS_HTTP_PORT, GALAXY_UNIT, MASTER_CLUSTER, MASTER_HOSTNAME, MASTER_IP,
    MASTER_QUORUM, PROMETHEUS_CONFIG, PROMETHEUS_DEFAULTS, PROMETHEUS_OMTD_RULES, ZK_CONFIG,
    ZK_FILE, ZK_MYID,
};
use crate::removal::{RemovalPhase, RETIRE_TOKEN};
use crate::render::{container, disabled, file, running};
use crate::settings::Settings;

/// What this controller plans on one node with `roles` (`Desired::roles`); `targets` is
/// the monitor's file_sd list (read only on the monitor); `debug` the node's
/// `omtd/debug-ui-access-until` override as it stands now (read only on the editor).
pub fn node_slice(
    desired: &Desired,
    node: &Node,
    roles: &BTreeSet<Role>,
    phase: Option<RemovalPhase>,
    settings: &Settings,
    targets: &str,
    debug: &DebugOverride,
) -> PlanSlice {
    let addr = node.spec.address.as_str();
    let mut s = PlanSlice {
        controller: NAME.to_owned(),
        ..Default::default()
    };
    let mut services: Vec<ServiceSpec> = Vec::new();

    if roles.contains(&Role::Executor) {
        let mut galaxy = running("galaxy");
        galaxy.slow_start = true;
        galaxy.restart_on = vec![job_conf_path(desired), GALAXY_UNIT.to_owned()];
        services.push(galaxy);
        services.push(running("nfs-server"));
        s.files.push(galaxy::unit_file(
            &desired.spec.paths.executor,
            desired.spec.ports.galaxy,
        ));
    }
    if roles.contains(&Role::Editor) {
        let mut galaxy = running("galaxy");
        galaxy.slow_start = true;
        galaxy.restart_on = vec![GALAXY_UNIT.to_owned()];
        // One Galaxy per host: on a host that is also the executor, the executor's unit.
        if !roles.contains(&Role::Executor) {
            s.files.push(galaxy::unit_file(
                &desired.spec.paths.editor,
                desired.spec.ports.galaxy,
            ));
        }
        galaxy.restart_on.push(galaxy_ini_path(desired));
        s.files.push(galaxy::ini_keys(desired, debug.ui_access()));
        services.push(galaxy);
    }
    if roles.contains(&Role::Manager) {
        let mut zk = running("zookeeper");
        zk.restart_on = vec![ZK_MYID.to_owned(), ZK_CONFIG.to_owned()];
        services.push(zk);
        if let Some(zk_url) = desired.zk_url() {
            s.files.push(file(ZK_FILE, zk_url));
        }
        let cluster = desired.cluster_name();
        s.files.extend(super::zookeeper::files(desired));
        s.files.extend([
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
    }
    if roles.contains(&Role::Monitor) {
        let mut prometheus = running("prometheus");
        prometheus.restart_on = vec![
            PROMETHEUS_CONFIG.into(),
            PROMETHEUS_DEFAULTS.into(),
            PROMETHEUS_OMTD_RULES.into(),
        ];
        services.push(prometheus);
        services.push(running("grafana-server"));
        s.files.extend(monitor_files(desired, addr, targets));
    }
    if roles.contains(&Role::Worker) {
        worker(desired, settings, addr, phase, &mut s, &mut services);
    }
    if let Some(door) = front_door(desired, node, roles) {
        let files = door.files();
        let mut apache = running("apache2");
        apache.restart_on = files
            .iter()
            .filter(|f| f.ensure == Ensure::Present)
            .map(|f| f.path.clone())
            .collect();
        services.push(apache);
        s.files.extend(files);
    }
    // One entry per service even when two roles want it (docker on a registry worker,
    // galaxy on an executor that is the editor too), restarted by what either reads.
    let mut merged: Vec<ServiceSpec> = Vec::with_capacity(services.len());
    for svc in services {
        match merged.iter_mut().find(|m| m.name == svc.name) {
            Some(m) => {
                for p in svc.restart_on {
                    if !m.restart_on.contains(&p) {
                        m.restart_on.push(p);
                    }
                }
            }
            None => merged.push(svc),
        }
    }
    s.services = merged;
    s
}

/// A worker's part: docker, the node exporter and cAdvisor (stopped once it retires), the
/// Mesos agent's configuration.
fn worker(
    desired: &Desired,
    settings: &Settings,
    addr: &str,
    phase: Option<RemovalPhase>,
    s: &mut PlanSlice,
    services: &mut Vec<ServiceSpec>,
) {
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
    // Docker engines trust the registry's CA for its name (docker reads certs.d on every
    // connection: no restart).
    let ca = tls_credential(desired).and_then(|c| c.spec.ca.as_deref());
    if let (Some(registry), Some(ca)) = (desired.registry_name(), ca) {
        s.files.push(file(docker_registry_ca_path(&registry), ca));
    }
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
