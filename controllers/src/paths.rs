//! Every host path the controllers write, and the restart tables that tie a service to the
//! files it reads. One place, so that a controller that restarts a service (the leader
//! guard) does not import the constants of the controllers that write its files.

use crate::desired::Desired;

// Written by the node controller.
pub const ZK_FILE: &str = "/etc/mesos/zk";
pub const ZK_MYID: &str = "/etc/zookeeper/conf/myid";
pub const ZK_CONFIG: &str = "/etc/zookeeper/conf/zoo.cfg";
pub const MASTER_QUORUM: &str = "/etc/mesos-master/quorum";
pub const MASTER_IP: &str = "/etc/mesos-master/ip";
pub const MASTER_HOSTNAME: &str = "/etc/mesos-master/hostname";
pub const MASTER_CLUSTER: &str = "/etc/mesos-master/cluster";
pub const AGENT_IP: &str = "/etc/mesos-slave/ip";
pub const AGENT_HOSTNAME: &str = "/etc/mesos-slave/hostname";
pub const AGENT_CONTAINERIZERS: &str = "/etc/mesos-slave/containerizers";
pub const AGENT_REGISTRATION_TIMEOUT: &str = "/etc/mesos-slave/executor_registration_timeout";
pub const CHRONOS_HOSTNAME: &str = "/etc/chronos/conf/hostname";
pub const CHRONOS_HTTP_PORT: &str = "/etc/chronos/conf/http_port";
pub const CHRONOS_HTTPS_PORT: &str = "/etc/chronos/conf/https_port";
pub const CHRONOS_CLUSTER_NAME: &str = "/etc/chronos/conf/cluster_name";
pub const APACHE_SITE: &str = "/etc/apache2/sites-enabled/omtd.conf";
/// Debian's default site answers on *:80 before ours (alphabetical order): it goes.
pub const APACHE_DEFAULT_SITE: &str = "/etc/apache2/sites-enabled/000-default.conf";
pub const PROMETHEUS_CONFIG: &str = "/etc/prometheus/prometheus.yml";
pub const PROMETHEUS_DEFAULTS: &str = "/etc/default/prometheus";
pub const PROMETHEUS_TARGETS: &str = "/etc/prometheus/file_sd/omtd-workers.json";
/// omtd's alert rules, owned whole (named by omtd's `rule_files` block).
pub const PROMETHEUS_OMTD_RULES: &str = "/etc/prometheus/omtd/omtd-alerts.yml";

/// Node-controller (configuration) files mesos-master reads (the leader guard restarts it on change).
pub const MASTER_CONFIG_RESTART_ON: [&str; 5] = [
    ZK_FILE,
    MASTER_QUORUM,
    MASTER_IP,
    MASTER_HOSTNAME,
    MASTER_CLUSTER,
];
/// Node-controller (configuration) files Chronos reads.
pub const CHRONOS_CONFIG_RESTART_ON: [&str; 5] = [
    ZK_FILE,
    CHRONOS_HOSTNAME,
    CHRONOS_HTTP_PORT,
    CHRONOS_HTTPS_PORT,
    CHRONOS_CLUSTER_NAME,
];
/// Node-controller (configuration) files the Mesos agent reads.
pub const AGENT_CONFIG_RESTART_ON: [&str; 5] = [
    ZK_FILE,
    AGENT_IP,
    AGENT_HOSTNAME,
    AGENT_CONTAINERIZERS,
    AGENT_REGISTRATION_TIMEOUT,
];

// Written by the credentials controller.
/// Galaxy's job configuration on the executor (holds the Chronos HTTP password).
pub fn job_conf_path(desired: &Desired) -> String {
    format!("{}/config/job_conf.xml", desired.spec.paths.executor)
}

pub const MASTER_CREDENTIALS: &str = "/etc/mesos-master/store/credentials.json";
pub const MASTER_CREDENTIALS_FLAG: &str = "/etc/mesos-master/credentials";
pub const MASTER_ACLS_FLAG: &str = "/etc/mesos-master/acls";
pub const MASTER_AUTH_RULES: &str = "/etc/mesos-master/store/auth_rules";
pub const MASTER_AUTH_FLAGS: [&str; 3] = [
    "/etc/mesos-master/authenticate_agents",
    "/etc/mesos-master/authenticate_http_readonly",
    "/etc/mesos-master/authenticate_http_readwrite",
];
pub const CHRONOS_CONF_PRINCIPAL: &str = "/etc/chronos/conf/mesos_authentication_principal";
pub const CHRONOS_CONF_SECRET_FILE: &str = "/etc/chronos/conf/mesos_authentication_secret_file";
pub const CHRONOS_PRINCIPAL: &str = "/etc/chronos/mesos_authentication_principal";
pub const CHRONOS_SECRET_FILE: &str = "/etc/chronos/mesos_authentication_secret_file";
pub const CHRONOS_SECRET: &str = "/etc/chronos/store/mesos_authentication_secret";
pub const CHRONOS_HTTP_CREDENTIALS: &str = "/etc/chronos/conf/http_credentials";
pub const AGENT_CREDENTIALS: &str = "/etc/mesos-slave/store/credentials.json";
pub const AGENT_CREDENTIAL_FLAG: &str = "/etc/mesos-slave/credential";
pub const REGISTRY_HTPASSWD: &str = "/etc/apache2/registry.htpasswd";

/// Credentials-controller files mesos-master must re-read (restart) when they change.
pub const MASTER_CREDENTIALS_RESTART_ON: [&str; 7] = [
    MASTER_CREDENTIALS,
    MASTER_CREDENTIALS_FLAG,
    MASTER_ACLS_FLAG,
    MASTER_AUTH_RULES,
    MASTER_AUTH_FLAGS[0],
    MASTER_AUTH_FLAGS[1],
    MASTER_AUTH_FLAGS[2],
];
/// Credentials-controller files Chronos must re-read.
pub const CHRONOS_CREDENTIALS_RESTART_ON: [&str; 3] = [
    CHRONOS_CONF_PRINCIPAL,
    CHRONOS_CONF_SECRET_FILE,
    CHRONOS_SECRET,
];
/// Credentials-controller files the Mesos agent must re-read.
pub const AGENT_CREDENTIALS_RESTART_ON: [&str; 2] = [AGENT_CREDENTIALS, AGENT_CREDENTIAL_FLAG];

// The front doors (node controller).
/// Where Apache reads the front doors' certificates and keys.
pub const APACHE_TLS_DIR: &str = "/etc/apache2/omtd-tls";

/// The certificate of TLS credential `credential`, as Apache serves it.
pub fn tls_certificate_path(credential: &str) -> String {
    format!("{APACHE_TLS_DIR}/{credential}.crt")
}

/// The private key of TLS credential `credential` (a secret file).
pub fn tls_key_path(credential: &str) -> String {
    format!("{APACHE_TLS_DIR}/{credential}.key")
}

/// The CA a worker's Docker engine trusts for the registry at `registry` (its name as
/// engines reach it: `docker pull <registry>/image`).
pub fn docker_registry_ca_path(registry: &str) -> String {
    format!("/etc/docker/certs.d/{registry}/ca.crt")
}

/// Galaxy's systemd unit on the executor and the editor.
pub const GALAXY_UNIT: &str = "/etc/systemd/system/galaxy.service";

/// The editor's Galaxy configuration: the user's file, omtd owns `use_remote_user` in it.
pub fn galaxy_ini_path(desired: &Desired) -> String {
    format!("{}/config/galaxy.ini", desired.spec.paths.editor)
}

// Written by the credentials controller.
/// Root's Docker client configuration on a worker: the registry login its engine pulls
/// with (a secret).
pub const DOCKER_CONFIG: &str = "/root/.docker/config.json";
