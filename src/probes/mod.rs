//! Probes: the shell-side code that asks the cluster's services how they stand and turns the
//! answers into the controllers' observed types (`omtd_controllers::observed`).
//!
//! - [`mesos::MesosMaster`]: `/master/state` and `/master/maintenance/status` (following a
//!   307 to the leader), `/master/redirect`, `/master/health`, and the maintenance actions
//!   used to drain a node (schedule, down, up).
//! - [`zookeeper::mesos_masters`]: the Mesos leader-election entries in ZooKeeper.
//! - [`chronos::Chronos`]: `/ping` and the job API version.
//! - [`prometheus::Prometheus`]: active scrape targets and reload.
//! - [`registry::Registry`]: `GET /v2/`.
//!
//! Every probe has one short time limit ([`ProbeConfig::timeout`]) for the whole operation
//! and never retries: the runtime decides when to ask again, so a dead service costs one
//! timeout per reconcile and not a hidden multiple of it. Each probe runs in its own
//! `tracing` span naming the probe and the address (never a credential).

pub mod chronos;
pub mod error;
mod http;
mod maintenance;
pub mod mesos;
pub mod prometheus;
pub mod registry;
mod schedule;
pub mod zookeeper;

use std::fmt;
use std::time::Duration;

use reqwest::Url;

pub use error::ProbeError;
pub use http::HttpProbe;

/// The default time limit of one probe: long enough for a loaded master to render its state,
/// short enough that a reconcile blocked on a dead service stays short.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings shared by all probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Time limit of one probe operation, redirects and all.
    pub timeout: Duration,
    /// PEM certificates trusted besides the system's roots: the cluster CA that signed
    /// the HTTPS front doors (`omtd pki`), so the registry and Prometheus probes can check
    /// them by name rather than not at all.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// HTTP basic-auth credentials (a Mesos principal and secret, Chronos's `http_credentials`,
/// the registry's htpasswd user). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    username: String,
    password: String,
}

impl BasicAuth {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        BasicAuth {
            username: username.into(),
            password: password.into(),
        }
    }

    /// From Chronos's `user:pass` form (`/etc/chronos/conf/http_credentials`).
    pub fn from_colon_pair(pair: &str) -> Option<Self> {
        let (user, pass) = pair.split_once(':')?;
        Some(BasicAuth::new(user, pass))
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where a service answers: a base URL (scheme, host, port and an optional path prefix such
/// as Prometheus's `/prometheus`) and the credentials to present.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    base: Url,
    auth: Option<BasicAuth>,
}

impl HttpTarget {
    /// `http://host:port[/prefix]`; a bare `host:port` means `http://`. User-info in the URL
    /// (`http://user:pass@host`) is taken out of the URL and used as the credentials, so it
    /// can never reach a log line or an error message with the URL.
    pub fn parse(input: &str) -> Result<HttpTarget, ProbeError> {
        let with_scheme = if input.contains("://") {
            input.to_owned()
        } else {
            format!("http://{input}")
        };
        let bad = |reason: String| ProbeError::BadAddress {
            input: redact_input(input),
            reason,
        };
        let mut base = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(bad(format!(
                "scheme {} is not http or https",
                base.scheme()
            )));
        }
        if base.host_str().is_none() {
            return Err(bad("no host".to_owned()));
        }
        let auth = if base.username().is_empty() && base.password().is_none() {
            None
        } else {
            Some(BasicAuth::new(
                percent_decode(base.username()),
                percent_decode(base.password().unwrap_or("")),
            ))
        };
        // Only fails for URLs that cannot have user-info (no host), excluded above.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        base.set_fragment(None);
        Ok(HttpTarget { base, auth })
    }

    /// The same service with these credentials (replacing any from the URL).
    pub fn with_auth(mut self, auth: BasicAuth) -> HttpTarget {
        self.auth = Some(auth);
        self
    }

    /// The same service with these credentials, or with none.
    pub fn presenting(mut self, auth: Option<BasicAuth>) -> HttpTarget {
        self.auth = auth;
        self
    }

    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }

    /// The base URL (never carries credentials).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (starting with `/`) under the base's path prefix.
    pub(crate) fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// `text` with the password (and the base64 header value carrying it) replaced, for
    /// keeping a server's words in an error.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let Some(auth) = &self.auth else {
            return text.to_owned();
        };
        let mut out = text.to_owned();
        if !auth.password.is_empty() {
            out = out.replace(&auth.password, "<redacted>");
        }
        let encoded = http::basic_token(auth);
        out.replace(&encoded, "<redacted>")
    }
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .finish()
    }
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str())
    }
}

/// A URL as shown in messages: without user-info.
pub(crate) fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// A configured address as shown in messages: anything between `://` and the last `@` of
/// the authority (user-info) removed, even when the address does not parse.
pub(crate) fn redact_input(input: &str) -> String {
    let (scheme, rest) = match input.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), input),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}<redacted>@{}{path}", &authority[at + 1..]),
        None => input.to_owned(),
    }
}

/// `%40` → `@` etc. in user-info (the URL parser keeps it encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_becomes_credentials_and_leaves_the_url() {
        let t = HttpTarget::parse("http://chronos:s%40cret@10.0.0.1:8080/").unwrap();
        assert_eq!(t.base().as_str(), "http://10.0.0.1:8080/");
        assert_eq!(t.auth(), Some(&BasicAuth::new("chronos", "s@cret")));
        assert!(!format!("{t:?}").contains("s@cret"));
    }

    #[test]
    fn bare_host_port_means_http_and_prefix_is_kept() {
        let t = HttpTarget::parse("127.0.0.1:9090/prometheus").unwrap();
        assert_eq!(
            t.url("/api/v1/targets").as_str(),
            "http://127.0.0.1:9090/prometheus/api/v1/targets"
        );
        let t = HttpTarget::parse("http://127.0.0.1:9090/prometheus/").unwrap();
        assert_eq!(
            t.url("/-/reload").as_str(),
            "http://127.0.0.1:9090/prometheus/-/reload"
        );
    }

    #[test]
    fn bad_address_messages_hide_user_info() {
        let e = HttpTarget::parse("ftp://u:hunter2@host/").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(redact_input("http://u:p@h:1/x"), "http://<redacted>@h:1/x");
        assert_eq!(redact_input("h:1/a@b"), "h:1/a@b");
    }

    #[test]
    fn scrub_removes_password_and_header_value() {
        let t = HttpTarget::parse("http://h/")
            .unwrap()
            .with_auth(BasicAuth::new("u", "pw123"));
        let token = http::basic_token(&BasicAuth::new("u", "pw123"));
        let s = t.scrub(&format!("bad pw123 and Basic {token}"));
        assert!(!s.contains("pw123") && !s.contains(&token), "{s}");
    }
}
