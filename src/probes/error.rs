//! Why a probe got no usable answer.
//!
//! Every message names the address asked (so a person knows which service to look at) and
//! never a credential: URLs are shown with their user-info removed, and text a server sent
//! back is scrubbed of the secret before it is kept (see `HttpTarget::scrub`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing (or not all of the answer) arrived within the probe's time limit.
    #[error("{url}: no answer within {after:?}")]
    Timeout { url: String, after: Duration },

    /// Connection refused, no route, DNS failure, connection reset, ...
    #[error("{url}: unreachable: {reason}")]
    Unreachable { url: String, reason: String },

    /// The service answered, but not with a status this probe can use.
    #[error("{url}: HTTP {status}{}{}", hint(*status), detail(body))]
    BadStatus {
        url: String,
        status: u16,
        /// The start of the answer's body (scrubbed of credentials), for the operator.
        body: String,
    },

    /// The service answered 2xx with a body that is not the documented JSON.
    #[error("{url}: unexpected answer: {reason}")]
    BadJson { url: String, reason: String },

    /// A redirect we will not follow (no or bad `Location`, a scheme change, a loop).
    #[error("{url}: redirect not followed: {reason}")]
    Redirect { url: String, reason: String },

    /// A configured address that cannot be used (shown without its user-info).
    #[error("invalid address {input}: {reason}")]
    BadAddress { input: String, reason: String },

    /// ZooKeeper answered with an error (no session, not authorized, ...).
    #[error("{url}: zookeeper: {reason}")]
    ZooKeeper { url: String, reason: String },

    /// The HTTP client itself could not be built (TLS initialisation).
    #[error("cannot build the probes' HTTP client: {0}")]
    Client(String),
}

impl ProbeError {
    /// The HTTP status, for a `BadStatus` answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProbeError::BadStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, ProbeError::Timeout { .. })
    }
}

/// What a status usually means for these services, so a message is actionable on its own.
fn hint(status: u16) -> &'static str {
    match status {
        401 => " (credentials missing or refused)",
        403 => " (forbidden for these credentials)",
        404 => " (no such endpoint: wrong base path or version?)",
        503 => " (service unavailable: no leader elected yet?)",
        _ => "",
    }
}

fn detail(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}
