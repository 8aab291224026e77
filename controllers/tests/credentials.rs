//! Credentials controller: byte-exact files, secrets marked, deterministic htpasswd, and the
//! rotation order (master first, then the agent or Chronos).

mod common;

use common::*;
use omtd_controllers::crds::plan::{FileRender, ResourceState};
use omtd_controllers::crds::{Object, SecretSource};
use omtd_controllers::credentials::{self, *};
use omtd_controllers::paths::*;
use omtd_controllers::{leader_guard, node, storage, Observed};

const MANAGER: &str = "manager.omtd";

fn run(objs: &[Object], o: &Observed) -> omtd_controllers::Intent {
    credentials::reconcile(&desired(objs), o, &settings()).expect("credentials reconcile")
}

#[test]
fn master_credentials_json_is_exact() {
    let objs = objects();
    let out = run(&objs, &Observed::at(t(0)));
    let f = file(&out, MANAGER, MASTER_CREDENTIALS);
    assert_eq!(
        f.content,
        r#"{"credentials":[{"principal":"node1.omtd","secret":"n1-Xq7vL2pR9s"},{"principal":"node2.omtd","secret":"n2-Hb4mW8tK3z"},{"principal":"node3.omtd","secret":"n3-Jd6yF1cN5q"},{"principal":"chronos.omtd","secret":"ch-Pw2eR7uT4v"}]}"#
    );
    assert!(!f.content.ends_with('\n'));
    assert!(f.secret);
    assert_eq!(f.mode, 0o600);
}

#[test]
fn master_flag_files_and_auth_rules_are_exact() {
    let out = run(&objects(), &Observed::at(t(0)));
    let table = [
        (
            MASTER_CREDENTIALS_FLAG,
            "/etc/mesos-master/store/credentials.json",
        ),
        (MASTER_ACLS_FLAG, "/etc/mesos-master/store/auth_rules"),
        (
            MASTER_AUTH_RULES,
            r#"{"register_frameworks":[{"principals":{"values":["chronos.omtd"]},"roles":{"values":["*"]}}]}"#,
        ),
        ("/etc/mesos-master/authenticate_agents", "true"),
        ("/etc/mesos-master/authenticate_http_readonly", "true"),
        ("/etc/mesos-master/authenticate_http_readwrite", "true"),
    ];
    for (path, content) in table {
        assert_eq!(file(&out, MANAGER, path).content, content, "{path}");
    }
}

#[test]
fn chronos_files_are_exact_in_conf_and_at_the_runbook_paths() {
    let out = run(&objects(), &Observed::at(t(0)));
    let table = [
        (CHRONOS_CONF_PRINCIPAL, "chronos.omtd", false),
        (
            CHRONOS_CONF_SECRET_FILE,
            "/etc/chronos/store/mesos_authentication_secret",
            false,
        ),
        (CHRONOS_PRINCIPAL, "chronos.omtd", false),
        (
            CHRONOS_SECRET_FILE,
            "/etc/chronos/store/mesos_authentication_secret",
            false,
        ),
        (CHRONOS_SECRET, "ch-Pw2eR7uT4v", true),
        (CHRONOS_HTTP_CREDENTIALS, "galaxy:gx-Lk9aS3dF6g", true),
    ];
    for (path, content, secret) in table {
        let f = file(&out, MANAGER, path);
        assert_eq!(f.content, content, "{path}");
        assert_eq!(f.secret, secret, "{path}");
        assert_eq!(f.mode, if secret { 0o600 } else { 0o644 }, "{path}");
    }
}

#[test]
fn each_worker_gets_its_own_agent_credential() {
    let out = run(&objects(), &Observed::at(t(0)));
    let table = [
        (
            "node1.omtd",
            r#"{"principal":"node1.omtd","secret":"n1-Xq7vL2pR9s"}"#,
        ),
        (
            "node2.omtd",
            r#"{"principal":"node2.omtd","secret":"n2-Hb4mW8tK3z"}"#,
        ),
        (
            "node3.omtd",
            r#"{"principal":"node3.omtd","secret":"n3-Jd6yF1cN5q"}"#,
        ),
    ];
    for (node, json) in table {
        let f = file(&out, node, AGENT_CREDENTIALS);
        assert_eq!(f.content, json, "{node}");
        assert!(f.secret && f.mode == 0o600, "{node}");
        assert_eq!(
            file(&out, node, AGENT_CREDENTIAL_FLAG).content,
            "/etc/mesos-slave/store/credentials.json"
        );
    }
    // The manager is no agent, and holds no agent credential file.
    assert!(slice(&out, MANAGER)
        .files
        .iter()
        .all(|f| f.path != AGENT_CREDENTIALS));
}

#[test]
fn one_line_files_have_no_trailing_newline() {
    // Every Mesos and Chronos file of every controller: "I kid you not!".
    let objs = objects();
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let s = settings();
    for out in [
        credentials::reconcile(&d, &o, &s).unwrap(),
        node::reconcile(&d, &o, &s).unwrap(),
    ] {
        for (n, sl) in &out.slices {
            for f in &sl.files {
                let mesos_or_chronos = f.path.starts_with("/etc/mesos")
                    || f.path.starts_with("/etc/chronos")
                    || f.path.starts_with("/etc/zookeeper/conf/myid");
                if mesos_or_chronos {
                    assert!(
                        !f.content.ends_with('\n') && !f.content.contains('\n'),
                        "{n}:{} has a newline",
                        f.path
                    );
                    assert!(!f.content.is_empty(), "{n}:{} is empty", f.path);
                }
            }
        }
    }
}

#[test]
fn every_file_holding_a_secret_is_marked_secret() {
    let objs = objects();
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let s = settings();
    for out in [
        credentials::reconcile(&d, &o, &s).unwrap(),
        node::reconcile(&d, &o, &s).unwrap(),
        storage::reconcile(&d, &o, &s).unwrap(),
        leader_guard::reconcile(&d, &o, &s).unwrap(),
    ] {
        for (n, sl) in &out.slices {
            for f in &sl.files {
                if leaks(&f.content).is_some() {
                    assert!(f.secret && f.mode == 0o600, "{n}:{} holds a secret", f.path);
                }
            }
            // Restart tokens are shown in reports and plans: never secret material.
            for svc in &sl.services {
                let token = svc.restart_token.clone().unwrap_or_default();
                assert!(leaks(&token).is_none(), "{n}:{} token", svc.name);
            }
        }
    }
}

#[test]
fn secrets_never_reach_statuses_or_events() {
    let mut objs = objects();
    // Rotate one so the rotation path's conditions and events are covered too.
    rotate(&mut objs, "node1.omtd", "n1-Xq7vL2pR9s-rotated", 2);
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let s = settings();
    for out in [
        credentials::reconcile(&d, &o, &s).unwrap(),
        node::reconcile(&d, &o, &s).unwrap(),
        storage::reconcile(&d, &o, &s).unwrap(),
        leader_guard::reconcile(&d, &o, &s).unwrap(),
    ] {
        let text = format!("{:?}{:?}", out.statuses, out.events);
        assert_eq!(leaks(&text), None);
        assert!(!text.contains("rotated"));
        // Debug of a whole slice redacts secret files.
        let slices = format!("{:?}", out.slices);
        assert_eq!(leaks(&slices), None);
    }
}

#[test]
fn htpasswd_goes_to_the_registry_host_alone_for_its_agent_to_hash() {
    let objs = objects();
    let a = run(&objs, &Observed::at(t(0)));
    let b = run(&objs, &Observed::at(t(100)));
    let fa = file(&a, "registry.omtd", REGISTRY_HTPASSWD);
    let fb = file(&b, "registry.omtd", REGISTRY_HTPASSWD);
    assert_eq!(fa, fb, "no churn: the same plan every time");
    assert!(fa.secret && fa.mode == 0o600, "the plan holds the secret");
    assert_eq!(
        fa.owner.as_deref(),
        Some("www-data"),
        "Apache's workers read it"
    );
    // No hash is derived here: the agent draws the salt (FileRender::Htpasswd).
    assert_eq!(fa.content, "omtd:rg-Zx5cV8bN1m\n");
    assert_eq!(fa.render, Some(FileRender::Htpasswd { cost: 4 }));
    for (node, slice) in &a.slices {
        if node != "registry.omtd" {
            assert!(
                slice.files.iter().all(|f| f.path != REGISTRY_HTPASSWD),
                "{node} gets no htpasswd"
            );
        }
    }
}

#[test]
fn galaxy_job_conf_carries_the_chronos_runner_params() {
    let out = run(&objects(), &Observed::at(t(0)));
    let f = file(&out, "executor.omtd", "/srv/executor/config/job_conf.xml");
    assert!(f.secret && f.mode == 0o600);
    assert_eq!(f.owner.as_deref(), Some("galaxy"));
    for needle in [
        r#"load="galaxy.jobs.runners.chronos:ChronosJobRunner""#,
        r#"<param id="chronos">10.0.0.12:8080</param>"#,
        r#"<param id="username">galaxy</param>"#,
        r#"<param id="password">gx-Lk9aS3dF6g</param>"#,
        r#"<param id="owner">galaxy@localhost</param>"#,
        r#"<param id="insecure">true</param>"#,
    ] {
        assert!(f.content.contains(needle), "missing {needle}");
    }
}

#[test]
fn restart_wiring_master_then_chronos_then_agents() {
    let objs = objects();
    let d = desired(&objs);
    let lg = leader_guard::reconcile(&d, &healthy(&d, t(0)), &settings()).unwrap();
    let svc = |node: &str, name: &str| {
        slice(&lg, node)
            .services
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{node} has no {name}"))
    };
    let master = svc(MANAGER, "mesos-master");
    assert!(master.restart_on.contains(&MASTER_CREDENTIALS.to_owned()));
    assert!(master.restart_on.contains(&"/etc/mesos/zk".to_owned()));
    let chronos = svc(MANAGER, "chronos");
    assert_eq!(chronos.after, ["mesos-master"]);
    for p in [
        CHRONOS_SECRET,
        CHRONOS_CONF_PRINCIPAL,
        CHRONOS_HTTP_CREDENTIALS,
    ] {
        assert!(chronos.restart_on.contains(&p.to_owned()), "{p}");
    }
    let agent = svc("node1.omtd", "mesos-slave");
    assert!(agent.restart_on.contains(&AGENT_CREDENTIALS.to_owned()));
    assert!(master
        .restart_token
        .as_deref()
        .is_some_and(|t| t.starts_with("c=")));
}

fn rotate(objs: &mut [Object], cred: &str, secret: &str, generation: i64) {
    for o in objs.iter_mut() {
        if let Object::Credential(c) = o {
            if c.metadata.name == cred {
                c.spec.secret = SecretSource::from_value(secret);
                c.metadata.generation = generation;
            }
        }
    }
}

/// The manager's report saying mesos-master runs with `token`.
fn master_runs(o: &mut Observed, token: &str) {
    o.reports.insert(
        MANAGER.into(),
        report(
            MANAGER,
            vec![with(
                res("service:mesos-master", ResourceState::Converged),
                &[("restartToken", token)],
            )],
        ),
    );
}

fn master_token(objs: &[Object], o: &Observed) -> String {
    let lg = leader_guard::reconcile(&desired(objs), o, &settings()).unwrap();
    slice(&lg, MANAGER)
        .services
        .iter()
        .find(|s| s.name == "mesos-master")
        .and_then(|s| s.restart_token.clone())
        .expect("mesos-master has a token")
}

#[test]
fn worker_rotation_goes_to_the_master_first_then_the_agent() {
    let mut objs = objects();
    for o in objs.iter_mut() {
        o.meta_mut().generation = 1;
    }
    // Steady state: plans stored, the master runs the current credentials.
    let mut o = healthy(&desired(&objs), t(0));
    let before = run(&objs, &o);
    store_slices(&mut o, NAME, &before);
    let old_token = master_token(&objs, &o);
    master_runs(&mut o, &old_token);
    let old_agent = file(&before, "node1.omtd", AGENT_CREDENTIALS)
        .content
        .clone();

    // Rotate node1's secret. Step 1: the master's file has it at once and its token moves
    // (the agent restarts mesos-master); node1's file is held back.
    rotate(&mut objs, "node1.omtd", "n1-NEW-secret", 2);
    let step1 = run(&objs, &o);
    assert!(file(&step1, MANAGER, MASTER_CREDENTIALS)
        .content
        .contains(r#"{"principal":"node1.omtd","secret":"n1-NEW-secret"}"#));
    assert_eq!(
        file(&step1, "node1.omtd", AGENT_CREDENTIALS).content,
        old_agent,
        "the agent keeps the old secret until the master has the new one"
    );
    let new_token = master_token(&objs, &o);
    assert_ne!(new_token, old_token, "the master restarts for the rotation");
    let cred = omtd_controllers::desired::credential_key("node1.omtd");
    assert_eq!(
        cond(&step1, &cred, "Ready"),
        ("False".into(), "WaitingForMaster".into())
    );
    // Other workers are untouched all along.
    assert_eq!(
        file(&step1, "node2.omtd", AGENT_CREDENTIALS).content,
        file(&before, "node2.omtd", AGENT_CREDENTIALS).content
    );

    // A reconcile before the master restarted changes nothing (level-triggered, stable).
    store_slices(&mut o, NAME, &step1);
    let again = run(&objs, &o);
    assert_eq!(again.slices, step1.slices);

    // Step 2: the manager reports mesos-master restarted with the new credentials: now the
    // agent's file changes (its restart_on restarts it). One restart of mismatch at most.
    master_runs(&mut o, &new_token);
    let step2 = run(&objs, &o);
    assert_eq!(
        file(&step2, "node1.omtd", AGENT_CREDENTIALS).content,
        r#"{"principal":"node1.omtd","secret":"n1-NEW-secret"}"#
    );
    assert_eq!(
        cond(&step2, &cred, "Ready"),
        ("True".into(), "Rendered".into())
    );
}

#[test]
fn chronos_rotation_waits_for_the_master_too() {
    let mut objs = objects();
    let mut o = healthy(&desired(&objs), t(0));
    let before = run(&objs, &o);
    store_slices(&mut o, NAME, &before);
    let token = master_token(&objs, &o);
    master_runs(&mut o, &token);

    rotate(&mut objs, "chronos-framework", "ch-NEW", 2);
    let held = run(&objs, &o);
    assert_eq!(
        file(&held, MANAGER, CHRONOS_SECRET).content,
        "ch-Pw2eR7uT4v"
    );
    assert!(file(&held, MANAGER, MASTER_CREDENTIALS)
        .content
        .ends_with(r#"{"principal":"chronos.omtd","secret":"ch-NEW"}]}"#));

    let token = master_token(&objs, &o);
    master_runs(&mut o, &token);
    let released = run(&objs, &o);
    assert_eq!(file(&released, MANAGER, CHRONOS_SECRET).content, "ch-NEW");
}

#[test]
fn a_new_worker_gets_its_credential_at_once() {
    // Nothing stored to hold back: the new node's file goes out with the master's.
    let mut objs = objects();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: node4.omtd}\nspec: {address: 10.0.0.24, roles: [worker], credential: node4.omtd}\n---\napiVersion: omtd/v1\nkind: Credential\nmetadata: {name: node4.omtd}\nspec: {principal: node4.omtd, secret: {value: n4-secret}, use: mesos-agent}\n",
    ));
    let mut o = healthy(&desired(&objects()), t(0));
    let before = run(&objects(), &o);
    store_slices(&mut o, NAME, &before);
    let out = run(&objs, &o);
    assert_eq!(
        file(&out, "node4.omtd", AGENT_CREDENTIALS).content,
        r#"{"principal":"node4.omtd","secret":"n4-secret"}"#
    );
    let master = &file(&out, MANAGER, MASTER_CREDENTIALS).content;
    assert!(master.contains(
        r#"{"principal":"node4.omtd","secret":"n4-secret"},{"principal":"chronos.omtd""#
    ));
}

#[test]
fn a_chronos_http_user_with_a_colon_is_refused_with_a_condition() {
    let mut objs = objects();
    for o in objs.iter_mut() {
        if let Object::Credential(c) = o {
            if c.metadata.name == "chronos-http" {
                c.spec.principal = "gal:axy".into();
            }
        }
    }
    let out = run(&objs, &Observed::at(t(0)));
    let key = omtd_controllers::desired::credential_key("chronos-http");
    assert_eq!(
        cond(&out, &key, "Ready"),
        ("False".into(), "Unrenderable".into())
    );
    assert!(slice(&out, MANAGER)
        .files
        .iter()
        .all(|f| f.path != CHRONOS_HTTP_CREDENTIALS));
    assert!(leaks(&message(&out, &key, "Ready")).is_none());
}

/// The manager's report after applying its stored credentials slice: every slice stored
/// for it named by digest, `http_credentials` and chronos as `state`.
fn chronos_applied(o: &mut Observed, state: ResourceState) {
    let digests: std::collections::BTreeMap<String, String> = o
        .plans
        .get(MANAGER)
        .map(|s| s.iter().map(|(c, p)| (c.clone(), p.digest())).collect())
        .unwrap_or_default();
    o.plan_digests.insert(MANAGER.into(), digests.clone());
    let mut r = report(
        MANAGER,
        vec![
            res(&format!("file:{CHRONOS_HTTP_CREDENTIALS}"), state),
            res("service:chronos", state),
        ],
    );
    r.slices = digests;
    o.reports.insert(MANAGER.into(), r);
}

#[test]
fn chronos_http_rotation_goes_to_chronos_first_then_galaxy() {
    const JOB_CONF: &str = "/srv/executor/config/job_conf.xml";
    const EXECUTOR: &str = "executor.omtd";
    let cred = omtd_controllers::desired::credential_key("chronos-http");
    let mut objs = objects();
    let mut o = healthy(&desired(&objs), t(0));
    let before = run(&objs, &o);
    store_slices(&mut o, NAME, &before);
    chronos_applied(&mut o, ResourceState::Converged);
    let old_job_conf = file(&before, EXECUTOR, JOB_CONF).content.clone();
    assert!(old_job_conf.contains("gx-Lk9aS3dF6g"));

    rotate(&mut objs, "chronos-http", "gx-NEW-secret", 2);
    // (what the manager's agent reports, job_conf.xml has the new secret?, condition)
    type Row = (
        &'static str,
        Option<ResourceState>,
        bool,
        (&'static str, &'static str),
    );
    let table: [Row; 4] = [
        // Step 1: the agent's report is current and converged, but about the slice
        // before: Chronos still runs the old secret.
        (
            "report about the old slice",
            None,
            false,
            ("False", "WaitingForChronos"),
        ),
        // The agent took the new slice but Chronos has not come back yet.
        (
            "new slice, chronos restarting",
            Some(ResourceState::Progressing),
            false,
            ("False", "WaitingForChronos"),
        ),
        (
            "new slice, chronos restarted",
            Some(ResourceState::Converged),
            true,
            ("True", "Rendered"),
        ),
        // Stable afterwards.
        (
            "again",
            Some(ResourceState::Converged),
            true,
            ("True", "Rendered"),
        ),
    ];
    for (what, manager, new_conf, (status, reason)) in table {
        if let Some(state) = manager {
            chronos_applied(&mut o, state);
        }
        let out = run(&objs, &o);
        // Chronos gets the new secret at once, whatever Galaxy has.
        assert_eq!(
            file(&out, MANAGER, CHRONOS_HTTP_CREDENTIALS).content,
            "galaxy:gx-NEW-secret",
            "{what}"
        );
        let conf = &file(&out, EXECUTOR, JOB_CONF).content;
        assert_eq!(conf.contains("gx-NEW-secret"), new_conf, "{what}");
        if !new_conf {
            assert_eq!(conf, &old_job_conf, "{what}: Galaxy keeps the old secret");
        }
        assert_eq!(
            cond(&out, &cred, "Ready"),
            (status.into(), reason.into()),
            "{what}"
        );
        // Stored as the store would: the manager's report, until the next row's, is about
        // the slices before.
        store_slices(&mut o, NAME, &out);
        let digests = o
            .plans
            .get(MANAGER)
            .map(|s| s.iter().map(|(c, p)| (c.clone(), p.digest())).collect())
            .unwrap_or_default();
        o.plan_digests.insert(MANAGER.into(), digests);
    }
}

#[test]
fn the_operator_credential_goes_to_the_master_with_acls_for_reads_and_maintenance() {
    let mut objs = objects();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Credential\nmetadata: {name: operator}\nspec: {principal: omtd-operator, secret: {value: op-Qz3wE5rT}, use: operator}\n",
    ));
    let out = run(&objs, &Observed::at(t(0)));
    assert!(file(&out, MANAGER, MASTER_CREDENTIALS).content.ends_with(
        r#"{"principal":"chronos.omtd","secret":"ch-Pw2eR7uT4v"},{"principal":"omtd-operator","secret":"op-Qz3wE5rT"}]}"#
    ));
    let rules: serde_json::Value =
        serde_json::from_str(&file(&out, MANAGER, MASTER_AUTH_RULES).content).expect("json");
    let me = serde_json::json!({"values": ["omtd-operator"]});
    let any = serde_json::json!({"type": "ANY"});
    for acl in [
        "get_maintenance_schedules",
        "update_maintenance_schedules",
        "start_maintenances",
        "stop_maintenances",
        "get_maintenance_statuses",
    ] {
        assert_eq!(
            rules[acl],
            serde_json::json!([{"principals": me, "machines": any}]),
            "{acl}"
        );
    }
    for acl in ["view_frameworks", "view_tasks"] {
        assert_eq!(
            rules[acl],
            serde_json::json!([{"principals": me, "users": any}]),
            "{acl}"
        );
    }
    // Chronos's rule stays; `permissive` stays Mesos's default, as without an operator.
    assert_eq!(
        rules["register_frameworks"],
        serde_json::json!([{"principals": {"values": ["chronos.omtd"]}, "roles": {"values": ["*"]}}])
    );
    assert!(rules.get("permissive").is_none());
    // No agent or Chronos file gets it.
    for (node, s) in &out.slices {
        for f in &s.files {
            if f.path != MASTER_CREDENTIALS {
                assert!(!f.content.contains("op-Qz3wE5rT"), "{node} {}", f.path);
            }
        }
    }
}
