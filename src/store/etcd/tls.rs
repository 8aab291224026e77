//! TLS to etcd: the CA that signed the server's certificate, and this process's own
//! certificate (its identity: with `--client-cert-auth` etcd takes the user name from the
//! certificate's common name, see docs/security.md).
//!
//! The files are read when connecting, so a renewed certificate is picked up by a restart,
//! and every error names the file and the flag that gave it.

use std::path::{Path, PathBuf};

use etcd_client as ec;

use crate::store::StoreError;

/// Where the TLS material for an `etcd+tls://` store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate (PEM) the server's certificate must chain to (`--store-ca`).
    pub ca: PathBuf,
    /// This client's certificate and key (PEM; `--store-cert`, `--store-key`), if any.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl EtcdTls {
    /// The client's TLS options. The server's name is checked against the endpoint's host,
    /// so its certificate must name each `host` of `etcd+tls://host:port` (IP or DNS SAN).
    pub(super) fn options(&self) -> Result<ec::TlsOptions, StoreError> {
        if self.ca.as_os_str().is_empty() {
            return Err(StoreError::Config(
                "an etcd+tls:// store needs --store-ca FILE (or OMTD_STORE_CA)".into(),
            ));
        }
        let ca = read(&self.ca, "--store-ca")?;
        let mut options = ec::TlsOptions::new().ca_certificate(ec::Certificate::from_pem(ca));
        if let Some((cert, key)) = &self.identity {
            let cert = read(cert, "--store-cert")?;
            let key = read(key, "--store-key")?;
            options = options.identity(ec::Identity::from_pem(cert, key));
        }
        Ok(options)
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| {
        StoreError::Config(format!("{flag} {}: cannot read it: {e}", path.display()))
    })?;
    // tonic only finds out at the handshake, with a message that names no file.
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(StoreError::Config(format!(
            "{flag} {}: not a PEM file (no -----BEGIN line)",
            path.display()
        )));
    }
    Ok(bytes)
}
