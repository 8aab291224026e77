//! Where the example cluster's Mesos, ZooKeeper and Prometheus are, for the sim world
//! (`omtd::sim`) that plays them in the end-to-end tests.

/// The example cluster's manager, ZooKeeper URL, monitor and the credential the probes
/// present to the master (which authenticates even read-only HTTP).
pub const MANAGER: &str = "manager.omtd";
pub const MONITOR: &str = "monitor.omtd";
pub const ZK_URL: &str = "zk://10.0.0.12:2181/mesos";
pub const PROBE_PRINCIPAL: (&str, &str) = ("chronos.omtd", "ch-Pw2eR7uT4v");
