//! The HTTP probes against loopback servers answering with the real services' documented
//! JSON: Mesos 1.4 master (the sim world's: state, redirect to the leader, maintenance,
//! basic auth), Chronos, Prometheus, the registry behind Apache. Also: time limits,
//! unreachable services, and no credential ever in an error message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use omtd::probes::chronos::{self, Chronos, JobApi};
use omtd::probes::mesos::{MachineId, MesosMaster, ScheduleChange};
use omtd::probes::prometheus::{Prometheus, Reload};
use omtd::probes::registry::{Registry, RegistryAccess};
use omtd::probes::{BasicAuth, HttpProbe, HttpTarget, ProbeConfig, ProbeError};
use omtd_controllers::observed::{MesosAgent, MesosFramework, MesosState};
use omtd_test_support::fakes::{self, basic, PrometheusFake};
use omtd_test_support::mesos::{self, Cluster, LEADER, PRINCIPAL, SECRET, STANDBY};

fn http(timeout: Duration) -> HttpProbe {
    HttpProbe::new(ProbeConfig {
        timeout,
        ..ProbeConfig::default()
    })
    .expect("build the probe client")
}

fn master(addr: std::net::SocketAddr, auth: Option<BasicAuth>) -> MesosMaster {
    let mut target = HttpTarget::parse(&format!("http://{addr}")).expect("target");
    if let Some(auth) = auth {
        target = target.with_auth(auth);
    }
    MesosMaster::new(http(Duration::from_secs(2)), target)
}

fn creds() -> Option<BasicAuth> {
    Some(BasicAuth::new(PRINCIPAL, SECRET))
}

/// No error message may carry a secret, in clear or as the basic-auth header value.
fn assert_no_secret(e: &ProbeError, secret: &str, user: &str) {
    let msg = format!("{e} / {e:?}");
    assert!(!msg.contains(secret), "secret in error: {msg}");
    let header = basic(user, secret);
    let token = header.trim_start_matches("Basic ");
    assert!(!msg.contains(token), "auth header in error: {msg}");
}

#[tokio::test]
async fn mesos_state_reads_leader_agents_frameworks_and_maintenance() {
    let cluster = Cluster::new();
    cluster
        .seed_maintenance(
            serde_json::json!({"windows": [
                {"machine_ids": [{"hostname": "node3.omtd", "ip": "10.0.0.13"}],
                 "unavailability": {"start": {"nanoseconds": 1523354400000000000i64}}},
                {"machine_ids": [{"ip": "10.0.0.14"}],
                 "unavailability": {"start": {"nanoseconds": 1523354400000000000i64}}}
            ]}),
            serde_json::json!([{"ip": "10.0.0.14"}]),
        )
        .await;
    // A recorded 1.4.1 leader's state: one agent and one framework disconnected, which the
    // sim's master does not model.
    let leader = cluster.front(LEADER).await;
    leader.override_state(mesos::state_fixture());
    let addr = leader.addr();

    let state = master(addr, creds()).state().await.expect("state");
    assert_eq!(
        state,
        MesosState {
            leader: Some("manager.omtd".into()),
            agents: vec![
                MesosAgent {
                    id: "a1b2c3d4-0000-4000-8000-000000000001-S0".into(),
                    hostname: "node1.omtd".into(),
                    active: true,
                    deactivated: false,
                },
                MesosAgent {
                    id: "a1b2c3d4-0000-4000-8000-000000000001-S1".into(),
                    hostname: "node2.omtd".into(),
                    active: false,
                    deactivated: false,
                },
            ],
            frameworks: vec![
                MesosFramework {
                    name: "chronos".into(),
                    active: true
                },
                MesosFramework {
                    name: "marathon".into(),
                    active: false
                },
            ],
            // A machine known by IP only is named by its IP.
            down_machines: vec!["10.0.0.14".into()],
            draining_machines: vec!["node3.omtd".into()],
            version: Some("1.4.1".into()),
            tasks: vec![],
            agent_index: Default::default(),
        }
    );
    assert!(state.agent_active(&["node1.omtd", "10.0.0.11"]));
    assert!(!state.agent_active(&["node2.omtd"]));
    assert!(chronos::registered(&state, chronos::DEFAULT_FRAMEWORK_NAME));
    assert!(!chronos::registered(&state, "marathon"));
    assert!(state.machine_down(&["node4.omtd", "10.0.0.14"]));
}

#[tokio::test]
async fn a_non_leader_redirects_to_the_leader_and_credentials_follow() {
    let cluster = Cluster::new();
    let leader = cluster.front(LEADER).await;
    let leader_addr = leader.addr();
    let follower = cluster.front(STANDBY).await;
    let follower_addr = follower.addr();

    let probe = master(follower_addr, creds());
    let state = probe.state().await.expect("state through the follower");
    assert_eq!(state.leader.as_deref(), Some("manager.omtd"));
    assert_eq!(state.agents.len(), 2);
    // The follower saw (and authenticated) only the first request; the leader answered both
    // with the same credentials (it refuses anything else).
    assert_eq!(follower.served_paths(), vec!["GET /master/state"]);
    assert_eq!(
        leader.served_paths(),
        vec!["GET /master/state", "GET /master/maintenance/status"]
    );

    // "Who leads" without rendering the state.
    let leader_url = probe
        .leader_url()
        .await
        .expect("redirect")
        .expect("a leader");
    assert_eq!(
        leader_url.as_str(),
        format!("http://127.0.0.1:{}/", leader_addr.port())
    );
    probe.health().await.expect("health");
}

#[tokio::test]
async fn no_leader_elected_is_none_not_an_error() {
    let cluster = Cluster::leaderless();
    let addr = cluster.front(LEADER).await.addr();
    assert_eq!(master(addr, creds()).leader_url().await.expect("503"), None);
}

#[tokio::test]
async fn mesos_requires_credentials_and_errors_never_show_them() {
    let cluster = Cluster::new();
    let addr = cluster.front(LEADER).await.addr();

    let e = master(addr, None)
        .state()
        .await
        .expect_err("no credentials");
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("127.0.0.1:{}/master/state", addr.port())),
        "{e}"
    );

    let wrong = "not-the-Zx9-secret";
    let e = master(addr, Some(BasicAuth::new(PRINCIPAL, wrong)))
        .state()
        .await
        .expect_err("wrong secret");
    assert_eq!(e.status(), Some(401));
    assert_no_secret(&e, wrong, PRINCIPAL);

    // Credentials given in the URL are taken out of it: not in the error either.
    let t = HttpTarget::parse(&format!("http://{PRINCIPAL}:{wrong}@{addr}")).expect("target");
    assert!(!t.to_string().contains(wrong));
    let e = MesosMaster::new(http(Duration::from_secs(2)), t)
        .state()
        .await
        .expect_err("wrong secret in URL");
    assert_eq!(e.status(), Some(401));
    assert_no_secret(&e, wrong, PRINCIPAL);
}

#[tokio::test]
async fn a_state_that_is_not_the_documented_json_is_bad_json() {
    let cluster = Cluster::new();
    let leader = cluster.front(LEADER).await;
    leader.override_state(r#"{"slaves": [{"id": "S0", "active": true}]}"#.into());
    let addr = leader.addr();
    let e = master(addr, creds()).state().await.expect_err("bad json");
    assert!(matches!(e, ProbeError::BadJson { .. }), "{e:?}");
    // serde_path_to_error says where: the agent without a hostname.
    assert!(e.to_string().contains("slaves[0]"), "{e}");
}

#[tokio::test]
async fn draining_a_node_schedules_marks_down_and_brings_up_idempotently() {
    let cluster = Cluster::new();
    let leader = cluster.front(LEADER).await;
    // Drive it through a follower: POSTs must follow the 307 with body and credentials.
    let follower_addr = cluster.front(STANDBY).await.addr();
    let probe = master(follower_addr, creds());

    // Another machine already scheduled: scheduling ours must keep it (the POST replaces
    // the whole schedule).
    let other = MachineId::new("node1.omtd", "10.0.0.11");
    let node2 = MachineId::new("node2.omtd", "10.0.0.12");
    let start = SystemTime::now();
    assert_eq!(
        probe
            .schedule_maintenance(std::slice::from_ref(&other), start, None)
            .await
            .expect("schedule other"),
        ScheduleChange::Scheduled
    );
    assert_eq!(
        probe
            .schedule_maintenance(
                std::slice::from_ref(&node2),
                start,
                Some(Duration::from_secs(3600))
            )
            .await
            .expect("schedule node2"),
        ScheduleChange::Scheduled
    );
    let windows = probe.maintenance_schedule().await.expect("schedule");
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[1].machine_ids, vec![node2.clone()]);
    assert_eq!(
        windows[1].unavailability.duration.map(|d| d.nanoseconds),
        Some(3_600_000_000_000)
    );
    let state = probe.state().await.expect("state");
    assert_eq!(state.draining_machines, vec!["node1.omtd", "node2.omtd"]);

    // Retried by the runtime: nothing posted again.
    let posts = leader.posts.load(Ordering::SeqCst);
    assert_eq!(
        probe
            .schedule_maintenance(std::slice::from_ref(&node2), SystemTime::now(), None)
            .await
            .expect("again"),
        ScheduleChange::AlreadyScheduled
    );
    assert_eq!(leader.posts.load(Ordering::SeqCst), posts);

    // Down, twice: the second is a no-op rather than Mesos's 400.
    let marked = probe
        .machines_down(std::slice::from_ref(&node2))
        .await
        .expect("down");
    assert_eq!(marked, vec![node2.clone()]);
    assert!(probe
        .machines_down(std::slice::from_ref(&node2))
        .await
        .expect("down again")
        .is_empty());
    let state = probe.state().await.expect("state");
    assert_eq!(state.down_machines, vec!["node2.omtd"]);
    assert_eq!(state.draining_machines, vec!["node1.omtd"]);
    assert!(state.machine_down(&["node2", "node2.omtd"]));

    // Up: out of DOWN and out of the schedule; the other machine's window is untouched.
    assert_eq!(
        probe
            .machines_up(std::slice::from_ref(&node2))
            .await
            .expect("up"),
        vec![node2.clone()]
    );
    assert!(probe
        .machines_up(std::slice::from_ref(&node2))
        .await
        .expect("up again")
        .is_empty());
    let state = probe.state().await.expect("state");
    assert!(state.down_machines.is_empty());
    assert_eq!(state.draining_machines, vec!["node1.omtd"]);

    // Cancelling a drain.
    assert!(probe
        .unschedule_maintenance(std::slice::from_ref(&other))
        .await
        .expect("unschedule"));
    assert!(!probe
        .unschedule_maintenance(std::slice::from_ref(&other))
        .await
        .expect("again"));
    assert!(probe
        .maintenance_schedule()
        .await
        .expect("schedule")
        .is_empty());
}

#[tokio::test]
async fn marking_down_an_unscheduled_machine_reports_mesos_refusal() {
    let cluster = Cluster::new();
    let addr = cluster.front(LEADER).await.addr();
    let e = master(addr, creds())
        .machines_down(&[MachineId::new("node9.omtd", "10.0.0.19")])
        .await
        .expect_err("not scheduled");
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("DRAINING"), "{e}");
}

#[tokio::test]
async fn a_service_that_never_answers_times_out_within_the_limit() {
    let addr = fakes::silent_server().await;
    let limit = Duration::from_millis(300);
    let target = HttpTarget::parse(&format!("http://{addr}"))
        .expect("target")
        .with_auth(BasicAuth::new(PRINCIPAL, SECRET));
    let started = Instant::now();
    let e = MesosMaster::new(http(limit), target.clone())
        .state()
        .await
        .expect_err("timeout");
    let took = started.elapsed();
    assert!(e.is_timeout(), "{e:?}");
    assert!(
        took >= limit && took < limit + Duration::from_millis(700),
        "took {took:?}"
    );
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert_no_secret(&e, SECRET, PRINCIPAL);

    let started = Instant::now();
    let e = Prometheus::new(http(limit), target)
        .active_targets()
        .await
        .expect_err("timeout");
    assert!(e.is_timeout(), "{e:?}");
    assert!(started.elapsed() < limit + Duration::from_millis(700));
}

#[tokio::test]
async fn an_unreachable_service_says_so_and_names_the_url() {
    let addr = fakes::closed_port();
    let target = HttpTarget::parse(&format!("http://{PRINCIPAL}:{SECRET}@{addr}/prometheus"))
        .expect("target");
    let e = Prometheus::new(http(Duration::from_secs(2)), target)
        .active_targets()
        .await
        .expect_err("unreachable");
    assert!(matches!(e, ProbeError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("http://{addr}/prometheus/api/v1/targets")),
        "{e}"
    );
    assert_no_secret(&e, SECRET, PRINCIPAL);
}

#[tokio::test]
async fn chronos_ping_and_job_api_version() {
    let user = "galaxy";
    let pass = "chronos-http-pass";
    let v3 = fakes::chronos(fakes::ChronosFake {
        creds: Some((user.into(), pass.into())),
        v3: true,
    })
    .await;
    let v2 = fakes::chronos(fakes::ChronosFake {
        creds: None,
        v3: false,
    })
    .await;
    let auth = BasicAuth::from_colon_pair(&format!("{user}:{pass}")).expect("user:pass");
    let c3 = Chronos::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&v3.to_string())
            .expect("target")
            .with_auth(auth),
    );
    c3.ping().await.expect("pong");
    assert_eq!(c3.job_api().await.expect("version"), JobApi::V3);

    let c2 = Chronos::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&v2.to_string()).expect("target"),
    );
    c2.ping().await.expect("pong");
    assert_eq!(c2.job_api().await.expect("version"), JobApi::V2);
    assert_eq!(JobApi::V2.jobs_path(), "/scheduler/jobs");

    // Chronos with http_credentials and none given: 401, not "version 2".
    let anon = Chronos::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&v3.to_string()).expect("target"),
    );
    assert_eq!(anon.job_api().await.expect_err("401").status(), Some(401));
    assert_eq!(anon.ping().await.expect_err("401").status(), Some(401));
}

#[tokio::test]
async fn prometheus_active_targets_under_the_route_prefix() {
    let fake = Arc::new(PrometheusFake {
        lifecycle: true,
        reloads: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
    });
    let addr = fakes::prometheus(Arc::clone(&fake)).await;
    let p = Prometheus::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&format!("http://{addr}/prometheus")).expect("target"),
    );
    // Addresses as file_sd wrote them (not the relabelled instance), sorted, deduplicated;
    // dropped targets are not scraped and do not count.
    assert_eq!(
        p.active_targets().await.expect("targets"),
        vec!["10.0.0.11:8080", "10.0.0.11:9100", "10.0.0.12:9100"]
    );
    assert_eq!(p.reload(true).await.expect("reload"), Reload::Reloaded);
    assert_eq!(fake.reloads.load(Ordering::SeqCst), 1);

    // Without the prefix the API is not there: a 404 says "wrong base path".
    let bare = Prometheus::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&format!("http://{addr}")).expect("target"),
    );
    let e = bare.active_targets().await.expect_err("404");
    assert_eq!(e.status(), Some(404));
    assert!(e.to_string().contains("base path"), "{e}");
}

#[tokio::test]
async fn prometheus_reload_without_lifecycle_reports_what_is_needed() {
    let fake = Arc::new(PrometheusFake {
        lifecycle: false,
        reloads: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
    });
    let addr = fakes::prometheus(Arc::clone(&fake)).await;
    let p = Prometheus::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&format!("http://{addr}/prometheus/")).expect("target"),
    );
    // Configured off: nothing is asked.
    assert!(matches!(
        p.reload(false).await.expect("no request"),
        Reload::NeedsSignal { .. }
    ));
    assert_eq!(fake.requests.load(Ordering::SeqCst), 0);
    // Configured on but Prometheus says 403: same answer, with the reason.
    match p.reload(true).await.expect("403 is an answer") {
        Reload::NeedsSignal { reason } => assert!(reason.contains("SIGHUP"), "{reason}"),
        other => panic!("expected NeedsSignal, got {other:?}"),
    }
    assert_eq!(fake.reloads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn registry_open_guarded_authenticated_and_rejected() {
    let open = fakes::registry(None, false).await;
    let s = Registry::new(
        http(Duration::from_secs(2)),
        HttpTarget::parse(&open.to_string()).expect("target"),
    )
    .check()
    .await
    .expect("open");
    assert_eq!(s.access, RegistryAccess::Open);
    assert!(s.v2_api);

    let (user, pass) = ("omtd", "registry-Pa55");
    let guarded = fakes::registry(Some((user.into(), pass.into())), false).await;
    let target = HttpTarget::parse(&guarded.to_string()).expect("target");
    let check =
        |t: HttpTarget| async move { Registry::new(http(Duration::from_secs(2)), t).check().await };
    let s = check(target.clone()).await.expect("401 is an answer");
    assert_eq!(s.access, RegistryAccess::AuthRequired);
    assert!(!s.v2_api, "Apache's 401 carries no registry header");
    let s = check(target.clone().with_auth(BasicAuth::new(user, pass)))
        .await
        .expect("authenticated");
    assert_eq!(s.access, RegistryAccess::Authenticated);
    assert!(s.v2_api);
    let s = check(target.with_auth(BasicAuth::new(user, "old-pass")))
        .await
        .expect("rejected");
    assert_eq!(s.access, RegistryAccess::CredentialsRejected);
}

#[tokio::test]
async fn a_server_echoing_the_secret_does_not_put_it_in_the_error() {
    let secret = "Echoed-Secret-42";
    // A badly behaved guard that repeats the request's Authorization header in its 401.
    let addr = fakes::registry(Some(("x".into(), "y".into())), true).await;
    let target = HttpTarget::parse(&addr.to_string())
        .expect("target")
        .with_auth(BasicAuth::new("omtd", secret));
    let e = MesosMaster::new(http(Duration::from_secs(2)), target)
        .health()
        .await
        .expect_err("401");
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("denied: Basic <redacted>"), "{e}");
    assert_no_secret(&e, secret, "omtd");
}
