//! Prometheus: which targets it scrapes, and reloading its configuration.
//!
//! The monitor serves Prometheus under `/prometheus/` (`--web.route-prefix`), so the target's
//! base URL carries that prefix: `http://127.0.0.1:9090/prometheus`.
//!
//! omtd writes scrape targets to a file_sd file, which Prometheus re-reads on change by
//! itself; a reload is needed only for the main configuration. `POST /-/reload` works only
//! with `--web.enable-lifecycle` (otherwise 403); without it a SIGHUP to the process reloads,
//! which is the agent's job on that host, not a probe's.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::{HttpProbe, HttpTarget, ProbeError};

/// The route prefix the monitor's Prometheus runs under.
pub const DEFAULT_PREFIX: &str = "/prometheus";

/// What a reload request achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Prometheus accepted `POST /-/reload` and reloaded.
    Reloaded,
    /// The lifecycle API is off (by configuration, or Prometheus said 403): the change is
    /// picked up from file_sd on its own, or needs a SIGHUP to the prometheus process.
    NeedsSignal { reason: String },
}

/// A Prometheus to probe.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: HttpProbe,
    target: HttpTarget,
}

impl Prometheus {
    /// `target` is the base URL including the route prefix, e.g.
    /// `http://127.0.0.1:9090/prometheus`.
    pub fn new(http: HttpProbe, target: HttpTarget) -> Prometheus {
        Prometheus { http, target }
    }

    /// The active scrape targets as `host:port`, sorted, without duplicates
    /// (`GET /api/v1/targets`, `data.activeTargets`).
    pub async fn active_targets(&self) -> Result<Vec<String>, ProbeError> {
        let url = self.target.url("/api/v1/targets");
        self.http
            .run("prometheus.targets", &url, async {
                let answer = self
                    .http
                    .send(&self.target, Method::GET, url.clone(), None)
                    .await?
                    .success(&self.target)?;
                let body: TargetsJson = answer.json(&self.target)?;
                if body.status != "success" {
                    return Err(ProbeError::BadJson {
                        url: super::display_url(&answer.url),
                        reason: format!(
                            "status {}: {}",
                            body.status,
                            body.error.unwrap_or_default()
                        ),
                    });
                }
                let data = body.data.unwrap_or_default();
                let targets: BTreeSet<String> = data
                    .active_targets
                    .iter()
                    .filter_map(ActiveTarget::address)
                    .collect();
                Ok(targets.into_iter().collect())
            })
            .await
    }

    /// Asks Prometheus to reload its configuration when `lifecycle_enabled` (the monitor runs
    /// it with `--web.enable-lifecycle`); otherwise says what else is needed, without asking.
    pub async fn reload(&self, lifecycle_enabled: bool) -> Result<Reload, ProbeError> {
        if !lifecycle_enabled {
            return Ok(Reload::NeedsSignal {
                reason: "lifecycle API disabled: file_sd changes are picked up on their own; \
                         a configuration change needs SIGHUP"
                    .to_owned(),
            });
        }
        let url = self.target.url("/-/reload");
        self.http
            .run("prometheus.reload", &url, async {
                let answer = self
                    .http
                    .send(&self.target, Method::POST, url.clone(), None)
                    .await?;
                match answer.status {
                    s if s.is_success() => Ok(Reload::Reloaded),
                    StatusCode::FORBIDDEN => Ok(Reload::NeedsSignal {
                        reason: format!(
                            "Prometheus refused {} (403: started without \
                             --web.enable-lifecycle): send SIGHUP",
                            super::display_url(&answer.url)
                        ),
                    }),
                    _ => Err(answer.bad_status(&self.target)),
                }
            })
            .await
    }
}

#[derive(Debug, Deserialize)]
struct TargetsJson {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<TargetsData>,
}

#[derive(Debug, Default, Deserialize)]
struct TargetsData {
    #[serde(default, rename = "activeTargets")]
    active_targets: Vec<ActiveTarget>,
}

#[derive(Debug, Deserialize)]
struct ActiveTarget {
    #[serde(default, rename = "discoveredLabels")]
    discovered_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "scrapeUrl")]
    scrape_url: Option<String>,
}

impl ActiveTarget {
    /// The address as written in the file_sd file: `__address__` before relabelling; else
    /// the scrape URL's `host:port`; else the `instance` label (which relabelling may have
    /// renamed, hence last).
    fn address(&self) -> Option<String> {
        self.discovered_labels
            .get("__address__")
            .cloned()
            .or_else(|| {
                let url = Url::parse(self.scrape_url.as_deref()?).ok()?;
                Some(format!(
                    "{}:{}",
                    url.host_str()?,
                    url.port_or_known_default()?
                ))
            })
            .or_else(|| self.labels.get("instance").cloned())
            .filter(|a| !a.is_empty())
    }
}
