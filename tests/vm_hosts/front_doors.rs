//! The runbook's front doors on the VM rig, with the real programs: Apache (its own
//! `apache2 -t` refusing a site whose certificate cannot be written, the old site serving
//! meanwhile), TLS from `omtd pki issue front-door`, the registry (Debian's binary in the
//! `registry` container) behind basic auth with `docker login`, `push` and `pull`, Prometheus
//! 2.42 scraping the worker's node exporter through the targets omtd wrote, and ZooKeeper
//! 3.8 read by omtd's ZooKeeper probe. Galaxy and Grafana are busybox stand-ins that answer
//! HTTP (neither is packaged); see docs/testing.md.

use std::time::Duration;

use omtd_crds::plan::ResourceState;
use omtd_test_support::vm::machine::Vm;
use omtd_test_support::vm::Rig;

pub const EXECUTOR_NAME: &str = "executor.omtd";
pub const EDITOR_NAME: &str = "editor.omtd";
pub const REGISTRY_NAME: &str = "registry.omtd";
pub const MONITOR_NAME: &str = "monitor.omtd";
pub const PULL_USER: &str = "omtd-push";
pub const PULL_SECRET: &str = "rg-Hq4wT8zK2m";
/// Where the worker's Docker engine trusts the registry's CA (written by omtd).
const WORKER_CA: &str = "/etc/docker/certs.d/registry.omtd/ca.crt";
const SITE: &str = "/etc/apache2/sites-enabled/omtd.conf";
const TLS_DIR: &str = "/etc/apache2/omtd-tls";
const WAIT: Duration = Duration::from_secs(240);

/// The front doors' names resolve on every VM (a site's DNS would; the rig has none).
pub async fn name_hosts(vms: &[&Vm]) {
    for vm in vms {
        vm.run(&format!(
            "echo '10.0.0.10 {EXECUTOR_NAME} {EDITOR_NAME} {REGISTRY_NAME} {MONITOR_NAME}' >> /etc/hosts"
        ))
        .await;
    }
}

/// The `registry` container's image under the name omtd plans: Debian's registry binary
/// and the upstream image's config (the image recipe puts them in the VM), imported on the
/// registry host's real Docker before its agent starts.
pub async fn import_registry_image(vm: &Vm) {
    let image = omtd_controllers::Settings::default().registry_image;
    vm.run(&format!(
        "tar -C /usr/local/share/omtd-vm/registry-standin -c . | docker import \
         --change 'ENTRYPOINT [\"/bin/registry\", \"serve\", \"/etc/docker/registry/config.yml\"]' \
         - {image} >/dev/null"
    ))
    .await;
}

/// The records that turn TLS on: a Credential `use: tls` with a certificate from
/// `omtd pki issue front-door` for every front-door name, and the Cluster naming it.
pub async fn tls_records(rig: &Rig, cluster_yaml: &str) -> (String, String) {
    let pki = rig.dir.join("front-pki");
    let dir = pki.display().to_string();
    rig.omtd(&["pki", "--dir", &dir, "init"]).await;
    rig.omtd(&[
        "pki",
        "--dir",
        &dir,
        "issue",
        "front-door",
        "--san",
        EXECUTOR_NAME,
        "--san",
        EDITOR_NAME,
        "--san",
        REGISTRY_NAME,
        "--san",
        MONITOR_NAME,
    ])
    .await;
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).expect("an issued PKI file");
    let ca = read("ca.crt");
    let credential = serde_json::json!({
        "apiVersion": "omtd/v1",
        "kind": "Credential",
        "metadata": {"name": "front-doors"},
        "spec": {
            "principal": "front-doors",
            "use": "tls",
            "secret": {"value": read("front-doors.key")},
            "certificate": read("front-doors.crt"),
            "ca": ca,
        }
    });
    let mut yaml = cluster_yaml.replace(
        "registryPull: registry-user",
        "registryPull: registry-user, tls: front-doors",
    );
    assert_ne!(yaml, cluster_yaml, "the Cluster names its pull credential");
    yaml.push_str("---\n");
    yaml.push_str(&serde_yaml_ng::to_string(&credential).expect("YAML"));
    (yaml, ca)
}

/// `curl` from `vm`: the status code, and the body when `body` (`-k` never: the CA or
/// nothing).
async fn curl(vm: &Vm, args: &str) -> String {
    vm.run(&format!("curl -sS --max-time 20 {args}")).await
}

async fn code(vm: &Vm, args: &str) -> String {
    curl(vm, &format!("-o /dev/null -w '%{{http_code}}' {args}")).await
}

/// Every front door over HTTP, before TLS: the registry's /v2/ behind basic auth, Galaxy
/// and Grafana answering through Apache, Prometheus under /prometheus/.
pub async fn http_front_doors(worker: &Vm) {
    let v2 = format!("http://{REGISTRY_NAME}/v2/");
    assert_eq!(code(worker, &v2).await, "401", "/v2/ without a password");
    let auth = format!("-u {PULL_USER}:{PULL_SECRET} {v2}");
    assert_eq!(
        code(worker, &auth).await,
        "200",
        "/v2/ with the registry user"
    );
    let wrong = format!("-u {PULL_USER}:wrong {v2}");
    assert_eq!(
        code(worker, &wrong).await,
        "401",
        "/v2/ with a wrong password"
    );
    let galaxy = curl(worker, &format!("http://{EXECUTOR_NAME}/")).await;
    assert!(
        galaxy.contains("galaxy stand-in"),
        "Galaxy behind /: {galaxy}"
    );
    let editor = curl(worker, &format!("http://{EDITOR_NAME}/galaxy/")).await;
    assert!(
        editor.contains("galaxy stand-in"),
        "the editor's Galaxy behind /galaxy: {editor}"
    );
    let grafana = curl(worker, &format!("http://{MONITOR_NAME}/")).await;
    assert!(
        grafana.contains("grafana stand-in"),
        "Grafana behind /: {grafana}"
    );
}

/// Prometheus (real) scrapes the worker's node exporter through omtd's file_sd targets:
/// the target answers `up`. Returns how long until it did.
pub async fn prometheus_scrapes(worker: &Vm, scheme: &str, ca: &str) -> Duration {
    let url = format!("{scheme}://{MONITOR_NAME}/prometheus/api/v1/targets");
    worker
        .wait_until(
            "Prometheus scrapes the worker's node exporter (health up)",
            &format!(
                "curl -sS --max-time 10 {ca} {url} | tr -d ' \\n' | \
                 grep -q '\"instance\":\"10.0.0.21:9100\",\"job\":\"omtd-workers\"[^}}]*}}[^}}]*\"health\":\"up\"'"
            ),
            Duration::from_secs(120),
        )
        .await
}

/// Waits until `node`'s agent reports `id` in `state`; returns its message.
async fn wait_resource(rig: &Rig, node: &str, id: &str, state: ResourceState) -> String {
    let start = std::time::Instant::now();
    loop {
        if let Some(r) = rig.report(node).await {
            if let Some(res) = r.resources.iter().find(|x| x.id == id && x.state == state) {
                return res.message.clone();
            }
        }
        assert!(
            start.elapsed() < WAIT,
            "{node}: {id} never reported {state:?}: {:?}",
            rig.report(node).await.map(|r| r
                .resources
                .into_iter()
                .filter(|x| x.id == id)
                .collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// TLS turned on while the certificate cannot be written (its folder made immutable):
/// Apache's own check refuses the new site, which names a certificate that is not there,
/// and the old one keeps serving; once the folder is writable the HTTPS site goes live.
pub async fn tls_refused_then_live(rig: &Rig, executor: &Vm, worker: &Vm, tls_yaml: &str) {
    executor
        .run(&format!("mkdir -p {TLS_DIR} && chattr +i {TLS_DIR}"))
        .await;
    rig.apply("tls.yaml", tls_yaml).await;
    let why = wait_resource(
        rig,
        EXECUTOR_NAME,
        &format!("file:{SITE}"),
        ResourceState::Refused,
    )
    .await;
    assert!(
        why.contains("SSLCertificateFile") || why.contains("omtd-tls"),
        "Apache's own check names the missing certificate: {why}"
    );
    // The site in force is the old one: plain HTTP still serves the registry's /v2/.
    let v2 = format!("http://{REGISTRY_NAME}/v2/");
    assert_eq!(code(worker, &v2).await, "401", "the old site still serves");
    executor.run("systemctl is-active -q apache2").await;
    executor.run(&format!("chattr -i {TLS_DIR}")).await;
    rig.wait_converged(&[EXECUTOR_NAME], WAIT).await;
    // The worker's agent follows its own plan: the CA it trusts the registry by may land
    // after the executor is done.
    worker
        .wait_until(
            "the worker trusts the cluster CA",
            &format!("test -s {WORKER_CA}"),
            WAIT,
        )
        .await;
}

/// Every front door over HTTPS, trusting only the cluster CA (the file omtd gave the
/// worker's Docker engine): /v2/ 401 and 200, port 80 redirecting, Galaxy, Prometheus.
pub async fn https_front_doors(worker: &Vm) {
    let ca = format!("--cacert {WORKER_CA}");
    let v2 = format!("https://{REGISTRY_NAME}/v2/");
    assert_eq!(code(worker, &format!("{ca} {v2}")).await, "401");
    let auth = format!("{ca} -u {PULL_USER}:{PULL_SECRET} {v2}");
    assert_eq!(code(worker, &auth).await, "200");
    let redirect = curl(
        worker,
        &format!("-o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{REGISTRY_NAME}/v2/"),
    )
    .await;
    assert!(
        redirect.starts_with("301 https://registry.omtd/"),
        "port 80 redirects to HTTPS: {redirect}"
    );
    let galaxy = curl(worker, &format!("{ca} https://{EXECUTOR_NAME}/")).await;
    assert!(galaxy.contains("galaxy stand-in"), "{galaxy}");
    let editor = curl(worker, &format!("{ca} https://{EDITOR_NAME}/galaxy/")).await;
    assert!(editor.contains("galaxy stand-in"), "{editor}");
    // A client that does not trust the cluster CA is refused the handshake.
    let untrusted = worker
        .ssh(&format!(
            "curl -sS --max-time 20 https://{REGISTRY_NAME}/v2/"
        ))
        .await;
    assert_ne!(
        untrusted.code, 0,
        "no CA, no handshake: {}",
        untrusted.stdout
    );
}

/// The runbook's "Test if the service works": on the worker, `docker login`, then push an
/// image built here (`docker import` of busybox: no registry outside is reachable); on
/// the executor, another host set up by hand as the runbook's workstation, pull it.
pub async fn docker_push_pull(worker: &Vm, executor: &Vm, ca_pem: &str) {
    let image = format!("{REGISTRY_NAME}/omtd/hello:1");
    worker
        .run(&format!(
            "echo '{PULL_SECRET}' | docker login {REGISTRY_NAME} -u {PULL_USER} --password-stdin"
        ))
        .await;
    worker
        .run(&format!(
            "d=$(mktemp -d) && mkdir $d/bin && cp /bin/busybox $d/bin/ && \
             tar -C $d -c . | docker import --change 'ENTRYPOINT [\"/bin/busybox\"]' - {image} \
             >/dev/null && docker push {image} >/dev/null"
        ))
        .await;
    let tags = curl(
        worker,
        &format!(
            "--cacert {WORKER_CA} -u {PULL_USER}:{PULL_SECRET} https://{REGISTRY_NAME}/v2/omtd/hello/tags/list"
        ),
    )
    .await;
    assert!(
        tags.contains("\"1\""),
        "the registry lists the pushed tag: {tags}"
    );
    executor
        .run(&format!(
            "install -D -m 0644 /dev/stdin /etc/docker/certs.d/{REGISTRY_NAME}/ca.crt <<'EOF'\n{ca_pem}EOF"
        ))
        .await;
    executor
        .run(&format!(
            "echo '{PULL_SECRET}' | docker login {REGISTRY_NAME} -u {PULL_USER} --password-stdin \
             >/dev/null && docker pull {image} >/dev/null && docker run --rm {image} echo pulled"
        ))
        .await;
}

/// The runbook's debugging step on the real editor: `omtd debug editor --ui-access` turns
/// `use_remote_user` to False in the host's `galaxy.ini`, `--off` back to True, and a key
/// the user put in the file stays through both.
pub async fn debug_override(rig: &Rig, executor: &Vm) {
    const INI: &str = "/srv/editor/config/galaxy.ini";
    let key = |v: &str| format!("grep -qx 'use_remote_user = {v}' {INI}");
    executor
        .wait_until("galaxy.ini: use_remote_user = True", &key("True"), WAIT)
        .await;
    // The user's own setting, beside omtd's key.
    executor
        .run(&format!(
            "sed -i '/^\\[app:main\\]/a admin_users = ops@example.org' {INI}"
        ))
        .await;
    rig.omtd(&["debug", "editor", "--ui-access", "--for", "1h"])
        .await;
    executor
        .wait_until("galaxy.ini: use_remote_user = False", &key("False"), WAIT)
        .await;
    let status = rig.omtd(&["status"]).await;
    assert!(status.contains("DEBUG OVERRIDE"), "{status}");
    rig.omtd(&["debug", "editor", "--ui-access", "--off"]).await;
    executor
        .wait_until(
            "galaxy.ini: use_remote_user = True again",
            &key("True"),
            WAIT,
        )
        .await;
    executor
        .run(&format!("grep -qx 'admin_users = ops@example.org' {INI}"))
        .await;
    rig.wait_converged(&[EXECUTOR_NAME], WAIT).await;
}

/// ZooKeeper from omtd's config, read by omtd's own probe: through the forwarded client
/// port, a master entry written into the real ZooKeeper is what the probe reports.
pub async fn zookeeper_probe(executor: &Vm) {
    assert_eq!(executor.run("cat /etc/zookeeper/conf/myid").await, "1");
    executor.run("systemctl is-active -q zookeeper").await;
    let port = executor.forwarded[&2181];
    let hosts = format!("127.0.0.1:{port}");
    let target = omtd::probes::zookeeper::ZkTarget::parse(&format!("zk://{hosts}/mesos"))
        .expect("a ZooKeeper URL");
    let timeout = Duration::from_secs(10);
    // The JVM under emulation takes a while to listen: wait for the probe's first answer.
    let start = std::time::Instant::now();
    let before = loop {
        match omtd::probes::zookeeper::mesos_masters(&target, timeout).await {
            Ok(v) => break v,
            Err(e) => {
                assert!(start.elapsed() < WAIT, "ZooKeeper never answered: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    assert!(
        before.is_empty(),
        "no Mesos master has registered: {before:?}"
    );
    let client = zookeeper_client::Client::connect(&hosts)
        .await
        .expect("a ZooKeeper session");
    let persistent =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client
        .create("/mesos", b"", &persistent)
        .await
        .expect("create /mesos");
    let info =
        br#"{"hostname":"executor.omtd","port":5050,"address":{"ip":"10.0.0.10","port":5050}}"#;
    client
        .create("/mesos/json.info_0000000007", info, &persistent)
        .await
        .expect("create a master entry");
    let masters = omtd::probes::zookeeper::mesos_masters(&target, timeout)
        .await
        .expect("the probe reads the real ZooKeeper");
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert_eq!(
        (masters[0].hostname.as_str(), masters[0].sequence),
        ("executor.omtd", 7)
    );
    client
        .delete("/mesos/json.info_0000000007", None)
        .await
        .expect("delete the entry");
}
