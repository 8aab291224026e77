//! The files under `deploy/` are what people install on hosts: every YAML and JSON file
//! parses, the alert rules and the dashboard query only metrics the operator exposes, and
//! the systemd units and env files say what the docs promise.
//!
//! The exposed names come from the operator's registry built in-process, with one series of
//! every family created, and encoded exactly as `/metrics` serves it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use omtd::runtime::metrics::{ReconcileResult, StoreOp, WatchRestartReason};
use omtd::runtime::Metrics;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every sample name `/metrics` serves (`omtd_reconciles_total`, `..._bucket`, ...).
fn exposed_metric_names() -> BTreeSet<String> {
    let m = Metrics::new();
    m.register_controller("node");
    m.reconciled("node", ReconcileResult::Error, Duration::from_millis(3));
    m.retried("node");
    m.set_leader(true);
    m.store_op(StoreOp::Txn, false, Duration::from_millis(2));
    m.watch_restarted(WatchRestartReason::Error);
    m.set_nodes(3, 1);
    m.wrote();
    m.event_recorded();
    m.encode()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The `omtd_*` metric names a PromQL expression uses.
fn omtd_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("omtd_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_yaml_and_json_file_parses() {
    let mut checked = 0;
    for path in files_under(&deploy_dir()) {
        let text = std::fs::read_to_string(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => {
                // Multi-document files (the example cluster) parse document by document.
                for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                    if let Err(e) = <Yaml as serde::Deserialize>::deserialize(doc) {
                        panic!("{}: {e}", path.display());
                    }
                }
                checked += 1;
            }
            Some("json") => {
                serde_json::from_str::<Json>(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 5, "only {checked} YAML/JSON files under deploy/");
}

#[test]
fn alerts_and_dashboard_use_only_exposed_metrics() {
    let exposed = exposed_metric_names();
    assert!(exposed.contains("omtd_reconciles_total"), "{exposed:?}");

    let alerts = yaml("prometheus/omtd-alerts.yml");
    let mut names = BTreeSet::new();
    let mut used = BTreeSet::new();
    for group in alerts["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{name}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: no summary"
            );
            assert!(
                expr.contains(r#"job="omtd-operator""#),
                "{name}: not scoped to the omtd-operator job"
            );
            names.insert(name.to_owned());
            used.extend(omtd_names(expr));
        }
    }
    for wanted in [
        "OmtdOperatorDown",
        "OmtdNoLeader",
        "OmtdLeaderFlapping",
        "OmtdReconcileErrors",
        "OmtdNodeLost",
    ] {
        assert!(names.contains(wanted), "no {wanted} alert");
    }

    let dashboard: Json = serde_json::from_str(&read("grafana/omtd-dashboard.json")).unwrap();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        panels += 1;
        for target in panel["targets"].as_array().unwrap() {
            used.extend(omtd_names(target["expr"].as_str().unwrap()));
        }
    }
    assert!(panels >= 8);

    let unknown: Vec<&String> = used.iter().filter(|n| !exposed.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "not exposed by the operator: {unknown:?}; exposed: {exposed:?}"
    );
    for family in [
        "omtd_leader",
        "omtd_leader_transitions_total",
        "omtd_reconciles_total",
        "omtd_nodes_without_agent",
    ] {
        assert!(used.contains(family), "{family} is not watched");
    }
}

#[test]
fn scrape_job_is_the_one_the_alerts_name() {
    let scrape = yaml("prometheus/omtd-scrape.yml");
    let job = &scrape["scrape_configs"][0];
    assert_eq!(job["job_name"].as_str(), Some("omtd-operator"));
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let targets = job["static_configs"][0]["targets"].as_sequence().unwrap();
    assert!(targets
        .iter()
        .all(|t| t.as_str().unwrap().ends_with(":9464")));
}

/// `promtool test rules` runs the alert rules' own unit tests. The test command installs
/// Debian's `prometheus` (which ships promtool); a missing promtool fails, never skips.
#[test]
fn alert_rule_unit_tests_pass_under_promtool() {
    let dir = deploy_dir().join("prometheus");
    let out = match Command::new("promtool")
        .args(["test", "rules", "omtd-alerts.test.yml"])
        .current_dir(&dir)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool not found: apt-get update && apt-get install -y prometheus")
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Key=value` lines of a unit or env file, comments and sections left out.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn systemd_units_restart_and_read_the_store_from_the_env_file() {
    for (unit, command) in [
        ("systemd/omtd-operator.service", "omtd operator"),
        ("systemd/omtd-agent@.service", "omtd agent --node %i"),
    ] {
        let s = settings(&read(unit));
        assert_eq!(setting(&s, "Restart"), ["always"], "{unit}");
        assert_eq!(setting(&s, "RestartSec").len(), 1, "{unit}");
        assert_eq!(
            setting(&s, "EnvironmentFile"),
            ["/etc/omtd/omtd.env"],
            "{unit}"
        );
        assert!(
            setting(&s, "ExecStart")[0].contains(command),
            "{unit}: ExecStart does not run `{command}`"
        );
    }
    // The agent must act on the host's own mounts and devices: nothing that would give it a
    // mount namespace or a device allow-list.
    let agent = settings(&read("systemd/omtd-agent@.service"));
    for forbidden in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "DeviceAllow",
        "ProtectClock",
        "CapabilityBoundingSet",
        "ReadOnlyPaths",
        "MountFlags",
    ] {
        assert!(
            setting(&agent, forbidden).is_empty(),
            "agent unit sets {forbidden}"
        );
    }
    let env = settings(&read("systemd/omtd.env.example"));
    assert_eq!(setting(&env, "OMTD_STORE").len(), 1);
    assert!(setting(&env, "OMTD_STORE")[0].starts_with("etcd+tls://"));
    for tls in ["OMTD_STORE_CA", "OMTD_STORE_CERT", "OMTD_STORE_KEY"] {
        assert_eq!(setting(&env, tls).len(), 1, "{tls}");
    }
}

#[test]
fn etcd_members_agree_and_keep_the_stock_limits() {
    let members: Vec<Vec<(String, String)>> = (1..=3)
        .map(|i| settings(&read(&format!("etcd/etcd-{i}.env"))))
        .collect();
    let cluster = setting(&members[0], "ETCD_INITIAL_CLUSTER")[0];
    let mut names = BTreeSet::new();
    for m in &members {
        assert_eq!(setting(m, "ETCD_INITIAL_CLUSTER"), [cluster]);
        // omtd works within a stock etcd's limits; raising them would hide a regression.
        assert!(setting(m, "ETCD_MAX_TXN_OPS").is_empty());
        assert!(setting(m, "ETCD_MAX_REQUEST_BYTES").is_empty());
        let name = setting(m, "ETCD_NAME")[0];
        let peer = setting(m, "ETCD_INITIAL_ADVERTISE_PEER_URLS")[0];
        assert!(
            cluster.contains(&format!("{name}={peer}")),
            "{name} is not in the initial cluster as {peer}"
        );
        names.insert(name.to_owned());
        // Clients and peers over TLS with certificates, the member's own.
        for url in [
            "ETCD_LISTEN_CLIENT_URLS",
            "ETCD_LISTEN_PEER_URLS",
            "ETCD_INITIAL_CLUSTER",
        ] {
            assert!(
                setting(m, url)[0]
                    .split(',')
                    .all(|u| u.contains("https://")),
                "{name}: {url} is not all https"
            );
        }
        for on in ["ETCD_CLIENT_CERT_AUTH", "ETCD_PEER_CLIENT_CERT_AUTH"] {
            assert_eq!(setting(m, on), ["true"], "{name}: {on}");
        }
        assert_eq!(
            setting(m, "ETCD_CERT_FILE"),
            [format!("/etc/etcd/pki/{name}.crt").as_str()]
        );
    }
    assert_eq!(names.len(), 3);
}

/// Whether a config line (comment stripped) binds every interface.
fn binds_everywhere(line: &str) -> bool {
    let setting = line.split('#').next().unwrap_or("");
    setting.contains("0.0.0.0") || setting.contains("[::]")
}

#[test]
fn nothing_shipped_listens_on_every_interface_unless_it_says_it_is_deliberate() {
    // A wildcard address is allowed only on a line whose comment, or the comment line just
    // above it, says it is deliberate (e.g. "# deliberate: firewalled to the monitor").
    for path in files_under(&deploy_dir()) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !binds_everywhere(line) {
                continue;
            }
            let said = |l: &str| {
                l.split_once('#')
                    .is_some_and(|(_, c)| c.contains("deliberate"))
            };
            let above = i.checked_sub(1).map(|j| lines[j].trim_start());
            assert!(
                said(line) || above.is_some_and(|l| l.starts_with('#') && said(l)),
                "{}:{}: binds every interface without a comment saying it is deliberate: {line}",
                path.display(),
                i + 1
            );
        }
    }
    let env = settings(&read("systemd/omtd.env.example"));
    let metrics = setting(&env, "OMTD_METRICS_ADDR");
    assert_eq!(metrics.len(), 1);
    let addr: std::net::SocketAddr = metrics[0].parse().expect("OMTD_METRICS_ADDR");
    assert!(
        addr.ip().is_loopback(),
        "the env example exposes metrics: {addr}"
    );
}
