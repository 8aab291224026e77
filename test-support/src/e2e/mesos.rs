//! Where the example cluster's Mesos, ZooKeeper and Prometheus are, for the sim world
//! (`omtd::sim`) that plays them in the end-to-end tests.

/// The example cluster's manager, ZooKeeper URL, monitor and the credential the probes
/// present to the master (which authenticates even read-only HTTP).
pub const MANAGER: &str = "manager.omtd";
pub const MONITOR: &str = "monitor.omtd";
pub const ZK_URL: &str = "zk://10.0.0.12:2181/mesos";
pub const PROBE_PRINCIPAL: (&str, &str) = ("chronos.omtd", "ch-Pw2eR7uT4v");

/// The leader guard's recovery timings, shortened from minutes to seconds: extra `omtd
/// operator` flags for [`super::Setup`].
pub const FAST_RECOVERY: [&str; 10] = [
    "--recovery-grace",
    "1s",
    "--recovery-step-timeout",
    "20s",
    "--recovery-backoff",
    "1s",
    "--recovery-max-backoff",
    "5s",
    "--recovery-attempts",
    "3",
];

/// The ordered recovery's traces in the host change logs since it began: on the manager,
/// mesos-master and Chronos stopped, then the master started, then Chronos; on a worker,
/// its mesos-slave stopped, then started.
pub fn assert_ordered_recovery(manager_log: &[String], worker_log: &[String]) {
    let at = |line: &str| manager_log.iter().position(|l| l == line);
    let (stop_master, stop_chronos) = (at("stop mesos-master"), at("stop chronos"));
    let start_master = at("start mesos-master");
    let start_chronos = at("start chronos");
    assert!(
        stop_master.is_some() && stop_chronos.is_some(),
        "stop all first: {manager_log:?}"
    );
    assert!(
        start_master > stop_master.max(stop_chronos) && start_chronos > start_master,
        "master, then Chronos: {manager_log:?}"
    );
    let stop_agent = worker_log.iter().position(|l| l == "stop mesos-slave");
    let start_agent = worker_log.iter().position(|l| l == "start mesos-slave");
    assert!(
        stop_agent.is_some() && start_agent > stop_agent,
        "the agents stopped, then started last: {worker_log:?}"
    );
}

/// The leading master's view of the world `w`, through the real probe.
pub async fn mesos_state(w: &super::World) -> omtd_controllers::MesosState {
    use omtd::probes::mesos::MesosMaster;
    use omtd::probes::{BasicAuth, HttpProbe, HttpTarget, ProbeConfig};
    let url = w.sim.mesos_url(MANAGER).expect("the manager's endpoint");
    let target = HttpTarget::parse(&url)
        .expect("url")
        .with_auth(BasicAuth::new(PROBE_PRINCIPAL.0, PROBE_PRINCIPAL.1));
    let http = HttpProbe::new(ProbeConfig::default()).expect("client");
    MesosMaster::new(http, target)
        .state()
        .await
        .expect("the sim master answers")
}
