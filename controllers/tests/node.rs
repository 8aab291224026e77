//! Node controller: services and files per role, readiness, heartbeats and mass loss, and a
//! worker's retirement.

mod common;

use std::time::Duration;

use common::*;
use omtd_controllers::crds::plan::{
    Ensure, FileRender, FileSpec, ResourceState, ServiceState, VALIDATE_APACHE,
};
use omtd_controllers::crds::yaml_blocks;
use omtd_controllers::crds::Object;
use omtd_controllers::removal::{RemovalPhase, DELETING_ANNOTATION, RETIRE_TOKEN};
use omtd_controllers::{
    credentials, leader_guard, node, paths, storage, Intent, MachineMode, Observed,
};

fn run(objs: &[Object], o: &Observed) -> Intent {
    node::reconcile(&desired(objs), o, &settings()).expect("node reconcile")
}

#[test]
fn services_per_role_of_the_runbook_cluster() {
    let objs = objects();
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let nodes = run(&objs, &o);
    let guard = leader_guard::reconcile(&d, &o, &settings()).unwrap();
    // (node, node controller's services, leader guard's services with their state)
    type Row<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, ServiceState)]);
    let table: [Row; 6] = [
        (
            "executor.omtd",
            &["apache2", "galaxy", "nfs-server"],
            &[("mesos-master", ServiceState::Masked)],
        ),
        (
            "editor.omtd",
            &["apache2", "galaxy"],
            &[("mesos-master", ServiceState::Masked)],
        ),
        (
            "manager.omtd",
            &["zookeeper"],
            &[
                ("chronos", ServiceState::Running),
                ("mesos-master", ServiceState::Running),
                ("mesos-slave", ServiceState::Masked),
            ],
        ),
        (
            "registry.omtd",
            &["apache2", "docker"],
            &[("mesos-master", ServiceState::Masked)],
        ),
        (
            "monitor.omtd",
            &["apache2", "grafana-server", "prometheus"],
            &[("mesos-master", ServiceState::Masked)],
        ),
        (
            "node1.omtd",
            &["docker", "prometheus-node-exporter", "zookeeper"],
            &[
                ("mesos-master", ServiceState::Masked),
                ("mesos-slave", ServiceState::Running),
            ],
        ),
    ];
    for (n, services, guarded) in table {
        assert_eq!(service_names(slice(&nodes, n)), *services, "{n}");
        let mut got: Vec<(String, ServiceState)> = slice(&guard, n)
            .services
            .iter()
            .map(|s| (s.name.clone(), s.state))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, ServiceState)> = guarded
            .iter()
            .map(|(s, st)| ((*s).to_owned(), *st))
            .collect();
        assert_eq!(got, want, "{n}");
    }
    // Workers keep ZooKeeper installed but stopped and disabled, as the playbooks did.
    let zk = slice(&nodes, "node1.omtd")
        .services
        .iter()
        .find(|s| s.name == "zookeeper")
        .unwrap();
    assert_eq!((zk.state, zk.enabled), (ServiceState::Stopped, false));
}

#[test]
fn manager_and_worker_flag_files_are_exact() {
    let out = run(&objects(), &Observed::at(t(0)));
    let table = [
        ("manager.omtd", "/etc/mesos/zk", "zk://10.0.0.12:2181/mesos"),
        ("manager.omtd", "/etc/zookeeper/conf/myid", "1"),
        ("manager.omtd", "/etc/mesos-master/quorum", "1"),
        ("manager.omtd", "/etc/mesos-master/ip", "10.0.0.12"),
        ("manager.omtd", "/etc/mesos-master/hostname", "10.0.0.12"),
        ("manager.omtd", "/etc/mesos-master/cluster", "omtd"),
        ("manager.omtd", "/etc/chronos/conf/hostname", "10.0.0.12"),
        ("manager.omtd", "/etc/chronos/conf/http_port", "8080"),
        ("manager.omtd", "/etc/chronos/conf/https_port", "9443"),
        ("manager.omtd", "/etc/chronos/conf/cluster_name", "omtd"),
        // The original wrote localhost here, which is wrong on a worker.
        ("node2.omtd", "/etc/mesos/zk", "zk://10.0.0.12:2181/mesos"),
        ("node2.omtd", "/etc/mesos-slave/ip", "10.0.0.22"),
        ("node2.omtd", "/etc/mesos-slave/hostname", "10.0.0.22"),
        (
            "node2.omtd",
            "/etc/mesos-slave/containerizers",
            "docker,mesos",
        ),
        (
            "node2.omtd",
            "/etc/mesos-slave/executor_registration_timeout",
            "5mins",
        ),
    ];
    for (n, path, content) in table {
        assert_eq!(file(&out, n, path).content, content, "{n}:{path}");
    }
}

/// ZooKeeper runs from omtd's config: standalone on the Cluster's port, its data where
/// Debian links `myid`, and no admin server on 8080 (Chronos's port on the manager).
#[test]
fn zookeeper_runs_from_omtds_config() {
    let mut objs = objects();
    for o in objs.iter_mut() {
        if let Object::Cluster(c) = o {
            c.spec.ports.zookeeper = 2281;
        }
    }
    let out = run(&objs, &Observed::at(t(0)));
    let cfg = file(&out, "manager.omtd", paths::ZK_CONFIG).content.clone();
    for line in [
        "clientPort=2281",
        "dataDir=/var/lib/zookeeper",
        "admin.enableServer=false",
    ] {
        assert!(
            cfg.lines().any(|l| l == line),
            "{line:?} in zoo.cfg:\n{cfg}"
        );
    }
    assert!(!cfg.contains("server."), "one manager: standalone");
    let zk = slice(&out, "manager.omtd")
        .services
        .iter()
        .find(|s| s.name == "zookeeper")
        .unwrap();
    assert!(zk.restart_on.contains(&paths::ZK_CONFIG.to_owned()));
    assert!(slice(&out, "node1.omtd")
        .files
        .iter()
        .all(|f| f.path != paths::ZK_CONFIG));
}

#[test]
fn containers_of_the_registry_and_the_workers() {
    let out = run(&objects(), &Observed::at(t(0)));
    let reg = &slice(&out, "registry.omtd").containers;
    assert_eq!(reg.len(), 1);
    assert_eq!(
        (reg[0].name.as_str(), reg[0].image.as_str()),
        ("registry", "registry:2")
    );
    assert_eq!(reg[0].ports, ["127.0.0.1:5000:5000"]);
    assert_eq!(reg[0].volumes, ["/mnt/registry:/var/lib/registry"]);
    for w in WORKERS {
        let c = &slice(&out, w).containers;
        assert_eq!(c.len(), 1, "{w}");
        assert_eq!(c[0].name, "cadvisor");
        assert_eq!(c[0].ports, ["8080:8080"]);
        assert_eq!(c[0].ensure, Ensure::Present);
    }
}

#[test]
fn apache_sites_per_role() {
    let out = run(&objects(), &Observed::at(t(0)));
    let table: [(&str, &[&str], &[&str]); 4] = [
        (
            "executor.omtd",
            &["ProxyPass / http://localhost:8080/"],
            &["rewrite", "proxy", "proxy_http"],
        ),
        (
            "editor.omtd",
            &["ProxyPass / http://localhost:8080/"],
            &["rewrite", "proxy", "proxy_http"],
        ),
        (
            "registry.omtd",
            &[
                "<Location /v2>",
                "AuthType Basic",
                "AuthUserFile /etc/apache2/registry.htpasswd",
                "Require valid-user",
                "ProxyPass /v2 http://127.0.0.1:5000/v2",
            ],
            &["proxy", "proxy_http", "auth_basic", "authn_file", "headers"],
        ),
        (
            "monitor.omtd",
            &[
                "ProxyPass /prometheus/ http://127.0.0.1:9090/prometheus/",
                "ProxyPass / http://localhost:3000/",
            ],
            &["proxy", "proxy_http"],
        ),
    ];
    for (n, lines, modules) in table {
        let site = &file(&out, n, paths::APACHE_SITE).content;
        for l in lines {
            assert!(site.contains(l), "{n}: missing {l}\n{site}");
        }
        for m in modules {
            let f = file(&out, n, &format!("/etc/apache2/mods-enabled/{m}.load"));
            assert!(f.content.starts_with("LoadModule "), "{n}: {m}");
            assert_eq!(f.validate.as_deref(), Some(VALIDATE_APACHE), "{n}: {m}");
        }
        // Checked against the whole Apache config by the agent before it goes live.
        let checked = file(&out, n, paths::APACHE_SITE).validate.as_deref();
        assert_eq!(checked, Some(VALIDATE_APACHE), "{n}");
        let default = file(&out, n, paths::APACHE_DEFAULT_SITE);
        assert_eq!(default.ensure, Ensure::Absent, "{n}");
        let apache = slice(&out, n)
            .services
            .iter()
            .find(|s| s.name == "apache2")
            .unwrap();
        assert!(
            apache.restart_on.contains(&paths::APACHE_SITE.to_owned()),
            "{n}"
        );
    }
    // The /v2 guard comes before the catch-all on a shared host; Galaxy restarts when its
    // job configuration (Chronos credentials) changes.
    let galaxy = slice(&out, "executor.omtd")
        .services
        .iter()
        .find(|s| s.name == "galaxy")
        .unwrap();
    assert_eq!(galaxy.restart_on, ["/srv/executor/config/job_conf.xml"]);
}

#[test]
fn prometheus_targets_list_every_worker_exactly() {
    let out = run(&objects(), &Observed::at(t(0)));
    assert_eq!(
        file(&out, "monitor.omtd", paths::PROMETHEUS_TARGETS).content,
        concat!(
            r#"[{"targets":["10.0.0.21:9100","10.0.0.21:8080"],"labels":{"node":"node1.omtd","tier":"mesos"}},"#,
            r#"{"targets":["10.0.0.22:9100","10.0.0.22:8080"],"labels":{"node":"node2.omtd","tier":"mesos"}},"#,
            r#"{"targets":["10.0.0.23:9100","10.0.0.23:8080"],"labels":{"node":"node3.omtd","tier":"mesos"}}]"#
        )
    );
    let cfg = file(&out, "monitor.omtd", paths::PROMETHEUS_CONFIG);
    assert!(prometheus_yml(cfg, None).contains(paths::PROMETHEUS_TARGETS));
    assert_eq!(cfg.validate.as_deref(), Some("promtool check config {}"));
}

/// What the agent makes of the monitor's `prometheus.yml` plan entry on a host holding
/// `live` (None: no file yet).
fn prometheus_yml(cfg: &FileSpec, live: Option<&str>) -> String {
    let Some(FileRender::YamlBlocks { blocks }) = &cfg.render else {
        panic!("prometheus.yml is planned as omtd's blocks in the user's file: {cfg:?}");
    };
    yaml_blocks::render(live.unwrap_or(&cfg.content), blocks)
}

/// A user's own Prometheus config, as the runbook's monitor may have it.
const USERS_PROMETHEUS: &str = "global:\n  scrape_interval: 30s\nrule_files:\n  - /etc/prometheus/rules/site.yml\nscrape_configs:\n  - job_name: site-blackbox\n    static_configs:\n      - targets: ['10.9.9.9:9115']\n";

#[test]
fn the_users_prometheus_jobs_and_rules_survive_and_omtds_part_is_marked() {
    let out = run(&objects(), &Observed::at(t(0)));
    let cfg = file(&out, "monitor.omtd", paths::PROMETHEUS_CONFIG);
    let made = prometheus_yml(cfg, Some(USERS_PROMETHEUS));
    for kept in [
        "scrape_interval: 30s",
        "  - /etc/prometheus/rules/site.yml",
        "  - job_name: site-blackbox",
    ] {
        assert!(made.contains(kept), "{kept:?} kept: {made}");
    }
    assert!(made.contains("job_name: omtd-workers"), "{made}");
    assert!(made.contains(&yaml_blocks::begin_marker("scrape_configs")));
    // Off by default: no operator job, no omtd rules (the rules file is planned absent).
    assert!(!made.contains("omtd-operator") && !made.contains(paths::PROMETHEUS_OMTD_RULES));
    let rules = file(&out, "monitor.omtd", paths::PROMETHEUS_OMTD_RULES);
    assert_eq!(rules.ensure, Ensure::Absent);
    // The second pass over its own output changes nothing (no write, no restart).
    assert_eq!(prometheus_yml(cfg, Some(&made)), made);
}

#[test]
fn monitoring_operators_turn_on_omtds_scrape_job_and_alert_rules() {
    let mut objs = objects();
    for o in objs.iter_mut() {
        if let Object::Cluster(c) = o {
            c.spec.monitoring.operators = vec!["10.0.0.12:9464".into()];
        }
    }
    let out = run(&objs, &Observed::at(t(0)));
    let monitor = slice(&out, "monitor.omtd");
    let cfg = file(&out, "monitor.omtd", paths::PROMETHEUS_CONFIG);
    let made = prometheus_yml(cfg, Some(USERS_PROMETHEUS));
    assert!(made.contains("job_name: omtd-operator") && made.contains("'10.0.0.12:9464'"));
    assert!(
        made.contains(&format!("  - {}", paths::PROMETHEUS_OMTD_RULES)),
        "{made}"
    );
    assert!(
        made.contains("  - /etc/prometheus/rules/site.yml"),
        "{made}"
    );
    let rules = file(&out, "monitor.omtd", paths::PROMETHEUS_OMTD_RULES);
    assert_eq!(rules.ensure, Ensure::Present);
    assert!(rules.content.contains("alert: OmtdOperatorDown"));
    // promtool reads the rules file the config names: it is written first.
    let at = |p: &str| monitor.files.iter().position(|f| f.path == p).unwrap();
    assert!(at(paths::PROMETHEUS_OMTD_RULES) < at(paths::PROMETHEUS_CONFIG));
    assert!(at(paths::PROMETHEUS_TARGETS) < at(paths::PROMETHEUS_CONFIG));
}

#[test]
fn adding_a_worker_reaches_every_place() {
    let mut objs = objects();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node4.omtd}\nspec: {address: 10.0.0.24, roles: [worker], credential: node4.omtd}\n---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node4.omtd}\nspec: {principal: node4.omtd, secret: {value: n4-secret}, use: mesos-agent}\n",
    ));
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let s = settings();
    let n = node::reconcile(&d, &o, &s).unwrap();
    let st = storage::reconcile(&d, &o, &s).unwrap();
    let cr = credentials::reconcile(&d, &o, &s).unwrap();
    let lg = leader_guard::reconcile(&d, &o, &s).unwrap();
    assert!(file(&n, "monitor.omtd", paths::PROMETHEUS_TARGETS)
        .content
        .contains(
            r#"{"targets":["10.0.0.24:9100","10.0.0.24:8080"],"labels":{"node":"node4.omtd"}}"#
        ));
    assert!(slice(&st, "executor.omtd")
        .exports
        .iter()
        .any(|e| e.line()
            == "/srv/executor/database 10.0.0.24(rw,sync,no_subtree_check,no_root_squash)"));
    assert!(file(&cr, "manager.omtd", paths::MASTER_CREDENTIALS)
        .content
        .contains(r#""principal":"node4.omtd""#));
    assert_eq!(
        service_names(slice(&lg, "node4.omtd")),
        ["mesos-master", "mesos-slave"]
    );
    assert!(n
        .maintenance
        .iter()
        .any(|m| m.node == "node4.omtd" && m.mode == MachineMode::Up));
}

#[test]
fn ready_table() {
    // (liveness, agent report converged?, Mesos lists it active?, Mesos answered?) -> Ready
    type Row = (
        Option<omtd_controllers::AgentLiveness>,
        Option<bool>,
        bool,
        bool,
        &'static str,
        &'static str,
    );
    let table: [Row; 8] = [
        (Some(alive()), Some(true), true, true, "True", "Ready"),
        (
            Some(alive()),
            Some(true),
            false,
            true,
            "False",
            "NotRegistered",
        ),
        (
            Some(alive()),
            Some(true),
            true,
            false,
            "Unknown",
            "MesosUnreachable",
        ),
        (
            Some(alive()),
            Some(false),
            true,
            true,
            "False",
            "NotConverged",
        ),
        (Some(alive()), None, true, true, "Unknown", "NoReport"),
        (None, None, true, true, "Unknown", "AgentNotSeen"),
        (Some(gone(30)), Some(true), true, true, "True", "Ready"), // within grace
        (
            Some(gone(300)),
            Some(true),
            true,
            true,
            "False",
            "AgentLost",
        ),
    ];
    let objs = objects();
    let d = desired(&objs);
    for (i, (live, converged, active, answered, status, reason)) in table.into_iter().enumerate() {
        let mut o = healthy(&d, t(0));
        o.agents.remove("node1.omtd");
        o.reports.remove("node1.omtd");
        if let Some(l) = live {
            o.agents.insert("node1.omtd".into(), l);
        }
        if let Some(c) = converged {
            let state = if c {
                ResourceState::Converged
            } else {
                ResourceState::CrashLooping
            };
            o.reports.insert(
                "node1.omtd".into(),
                report("node1.omtd", vec![res("service:mesos-slave", state)]),
            );
        }
        if let Some(m) = o.mesos.as_mut() {
            m.agents.retain(|a| active || a.hostname != "10.0.0.21");
        }
        if !answered {
            o.mesos = None;
        }
        let out = run(&objs, &o);
        assert_eq!(
            cond(&out, &node_key("node1.omtd"), "Ready"),
            (status.to_owned(), reason.to_owned()),
            "row {i}"
        );
    }
    // Non-workers are Ready on convergence alone.
    let out = run(&objs, &healthy(&d, t(0)));
    assert_eq!(
        cond(&out, &node_key("executor.omtd"), "Ready"),
        ("True".into(), "Ready".into())
    );
}

#[test]
fn agent_lost_after_the_grace_period_and_a_requeue_to_notice() {
    let objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    o.agents.insert("node2.omtd".into(), gone(30));
    let out = run(&objs, &o);
    assert_eq!(cond(&out, &node_key("node2.omtd"), "Ready").1, "Ready");
    assert_eq!(out.requeue_after, Some(Duration::from_secs(11)));
    o.agents.insert("node2.omtd".into(), gone(41));
    let out = run(&objs, &o);
    assert_eq!(
        cond(&out, &node_key("node2.omtd"), "Ready"),
        ("False".into(), "AgentLost".into())
    );
    assert!(message(&out, &node_key("node2.omtd"), "Ready").contains("nothing destructive"));
    assert!(out
        .events
        .iter()
        .any(|e| e.reason == "AgentLost" && e.object == node_key("node2.omtd")));
    // One lost agent is not a mass loss.
    assert_eq!(cond(&out, &cluster_key(), "AgentsReachable").0, "True");
}

#[test]
fn mass_loss_sets_the_cluster_condition_and_freezes_removals() {
    let mut objs = objects();
    annotate(
        &mut objs,
        &node_key("node3.omtd"),
        DELETING_ANNOTATION,
        "true",
    );
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    for n in [
        "executor.omtd",
        "editor.omtd",
        "registry.omtd",
        "node1.omtd",
        "node2.omtd",
    ] {
        o.agents.insert(n.into(), gone(600));
    }
    let out = run(&objs, &o);
    assert_eq!(
        cond(&out, &cluster_key(), "AgentsReachable"),
        ("False".into(), "MassAgentLoss".into())
    );
    assert!(message(&out, &cluster_key(), "AgentsReachable").starts_with("5 of 8 agents lost"));
    // The deletion does not start: no drain, nothing retired.
    assert_eq!(
        cond(&out, &node_key("node3.omtd"), "Ready"),
        ("False".into(), "RemovalPaused".into())
    );
    assert!(out.maintenance.iter().all(|m| m.mode == MachineMode::Up));
    assert!(out.release.is_empty());
    // And lost nodes keep their plan: the same slices as when all is well.
    let calm = run(&objects(), &healthy(&d, t(0)));
    assert_eq!(slice(&out, "node1.omtd"), slice(&calm, "node1.omtd"));
}

/// One round of every controller, statuses stored back as the runtime would.
fn round(objs: &mut [Object], o: &Observed) -> [Intent; 4] {
    let s = settings();
    let d = desired(objs);
    let outs = [
        node::reconcile(&d, o, &s).unwrap(),
        storage::reconcile(&d, o, &s).unwrap(),
        credentials::reconcile(&d, o, &s).unwrap(),
        leader_guard::reconcile(&d, o, &s).unwrap(),
    ];
    for out in &outs {
        store_statuses(objs, out);
    }
    outs
}

fn phase(objs: &[Object], node: &str) -> Option<RemovalPhase> {
    desired(objs).removal_phase(node)
}

#[test]
fn removing_a_worker_drains_stops_cleans_up_then_releases() {
    let mut objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    annotate(
        &mut objs,
        &node_key("node3.omtd"),
        DELETING_ANNOTATION,
        "true",
    );

    // 1. Draining: the machine is scheduled for maintenance; once the master shows it
    // scheduled with no task on it, it is asked down.
    let machine = |n: &Intent| {
        let m = n
            .maintenance
            .iter()
            .find(|m| m.node == "node3.omtd")
            .unwrap();
        (m.mode, m.ip.clone())
    };
    let [n, ..] = round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Draining));
    assert_eq!(machine(&n), (MachineMode::Draining, "10.0.0.23".into()));
    if let Some(m) = o.mesos.as_mut() {
        m.draining_machines.push("10.0.0.23".into());
    }
    let [n, ..] = round(&mut objs, &o);
    assert_eq!(machine(&n), (MachineMode::Down, "10.0.0.23".into()));
    assert_eq!(
        cond(&n, &node_key("node3.omtd"), "Ready"),
        ("False".into(), "Removing".into())
    );
    // Not down yet: stays.
    round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Draining));

    // 2. Stopping once Mesos says the machine is down.
    if let Some(m) = o.mesos.as_mut() {
        m.down_machines.push("10.0.0.23".into());
    }
    let [n, st, _, lg] = round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Stopping));
    let exporter = slice(&n, "node3.omtd")
        .services
        .iter()
        .find(|s| s.name == "prometheus-node-exporter")
        .unwrap();
    assert_eq!(exporter.state, ServiceState::Stopped);
    assert_eq!(exporter.restart_token.as_deref(), Some(RETIRE_TOKEN));
    assert_eq!(slice(&n, "node3.omtd").containers[0].ensure, Ensure::Absent);
    // The storage and leader-guard controllers read the phase from the stored status on
    // their next round.
    let _ = (st, lg);
    let [_, st, cr, lg] = round(&mut objs, &o);
    let agent = slice(&lg, "node3.omtd")
        .services
        .iter()
        .find(|s| s.name == "mesos-slave")
        .unwrap();
    assert_eq!(agent.state, ServiceState::Stopped);
    assert_eq!(slice(&st, "node3.omtd").mounts[0].ensure, Ensure::Absent);
    // Credentials and the export stay until the services are confirmed stopped.
    assert!(file(&cr, "manager.omtd", paths::MASTER_CREDENTIALS)
        .content
        .contains("node3.omtd"));
    assert_eq!(slice(&st, "executor.omtd").exports.len(), 4);

    // 3. Cleanup once the agent reports both services stopped with the retire token.
    let stopped = |svc: &str| {
        with(
            res(&format!("service:{svc}"), ResourceState::Converged),
            &[("restartToken", RETIRE_TOKEN)],
        )
    };
    o.reports.insert(
        "node3.omtd".into(),
        report(
            "node3.omtd",
            vec![stopped("mesos-slave"), stopped("prometheus-node-exporter")],
        ),
    );
    round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Cleanup));
    let [n, st, cr, lg] = round(&mut objs, &o);
    assert!(!file(&cr, "manager.omtd", paths::MASTER_CREDENTIALS)
        .content
        .contains("node3.omtd"));
    assert_eq!(
        file(&cr, "node3.omtd", paths::AGENT_CREDENTIALS).ensure,
        Ensure::Absent
    );
    assert_eq!(slice(&st, "executor.omtd").exports.len(), 3);
    assert!(!file(&n, "monitor.omtd", paths::PROMETHEUS_TARGETS)
        .content
        .contains("10.0.0.23"));
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Cleanup));
    assert!(n.release.is_empty(), "not before the hosts confirm");

    // 4. Released once the master restarted without the principal and the executor
    // dropped the export.
    let token = slice(&lg, "manager.omtd")
        .services
        .iter()
        .find(|s| s.name == "mesos-master")
        .and_then(|s| s.restart_token.clone())
        .unwrap();
    o.reports.insert(
        "manager.omtd".into(),
        report(
            "manager.omtd",
            vec![with(
                res("service:mesos-master", ResourceState::Converged),
                &[("restartToken", &token)],
            )],
        ),
    );
    let [n, ..] = round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Released));
    assert_eq!(n.release, [node_key("node3.omtd")]);
}

#[test]
fn removal_waits_for_a_lost_agent_and_can_be_cancelled() {
    let mut objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    if let Some(m) = o.mesos.as_mut() {
        m.down_machines.push("10.0.0.23".into());
    }
    annotate(
        &mut objs,
        &node_key("node3.omtd"),
        DELETING_ANNOTATION,
        "true",
    );
    round(&mut objs, &o);
    round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Stopping));
    o.agents.insert("node3.omtd".into(), gone(600));
    let [n, ..] = round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Stopping));
    assert!(message(&n, &node_key("node3.omtd"), "Ready").contains("which is lost"));

    // Cancel: drop the annotation; the record goes back to a plain member.
    for obj in objs.iter_mut() {
        if obj.key() == node_key("node3.omtd") {
            obj.meta_mut().annotations.clear();
        }
    }
    let [n, ..] = round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), None);
    assert!(n.events.iter().any(|e| e.reason == "RemovalCancelled"));
    let exporter = slice(&n, "node3.omtd")
        .services
        .iter()
        .find(|s| s.name == "prometheus-node-exporter")
        .unwrap();
    assert_eq!(exporter.state, ServiceState::Running);
}

#[test]
fn removing_the_only_executor_is_blocked() {
    let mut objs = objects();
    annotate(
        &mut objs,
        &node_key("executor.omtd"),
        DELETING_ANNOTATION,
        "true",
    );
    let out = run(&objs, &healthy(&desired(&objs), t(0)));
    assert_eq!(
        cond(&out, &node_key("executor.omtd"), "Ready"),
        ("False".into(), "RemovalBlocked".into())
    );
    assert!(message(&out, &node_key("executor.omtd"), "Ready").contains("executor role"));
    assert!(out.release.is_empty());
}

#[test]
fn an_unchanged_state_gives_the_same_statuses_and_no_new_events() {
    let mut objs = objects();
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let first = run(&objs, &o);
    assert!(!first.events.is_empty());
    store_statuses(&mut objs, &first);
    let mut later = o.clone();
    later.now = t(500);
    let second = run(&objs, &later);
    assert_eq!(second.statuses, first.statuses);
    assert!(second.events.is_empty(), "{:?}", second.events);
}

#[test]
fn no_two_controllers_own_one_resource_on_a_node() {
    // The agent refuses to apply a node's plan when two slices own one file, service,
    // mount, export, volume or container: the controllers must split them cleanly.
    use std::collections::BTreeMap;
    let mut objs = objects();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {name: nfs1}\nspec: {node: node1.omtd, device: /dev/vdd, filesystem: ext4, mountPoint: /volumes/nfs1}\n",
    ));
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let s = settings();
    let outs = [
        node::reconcile(&d, &o, &s).unwrap(),
        storage::reconcile(&d, &o, &s).unwrap(),
        credentials::reconcile(&d, &o, &s).unwrap(),
        leader_guard::reconcile(&d, &o, &s).unwrap(),
    ];
    let mut owners: BTreeMap<(String, String), String> = BTreeMap::new();
    for out in &outs {
        for (n, sl) in &out.slices {
            let ids = sl
                .files
                .iter()
                .map(|f| format!("file:{}", f.path))
                .chain(sl.services.iter().map(|x| format!("service:{}", x.name)))
                .chain(sl.mounts.iter().map(|x| format!("mount:{}", x.target)))
                .chain(
                    sl.exports
                        .iter()
                        .map(|x| format!("export:{} {}", x.path, x.client)),
                )
                .chain(
                    sl.physical_volumes
                        .iter()
                        .map(|x| format!("pv:{}", x.device)),
                )
                .chain(sl.filesystems.iter().map(|x| format!("fs:{}", x.device)))
                .chain(
                    sl.containers
                        .iter()
                        .map(|x| format!("container:{}", x.name)),
                );
            for id in ids {
                if let Some(other) = owners.insert((n.clone(), id.clone()), sl.controller.clone()) {
                    panic!("{n}: {id} is owned by {other} and {}", sl.controller);
                }
            }
        }
    }
    assert!(owners.len() > 100, "{}", owners.len());
}

#[test]
fn an_old_report_of_the_services_running_does_not_confirm_the_stop() {
    let mut objs = objects();
    let d = desired(&objs);
    let mut o = healthy(&d, t(0));
    if let Some(m) = o.mesos.as_mut() {
        m.down_machines.push("10.0.0.23".into());
    }
    annotate(
        &mut objs,
        &node_key("node3.omtd"),
        DELETING_ANNOTATION,
        "true",
    );
    round(&mut objs, &o);
    round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Stopping));
    // Converged, but with the tokens of the running plan: written before the stop.
    o.reports.insert(
        "node3.omtd".into(),
        report(
            "node3.omtd",
            vec![
                with(
                    res("service:mesos-slave", ResourceState::Converged),
                    &[("restartToken", "r=")],
                ),
                with(
                    res("service:prometheus-node-exporter", ResourceState::Converged),
                    &[("restartToken", node::NODE_EXPORTER_RUN_TOKEN)],
                ),
            ],
        ),
    );
    round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Stopping));
    // Not installed (no token) counts as stopped.
    o.reports.insert(
        "node3.omtd".into(),
        report(
            "node3.omtd",
            vec![
                with(
                    res("service:mesos-slave", ResourceState::Converged),
                    &[("restartToken", RETIRE_TOKEN)],
                ),
                res("service:prometheus-node-exporter", ResourceState::Converged),
            ],
        ),
    );
    round(&mut objs, &o);
    assert_eq!(phase(&objs, "node3.omtd"), Some(RemovalPhase::Cleanup));
}

/// A report is about the slices it names (by digest): a converged report of the plan
/// before (or one that misses a slice) does not make the node Ready under a new plan.
#[test]
fn ready_needs_a_report_about_the_stored_plan() {
    let objs = objects();
    let d = desired(&objs);
    let first = run(&objs, &healthy(&d, t(0)));
    let stored =
        std::collections::BTreeMap::from([("node".to_owned(), first.slices["node1.omtd"].clone())]);
    let digests = |m: &std::collections::BTreeMap<
        String,
        omtd_controllers::crds::plan::PlanSlice,
    >| { m.iter().map(|(c, s)| (c.clone(), s.digest())).collect() };
    let mut changed = stored.clone();
    if let Some(s) = changed.get_mut("node") {
        s.files.pop();
    }
    // (slices the report names, slices stored) -> Ready
    let table = [
        (digests(&stored), stored.clone(), "True", "Ready"),
        (digests(&stored), changed.clone(), "False", "Applying"),
        (
            std::collections::BTreeMap::from([("other".to_owned(), "0".to_owned())]),
            stored.clone(),
            "False",
            "Applying",
        ),
        // An agent from before the digests names none: taken as it stands.
        (
            std::collections::BTreeMap::new(),
            changed.clone(),
            "True",
            "Ready",
        ),
    ];
    for (i, (named, plans, status, reason)) in table.into_iter().enumerate() {
        let mut o = healthy(&d, t(0));
        o.plan_digests.insert("node1.omtd".into(), digests(&plans));
        if let Some(r) = o.reports.get_mut("node1.omtd") {
            r.slices = named;
        }
        let out = run(&objs, &o);
        assert_eq!(
            cond(&out, &node_key("node1.omtd"), "Ready"),
            (status.to_owned(), reason.to_owned()),
            "row {i}"
        );
    }
}
