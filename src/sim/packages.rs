//! What the runbook's Ansible playbooks install on a machine of each role, before omtd
//! configures anything: the services a sim host starts with (installed, stopped).

use omtd_crds::Role;

/// The services the packages of each role install. Workers and the manager get the whole
/// Mesosphere set (master, agent, ZooKeeper), as the original playbooks installed it:
/// which is how a stray master on a worker can be started at all.
pub fn packages(role: Role) -> &'static [&'static str] {
    match role {
        Role::Executor => &["galaxy", "nfs-server", "apache2"],
        Role::Editor => &["galaxy", "apache2"],
        Role::Manager => &["zookeeper", "mesos-master", "mesos-slave", "chronos"],
        Role::Registry => &["docker", "apache2"],
        Role::Monitor => &["prometheus", "grafana-server", "apache2"],
        Role::Worker => &[
            "docker",
            "mesos-slave",
            "mesos-master",
            "zookeeper",
            "prometheus-node-exporter",
        ],
    }
}

/// Every role's packages, once each: a machine that can take any role.
pub fn every_role() -> Vec<&'static str> {
    let mut all: Vec<&str> = Role::ALL.into_iter().flat_map(packages).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}
