//! The front doors' certificate and key (`Cluster.spec.frontDoors.tls`), as Apache reads
//! them.

use omtd_crds::plan::FileSpec;
use omtd_crds::{Credential, CredentialUse};

use crate::desired::Desired;
use crate::paths::{tls_certificate_path, tls_key_path};
use crate::render::{file, secret_file};

/// Why the named TLS credential cannot be served (validation refuses each before an
/// apply; the controller then renders plain HTTP and says why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsProblem {
    #[error("spec.frontDoors.tls names credential {0:?}, which does not exist or is not use: tls")]
    Missing(String),
    #[error("credential {0:?} has no certificate")]
    NoCertificate(String),
    #[error("credential {0:?} has no resolved private key (secret.value)")]
    NoKey(String),
}

/// The TLS credential the Cluster names, if it exists and is for TLS.
pub fn tls_credential(desired: &Desired) -> Option<&Credential> {
    let name = desired.spec.front_doors.as_ref()?.tls.as_deref()?;
    desired
        .credentials
        .get(name)
        .filter(|c| c.spec.usage == CredentialUse::Tls)
}

/// The certificate and key to serve: `Ok(None)` without `frontDoors.tls`.
pub fn files(desired: &Desired) -> Result<Option<TlsFiles>, TlsProblem> {
    let Some(name) = desired
        .spec
        .front_doors
        .as_ref()
        .and_then(|d| d.tls.as_deref())
    else {
        return Ok(None);
    };
    let c = tls_credential(desired).ok_or_else(|| TlsProblem::Missing(name.to_owned()))?;
    let certificate = c
        .spec
        .certificate
        .clone()
        .ok_or_else(|| TlsProblem::NoCertificate(name.to_owned()))?;
    let key = c
        .spec
        .secret
        .value
        .as_ref()
        .map(|s| s.expose().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| TlsProblem::NoKey(name.to_owned()))?;
    Ok(Some(TlsFiles {
        credential: name.to_owned(),
        certificate,
        key,
    }))
}

/// What the vhosts serve.
#[derive(Clone)]
pub struct TlsFiles {
    pub credential: String,
    certificate: String,
    key: String,
}

/// No key in a debug print.
impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    pub fn certificate_path(&self) -> String {
        tls_certificate_path(&self.credential)
    }
    pub fn key_path(&self) -> String {
        tls_key_path(&self.credential)
    }

    /// The certificate (public, 0644) and the key (a secret: 0600, root's; Apache reads
    /// it as root before it drops privileges).
    pub fn files(&self) -> Vec<FileSpec> {
        vec![
            file(self.certificate_path(), with_newline(&self.certificate)),
            secret_file(self.key_path(), with_newline(&self.key)),
        ]
    }
}

/// PEM files end with a newline; a YAML scalar may have lost it.
fn with_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_owned()
    } else {
        format!("{pem}\n")
    }
}
