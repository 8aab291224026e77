//! What the cluster's services would read from a sim host, read the way they read it.
//!
//! The packaged launchers turn each flag file into an argument with shell command
//! substitution (`--name "$(cat file)"` for Mesos, `--name "$(< file)"` for Chronos), which
//! drops trailing newlines: a newline at the end of a *flag* file is harmless. Files that
//! the services read themselves — Mesos's credentials JSON, Chronos's secret file — are
//! taken byte for byte: there a trailing newline is part of the secret.

use serde::Deserialize;

use crate::agent::drivers::sim::SimHost;

/// A flag file as the launcher passes it: content with trailing newlines dropped, `None`
/// when the file is missing or not text (the launcher would then pass no such flag).
pub fn flag(host: &SimHost, path: &str) -> Option<String> {
    let file = host.file(path)?;
    let text = String::from_utf8(file.content).ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

/// A flag that is `true` (Mesos's boolean flags).
pub fn flag_true(host: &SimHost, path: &str) -> bool {
    flag(host, path).is_some_and(|v| v == "true")
}

/// Exact bytes of a file, `None` when missing.
pub fn bytes(host: &SimHost, path: &str) -> Option<Vec<u8>> {
    host.file(path).map(|f| f.content)
}

/// One principal and its secret, compared byte for byte. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Credential {
    pub principal: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    credentials: Vec<Credential>,
}

/// The master's `--credentials` file (`{"credentials":[...]}`), found through the
/// `credentials` flag file. Missing or unparsable: no credentials (a real master would
/// refuse to start with an unparsable file; either way nobody authenticates).
pub fn master_credentials(host: &SimHost) -> Vec<Credential> {
    let Some(path) = flag(host, "/etc/mesos-master/credentials") else {
        return Vec::new();
    };
    bytes(host, &path)
        .and_then(|b| serde_json::from_slice::<CredentialsFile>(&b).ok())
        .map(|f| f.credentials)
        .unwrap_or_default()
}

/// The agent's `--credential` file (`{"principal","secret"}`), through its flag file.
/// `None`: the agent presents no credential (or one Mesos could not parse).
pub fn agent_credential(host: &SimHost) -> Option<Credential> {
    let path = flag(host, "/etc/mesos-slave/credential")?;
    serde_json::from_slice(&bytes(host, &path)?).ok()
}

/// Chronos's Mesos principal and secret, from where its launcher reads flags
/// (`/etc/chronos/conf/`): the principal flag, and the exact bytes of the file the
/// secret-file flag names. `None`: Chronos registers without authenticating. A secret
/// that is not UTF-8 cannot match any credential, so it becomes an impossible one.
pub fn chronos_credential(host: &SimHost) -> Option<Credential> {
    let principal = flag(host, "/etc/chronos/conf/mesos_authentication_principal")?;
    let secret = flag(host, "/etc/chronos/conf/mesos_authentication_secret_file")
        .and_then(|path| bytes(host, &path))
        .map(|b| String::from_utf8(b).unwrap_or_else(|_| "\u{0}not-utf8".to_owned()))
        .unwrap_or_default();
    Some(Credential { principal, secret })
}

/// A Mesos ZooKeeper URL, `zk://host1:port,host2:port/path`, as hosts (without ports) and
/// the znode path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    pub hosts: Vec<String>,
    pub path: String,
}

impl ZkUrl {
    pub fn parse(text: &str) -> Option<ZkUrl> {
        let rest = text.trim().strip_prefix("zk://")?;
        let slash = rest.find('/')?;
        let (authority, path) = rest.split_at(slash);
        // `user:pass@hosts`: digest auth, irrelevant to who is reached.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let hosts: Vec<String> = authority
            .split(',')
            .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        let path = path.trim_end_matches('/');
        (!hosts.is_empty() && !path.is_empty()).then(|| ZkUrl {
            hosts,
            path: path.to_owned(),
        })
    }
}

/// The ZooKeeper URL a Mesos service on this host follows (`/etc/mesos/zk`: the packaged
/// master, agent and Chronos launchers all take `--master`/`--zk` from it).
pub fn zk(host: &SimHost) -> Option<ZkUrl> {
    ZkUrl::parse(&flag(host, "/etc/mesos/zk")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zk_urls_parse_like_mesos_reads_them() {
        let z = ZkUrl::parse("zk://10.0.0.12:2181/mesos").unwrap();
        assert_eq!(z.hosts, vec!["10.0.0.12"]);
        assert_eq!(z.path, "/mesos");
        let z = ZkUrl::parse("zk://u:p@a:1,b:2/mesos/").unwrap();
        assert_eq!(z.hosts, vec!["a", "b"]);
        assert_eq!(z.path, "/mesos");
        assert!(ZkUrl::parse("zk://a:1").is_none());
        assert!(ZkUrl::parse("http://a:1/mesos").is_none());
    }

    #[test]
    fn flag_files_lose_trailing_newlines_secret_files_do_not() {
        let h = SimHost::new();
        h.edit_file(
            "/etc/chronos/conf/mesos_authentication_principal",
            b"chronos\n",
        );
        h.edit_file(
            "/etc/chronos/conf/mesos_authentication_secret_file",
            b"/s\n",
        );
        h.edit_file("/s", b"pw\n");
        let c = chronos_credential(&h).unwrap();
        assert_eq!(c.principal, "chronos");
        assert_eq!(c.secret, "pw\n");
        assert!(!format!("{c:?}").contains("pw"));
    }
}
