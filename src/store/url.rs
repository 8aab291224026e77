//! Parsing of store URLs: `sqlite://PATH` and `etcd://host:port[,host:port]`.

use std::fmt;
use std::path::PathBuf;
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
}
