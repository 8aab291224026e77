//! `Credential`: a principal and its secret, and what it is for.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::SecretSource;

/// A principal/secret pair (for `use: tls`, a label and a private key with its
/// certificate). Mesos agent, Chronos framework and operator credentials all end up in the
/// master's `credentials.json`, so their principals must be unique together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialSpec {
    /// The user or principal name, e.g. `node1.omtd`. For `use: tls` a label only (who
    /// the certificate is for, e.g. `omtd-front-doors`): nothing authenticates with it.
    pub principal: String,
    /// The secret. For `use: tls` the private key, PEM (`-----BEGIN PRIVATE KEY-----`...).
    pub secret: SecretSource,
    /// What the credential is for.
    #[serde(rename = "use")]
    pub usage: CredentialUse,
    /// `use: tls` only: the certificate chain, PEM, leaf first (what Apache serves). Not a
    /// secret, so it is a plain field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// `use: tls` only: the PEM of the CA that signed the certificate, what Docker engines
    /// and clients are told to trust (`/etc/docker/certs.d/<registry>/ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialUse {
    /// A worker's Mesos agent (`/etc/mesos-slave/store/credentials.json`).
    MesosAgent,
    /// Chronos registering with the Mesos master as a framework.
    ChronosFramework,
    /// Chronos's HTTP basic auth (`http_credentials`), used by Galaxy's Chronos runner.
    ChronosHttp,
    /// A user of the Docker registry (Apache basic auth, bcrypt htpasswd).
    Registry,
    /// omtd's operator itself, towards the Mesos master (probes and maintenance calls):
    /// in the master's `credentials.json` with ACLs for reads and maintenance, so the
    /// operator never borrows an agent's credential. At most one.
    Operator,
    /// The front doors' TLS key and certificate (`Cluster.spec.frontDoors.tls`).
    Tls,
}

impl CredentialUse {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialUse::MesosAgent => "mesos-agent",
            CredentialUse::ChronosFramework => "chronos-framework",
            CredentialUse::ChronosHttp => "chronos-http",
            CredentialUse::Registry => "registry",
            CredentialUse::Operator => "operator",
            CredentialUse::Tls => "tls",
        }
    }

    /// Whether the principal ends up in the Mesos master's credentials file (so must be
    /// unique among them; never a TLS key).
    pub fn is_mesos(self) -> bool {
        matches!(
            self,
            CredentialUse::MesosAgent | CredentialUse::ChronosFramework | CredentialUse::Operator
        )
    }
}

impl fmt::Display for CredentialUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
