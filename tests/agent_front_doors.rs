//! The node controller's front doors through the real agent and the real apache2 (Debian
//! package `apache2`): the executor of a cluster with all four front-door roles on one host
//! and TLS, its Apache files applied in plan order under a temporary `--root` holding a copy
//! of Debian's `/etc/apache2`. Every file passes `apache2 -t` (none is refused): the modules
//! before the site using them, the certificate and key before the site naming them.

use std::time::Duration;

use omtd::agent::Agent;
use omtd_controllers::crds::manifest;
use omtd_controllers::crds::plan::{PlanSlice, ResourceState, VALIDATE_APACHE};
use omtd_controllers::{node, Desired, Observed, Settings};
use omtd_test_support::agent::apache::{apache_root, require_apache2};
use omtd_test_support::agent::{state_of, with_timeout, Rig, Running};
use omtd_test_support::ports::free_port;

const EXAMPLE: &str = include_str!("../deploy/examples/cluster.yaml");

/// The example cluster with the editor, registry and monitor on the executor's host, the
/// monitor under a name of its own, and TLS with a fresh self-signed certificate.
fn one_host_with_tls() -> Desired {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![
        "10.0.0.10".to_owned(),
        "monitor.example.org".to_owned(),
    ])
    .expect("params")
    .self_signed(&key)
    .expect("certificate");
    let q = |pem: String| pem.replace('\n', "\\n");
    let mut objects: Vec<_> = manifest::parse(EXAMPLE)
        .expect("example")
        .into_iter()
        .filter(|o| {
            ![
                "cluster/omtd",
                "node/editor.omtd",
                "node/registry.omtd",
                "node/monitor.omtd",
            ]
            .contains(&o.key().to_string().as_str())
        })
        .collect();
    objects.extend(
        manifest::parse(&format!(
            "apiVersion: omtd/v1\nkind: Cluster\nmetadata: {{name: omtd}}\n\
             spec: {{roles: {{editor: executor.omtd, registry: executor.omtd, monitor: executor.omtd}}, \
             frontDoors: {{names: {{monitor: monitor.example.org}}, tls: front-tls}}}}\n---\n\
             apiVersion: omtd/v1\nkind: Credential\nmetadata: {{name: front-tls}}\n\
             spec: {{principal: omtd-front-doors, secret: {{value: \"{key}\"}}, use: tls, certificate: \"{cert}\"}}\n",
            key = q(key.serialize_pem()),
            cert = q(cert.pem()),
        ))
        .expect("front doors"),
    );
    let diags = omtd_controllers::crds::validate::validate_set(&objects);
    assert!(
        !omtd_controllers::crds::validate::has_errors(&diags),
        "{diags:#?}"
    );
    Desired::from_objects(&objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_front_doors_with_tls_pass_apaches_check_in_plan_order() {
    require_apache2();
    with_timeout(Duration::from_secs(90), async {
        let rig = Rig::new().await;
        apache_root(&rig, free_port());
        let d = one_host_with_tls();
        let out = node::reconcile(
            &d,
            &Observed::at(std::time::SystemTime::now()),
            &Settings::default(),
        )
        .expect("node reconcile");
        let planned = out
            .slices
            .get("executor.omtd")
            .expect("the executor's slice");
        // The Apache part only (services would reach for systemd). The site names the
        // certificate and key by their host paths: here they live under the root.
        let root_apache = rig.path("/etc/apache2").display().to_string();
        let files: Vec<_> = planned
            .files
            .iter()
            .filter(|f| f.path.starts_with("/etc/apache2/"))
            .cloned()
            .map(|mut f| {
                f.content = f.content.replace("/etc/apache2", &root_apache);
                f
            })
            .collect();
        let checked = files
            .iter()
            .filter(|f| f.validate.as_deref() == Some(VALIDATE_APACHE))
            .count();
        assert!(checked >= 15, "{checked} checked Apache files");
        let slice = PlanSlice {
            controller: "node".into(),
            fencing_token: 1,
            files: files.clone(),
            ..Default::default()
        };
        let agent = Agent::new(rig.store.clone(), rig.linux_host(None), rig.config("web1"));
        let running = Running::start(rig.store.clone(), agent);
        rig.put_slice("web1", &slice).await;
        let report = rig
            .wait_report("web1", Duration::from_secs(60), |r| {
                files
                    .iter()
                    .all(|f| state_of(r, &format!("file:{}", f.path)).is_some())
            })
            .await;
        for f in &files {
            let id = format!("file:{}", f.path);
            let state = state_of(&report, &id);
            let message = report
                .resources
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.message.clone())
                .unwrap_or_default();
            assert_eq!(state, Some(ResourceState::Converged), "{id}: {message}");
        }
        assert!(report.converged, "{report:#?}");
        running.stop().await;
    })
    .await;
}
