//! Validation of objects, alone and as a whole desired state.
//!
//! Every finding names the object, the field path, what is wrong and how to fix it. Errors
//! stop an apply; warnings are printed and the apply goes on. Messages never include a
//! secret's value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::kinds::{ClusterSpec, CredentialSpec, CredentialUse, NodeSpec, Role, VolumeSpec};
use crate::object::{Kind, Object, ObjectKey};
use crate::secret::SecretSource;
use crate::tls_material;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding: `error: node/node1.omtd: spec.address: ... (fix: ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub object: ObjectKey,
    /// Dotted field path, e.g. `spec.credential`.
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}: {}: {}: {}",
            self.object, self.field, self.message
        )?;
        if !self.fix.is_empty() {
            write!(f, " (fix: {})", self.fix)?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one object.
struct Findings<'a> {
    object: ObjectKey,
    out: &'a mut Vec<Diagnostic>,
}

impl Findings<'_> {
    fn push(
        &mut self,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.out.push(Diagnostic {
            severity,
            object: self.object.clone(),
            field: field.to_owned(),
            message: message.into(),
            fix: fix.into(),
        });
    }
    fn error(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Error, field, message, fix);
    }
    fn warn(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Warning, field, message, fix);
    }
}

/// Validates the complete desired state: every object alone, then the references and
/// uniqueness rules between them. `objects` is the state as it would be after the apply.
pub fn validate_set(objects: &[Object]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for obj in objects {
        validate_object(obj, &mut out);
    }
    cross_checks(objects, &mut out);
    out.sort_by(|a, b| (a.severity, &a.object, &a.field).cmp(&(b.severity, &b.object, &b.field)));
    out
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

/// Field-level checks of one object.
pub fn validate_object(obj: &Object, out: &mut Vec<Diagnostic>) {
    let mut f = Findings {
        object: obj.key(),
        out,
    };
    check_name(&mut f, "metadata.name", obj.name());
    for key in obj.meta().labels.keys() {
        check_label_key(&mut f, key);
    }
    match obj {
        Object::Cluster(c) => check_cluster(&mut f, &c.spec),
        Object::Credential(c) => check_credential(&mut f, &c.spec),
        Object::Node(n) => check_node(&mut f, &n.spec),
        Object::Volume(v) => check_volume(&mut f, &v.spec),
    }
}

/// DNS-1123 subdomain: what Kubernetes accepts for names, and what a host name needs.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_name(f: &mut Findings, field: &str, name: &str) {
    if !is_dns_name(name) {
        f.error(
            field,
            format!("{name:?} is not a valid name"),
            "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters (e.g. node1.omtd)",
        );
    }
}

fn check_label_key(f: &mut Findings, key: &str) {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b))
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        f.error(
            &format!("metadata.labels.{key}"),
            format!("label key {key:?} is not valid"),
            "use letters, digits, '-', '_', '.', '/' starting with a letter or digit",
        );
    }
}

/// An absolute, normalised path: starts with '/', no empty, '.' or '..' components, no
/// trailing '/', no control characters.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("is relative");
    }
    if path.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    if path == "/" {
        return None;
    }
    if path.ends_with('/') {
        return Some("ends with '/'");
    }
    for comp in path[1..].split('/') {
        match comp {
            "" => return Some("contains '//'"),
            "." => return Some("contains a '.' component"),
            ".." => return Some("contains a '..' component"),
            _ => {}
        }
    }
    None
}

fn check_path(f: &mut Findings, field: &str, path: &str, example: &str) {
    if let Some(problem) = path_problem(path) {
        f.error(
            field,
            format!("path {path:?} {problem}"),
            format!("write an absolute, normalised path such as {example}"),
        );
    }
}

/// An address other hosts can reach: an IP address, or a DNS name that is not a
/// mistyped IPv4 address (all-numeric labels must parse as IPv4).
pub fn address_problem(addr: &str) -> Option<String> {
    if addr.parse::<IpAddr>().is_ok() {
        return None;
    }
    let looks_numeric = addr
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if looks_numeric {
        return Some(format!("{addr:?} is not a valid IPv4 address"));
    }
    if !is_dns_name(&addr.to_ascii_lowercase()) {
        return Some(format!("{addr:?} is neither an IP address nor a DNS name"));
    }
    None
}

fn check_cluster(f: &mut Findings, spec: &ClusterSpec) {
    if let Some(zk) = &spec.zookeeper {
        if let Some(problem) = zk_url_problem(zk) {
            f.error(
                "spec.zookeeper",
                problem,
                "write zk://host:port[,host:port]/path, e.g. zk://10.0.0.3:2181/mesos",
            );
        }
    }
    check_path(
        f,
        "spec.paths.executor",
        &spec.paths.executor,
        "/srv/executor",
    );
    check_path(f, "spec.paths.editor", &spec.paths.editor, "/srv/editor");
    check_path(
        f,
        "spec.paths.registryData",
        &spec.paths.registry_data,
        "/mnt/registry",
    );
    let p = &spec.ports;
    for (name, port) in [
        ("zookeeper", p.zookeeper),
        ("mesosMaster", p.mesos_master),
        ("mesosAgent", p.mesos_agent),
        ("chronosHttp", p.chronos_http),
        ("chronosHttps", p.chronos_https),
        ("galaxy", p.galaxy),
        ("registry", p.registry),
        ("prometheus", p.prometheus),
        ("grafana", p.grafana),
        ("nodeExporter", p.node_exporter),
        ("cadvisor", p.cadvisor),
    ] {
        if port == 0 {
            f.error(
                &format!("spec.ports.{name}"),
                "port 0 is not a port",
                "use a port from 1 to 65535",
            );
        }
    }
    for (i, hp) in spec.monitoring.operators.iter().enumerate() {
        if let Some(problem) = host_port_problem(hp) {
            f.error(
                &format!("spec.monitoring.operators[{i}]"),
                problem,
                "write the operator's --metrics-addr as host:port, e.g. 10.0.0.12:9464",
            );
        }
    }
}

/// `host:port` with a valid host and a port from 1 (an IPv6 host in brackets).
fn host_port_problem(hp: &str) -> Option<String> {
    let Some((host, port)) = hp.rsplit_once(':') else {
        return Some(format!("{hp:?} is not host:port"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Some(problem) = address_problem(host) {
        return Some(problem);
    }
    if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return Some(format!("{port:?} in {hp:?} is not a port from 1 to 65535"));
    }
    None
}

fn zk_url_problem(url: &str) -> Option<String> {
    let Some(rest) = url.strip_prefix("zk://") else {
        return Some(format!("{url:?} does not start with zk://"));
    };
    let Some((hosts, path)) = rest.split_once('/') else {
        return Some(format!("{url:?} has no path (e.g. /mesos)"));
    };
    if path.is_empty() {
        return Some(format!("{url:?} has an empty path"));
    }
    for hp in hosts.split(',') {
        let ok = hp.rsplit_once(':').is_some_and(|(h, p)| {
            address_problem(h).is_none() && p.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Some(format!("{hp:?} in {url:?} is not host:port"));
        }
    }
    None
}

fn check_node(f: &mut Findings, spec: &NodeSpec) {
    if let Some(problem) = address_problem(&spec.address) {
        f.error(
            "spec.address",
            problem,
            "write an IPv4/IPv6 address such as 10.0.0.11, or a DNS name",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, role) in spec.roles.iter().enumerate() {
        if !seen.insert(*role) {
            f.error(
                &format!("spec.roles[{i}]"),
                format!("role {role} is listed twice"),
                "list each role once",
            );
        }
    }
    if spec.roles.is_empty() {
        f.warn(
            "spec.roles",
            "the node has no roles, so omtd will run nothing on it",
            "add roles, e.g. roles: [worker]",
        );
    }
    let worker = spec.roles.contains(&Role::Worker);
    match (&spec.credential, worker) {
        (None, true) => f.error(
            "spec.credential",
            "a worker needs a credential for its Mesos agent",
            "name a Credential with use: mesos-agent, e.g. credential: node1.omtd",
        ),
        (Some(_), false) => f.warn(
            "spec.credential",
            "only workers use a credential; this node has no worker role",
            "remove spec.credential or add the worker role",
        ),
        _ => {}
    }
}

fn check_credential(f: &mut Findings, spec: &CredentialSpec) {
    let p = &spec.principal;
    if p.is_empty() {
        f.error(
            "spec.principal",
            "the principal is empty",
            "give a principal such as node1.omtd",
        );
    } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        f.error(
            "spec.principal",
            format!("principal {p:?} contains white space"),
            "remove spaces and newlines from the principal",
        );
    } else if matches!(
        spec.usage,
        CredentialUse::ChronosHttp | CredentialUse::Registry
    ) && p.contains(':')
    {
        f.error(
            "spec.principal",
            format!(
                "principal {p:?} contains ':', which separates user and password in {} credentials",
                spec.usage
            ),
            "choose a user name without ':'",
        );
    }
    check_secret_source(f, &spec.secret, spec.usage);
    check_tls(f, spec);
}

/// A TLS credential carries a certificate (and maybe its CA); no other credential does.
fn check_tls(f: &mut Findings, spec: &CredentialSpec) {
    let tls = spec.usage == CredentialUse::Tls;
    if !tls {
        for (field, given) in [
            ("spec.certificate", spec.certificate.is_some()),
            ("spec.ca", spec.ca.is_some()),
        ] {
            if given {
                f.error(
                    field,
                    format!("only a tls credential has a {}", &field[5..]),
                    format!("remove {field}, or set use: tls"),
                );
            }
        }
        return;
    }
    let leaf = match spec.certificate.as_deref() {
        None => {
            f.error(
                "spec.certificate",
                "a tls credential needs the certificate Apache serves",
                "set spec.certificate to the PEM chain, leaf first (-----BEGIN CERTIFICATE-----...)",
            );
            None
        }
        // Parsed for real: Apache's configtest does not read it, its restart does.
        Some(pem) => match tls_material::leaf(pem) {
            Ok(leaf) => Some(leaf),
            Err(problem) => {
                f.error(
                    "spec.certificate",
                    format!("the certificate {problem}"),
                    "paste the PEM chain, leaf first, as a YAML | block (omtd pki issue front-door makes one)",
                );
                None
            }
        },
    };
    if let Some(Err(problem)) = spec.ca.as_deref().map(tls_material::leaf) {
        f.error(
            "spec.ca",
            format!("the CA certificate {problem}"),
            "paste the CA's PEM as a YAML | block (omtd pki's ca.crt), or remove spec.ca",
        );
    }
    if let Some(key) = &spec.secret.value {
        let key = key.expose();
        // Never echo the value: it is the private key.
        if !key.contains("-----BEGIN") || !key.contains("PRIVATE KEY-----") {
            f.error(
                "spec.secret.value",
                "the secret of a tls credential is its private key, and this is not PEM",
                "give the key as PEM (-----BEGIN PRIVATE KEY-----...), e.g. secret: {fromFile: /etc/omtd/secrets/tls.key}",
            );
        } else if leaf
            .as_ref()
            .and_then(|l| tls_material::key_matches(l, key))
            == Some(false)
        {
            f.error(
                "spec.secret",
                "the private key does not belong to spec.certificate (Apache would not start with the pair)",
                "give the key the certificate was issued for, or the certificate of this key",
            );
        }
    }
}

/// The Cluster's front doors against the nodes and credentials: the TLS and pull
/// credentials exist and are for that use, and no host's vhosts clash.
fn front_door_checks(
    cluster: &crate::object::Cluster,
    nodes: &[&crate::object::Node],
    creds: &BTreeMap<&str, &CredentialSpec>,
    out: &mut Vec<Diagnostic>,
) {
    let mut f = Findings {
        object: ObjectKey {
            kind: Kind::Cluster,
            name: cluster.metadata.name.clone(),
        },
        out,
    };
    // Clashes first: they need no frontDoors section (its absence is one name per host).
    // Each node's roles: its own and the Cluster's assignments (as Desired::roles does).
    let mut served: Vec<(Role, String)> = Vec::new();
    for n in nodes {
        let node = n.metadata.name.as_str();
        let mut roles: Vec<Role> = n.spec.roles.clone();
        for (role_name, holder) in cluster.spec.roles.entries() {
            if holder == Some(node) {
                roles.extend(Role::ALL.into_iter().filter(|r| r.as_str() == role_name));
            }
        }
        for role in &roles {
            if !crate::front_door::paths(*role).is_empty() {
                let name = crate::front_door::server_name(&cluster.spec, *role, &n.spec.address);
                served.push((*role, name.to_owned()));
            }
        }
        for clash in crate::front_door::clashes(&cluster.spec, &n.spec.address, &roles) {
            f.error(
                &format!("spec.frontDoors.names.{}", clash.second),
                format!("on node/{node}, {clash}"),
                clash.fix(),
            );
        }
    }
    let Some(doors) = cluster.spec.front_doors.as_ref() else {
        return;
    };
    for (field, name, usage) in [
        (
            "spec.frontDoors.tls",
            doors.tls.as_deref(),
            CredentialUse::Tls,
        ),
        (
            "spec.frontDoors.registryPull",
            doors.registry_pull.as_deref(),
            CredentialUse::Registry,
        ),
    ] {
        let Some(name) = name else { continue };
        match creds.get(name) {
            None => f.error(
                field,
                format!("credential {name:?} does not exist"),
                format!("apply a Credential named {name} with use: {usage}, or fix the name"),
            ),
            Some(c) if c.usage != usage => f.error(
                field,
                format!("credential {name:?} is for {}, not {usage}", c.usage),
                format!("name a Credential with use: {usage}"),
            ),
            Some(_) => {}
        }
    }
    // The certificate must cover every name a vhost answers to, or browsers and Docker
    // refuse that door (its own problems are the credential's errors).
    let leaf = doors
        .tls
        .as_deref()
        .and_then(|t| creds.get(t))
        .filter(|c| c.usage == CredentialUse::Tls)
        .and_then(|c| c.certificate.as_deref())
        .and_then(|pem| tls_material::leaf(pem).ok());
    if let (Some(leaf), Some(tls)) = (leaf, doors.tls.as_deref()) {
        for (role, name) in &served {
            if !tls_material::covers(&leaf.names, name) {
                f.error(
                    "spec.frontDoors.tls",
                    format!(
                        "the certificate of credential/{tls} does not cover the {role} front door's name {name:?} (it covers: {})",
                        if leaf.names.is_empty() { "no subjectAltName".to_owned() } else { leaf.names.join(", ") }
                    ),
                    format!("issue one that does (omtd pki issue front-door --san {name} ...), or set spec.frontDoors.names.{role}"),
                );
            }
        }
    }
    for (role, name) in doors.names.entries() {
        let Some(name) = name else { continue };
        if let Some(problem) = address_problem(name) {
            f.error(
                &format!("spec.frontDoors.names.{role}"),
                problem,
                "write the DNS name users reach this role at, e.g. galaxy.example.org",
            );
        }
    }
}

fn check_secret_source(f: &mut Findings, src: &SecretSource, usage: CredentialUse) {
    let given = [
        src.value.is_some(),
        src.from_file.is_some(),
        src.from_env.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        f.error(
            "spec.secret",
            format!("exactly one of value, fromFile, fromEnv must be set ({given} are)"),
            "keep one of secret.value, secret.fromFile, secret.fromEnv",
        );
        return;
    }
    if let Some(v) = &src.value {
        let v = v.expose();
        if v.is_empty() {
            f.error(
                "spec.secret.value",
                "the secret is empty",
                "give a non-empty secret",
            );
        } else if usage != CredentialUse::Tls && v.contains(['\n', '\r']) {
            // (A TLS key is PEM, lines by nature; Apache reads it as such.)
            // Mesos and Chronos read these files byte for byte: a newline breaks authentication.
            f.error(
                "spec.secret.value",
                "the secret contains a newline (Mesos and Chronos would then fail to authenticate)",
                "remove the newline; in YAML use a quoted string, not a | block",
            );
        }
    }
    if let Some(path) = &src.from_file {
        if path.is_empty() {
            f.error(
                "spec.secret.fromFile",
                "the file path is empty",
                "give the path of a file holding the secret",
            );
        }
    }
    if let Some(var) = &src.from_env {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            f.error(
                "spec.secret.fromEnv",
                format!("{var:?} is not an environment variable name"),
                "give a name such as NODE1_SECRET",
            );
        }
    }
}

/// Volume group and logical volume names as lvm2 accepts them.
fn lvm_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

fn check_volume(f: &mut Findings, spec: &VolumeSpec) {
    check_path(f, "spec.device", &spec.device, "/dev/vdb");
    if let Some(mp) = &spec.mount_point {
        check_path(f, "spec.mountPoint", mp, "/srv/executor/database");
        if mp == "/" {
            f.error(
                "spec.mountPoint",
                "omtd does not manage the root filesystem",
                "mount the volume on a folder, e.g. /volumes/nfs1",
            );
        }
    }
    for (field, name) in [
        ("spec.volumeGroup", &spec.volume_group),
        ("spec.logicalVolume", &spec.logical_volume),
    ] {
        if let Some(name) = name {
            if !lvm_name_ok(name) {
                f.error(field, format!("{name:?} is not a valid LVM name"), "use letters, digits, '+', '_', '.', '-' (not starting with '-'), e.g. nfsstore");
            }
        }
    }
    if spec.logical_volume.is_some() && spec.volume_group.is_none() {
        f.error(
            "spec.logicalVolume",
            "a logical volume needs a volume group",
            "set spec.volumeGroup, e.g. nfsstore",
        );
    }
    if spec.volume_group.is_some()
        && spec.logical_volume.is_none()
        && (spec.filesystem.is_some() || spec.mount_point.is_some())
    {
        f.error(
            "spec.filesystem",
            "a filesystem in a volume group lives on a logical volume, and none is named",
            "set spec.logicalVolume (e.g. nfs_logical), or drop volumeGroup to format the device itself",
        );
    }
    match (&spec.filesystem, &spec.mount_point) {
        (Some(_), None) => f.error(
            "spec.mountPoint",
            "a filesystem without a mount point is never mounted",
            "set spec.mountPoint",
        ),
        (None, Some(_)) => f.error(
            "spec.filesystem",
            "a mount point needs a filesystem",
            "set spec.filesystem: ext4",
        ),
        _ => {}
    }
    if spec.volume_group.is_none() && spec.filesystem.is_none() {
        f.error(
            "spec",
            "the volume neither joins a volume group nor carries a filesystem",
            "set spec.volumeGroup, or spec.filesystem and spec.mountPoint",
        );
    }
}

/// Rules that need more than one object: references, uniqueness, single-host roles.
fn cross_checks(objects: &[Object], out: &mut Vec<Diagnostic>) {
    let mut seen = BTreeSet::new();
    for obj in objects {
        if !seen.insert(obj.key()) {
            Findings {
                object: obj.key(),
                out,
            }
            .error(
                "metadata.name",
                format!("{} is given twice", obj.key()),
                "keep one document per object",
            );
        }
    }

    let clusters: Vec<_> = objects
        .iter()
        .filter_map(|o| {
            if let Object::Cluster(c) = o {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    let nodes: Vec<_> = objects
        .iter()
        .filter_map(|o| {
            if let Object::Node(n) = o {
                Some(n)
            } else {
                None
            }
        })
        .collect();
    let creds: Vec<_> = objects
        .iter()
        .filter_map(|o| {
            if let Object::Credential(c) = o {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    let volumes: Vec<_> = objects
        .iter()
        .filter_map(|o| {
            if let Object::Volume(v) = o {
                Some(v)
            } else {
                None
            }
        })
        .collect();
    let node_names: BTreeSet<&str> = nodes.iter().map(|n| n.metadata.name.as_str()).collect();

    for extra in clusters.iter().skip(1) {
        Findings {
            object: ObjectKey {
                kind: Kind::Cluster,
                name: extra.metadata.name.clone(),
            },
            out,
        }
        .error(
            "metadata.name",
            format!(
                "there can be only one Cluster, and cluster/{} exists too",
                clusters[0].metadata.name
            ),
            "delete one of them or merge their settings",
        );
    }

    // Who holds each single-host role: nodes that list it, plus the Cluster's assignment.
    let mut holders: BTreeMap<Role, Vec<String>> = BTreeMap::new();
    for n in &nodes {
        for r in &n.spec.roles {
            holders
                .entry(*r)
                .or_default()
                .push(format!("node/{}", n.metadata.name));
        }
    }
    if let Some(c) = clusters.first() {
        let mut f = Findings {
            object: ObjectKey {
                kind: Kind::Cluster,
                name: c.metadata.name.clone(),
            },
            out,
        };
        for (role_name, node) in c.spec.roles.entries() {
            let Some(node) = node else { continue };
            let field = format!("spec.roles.{role_name}");
            if !node_names.contains(node) {
                f.error(
                    &field,
                    format!("node {node:?} does not exist"),
                    "name an existing Node, or apply the Node too",
                );
                continue;
            }
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == role_name)
                .unwrap_or(Role::Worker);
            let entry = holders.entry(role).or_default();
            let key = format!("node/{node}");
            if !entry.contains(&key) {
                entry.push(key);
            }
        }
    }
    for (role, who) in &holders {
        if role.is_single_host() && who.len() > 1 {
            let name = who[1]
                .split_once('/')
                .map(|(_, n)| n.to_owned())
                .unwrap_or_default();
            Findings {
                object: ObjectKey {
                    kind: Kind::Node,
                    name,
                },
                out,
            }
            .error(
                "spec.roles",
                format!(
                    "{} {role}s: {}; the cluster has exactly one {role}",
                    who.len(),
                    who.join(", ")
                ),
                format!("keep the {role} role on one node only"),
            );
        }
    }
    let has_workers = holders.get(&Role::Worker).is_some_and(|w| !w.is_empty());
    let has_manager = holders.get(&Role::Manager).is_some_and(|w| !w.is_empty());
    if has_workers && !has_manager {
        if let Some(first_worker) = nodes.iter().find(|n| n.spec.roles.contains(&Role::Worker)) {
            Findings {
                object: ObjectKey {
                    kind: Kind::Node,
                    name: first_worker.metadata.name.clone(),
                },
                out,
            }
            .warn(
                "spec.roles",
                "there are workers but no manager, so no Mesos master for their agents",
                "give one node the manager role",
            );
        }
    }

    // Node addresses are hosts: two records for one address would fight over one machine.
    let mut by_addr: BTreeMap<&str, &str> = BTreeMap::new();
    for n in &nodes {
        if let Some(other) = by_addr.insert(n.spec.address.as_str(), n.metadata.name.as_str()) {
            Findings {
                object: ObjectKey {
                    kind: Kind::Node,
                    name: n.metadata.name.clone(),
                },
                out,
            }
            .error(
                "spec.address",
                format!("address {} is also node/{other}'s", n.spec.address),
                "give each node its own address, or merge the two records and their roles",
            );
        }
    }

    // Credential references from workers.
    let cred_by_name: BTreeMap<&str, &CredentialSpec> = creds
        .iter()
        .map(|c| (c.metadata.name.as_str(), &c.spec))
        .collect();
    let mut cred_users: BTreeMap<&str, &str> = BTreeMap::new();
    for n in &nodes {
        let Some(cref) = n.spec.credential.as_deref() else {
            continue;
        };
        let mut f = Findings {
            object: ObjectKey {
                kind: Kind::Node,
                name: n.metadata.name.clone(),
            },
            out,
        };
        match cred_by_name.get(cref) {
            None => f.error(
                "spec.credential",
                format!("credential {cref:?} does not exist"),
                format!("apply a Credential named {cref} with use: mesos-agent, or fix the name"),
            ),
            Some(c) if c.usage != CredentialUse::MesosAgent => f.error(
                "spec.credential",
                format!(
                    "credential {cref:?} is for {}, not for a Mesos agent",
                    c.usage
                ),
                "name a Credential with use: mesos-agent",
            ),
            Some(_) => {
                if let Some(other) = cred_users.insert(cref, n.metadata.name.as_str()) {
                    f.error(
                        "spec.credential",
                        format!("credential {cref:?} is already node/{other}'s"),
                        "give every worker its own credential and principal",
                    );
                }
            }
        }
    }

    let doors = clusters.first().and_then(|c| c.spec.front_doors.as_ref());
    if let Some(c) = clusters.first() {
        front_door_checks(c, &nodes, &cred_by_name, out);
    }

    // Principals: the master's credentials file holds agents and Chronos together.
    let mut principals: BTreeMap<(bool, Option<CredentialUse>, &str), &str> = BTreeMap::new();
    let mut single_use: BTreeMap<CredentialUse, &str> = BTreeMap::new();
    for c in &creds {
        let name = c.metadata.name.as_str();
        let mut f = Findings {
            object: ObjectKey {
                kind: Kind::Credential,
                name: name.to_owned(),
            },
            out,
        };
        let scope = if c.spec.usage.is_mesos() {
            (true, None)
        } else {
            (false, Some(c.spec.usage))
        };
        if let Some(other) = principals.insert((scope.0, scope.1, c.spec.principal.as_str()), name)
        {
            let place = if scope.0 {
                "the Mesos master's credentials".to_owned()
            } else {
                format!("{} credentials", c.spec.usage)
            };
            f.error(
                "spec.principal",
                format!("principal {:?} is also credential/{other}'s, and principals must be unique in {place}", c.spec.principal),
                "choose a unique principal, e.g. node6.omtd for the sixth node",
            );
        }
        if matches!(
            c.spec.usage,
            CredentialUse::ChronosFramework | CredentialUse::ChronosHttp | CredentialUse::Operator
        ) {
            if let Some(other) = single_use.insert(c.spec.usage, name) {
                let who = if c.spec.usage == CredentialUse::Operator {
                    "the operator"
                } else {
                    "Chronos"
                };
                f.error(
                    "spec.use",
                    format!(
                        "credential/{other} is already the {} credential; {who} uses only one",
                        c.spec.usage
                    ),
                    "delete one of them",
                );
            }
        }
        let used = match c.spec.usage {
            CredentialUse::MesosAgent => cred_users.contains_key(name),
            CredentialUse::ChronosFramework
            | CredentialUse::ChronosHttp
            | CredentialUse::Operator => has_manager,
            CredentialUse::Registry => holders.get(&Role::Registry).is_some_and(|r| !r.is_empty()),
            CredentialUse::Tls => doors.is_some_and(|d| d.tls.as_deref() == Some(name)),
        };
        if !used {
            let why = match c.spec.usage {
                CredentialUse::MesosAgent => "no node uses this mesos-agent credential".to_owned(),
                CredentialUse::Registry => {
                    "there is no registry node to use this credential".to_owned()
                }
                CredentialUse::Operator => {
                    "there is no manager whose Mesos master would hold this operator credential"
                        .to_owned()
                }
                CredentialUse::Tls => {
                    "the Cluster's spec.frontDoors.tls does not name this tls credential".to_owned()
                }
                _ => format!(
                    "there is no manager to run Chronos with this {} credential",
                    c.spec.usage
                ),
            };
            f.warn(
                "metadata.name",
                why,
                "reference it from a node (spec.credential) or delete it",
            );
        }
    }

    // Volumes: the node exists, a device is used once per node, and the PVs of one logical
    // volume agree on its filesystem and mount point.
    let mut devices: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    let mut lvs: BTreeMap<(&str, &str, &str), &VolumeSpec> = BTreeMap::new();
    // (node, mount point) -> (volume name, its (vg, lv) if any)
    type MountOwner<'a> = (&'a str, Option<(&'a str, &'a str)>);
    let mut mounts: BTreeMap<(&str, &str), MountOwner> = BTreeMap::new();
    for v in &volumes {
        let name = v.metadata.name.as_str();
        let s = &v.spec;
        let mut f = Findings {
            object: ObjectKey {
                kind: Kind::Volume,
                name: name.to_owned(),
            },
            out,
        };
        if !node_names.contains(s.node.as_str()) {
            f.error(
                "spec.node",
                format!("node {:?} does not exist", s.node),
                "name an existing Node, or apply the Node too",
            );
        }
        if let Some(other) = devices.insert((s.node.as_str(), s.device.as_str()), name) {
            f.error(
                "spec.device",
                format!(
                    "device {} on node {} is also volume/{other}'s",
                    s.device, s.node
                ),
                "one Volume per device",
            );
        }
        let lv_key = match (s.volume_group.as_deref(), s.logical_volume.as_deref()) {
            (Some(vg), Some(lv)) => Some((vg, lv)),
            _ => None,
        };
        if let Some((vg, lv)) = lv_key {
            match lvs.get(&(s.node.as_str(), vg, lv)) {
                Some(first) if first.filesystem != s.filesystem || first.mount_point != s.mount_point => f.error(
                    "spec.mountPoint",
                    format!("the volumes of {vg}/{lv} disagree on its filesystem or mount point"),
                    "give every Volume of one logical volume the same filesystem and mountPoint",
                ),
                Some(_) => {}
                None => {
                    lvs.insert((s.node.as_str(), vg, lv), s);
                }
            }
        }
        if let Some(mp) = s.mount_point.as_deref() {
            match mounts.get(&(s.node.as_str(), mp)) {
                Some((other, other_lv)) if lv_key.is_none() || *other_lv != lv_key => f.error(
                    "spec.mountPoint",
                    format!(
                        "{mp} on node {} is also volume/{other}'s mount point",
                        s.node
                    ),
                    "mount each filesystem on its own folder",
                ),
                Some(_) => {}
                None => {
                    mounts.insert((s.node.as_str(), mp), (name, lv_key));
                }
            }
        }
    }
}
