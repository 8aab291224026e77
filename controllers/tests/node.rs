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

/// The `mods-enabled/*.load` files a node's slice plans, in plan order.
fn modules_of(out: &Intent, node: &str) -> Vec<String> {
    slice(out, node)
        .files
        .iter()
        .filter_map(|f| {
            f.path
                .strip_prefix("/etc/apache2/mods-enabled/")
                .and_then(|m| m.strip_suffix(".load"))
                .map(str::to_owned)
        })
        .collect()
}

const WEB: [&str; 3] = ["rewrite", "proxy", "proxy_http"];
const REGISTRY_MODULES: [&str; 10] = [
    "authn_core",
    "authn_file",
    "authz_core",
    "authz_user",
    "authz_groupfile",
    "auth_basic",
    "access_compat",
    "headers",
    "proxy",
    "proxy_http",
];

#[test]
fn apache_sites_per_role() {
    let out = run(&objects(), &Observed::at(t(0)));
    // (node, what its site holds, its modules)
    let table: [(&str, &[&str], &[&str]); 4] = [
        (
            "executor.omtd",
            &[
                "<VirtualHost *:80>",
                "ServerName executor.omtd.example.org",
                "ProxyPass / http://localhost:8080/\n",
            ],
            &WEB,
        ),
        (
            // The runbook's https://<fqdn>/galaxy: Galaxy runs with the /galaxy prefix.
            "editor.omtd",
            &[
                "ServerName editor.omtd.example.org",
                "ProxyPass /galaxy http://localhost:8080/galaxy\n",
                "ProxyPassReverse /galaxy http://localhost:8080/galaxy\n",
            ],
            &WEB,
        ),
        (
            "registry.omtd",
            &[
                "ServerName registry.omtd.example.org",
                "<Location /v2>",
                "AuthType Basic",
                "AuthUserFile /etc/apache2/registry.htpasswd",
                "Require valid-user",
                "ProxyPass /v2 http://127.0.0.1:5000/v2",
            ],
            &REGISTRY_MODULES,
        ),
        (
            "monitor.omtd",
            &[
                "ServerName monitor.omtd.example.org",
                "ProxyPass /prometheus/ http://127.0.0.1:9090/prometheus/",
                "ProxyPass / http://127.0.0.1:3000/",
            ],
            &WEB,
        ),
    ];
    for (n, lines, modules) in table {
        let site = &file(&out, n, paths::APACHE_SITE).content;
        for l in lines {
            assert!(site.contains(l), "{n}: missing {l}\n{site}");
        }
        // Without TLS: plain HTTP only, no redirect.
        for l in ["*:443", "SSLEngine", "Redirect"] {
            assert!(!site.contains(l), "{n}: {l} without tls\n{site}");
        }
        assert_eq!(modules_of(&out, n), *modules, "{n}");
        for m in modules {
            let f = file(&out, n, &format!("/etc/apache2/mods-enabled/{m}.load"));
            assert_eq!(
                f.content,
                format!("LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"),
                "{n}: {m}"
            );
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
    // No Apache where no role is behind it.
    for n in ["manager.omtd", "node1.omtd"] {
        assert!(modules_of(&out, n).is_empty(), "{n}");
        assert!(slice(&out, n)
            .files
            .iter()
            .all(|f| f.path != paths::APACHE_SITE));
    }
    // Galaxy restarts when its job configuration (Chronos credentials) or its unit changes.
    let galaxy = slice(&out, "executor.omtd")
        .services
        .iter()
        .find(|s| s.name == "galaxy")
        .unwrap();
    assert_eq!(
        galaxy.restart_on,
        ["/srv/executor/config/job_conf.xml", paths::GALAXY_UNIT]
    );
}

/// A real CA, and a certificate it signed for every front-door name of [`NAMES`] with its
/// key: validation reads TLS material for real (`omtd_crds::tls_material`).
struct Tls {
    cert: String,
    key: String,
    ca: String,
}

static TLS: std::sync::LazyLock<Tls> = std::sync::LazyLock::new(|| {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names = ["executor", "editor", "registry", "monitor"]
        .map(|r| format!("{r}.omtd.example.org"))
        .to_vec();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Tls {
        cert: cert.pem(),
        key: key.serialize_pem(),
        ca: ca.pem(),
    }
});

/// The example cluster with `frontDoors` replaced by `front_doors` (YAML flow mapping), and
/// a tls credential `front-tls` (with `ca` when asked).
fn with_front_doors(front_doors: &str, ca: bool) -> Vec<Object> {
    // Double-quoted YAML: a newline is written `\n` (a raw one folds into a space).
    let q = |pem: &str| pem.replace('\n', "\\n");
    let ca = if ca {
        format!(", ca: \"{}\"", q(&TLS.ca))
    } else {
        String::new()
    };
    let (cert, key) = (q(&TLS.cert), q(&TLS.key));
    let mut objs: Vec<Object> = objects()
        .into_iter()
        .filter(|o| o.key() != cluster_key())
        .collect();
    objs.extend(parse(&format!(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {{name: omtd}}\nspec: {{frontDoors: {front_doors}}}\n---\n\
         apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: front-tls}}\nspec: {{principal: omtd-front-doors, secret: {{value: \"{key}\"}}, use: tls, certificate: \"{cert}\"{ca}}}\n"
    )));
    objs
}

const NAMES: &str = "{executor: executor.omtd.example.org, editor: editor.omtd.example.org, registry: registry.omtd.example.org, monitor: monitor.omtd.example.org}";

fn tls_objects(ca: bool) -> Vec<Object> {
    with_front_doors(
        &format!("{{names: {NAMES}, tls: front-tls, registryPull: registry-user}}"),
        ca,
    )
}

#[test]
fn tls_serves_https_redirects_http_and_plans_the_key_as_a_secret() {
    let objs = tls_objects(true);
    let diags = omtd_controllers::crds::validate::validate_set(&objs);
    assert!(diags.is_empty(), "{diags:#?}");
    let out = run(&objs, &Observed::at(t(0)));
    let crt = "/etc/apache2/omtd-tls/front-tls.crt";
    let key = "/etc/apache2/omtd-tls/front-tls.key";
    for (n, name) in [
        ("executor.omtd", "executor.omtd.example.org"),
        ("editor.omtd", "editor.omtd.example.org"),
        ("registry.omtd", "registry.omtd.example.org"),
        ("monitor.omtd", "monitor.omtd.example.org"),
    ] {
        let site = &file(&out, n, paths::APACHE_SITE).content;
        let https = format!(
            "<VirtualHost *:443>\n    ServerName {name}\n    SSLEngine on\n    SSLCertificateFile {crt}\n    SSLCertificateKeyFile {key}\n"
        );
        assert!(site.contains(&https), "{n}:\n{site}");
        let redirect = format!(
            "<VirtualHost *:80>\n    ServerName {name}\n    Redirect permanent / https://{name}/\n</VirtualHost>\n"
        );
        assert!(site.contains(&redirect), "{n}:\n{site}");
        // Only the redirect listens on 80; no HSTS.
        assert_eq!(site.matches("<VirtualHost *:80>").count(), 1, "{n}");
        assert!(!site.contains("Strict-Transport-Security"), "{n}");
        // The certificate is public, the key a secret; both are written before any
        // Apache file is checked (the agent applies a slice's files in order).
        let files = &slice(&out, n).files;
        let at = |p: &str| files.iter().position(|f| f.path == p).unwrap();
        let (c, k) = (file(&out, n, crt), file(&out, n, key));
        assert_eq!(
            (c.mode, c.secret, c.content.as_str()),
            (0o644, false, TLS.cert.as_str())
        );
        assert_eq!(
            (k.mode, k.secret, k.content.as_str()),
            (0o600, true, TLS.key.as_str())
        );
        let first_checked = files
            .iter()
            .position(|f| f.validate.as_deref() == Some(VALIDATE_APACHE))
            .unwrap();
        assert!(at(crt) < first_checked && at(key) < first_checked, "{n}");
        let mods = modules_of(&out, n);
        for m in ["socache_shmcb", "ssl", "alias"] {
            assert!(mods.contains(&m.to_owned()), "{n}: {m} in {mods:?}");
        }
        // A new certificate reaches Apache by a restart.
        let apache = slice(&out, n)
            .services
            .iter()
            .find(|s| s.name == "apache2")
            .unwrap();
        assert!(apache.restart_on.contains(&key.to_owned()), "{n}");
    }
    // Prometheus builds its links and redirects from the monitor's front door.
    let defaults = &file(&out, "monitor.omtd", paths::PROMETHEUS_DEFAULTS).content;
    assert!(
        defaults.contains("--web.external-url=https://monitor.omtd.example.org/prometheus/"),
        "{defaults}"
    );
    // Behind TLS the registry is told the client spoke HTTPS (its upload URLs).
    let site = &file(&out, "registry.omtd", paths::APACHE_SITE).content;
    assert!(
        site.contains("RequestHeader set X-Forwarded-Proto \"https\""),
        "{site}"
    );
    // No key on hosts without a front door; the key is in no other controller's plan, nor
    // in Mesos' credentials or the htpasswd.
    assert!(slice(&out, "manager.omtd")
        .files
        .iter()
        .all(|f| f.path != key));
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let creds = credentials::reconcile(&d, &o, &settings()).unwrap();
    for (n, sl) in &creds.slices {
        for f in &sl.files {
            let key_body = TLS.key.lines().nth(1).unwrap();
            assert!(!f.content.contains(key_body), "{n}: {}", f.path);
            assert!(!f.content.contains("omtd-front-doors"), "{n}: {}", f.path);
        }
    }
}

#[test]
fn workers_trust_the_registry_ca_and_log_in_to_pull() {
    let objs = tls_objects(true);
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let nodes = run(&objs, &o);
    let creds = credentials::reconcile(&d, &o, &settings()).unwrap();
    let ca_path = "/etc/docker/certs.d/registry.omtd.example.org/ca.crt";
    // base64("omtd:rg-Zx5cV8bN1m")
    let login = r#"{"auths":{"registry.omtd.example.org":{"auth":"b210ZDpyZy1aeDVjVjhiTjFt"}}}"#;
    for w in WORKERS {
        let ca = file(&nodes, w, ca_path);
        assert_eq!(
            (ca.content.as_str(), ca.mode, ca.secret),
            (TLS.ca.as_str(), 0o644, false),
            "{w}"
        );
        let cfg = file(&creds, w, paths::DOCKER_CONFIG);
        assert_eq!(
            (cfg.content.as_str(), cfg.mode, cfg.secret),
            (login, 0o600, true),
            "{w}"
        );
    }
    // Only workers pull.
    for n in ["executor.omtd", "registry.omtd"] {
        let has = |out: &Intent, p: &str| {
            out.slices
                .get(n)
                .is_some_and(|s| s.files.iter().any(|f| f.path == p))
        };
        assert!(
            !has(&nodes, ca_path) && !has(&creds, paths::DOCKER_CONFIG),
            "{n}"
        );
    }
    // No CA on the credential: nothing to trust; no registryPull: no login.
    let objs = with_front_doors(&format!("{{names: {NAMES}, tls: front-tls}}"), false);
    let d = desired(&objs);
    let o = healthy(&d, t(0));
    let nodes = run(&objs, &o);
    let creds = credentials::reconcile(&d, &o, &settings()).unwrap();
    for w in WORKERS {
        assert!(
            slice(&nodes, w).files.iter().all(|f| f.path != ca_path),
            "{w}"
        );
        assert!(
            slice(&creds, w)
                .files
                .iter()
                .all(|f| f.path != paths::DOCKER_CONFIG),
            "{w}"
        );
    }
}

#[test]
fn a_clash_is_refused_by_validation_and_left_out_of_the_site() {
    // The monitor on the executor's host under the executor's name: both want `/`.
    let mut objs: Vec<Object> = objects()
        .into_iter()
        .filter(|o| o.key() != cluster_key() && o.key() != node_key("monitor.omtd"))
        .collect();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {roles: {monitor: executor.omtd}}\n",
    ));
    let diags = omtd_controllers::crds::validate::validate_set(&objs);
    let clash = diags
        .iter()
        .find(|d| d.field == "spec.frontDoors.names.monitor")
        .expect("a clash error");
    assert_eq!(
        clash.fix,
        "set spec.frontDoors.names.monitor on the Cluster to a name of its own"
    );
    let out = run(&objs, &Observed::at(t(0)));
    let site = &file(&out, "executor.omtd", paths::APACHE_SITE).content;
    // The executor keeps `/`; Grafana's route is not rendered; Prometheus (no clash) is.
    assert!(
        site.contains("ProxyPass / http://localhost:8080/"),
        "{site}"
    );
    assert!(!site.contains(":3000"), "{site}");
    assert!(site.contains("ProxyPass /prometheus/ "), "{site}");
    let ev = out
        .events
        .iter()
        .find(|e| e.reason == node::event::FRONT_DOOR_CLASH)
        .expect("a clash warning");
    assert_eq!(ev.object, node_key("executor.omtd"));
    assert!(
        ev.message.contains("spec.frontDoors.names.monitor"),
        "{}",
        ev.message
    );
}

#[test]
fn four_front_doors_on_one_host_with_the_monitor_named_apart() {
    let mut objs: Vec<Object> = objects()
        .into_iter()
        .filter(|o| {
            ![
                cluster_key(),
                node_key("editor.omtd"),
                node_key("registry.omtd"),
                node_key("monitor.omtd"),
            ]
            .contains(&o.key())
        })
        .collect();
    objs.extend(parse(
        "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {name: omtd}\nspec: {roles: {editor: executor.omtd, registry: executor.omtd, monitor: executor.omtd}, frontDoors: {names: {monitor: monitor.example.org}}}\n",
    ));
    let diags = omtd_controllers::crds::validate::validate_set(&objs);
    assert!(
        !omtd_controllers::crds::validate::has_errors(&diags),
        "{diags:#?}"
    );
    let out = run(&objs, &Observed::at(t(0)));
    let site = &file(&out, "executor.omtd", paths::APACHE_SITE).content;
    let vhosts: Vec<&str> = site.split("<VirtualHost ").skip(1).collect();
    assert_eq!(vhosts.len(), 2, "{site}");
    let galaxy = vhosts
        .iter()
        .find(|v| v.contains("ServerName 10.0.0.10\n"))
        .expect("the address's vhost");
    let monitor = vhosts
        .iter()
        .find(|v| v.contains("ServerName monitor.example.org\n"))
        .expect("the monitor's vhost");
    // Longest paths first, so `/` does not swallow them.
    let order: Vec<&str> = galaxy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ProxyPass "))
        .collect();
    assert_eq!(
        order,
        [
            "/galaxy http://localhost:8080/galaxy",
            "/v2 http://127.0.0.1:5000/v2",
            "/ http://localhost:8080/"
        ]
    );
    assert!(galaxy.contains("<Location /v2>"));
    assert!(monitor.contains("ProxyPass / http://127.0.0.1:3000/"));
    assert!(monitor.contains("ProxyPass /prometheus/ http://127.0.0.1:9090/prometheus/"));
    assert!(!monitor.contains("/v2"));
    // Every role's modules, once each.
    let mods = modules_of(&out, "executor.omtd");
    let mut want: Vec<String> = REGISTRY_MODULES.iter().map(|m| (*m).to_owned()).collect();
    want.insert(8, "rewrite".into());
    assert_eq!(mods, want);
    // One galaxy, restarted by the executor's and the editor's files alike.
    let galaxy: Vec<_> = slice(&out, "executor.omtd")
        .services
        .iter()
        .filter(|s| s.name == "galaxy")
        .collect();
    assert_eq!(galaxy.len(), 1);
    assert_eq!(
        galaxy[0].restart_on,
        [
            "/srv/executor/config/job_conf.xml",
            paths::GALAXY_UNIT,
            "/srv/editor/config/galaxy.ini"
        ]
    );
}

#[test]
fn galaxy_service_unit_from_the_records() {
    let out = run(&objects(), &Observed::at(t(0)));
    for (n, path, restart_on) in [
        (
            "executor.omtd",
            "/srv/executor",
            ["/srv/executor/config/job_conf.xml", paths::GALAXY_UNIT],
        ),
        (
            "editor.omtd",
            "/srv/editor",
            [paths::GALAXY_UNIT, "/srv/editor/config/galaxy.ini"],
        ),
    ] {
        let unit = &file(&out, n, paths::GALAXY_UNIT).content;
        for l in [
            format!("ExecStart={path}/run.sh\n"),
            format!("WorkingDirectory={path}\n"),
            "User=galaxy\n".into(),
            "Type=simple\n".into(),
            "TimeoutStartSec=15min\n".into(),
            "Restart=on-failure\n".into(),
            // "starting" (activating) until Galaxy answers on its port.
            "ExecStartPost=/bin/bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; do sleep 2; done'\n".into(),
        ] {
            assert!(unit.contains(&l), "{n}: {l}\n{unit}");
        }
        let galaxy = slice(&out, n)
            .services
            .iter()
            .find(|s| s.name == "galaxy")
            .unwrap();
        assert_eq!(galaxy.restart_on, restart_on, "{n}");
        assert!(
            galaxy.slow_start,
            "{n}: started without waiting for migrations"
        );
    }
    assert!(slice(&out, "node1.omtd")
        .files
        .iter()
        .all(|f| f.path != paths::GALAXY_UNIT));
}

#[test]
fn galaxy_ini_use_remote_user_and_the_debug_override() {
    use omtd_controllers::crds::plan::FileRender;
    let ini = "/srv/editor/config/galaxy.ini";
    let now = t(0);
    // (what, annotation, use_remote_user, event reason, requeue at most)
    type Row<'a> = (
        &'a str,
        Option<String>,
        &'a str,
        Option<&'a str>,
        Option<Duration>,
    );
    let table: [Row; 4] = [
        ("no override", None, "True", None, None),
        (
            "an hour of UI access",
            Some(omtd_controllers::time::format(t(3600))),
            "False",
            Some(node::event::DEBUG_OVERRIDE),
            Some(Duration::from_secs(3600)),
        ),
        (
            "expired",
            Some(omtd_controllers::time::format(
                t(0) - Duration::from_secs(60),
            )),
            "True",
            None,
            None,
        ),
        (
            "unparsable: never UI access by accident",
            Some("tomorrow".into()),
            "True",
            Some(node::event::DEBUG_OVERRIDE_IGNORED),
            None,
        ),
    ];
    for (what, annotation, value, reason, requeue) in table {
        let mut objs = objects();
        if let Some(a) = &annotation {
            annotate(
                &mut objs,
                &node_key("editor.omtd"),
                node::DEBUG_UI_ACCESS_ANNOTATION,
                a,
            );
        }
        let d = desired(&objs);
        let out = run(&objs, &healthy(&d, now));
        let f = file(&out, "editor.omtd", ini);
        let Some(FileRender::IniKeys { section, keys }) = &f.render else {
            panic!("{what}: {ini} is not IniKeys: {f:?}");
        };
        assert_eq!(section, node::GALAXY_INI_SECTION, "{what}");
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            [(&"use_remote_user".to_owned(), &value.to_owned())],
            "{what}"
        );
        assert!(
            f.content.is_empty() && f.ensure == Ensure::Present,
            "{what}"
        );
        let ours: Vec<_> = out
            .events
            .iter()
            .filter(|e| e.reason.starts_with("DebugOverride"))
            .collect();
        match reason {
            Some(r) => {
                assert_eq!(ours.len(), 1, "{what}: {ours:?}");
                assert_eq!(ours[0].reason, r, "{what}");
                assert_eq!(ours[0].object, node_key("editor.omtd"), "{what}");
                assert_eq!(ours[0].type_, omtd_controllers::EventType::Warning);
                if let Some(a) = &annotation {
                    assert!(
                        ours[0].message.contains(a.as_str()),
                        "{what}: {}",
                        ours[0].message
                    );
                }
            }
            None => assert!(ours.is_empty(), "{what}: {ours:?}"),
        }
        if let Some(at_most) = requeue {
            let r = out.requeue_after.expect("a requeue at the expiry");
            assert!(r <= at_most, "{what}: {r:?}");
        }
        // The executor's galaxy.ini is not omtd's.
        assert!(slice(&out, "executor.omtd")
            .files
            .iter()
            .all(|f| !f.path.ends_with("galaxy.ini")));
    }
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
