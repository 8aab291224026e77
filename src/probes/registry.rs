//! The Docker registry behind Apache: `GET /v2/` is the registry v2 API's base check.
//! 200 means the API answers (to these credentials, if any); 401 means a guard asks for
//! credentials (Apache's basic auth from the htpasswd omtd writes).

use reqwest::{Method, StatusCode};

use super::{HttpProbe, HttpTarget, ProbeError};

/// The header a v2 registry sets on every answer.
const API_VERSION_HEADER: &str = "docker-distribution-api-version";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryAccess {
    /// 200 without credentials: anyone can use it (the guard is missing).
    Open,
    /// 200 with the target's credentials.
    Authenticated,
    /// 401 without credentials: guarded.
    AuthRequired,
    /// 401 with the target's credentials: the guard refuses them (htpasswd out of date?).
    CredentialsRejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryStatus {
    pub access: RegistryAccess,
    /// The answer carried `Docker-Distribution-API-Version: registry/2.0`. Apache's 401 does
    /// not, so this is only meaningful with a 200.
    pub v2_api: bool,
}

/// A registry to probe.
#[derive(Debug, Clone)]
pub struct Registry {
    http: HttpProbe,
    target: HttpTarget,
}

impl Registry {
    pub fn new(http: HttpProbe, target: HttpTarget) -> Registry {
        Registry { http, target }
    }

    /// `GET /v2/`.
    pub async fn check(&self) -> Result<RegistryStatus, ProbeError> {
        let url = self.target.url("/v2/");
        self.http
            .run("registry.v2", &url, async {
                let answer = self
                    .http
                    .send(&self.target, Method::GET, url.clone(), None)
                    .await?;
                let with_auth = self.target.auth().is_some();
                let access = match answer.status {
                    StatusCode::OK if with_auth => RegistryAccess::Authenticated,
                    StatusCode::OK => RegistryAccess::Open,
                    StatusCode::UNAUTHORIZED if with_auth => RegistryAccess::CredentialsRejected,
                    StatusCode::UNAUTHORIZED => RegistryAccess::AuthRequired,
                    _ => return Err(answer.bad_status(&self.target)),
                };
                let v2_api = answer
                    .headers
                    .get(API_VERSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("registry/2."));
                Ok(RegistryStatus { access, v2_api })
            })
            .await
    }
}
