//! Parsing of store URLs: `sqlite://PATH`, `etcd://host:port[,host:port]` and
//! `etcd+tls://host:port[,host:port]`, the TLS files given beside them, and the default store
//! when none is given.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::etcd::EtcdTls;
use super::StoreError;

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An embedded SQLite file (created if missing).
    Sqlite(PathBuf),
    /// An etcd v3 cluster: `host:port` endpoints, tried in turn by the client; over TLS
    /// when `tls` is set (`etcd+tls://`, its files from [`StoreUrl::with_tls`]).
    Etcd {
        endpoints: Vec<String>,
        tls: Option<EtcdTls>,
    },
}

/// The TLS files named beside the URL (`--store-ca`, `--store-cert`, `--store-key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Config(format!(
                    "store URL {s:?} has no path: use sqlite://PATH, e.g. sqlite://omtd.db"
                )));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        let (rest, tls) = match (s.strip_prefix("etcd://"), s.strip_prefix("etcd+tls://")) {
            (Some(rest), _) => (Some(rest), None),
            // The CA is filled in by `with_tls`; an empty path never reaches a connect.
            (_, Some(rest)) => (
                Some(rest),
                Some(EtcdTls {
                    ca: PathBuf::new(),
                    identity: None,
                }),
            ),
            _ => (None, None),
        };
        if let Some(rest) = rest {
            let endpoints: Vec<String> = rest
                .trim_end_matches('/')
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            if endpoints.is_empty() {
                return Err(StoreError::Config(format!(
                    "store URL {s:?} names no endpoint: use etcd://host:port[,host:port] \
                     (etcd+tls:// for TLS)"
                )));
            }
            for e in &endpoints {
                let Some((host, port)) = e.rsplit_once(':') else {
                    return Err(StoreError::Config(format!(
                        "etcd endpoint {e:?} has no port: write host:port, e.g. 127.0.0.1:2379"
                    )));
                };
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(StoreError::Config(format!(
                        "etcd endpoint {e:?} is not host:port with a port from 1 to 65535"
                    )));
                }
            }
            return Ok(StoreUrl::Etcd { endpoints, tls });
        }
        Err(StoreError::Config(format!(
            "unknown store URL {s:?}: use sqlite://PATH, etcd://host:port[,host:port] or \
             etcd+tls://host:port[,host:port]"
        )))
    }
}

/// Where the store lives when neither `--store` nor `OMTD_STORE` names one.
pub const SYSTEM_SQLITE_PATH: &str = "/var/lib/omtd/omtd.db";

impl StoreUrl {
    /// The default store: `/var/lib/omtd/omtd.db` for root (where the systemd units keep it),
    /// else `omtd/omtd.db` in the user's XDG data directory. Always absolute, so the store
    /// does not depend on the directory a command happens to run in.
    pub fn default_sqlite() -> Result<StoreUrl, StoreError> {
        let root = nix::unistd::geteuid().is_root();
        default_sqlite_path(
            root,
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("HOME"),
        )
        .map(StoreUrl::Sqlite)
    }

    /// The SQLite file this URL names, if it names one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreUrl::Sqlite(p) => Some(p),
            StoreUrl::Etcd { .. } => None,
        }
    }

    /// Takes the TLS files named beside the URL. `etcd+tls://` needs the CA (the server is
    /// always verified); a certificate needs its key; files given for a store that does not
    /// speak TLS are an error rather than silently unused (a plain `etcd://` with a CA
    /// given is most likely a URL missing its `+tls`).
    pub fn with_tls(self, files: TlsFiles) -> Result<StoreUrl, StoreError> {
        match self {
            StoreUrl::Etcd {
                endpoints,
                tls: Some(_),
            } => {
                let Some(ca) = files.ca else {
                    return Err(StoreError::Config(
                        "an etcd+tls:// store needs --store-ca FILE (or OMTD_STORE_CA): the CA \
                         certificate that signed etcd's server certificate"
                            .into(),
                    ));
                };
                let identity = match (files.cert, files.key) {
                    (Some(cert), Some(key)) => Some((cert, key)),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(StoreError::Config(
                            "--store-cert needs --store-key (or OMTD_STORE_KEY): the private \
                             key of that certificate"
                                .into(),
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(StoreError::Config(
                            "--store-key needs --store-cert (or OMTD_STORE_CERT): the \
                             certificate of that key"
                                .into(),
                        ))
                    }
                };
                Ok(StoreUrl::Etcd {
                    endpoints,
                    tls: Some(EtcdTls { ca, identity }),
                })
            }
            url if files.is_empty() => Ok(url),
            url => Err(StoreError::Config(format!(
                "--store-ca/--store-cert/--store-key (or OMTD_STORE_CA/_CERT/_KEY) are set but \
                 the store {url} does not use TLS: write etcd+tls://host:port, or unset them"
            ))),
        }
    }
}

/// [`StoreUrl::default_sqlite`] with the environment passed in, for tests. This is the XDG
/// rule the `dirs` crate applies on Linux (`$XDG_DATA_HOME` when absolute, else
/// `$HOME/.local/share`); written out here rather than pulled in, as it is four lines.
fn default_sqlite_path(
    root: bool,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, StoreError> {
    if root {
        return Ok(PathBuf::from(SYSTEM_SQLITE_PATH));
    }
    // The XDG spec: a relative XDG_DATA_HOME is invalid and must be ignored.
    let xdg = xdg_data_home.map(PathBuf::from).filter(|p| p.is_absolute());
    let data = match xdg {
        Some(dir) => dir,
        None => match home.map(PathBuf::from).filter(|p| p.is_absolute()) {
            Some(home) => home.join(".local").join("share"),
            None => {
                return Err(StoreError::Config(
                    "no store given and neither XDG_DATA_HOME nor HOME is an absolute path \
                     to put the default one under: pass --store sqlite://PATH or set OMTD_STORE"
                        .into(),
                ))
            }
        },
    };
    Ok(data.join("omtd").join("omtd.db"))
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::Etcd {
                endpoints,
                tls: None,
            } => write!(f, "etcd://{}", endpoints.join(",")),
            StoreUrl::Etcd {
                endpoints,
                tls: Some(_),
            } => write!(f, "etcd+tls://{}", endpoints.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes() {
        assert_eq!(
            "sqlite://omtd.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("omtd.db".into())
        );
        assert_eq!(
            "etcd://h1:2379,h2:2379".parse::<StoreUrl>().unwrap(),
            StoreUrl::Etcd {
                endpoints: vec!["h1:2379".into(), "h2:2379".into()],
                tls: None
            }
        );
    }

    #[test]
    fn tls_needs_its_ca_and_a_certificate_its_key() {
        let tls: StoreUrl = "etcd+tls://h1:2379".parse().unwrap();
        assert_eq!(tls.to_string(), "etcd+tls://h1:2379");
        let err = tls.clone().with_tls(TlsFiles::default()).unwrap_err();
        assert!(err.to_string().contains("--store-ca"), "{err}");
        let cert_only = TlsFiles {
            ca: Some("ca.crt".into()),
            cert: Some("a.crt".into()),
            key: None,
        };
        let err = tls.clone().with_tls(cert_only).unwrap_err();
        assert!(err.to_string().contains("--store-key"), "{err}");
        let full = TlsFiles {
            ca: Some("ca.crt".into()),
            cert: Some("a.crt".into()),
            key: Some("a.key".into()),
        };
        assert_eq!(
            tls.with_tls(full.clone()).unwrap(),
            StoreUrl::Etcd {
                endpoints: vec!["h1:2379".into()],
                tls: Some(EtcdTls {
                    ca: "ca.crt".into(),
                    identity: Some(("a.crt".into(), "a.key".into())),
                })
            }
        );
        // Files for a store without TLS: most likely a URL missing its +tls.
        for plain in ["etcd://h1:2379", "sqlite:///x.db"] {
            let url: StoreUrl = plain.parse().unwrap();
            let err = url.with_tls(full.clone()).unwrap_err();
            assert!(err.to_string().contains("etcd+tls://"), "{err}");
        }
        let url: StoreUrl = "etcd://h1:2379".parse().unwrap();
        assert_eq!(url.clone().with_tls(TlsFiles::default()).unwrap(), url);
    }

    #[test]
    fn rejects_bad_urls_with_the_fix() {
        let err = "mysql://x".parse::<StoreUrl>().unwrap_err().to_string();
        assert!(err.contains("sqlite://PATH"), "{err}");
        let err = "etcd://h1".parse::<StoreUrl>().unwrap_err().to_string();
        assert!(err.contains("host:port"), "{err}");
        let err = "etcd://h1:99999"
            .parse::<StoreUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("65535"), "{err}");
        assert!("sqlite://".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn default_store_is_absolute_for_root_and_users() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_sqlite_path(true, os("/x"), os("/home/u")).unwrap(),
            PathBuf::from("/var/lib/omtd/omtd.db")
        );
        assert_eq!(
            default_sqlite_path(false, os("/data"), os("/home/u")).unwrap(),
            PathBuf::from("/data/omtd/omtd.db")
        );
        // Unset or relative XDG_DATA_HOME: ~/.local/share.
        for xdg in [None, os("rel/dir"), os("")] {
            assert_eq!(
                default_sqlite_path(false, xdg, os("/home/u")).unwrap(),
                PathBuf::from("/home/u/.local/share/omtd/omtd.db")
            );
        }
        let err = default_sqlite_path(false, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--store"), "{err}");
        assert!(default_sqlite_path(false, None, os("relative")).is_err());
    }
}
