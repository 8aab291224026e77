//! The Mesos leader-election entries in ZooKeeper.
//!
//! Each running master (1.4) holds an ephemeral sequential znode `/mesos/json.info_<10-digit
//! sequence>` whose data is its MasterInfo as JSON (`hostname`, `address{hostname, ip,
//! port}`, ...). The lowest sequence leads. Listing them shows every master contending, so
//! a stray master on a worker is visible even before it steals leadership — the runbook's
//! "wrong leader".
//!
//! The probe opens a short session, reads, and closes it. It reads the Mesos `zk` URL form
//! (`zk://host1:2181,host2:2181/mesos`, optionally `zk://user:pass@...` for digest auth).

use std::fmt;
use std::time::Duration;

use tracing::Instrument as _;
use zookeeper_client as zk;

use omtd_controllers::observed::MasterEntry;

use super::mesos::MasterInfoJson;
use super::{redact_input, ProbeError};

/// The znode name prefix of a Mesos master's JSON MasterInfo. (`info_` without `json.` is
/// the protobuf form older masters wrote; 1.4 writes JSON, and omtd reads only that.)
const ENTRY_PREFIX: &str = "json.info_";

/// Where the Mesos masters register: ZooKeeper hosts and the znode path.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkTarget {
    /// `host:port[,host:port...]`
    hosts: String,
    /// `/mesos`
    path: String,
    /// Digest auth `user:pass`, when the URL carries it.
    digest: Option<String>,
}

impl ZkTarget {
    /// `zk://h1:2181,h2:2181/mesos` (the content of `/etc/mesos/zk`), or the same without
    /// `zk://`.
    pub fn parse(url: &str) -> Result<ZkTarget, ProbeError> {
        let bad = |reason: &str| ProbeError::BadAddress {
            input: redact_input(url.trim()),
            reason: reason.to_owned(),
        };
        let rest = url.trim();
        let rest = rest.strip_prefix("zk://").unwrap_or(rest);
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => return Err(bad("no znode path (expected zk://host:port/mesos)")),
        };
        let (digest, hosts) = match authority.rsplit_once('@') {
            Some((cred, hosts)) => (Some(cred.to_owned()), hosts),
            None => (None, authority),
        };
        if hosts.is_empty() || hosts.split(',').any(|h| h.trim().is_empty()) {
            return Err(bad("no ZooKeeper host"));
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(bad("no znode path (expected zk://host:port/mesos)"));
        }
        Ok(ZkTarget {
            hosts: hosts.to_owned(),
            path: path.to_owned(),
            digest,
        })
    }

    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Shown without credentials.
impl fmt::Display for ZkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.hosts, self.path)
    }
}

impl fmt::Debug for ZkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkTarget")
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field("digest", &self.digest.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The masters contending for leadership, sorted by sequence: the first one leads
/// (`omtd_controllers::observed::zk_leader`). No `/mesos` znode means no master ever ran:
/// an empty list, not an error.
pub async fn mesos_masters(
    target: &ZkTarget,
    timeout: Duration,
) -> Result<Vec<MasterEntry>, ProbeError> {
    let url = target.to_string();
    let span = tracing::debug_span!("probe", probe = "zookeeper.masters", url = %url);
    match tokio::time::timeout(timeout, read_masters(target, timeout).instrument(span)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout {
            url,
            after: timeout,
        }),
    }
}

async fn read_masters(
    target: &ZkTarget,
    timeout: Duration,
) -> Result<Vec<MasterEntry>, ProbeError> {
    let url = target.to_string();
    let zk_err = |e: zk::Error| match e {
        zk::Error::Timeout => ProbeError::Timeout {
            url: url.clone(),
            after: timeout,
        },
        // With `fail_eagerly`, every host refused, dropped or ignored the session request.
        zk::Error::NoHosts => ProbeError::Unreachable {
            url: url.clone(),
            reason: "no server established a session (refused, closed, or no answer)".to_owned(),
        },
        zk::Error::ConnectionLoss => ProbeError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        },
        other => ProbeError::ZooKeeper {
            url: url.clone(),
            reason: other.to_string(),
        },
    };
    let mut connector = zk::Client::connector()
        .with_connection_timeout(timeout)
        // One pass over the hosts, not an endless cycle: the runtime retries.
        .with_fail_eagerly();
    if let Some(digest) = &target.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    let client = connector.connect(&target.hosts).await.map_err(zk_err)?;
    let children = match client.list_children(&target.path).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(zk_err(e)),
    };
    let mut entries = Vec::new();
    for name in children {
        let Some(sequence) = entry_sequence(&name) else {
            continue; // log_replicas, protobuf `info_` entries, anything else under /mesos
        };
        let path = format!("{}/{name}", target.path);
        let data = match client.get_data(&path).await {
            Ok((data, _)) => data,
            // That master's session ended between the listing and now: it no longer contends.
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(zk_err(e)),
        };
        let hostname = master_name(&data).map_err(|reason| ProbeError::BadJson {
            url: format!("zk://{}{path}", target.hosts),
            reason,
        })?;
        entries.push(MasterEntry { hostname, sequence });
    }
    entries.sort_by_key(|e| e.sequence);
    Ok(entries)
}

/// `json.info_0000000012` → 12.
pub fn entry_sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(ENTRY_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The master's name from its MasterInfo JSON: `hostname`, else `address.hostname`, else
/// `address.ip`.
pub fn master_name(data: &[u8]) -> Result<String, String> {
    let info: MasterInfoJson = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    info.name()
        .ok_or_else(|| "MasterInfo has no hostname, address or pid".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_mesos_zk_url() {
        let t = ZkTarget::parse("zk://10.0.0.1:2181,10.0.0.2:2181/mesos").unwrap();
        assert_eq!(t.hosts(), "10.0.0.1:2181,10.0.0.2:2181");
        assert_eq!(t.path(), "/mesos");
        let t = ZkTarget::parse("zk://jo:s3cret@manager:2181/mesos/").unwrap();
        assert_eq!(t.path(), "/mesos");
        assert!(!t.to_string().contains("s3cret"));
        assert!(!format!("{t:?}").contains("s3cret"));
        let e = ZkTarget::parse("zk://jo:s3cret@manager:2181").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn only_json_entries_count() {
        assert_eq!(entry_sequence("json.info_0000000012"), Some(12));
        assert_eq!(entry_sequence("info_0000000012"), None);
        assert_eq!(entry_sequence("log_replicas"), None);
        assert_eq!(entry_sequence("json.info_"), None);
    }

    #[test]
    fn master_name_reads_master_info() {
        let data = br#"{"address":{"hostname":"manager.omtd","ip":"10.0.0.1","port":5050},
            "hostname":"manager.omtd","id":"x","ip":16777226,"pid":"master@10.0.0.1:5050",
            "port":5050,"version":"1.4.1"}"#;
        assert_eq!(master_name(data).unwrap(), "manager.omtd");
        assert!(master_name(b"{}").is_err());
        assert!(master_name(b"not json").is_err());
    }
}
