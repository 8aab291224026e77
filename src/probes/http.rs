//! The HTTP client shared by the probes: one time limit per operation, no retries, redirects
//! followed by hand, errors without credentials.
//!
//! reqwest's own redirect handling is turned off on purpose: it drops the `Authorization`
//! header when the host changes, and a Mesos master that is not the leader answers 307 with
//! the leader's address, where the same cluster credentials are needed. We follow such a
//! redirect ourselves, with the credentials, only when the scheme stays the same (never
//! downgrading https to http with a secret in the request).

use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use super::{display_url, BasicAuth, HttpTarget, ProbeConfig, ProbeError};

/// Redirects followed per request: a non-leader points at the leader, which answers; more
/// than that is a loop (or leadership moving under our feet, which the next probe will see).
const MAX_HOPS: usize = 3;

/// The largest body we read: a big Mesos state is a few MB; anything past this is not one of
/// the answers we expect and must not exhaust the operator's memory.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// How much of an unexpected body an error keeps.
const BODY_EXCERPT: usize = 200;

/// The probes' HTTP client. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct HttpProbe {
    client: reqwest::Client,
    timeout: Duration,
}

/// A complete answer (status, headers, body), from the URL that finally answered.
pub(crate) struct Answer {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpProbe {
    pub fn new(config: ProbeConfig) -> Result<HttpProbe, ProbeError> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ProbeError::Client(format!("cannot read the probe CA {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ProbeError::Client(format!("{}: not PEM certificates: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ProbeError::Client(format!(
                    "{}: holds no certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Cluster services are reached directly: a proxy variable inherited from a
            // person's shell must not route health probes elsewhere.
            .no_proxy()
            .user_agent(concat!("omtd-probe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProbeError::Client(error_chain(&e)))?;
        Ok(HttpProbe {
            client,
            timeout: config.timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one probe operation in its span and under the overall time limit (a redirect or
    /// a second request must not stretch a probe past it).
    pub(crate) async fn run<T>(
        &self,
        probe: &'static str,
        url: &Url,
        op: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        let shown = display_url(url);
        let span = tracing::debug_span!("probe", probe, url = %shown);
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.timeout, op.instrument(span.clone())).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout {
                url: shown,
                after: self.timeout,
            }),
        };
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!(elapsed = ?started.elapsed(), "probe answered"),
            Err(e) => tracing::debug!(elapsed = ?started.elapsed(), error = %e, "probe failed"),
        });
        result
    }

    /// `GET path` on `target` as the probe `probe`, expecting a 2xx and nothing else from
    /// the answer (health and ping checks).
    pub(crate) async fn get_ok(
        &self,
        probe: &'static str,
        target: &HttpTarget,
        path: &str,
    ) -> Result<(), ProbeError> {
        let url = target.url(path);
        self.run(probe, &url, async {
            self.send(target, Method::GET, url.clone(), None)
                .await?
                .success(target)
                .map(|_| ())
        })
        .await
    }

    /// One request, no redirect followed.
    pub(crate) async fn send(
        &self,
        target: &HttpTarget,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ProbeError> {
        let mut req = self.client.request(method, url.clone());
        if let Some(auth) = target.auth() {
            req = req.basic_auth(auth.username(), Some(auth.password()));
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let mut resp = req.send().await.map_err(|e| self.map_err(&url, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.map_err(&url, e))? {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(ProbeError::BadJson {
                    url: display_url(&url),
                    reason: format!("answer larger than {MAX_BODY} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Answer {
            url,
            status,
            headers,
            body: buf,
        })
    }

    /// A request that follows 307/308 redirects (method and body kept, as those statuses
    /// require) with the same credentials.
    pub(crate) async fn send_following(
        &self,
        target: &HttpTarget,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ProbeError> {
        let first = url.clone();
        let mut url = url;
        for _ in 0..=MAX_HOPS {
            let answer = self.send(target, method.clone(), url.clone(), body).await?;
            if !matches!(
                answer.status,
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            ) {
                return Ok(answer);
            }
            let next = redirect_target(&answer)?;
            if next.scheme() != first.scheme() {
                return Err(ProbeError::Redirect {
                    url: display_url(&answer.url),
                    reason: format!("to {} changes the scheme", display_url(&next)),
                });
            }
            tracing::debug!(from = %display_url(&url), to = %display_url(&next), "following redirect");
            url = next;
        }
        Err(ProbeError::Redirect {
            url: display_url(&first),
            reason: format!("more than {MAX_HOPS} redirects"),
        })
    }

    fn map_err(&self, url: &Url, e: reqwest::Error) -> ProbeError {
        let url = display_url(url);
        if e.is_timeout() {
            ProbeError::Timeout {
                url,
                after: self.timeout,
            }
        } else {
            ProbeError::Unreachable {
                url,
                reason: error_chain(&e.without_url()),
            }
        }
    }
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The error for an answer with a status the caller cannot use.
    pub fn bad_status(&self, target: &HttpTarget) -> ProbeError {
        let text = String::from_utf8_lossy(&self.body);
        let mut excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
        if text.trim().chars().count() > BODY_EXCERPT {
            excerpt.push('…');
        }
        ProbeError::BadStatus {
            url: display_url(&self.url),
            status: self.status.as_u16(),
            body: target.scrub(&excerpt),
        }
    }

    /// Fails with `BadStatus` unless 2xx.
    pub fn success(self, target: &HttpTarget) -> Result<Answer, ProbeError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.bad_status(target))
        }
    }

    /// The body as JSON of type `T`; a parse error names the JSON path that failed.
    pub fn json<T: DeserializeOwned>(&self, target: &HttpTarget) -> Result<T, ProbeError> {
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| ProbeError::BadJson {
            url: display_url(&self.url),
            // serde quotes offending values: scrub in case a server echoed a secret.
            reason: target.scrub(&e.to_string()),
        })
    }
}

/// Where a 307 points, resolved against the URL asked. Mesos sends a protocol-relative
/// `//leader:5050/master/state`, which resolves to the scheme of the request.
pub(crate) fn redirect_target(answer: &Answer) -> Result<Url, ProbeError> {
    let bad = |reason: String| ProbeError::Redirect {
        url: display_url(&answer.url),
        reason,
    };
    let location = answer
        .headers
        .get(LOCATION)
        .ok_or_else(|| bad(format!("{} without a Location header", answer.status)))?
        .to_str()
        .map_err(|_| bad("Location is not text".to_owned()))?;
    let mut next = answer
        .url
        .join(location)
        .map_err(|e| bad(format!("bad Location: {e}")))?;
    // Credentials travel in our header only, never in a URL a server chose.
    let _ = next.set_username("");
    let _ = next.set_password(None);
    Ok(next)
}

/// `Authorization: Basic` token for `auth`, to recognise it in text a server sent back.
pub(crate) fn basic_token(auth: &BasicAuth) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        auth.username(),
        auth.password()
    ))
}

/// An error and its causes, `a: b: c`, skipping causes already said.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}
