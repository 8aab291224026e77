//! Chronos: is it up (`/ping`), which job API does it speak, and is it registered with Mesos.
//!
//! Registration is not Chronos's to tell: Chronos answers `/ping` even when Mesos refused
//! its principal or secret. The Mesos master's framework list is the truth, so
//! [`registered`] reads the Mesos probe's result.

use reqwest::{Method, StatusCode};

use omtd_controllers::observed::MesosState;

use super::{HttpProbe, HttpTarget, ProbeError};

/// Chronos's default framework name (`--mesos_framework_name`).
pub const DEFAULT_FRAMEWORK_NAME: &str = "chronos";

/// Which job API a Chronos serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobApi {
    /// Chronos 2.x: `/scheduler/jobs`.
    V2,
    /// Chronos 3.x: `/v1/scheduler/jobs`.
    V3,
}

impl JobApi {
    /// The jobs path of this API (Galaxy's Chronos runner needs to know it).
    pub fn jobs_path(self) -> &'static str {
        match self {
            JobApi::V2 => "/scheduler/jobs",
            JobApi::V3 => "/v1/scheduler/jobs",
        }
    }
}

/// A Chronos to probe. `target` carries the `http_credentials` when Chronos has them.
#[derive(Debug, Clone)]
pub struct Chronos {
    http: HttpProbe,
    target: HttpTarget,
}

impl Chronos {
    pub fn new(http: HttpProbe, target: HttpTarget) -> Chronos {
        Chronos { http, target }
    }

    /// `GET /ping`: Chronos's process serves HTTP (it answers `pong`).
    pub async fn ping(&self) -> Result<(), ProbeError> {
        self.http
            .get_ok("chronos.ping", &self.target, "/ping")
            .await
    }

    /// The job API version: 3.x if `/v1/scheduler/jobs` answers, else 2.x if
    /// `/scheduler/jobs` does. Only a 404 moves on to the older path; anything else (401,
    /// 503) is the answer's problem, not the version's.
    pub async fn job_api(&self) -> Result<JobApi, ProbeError> {
        let url = self.target.url(JobApi::V3.jobs_path());
        self.http
            .run("chronos.job_api", &url, async {
                let v3 = self
                    .http
                    .send(&self.target, Method::GET, url.clone(), None)
                    .await?;
                if v3.is_success() {
                    return Ok(JobApi::V3);
                }
                if v3.status != StatusCode::NOT_FOUND {
                    return Err(v3.bad_status(&self.target));
                }
                let v2_url = self.target.url(JobApi::V2.jobs_path());
                self.http
                    .send(&self.target, Method::GET, v2_url, None)
                    .await?
                    .success(&self.target)
                    .map(|_| JobApi::V2)
            })
            .await
    }
}

/// Whether Chronos is registered: the Mesos master lists an active framework named
/// `framework_name` (`DEFAULT_FRAMEWORK_NAME` unless `--mesos_framework_name` says otherwise).
pub fn registered(mesos: &MesosState, framework_name: &str) -> bool {
    mesos.framework_active(framework_name)
}
