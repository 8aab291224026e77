//! The cluster's certificate authority (`omtd pki`): one CA, and one certificate per
//! identity whose common name is its etcd user (`resources::roles`), so that etcd's
//! `--client-cert-auth` knows each host by the key only that host holds.
//!
//! Files live in one directory (default `/etc/omtd/pki`): `ca.crt`, `ca.key`, and
//! `NAME.crt`/`NAME.key` per identity. Keys are written 0600 and never overwritten unless
//! asked (`--renew`): losing the CA key to a careless re-run would mean re-issuing every
//! host's certificate. Certificates are public; they are written 0644.

mod files;

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::resources::roles;
use crate::store::etcd::ROOT_USER;

pub use files::PkiError;

/// The CA's common name.
const CA_NAME: &str = "omtd cluster CA";
/// How long the CA is valid: re-issuing a CA means touching every host.
const CA_DAYS: i64 = 3650;
/// Backdating, so a host whose clock is a little behind accepts a fresh certificate.
const BACKDATE: Duration = Duration::hours(1);

/// Who a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A node's agent (`agent-NODE`).
    Agent(String),
    /// The operator (`omtd-operator`).
    Operator,
    /// The CLI of whoever administers the cluster: etcd's `root` user.
    Admin,
    /// etcd's own server certificate, for the names clients dial; `name` tells the members
    /// of a cluster apart (default `etcd-server`).
    EtcdServer {
        sans: Vec<String>,
        name: Option<String>,
    },
    /// Apache's HTTPS front doors (Galaxy, the registry, the monitor): a server certificate
    /// for every ServerName (`spec.frontDoors.names`), held by a Credential `use: tls`;
    /// `name` is the file stem (default `front-doors`).
    FrontDoor {
        sans: Vec<String>,
        name: Option<String>,
    },
}

impl Subject {
    /// The file name stem (`NAME.crt`, `NAME.key`).
    pub fn file_stem(&self) -> String {
        match self {
            Subject::Agent(node) => roles::agent_user(node),
            Subject::Operator => "operator".into(),
            Subject::Admin => "admin".into(),
            Subject::EtcdServer { name, .. } => {
                name.clone().unwrap_or_else(|| "etcd-server".into())
            }
            Subject::FrontDoor { name, .. } => name.clone().unwrap_or_else(|| "front-doors".into()),
        }
    }

    /// The certificate's common name: the etcd user of a client certificate.
    pub fn common_name(&self) -> String {
        match self {
            Subject::Agent(node) => roles::agent_user(node),
            Subject::Operator => roles::OPERATOR_USER.into(),
            Subject::Admin => ROOT_USER.into(),
            Subject::EtcdServer { .. } | Subject::FrontDoor { .. } => self.file_stem(),
        }
    }
}

/// The files of one issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub common_name: String,
}

/// A PKI directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Pki { dir: dir.into() }
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Makes the CA. Returns false (and changes nothing) when the directory has one.
    pub fn init(&self) -> Result<bool, PkiError> {
        if self.ca_key().exists() {
            return Ok(false);
        }
        files::private_dir(&self.dir)?;
        let key = KeyPair::generate().map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_DAYS);
        let cert = params.self_signed(&key).map_err(PkiError::Generate)?;
        // The key first: a crash between the two leaves a key without a certificate, which
        // `init` refuses to overwrite and the operator sees, rather than a certificate
        // whose key is gone.
        files::write_new(&self.ca_key(), key.serialize_pem().as_bytes(), 0o600)?;
        files::write_new(&self.ca_cert(), cert.pem().as_bytes(), 0o644)?;
        Ok(true)
    }

    /// Issues a certificate for `subject`, valid for `days`, signed by the CA. An existing
    /// one is kept unless `renew` (then key and certificate are both replaced).
    pub fn issue(&self, subject: &Subject, days: u32, renew: bool) -> Result<Issued, PkiError> {
        let stem = subject.file_stem();
        let issued = Issued {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
            common_name: subject.common_name(),
        };
        if !renew && (issued.cert.exists() || issued.key.exists()) {
            return Err(PkiError::Exists(issued.cert));
        }
        let ca_pem = files::read(&self.ca_cert(), "the CA certificate (omtd pki init)")?;
        let ca_key_pem = files::read(&self.ca_key(), "the CA key (omtd pki init)")?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Parse {
            path: self.ca_key(),
            error: e,
        })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| PkiError::Parse {
            path: self.ca_cert(),
            error: e,
        })?;

        let sans = match subject {
            Subject::EtcdServer { sans, .. } if sans.is_empty() => return Err(PkiError::NoSan),
            Subject::EtcdServer { sans, .. } => sans.clone(),
            Subject::FrontDoor { sans, .. } if sans.is_empty() => return Err(PkiError::NoSan),
            Subject::FrontDoor { sans, .. } => sans.clone(),
            _ => Vec::new(),
        };
        let mut params = CertificateParams::new(sans).map_err(PkiError::Generate)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, issued.common_name.clone());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match subject {
            // etcd also dials its peers and itself (the gRPC gateway) with this certificate.
            Subject::EtcdServer { .. } => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            // Browsers, Docker and curl check the server's name and this purpose.
            Subject::FrontDoor { .. } => vec![ExtendedKeyUsagePurpose::ServerAuth],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(i64::from(days.max(1)));
        let key = KeyPair::generate().map_err(PkiError::Generate)?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(PkiError::Generate)?;
        files::write(&issued.key, key.serialize_pem().as_bytes(), 0o600, renew)?;
        files::write(&issued.cert, cert.pem().as_bytes(), 0o644, renew)?;
        Ok(issued)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_makes_a_private_ca_once_and_issue_signs_with_it() {
        let d = tempfile::tempdir().unwrap();
        let pki = Pki::at(d.path().join("pki"));
        assert!(pki.init().unwrap());
        let ca = std::fs::read(pki.ca_cert()).unwrap();
        assert_eq!(mode(&pki.ca_key()), 0o600);
        assert_eq!(mode(pki.dir()), 0o700);
        // A second init keeps the CA (every issued certificate depends on it).
        assert!(!pki.init().unwrap());
        assert_eq!(std::fs::read(pki.ca_cert()).unwrap(), ca);

        let a = pki
            .issue(&Subject::Agent("node1".into()), 30, false)
            .unwrap();
        assert_eq!(a.common_name, "agent-node1");
        assert_eq!(mode(&a.key), 0o600);
        assert!(std::fs::read_to_string(&a.cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        // Issuing again is refused unless renewing, which replaces the key.
        let err = pki
            .issue(&Subject::Agent("node1".into()), 30, false)
            .unwrap_err();
        assert!(err.to_string().contains("--renew"), "{err}");
        let old_key = std::fs::read(&a.key).unwrap();
        pki.issue(&Subject::Agent("node1".into()), 30, true)
            .unwrap();
        assert_ne!(std::fs::read(&a.key).unwrap(), old_key);

        assert_eq!(
            pki.issue(&Subject::Admin, 30, false).unwrap().common_name,
            "root"
        );
        let err = pki
            .issue(
                &Subject::EtcdServer {
                    sans: vec![],
                    name: None,
                },
                30,
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("--san"), "{err}");
    }

    #[test]
    fn issue_without_a_ca_says_to_init() {
        let d = tempfile::tempdir().unwrap();
        let err = Pki::at(d.path())
            .issue(&Subject::Operator, 30, false)
            .unwrap_err();
        assert!(err.to_string().contains("omtd pki init"), "{err}");
    }
}
