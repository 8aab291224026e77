//! What the monitor's Prometheus would scrape: the static targets of `prometheus.yml` and
//! the file_sd files it names, re-read on every change as Prometheus does. A file that
//! does not parse keeps the last targets that did (Prometheus logs the error and keeps
//! the old ones).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::config;
use crate::agent::drivers::sim::SimHost;

pub const CONFIG: &str = "/etc/prometheus/prometheus.yml";
/// The monitor runs Prometheus under `/prometheus/` (`--web.route-prefix`).
pub const ROUTE_PREFIX: &str = "/prometheus";
const DEFAULTS: &str = "/etc/default/prometheus";

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct ScrapeConfig {
    job_name: String,
    #[serde(default)]
    static_configs: Vec<Group>,
    #[serde(default)]
    file_sd_configs: Vec<FileSd>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Group {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct FileSd {
    #[serde(default)]
    files: Vec<String>,
}

/// One scrape job as loaded: its name, static groups and file_sd files.
#[derive(Debug, Clone)]
struct Job {
    name: String,
    statics: Vec<Group>,
    files: Vec<String>,
}

/// One monitor's Prometheus: the last configuration and file_sd groups that parsed.
#[derive(Debug, Default)]
pub struct PromState {
    config: Option<Vec<Job>>,
    file_sd: BTreeMap<String, Vec<Group>>,
}

/// One active target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub job: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

impl PromState {
    /// The active targets now, after re-reading what changed.
    pub fn targets(&mut self, host: &SimHost) -> Vec<Target> {
        if let Some(parsed) = config::bytes(host, CONFIG)
            .and_then(|b| serde_yaml_ng::from_slice::<ConfigFile>(&b).ok())
        {
            self.config = Some(
                parsed
                    .scrape_configs
                    .into_iter()
                    .map(|s| Job {
                        name: s.job_name,
                        statics: s.static_configs,
                        files: s
                            .file_sd_configs
                            .into_iter()
                            .flat_map(|f| f.files)
                            .collect(),
                    })
                    .collect(),
            );
        }
        let mut out = Vec::new();
        for Job {
            name: job,
            statics,
            files,
        } in self.config.clone().unwrap_or_default()
        {
            let mut groups = statics;
            for f in &files {
                // A missing file has no targets; one that does not parse keeps the last.
                match config::bytes(host, f) {
                    None => {
                        self.file_sd.remove(f);
                    }
                    Some(b) => {
                        if let Ok(g) = serde_json::from_slice::<Vec<Group>>(&b) {
                            self.file_sd.insert(f.clone(), g);
                        }
                    }
                }
                groups.extend(self.file_sd.get(f).cloned().unwrap_or_default());
            }
            for g in groups {
                for t in g.targets {
                    out.push(Target {
                        job: job.clone(),
                        address: t,
                        labels: g.labels.clone(),
                    });
                }
            }
        }
        out
    }
}

/// Whether Prometheus runs with `--web.enable-lifecycle` (reload over HTTP).
pub fn lifecycle_enabled(host: &SimHost) -> bool {
    config::flag(host, DEFAULTS).is_some_and(|a| a.contains("--web.enable-lifecycle"))
}

/// `GET /api/v1/targets`.
pub fn targets_json(targets: &[Target]) -> Value {
    let active: Vec<Value> = targets
        .iter()
        .map(|t| {
            let mut labels = t.labels.clone();
            labels.insert("instance".into(), t.address.clone());
            labels.insert("job".into(), t.job.clone());
            json!({
                "discoveredLabels": {"__address__": t.address, "job": t.job},
                "labels": labels,
                "scrapePool": t.job,
                "scrapeUrl": format!("http://{}/metrics", t.address),
                "health": "up",
                "lastError": "",
            })
        })
        .collect();
    json!({"status": "success", "data": {"activeTargets": active, "droppedTargets": []}})
}
