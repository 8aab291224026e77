//! The monitor's Prometheus configuration and the file_sd targets of the member workers.

use std::collections::BTreeMap;

use omtd_crds::plan::FileSpec;
use omtd_crds::Node;
use serde::Serialize;

use crate::desired::Desired;
use crate::memo::{Memo, Printer};
use crate::paths::{PROMETHEUS_CONFIG, PROMETHEUS_DEFAULTS, PROMETHEUS_TARGETS};
use crate::removal::RemovalPhase;
use crate::render::{file, prometheus_label};

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

pub(super) fn monitor_files(desired: &Desired, addr: &str, targets: &str) -> Vec<FileSpec> {
    let port = desired.spec.ports.prometheus;
    let config = format!(
        "# Managed by omtd (node controller). Changes here are overwritten.\n\
         global:\n\
         \x20 scrape_interval: 15s\n\
         \x20 evaluation_interval: 15s\n\
         scrape_configs:\n\
         \x20 - job_name: prometheus\n\
         \x20   metrics_path: /prometheus/metrics\n\
         \x20   static_configs:\n\
         \x20     - targets: ['127.0.0.1:{port}']\n\
         \x20 - job_name: omtd-workers\n\
         \x20   file_sd_configs:\n\
         \x20     - files: ['{PROMETHEUS_TARGETS}']\n"
    );
    let mut config = file(PROMETHEUS_CONFIG, config);
    config.validate = Some("promtool check config {}".into());
    let defaults = format!(
        "# Managed by omtd (node controller).\n\
         ARGS=\"--web.listen-address=127.0.0.1:{port} \
         --web.external-url=http://{addr}/prometheus/ --web.route-prefix=/prometheus/\"\n"
    );
    vec![
        config,
        file(PROMETHEUS_DEFAULTS, defaults),
        file(PROMETHEUS_TARGETS, targets),
    ]
}
