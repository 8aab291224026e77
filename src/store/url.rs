//! Parsing of store URLs: `sqlite://PATH` and `etcd://host:port[,host:port]`, and the
//! default store when none is given.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::StoreError;

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An embedded SQLite file (created if missing).
    Sqlite(PathBuf),
    /// An etcd v3 cluster: `host:port` endpoints, tried in turn by the client.
    Etcd(Vec<String>),
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
        if let Some(rest) = s.strip_prefix("etcd://") {
            let endpoints: Vec<String> = rest
                .trim_end_matches('/')
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            if endpoints.is_empty() {
                return Err(StoreError::Config(format!(
                    "store URL {s:?} names no endpoint: use etcd://host:port[,host:port]"
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
            return Ok(StoreUrl::Etcd(endpoints));
        }
        Err(StoreError::Config(format!(
            "unknown store URL {s:?}: use sqlite://PATH or etcd://host:port[,host:port]"
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
            StoreUrl::Etcd(_) => None,
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
            StoreUrl::Etcd(eps) => write!(f, "etcd://{}", eps.join(",")),
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
            StoreUrl::Etcd(vec!["h1:2379".into(), "h2:2379".into()])
        );
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
