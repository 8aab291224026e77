//! The monitor's Prometheus configuration and the file_sd targets of the member workers.

use std::collections::BTreeMap;

use omtd_crds::plan::{FileRender, FileSpec};
use omtd_crds::yaml_blocks::YamlBlock;
use omtd_crds::{Node, Role};
use serde::Serialize;

use crate::desired::Desired;
use crate::memo::{Memo, Printer};
use crate::paths::{
    PROMETHEUS_CONFIG, PROMETHEUS_DEFAULTS, PROMETHEUS_OMTD_RULES, PROMETHEUS_TARGETS,
};
use crate::removal::RemovalPhase;
use crate::render::{absent_file, file, prometheus_label};

/// `host:port`, with brackets around an IPv6 address.
pub(super) fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

#[derive(Serialize)]
struct TargetGroup {
    targets: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// The file_sd targets: one group per member worker, `[{"targets":["ip:9100","ip:8080"],
/// "labels":{...}}]`, compact. Prometheus picks up the change by itself.
pub fn prometheus_targets(desired: &Desired) -> String {
    targets_from(&mut Memo::default(), desired)
}

/// The file_sd targets rendered from an indexed set: each member worker's group is kept in
/// `groups` under the print of its record and the ports, so a relabel re-renders one group
/// and the file is the kept groups joined (the bytes `serde_json` makes of the whole list).
pub(super) fn targets_from(groups: &mut Memo<String>, desired: &Desired) -> String {
    let ports = &desired.spec.ports;
    let mut file = String::from("[");
    for (i, w) in desired.member_workers(RemovalPhase::Cleanup).enumerate() {
        let print = Printer::new()
            .record(w)
            .feed((ports.node_exporter, ports.cadvisor))
            .finish();
        let group = groups.get(&w.metadata.name, print, || target_group(desired, w));
        if i > 0 {
            file.push(',');
        }
        file.push_str(group);
    }
    file.push(']');
    groups.sweep();
    file
}

/// One worker's group, as it stands in the list.
fn target_group(desired: &Desired, w: &Node) -> String {
    let mut labels: BTreeMap<String, String> = w
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (prometheus_label(k), v.clone()))
        .collect();
    labels.insert("node".into(), w.metadata.name.clone());
    let group = TargetGroup {
        targets: vec![
            host_port(&w.spec.address, desired.spec.ports.node_exporter),
            host_port(&w.spec.address, desired.spec.ports.cadvisor),
        ],
        labels,
    };
    serde_json::to_string(&group).unwrap_or_default()
}

/// The monitor's Prometheus files. `prometheus.yml` is the user's: omtd writes only its
/// marked blocks in it ([`omtd_crds::yaml_blocks`]) — the workers' file_sd job, and with
/// `spec.monitoring.operators` the operators' job and omtd's alert rules — so the user's
/// own jobs and `rule_files` survive every pass. Files a block names come before the
/// config that names them (`promtool check config` reads them); a rules file turned off
/// goes after the config stops naming it.
pub(super) fn monitor_files(desired: &Desired, addr: &str, targets: &str) -> Vec<FileSpec> {
    let port = desired.spec.ports.prometheus;
    let operators = &desired.spec.monitoring.operators;
    let mut config = file(PROMETHEUS_CONFIG, base_config(port));
    config.validate = Some("promtool check config {}".into());
    config.render = Some(FileRender::YamlBlocks {
        blocks: vec![
            YamlBlock {
                key: "scrape_configs".into(),
                lines: scrape_block(desired.cluster_name(), operators),
            },
            YamlBlock {
                key: "rule_files".into(),
                lines: if operators.is_empty() {
                    String::new()
                } else {
                    format!("- {PROMETHEUS_OMTD_RULES}\n")
                },
            },
        ],
    });
    // The URL users reach it at, through the monitor's front door: Prometheus builds its
    // links and redirects from it.
    let scheme = match super::apache::tls_files(desired) {
        Ok(Some(_)) => "https",
        _ => "http",
    };
    let host = omtd_crds::front_door::server_name(&desired.spec, Role::Monitor, addr);
    let defaults = format!(
        "# Managed by omtd (node controller).\n\
         ARGS=\"--web.listen-address=127.0.0.1:{port} \
         --web.external-url={scheme}://{host}/prometheus/ --web.route-prefix=/prometheus/\"\n"
    );
    let mut files = vec![file(PROMETHEUS_TARGETS, targets)];
    if operators.is_empty() {
        files.extend([config, absent_file(PROMETHEUS_OMTD_RULES)]);
    } else {
        files.extend([file(PROMETHEUS_OMTD_RULES, OMTD_ALERT_RULES), config]);
    }
    files.push(file(PROMETHEUS_DEFAULTS, defaults));
    files
}

/// omtd's alert rules, as shipped in `deploy/prometheus/` (tested there with `promtool
/// test rules`); one copy, so the file a user reads is the one omtd installs.
const OMTD_ALERT_RULES: &str = include_str!("../../../deploy/prometheus/omtd-alerts.yml");

/// The file the blocks go into when the monitor has no `prometheus.yml` yet: Prometheus
/// scraping itself, as Debian's own file does. After that, the file is the user's.
fn base_config(port: u16) -> String {
    format!(
        "# omtd writes only between its marker comments below; the rest is yours.\n\
         global:\n\
         \x20 scrape_interval: 15s\n\
         \x20 evaluation_interval: 15s\n\
         scrape_configs:\n\
         \x20 - job_name: prometheus\n\
         \x20   metrics_path: /prometheus/metrics\n\
         \x20   static_configs:\n\
         \x20     - targets: ['127.0.0.1:{port}']\n"
    )
}

/// omtd's entries under `scrape_configs`: the member workers from the file_sd file, and
/// the operators when listed (job name as `deploy/prometheus/omtd-alerts.yml` expects).
fn scrape_block(cluster: &str, operators: &[String]) -> String {
    let mut block = format!(
        "- job_name: omtd-workers\n\
         \x20 file_sd_configs:\n\
         \x20   - files: ['{PROMETHEUS_TARGETS}']\n"
    );
    if !operators.is_empty() {
        let targets = operators
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        block.push_str(&format!(
            "- job_name: omtd-operator\n\
             \x20 metrics_path: /metrics\n\
             \x20 scrape_timeout: 5s\n\
             \x20 static_configs:\n\
             \x20   - targets: [{targets}]\n\
             \x20     labels:\n\
             \x20       omtd_cluster: '{cluster}'\n"
        ));
    }
    block
}
