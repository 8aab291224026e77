//! The Apache front doors of a node: one vhost per `ServerName` its front-door roles
//! answer under ([`omtd_crds::front_door`]), the modules they use, and with TLS the
//! certificate and key they serve.
//!
//! Without `frontDoors.tls` every vhost is plain HTTP on `*:80`: Docker engines then
//! refuse the registry unless each lists it in `insecure-registries`. With it, every vhost
//! listens on `*:443` and a `*:80` vhost per name redirects there.
//!
//! Only omtd's own site is managed: Debian's `000-default.conf` goes (it would answer on
//! `*:80` before ours); other sites are left alone.

mod modules;
mod site;
mod tls;

use std::collections::{BTreeMap, BTreeSet};

use omtd_crds::front_door::{self, Clash};
use omtd_crds::plan::{FileSpec, VALIDATE_APACHE};
use omtd_crds::{Node, Role};

use crate::desired::Desired;
use crate::paths::{APACHE_DEFAULT_SITE, APACHE_SITE};
use crate::render::{absent_file, file};

pub(super) use tls::{files as tls_files, tls_credential};

/// One path of a vhost and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub role: Role,
    pub path: &'static str,
    /// The local URL it is proxied to.
    pub target: String,
}

/// One name-based vhost: every route of the roles answering under `name` on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VHost {
    pub name: String,
    pub routes: Vec<Route>,
}

/// What Apache serves on one node.
#[derive(Debug, Clone)]
pub(super) struct FrontDoor {
    pub vhosts: Vec<VHost>,
    /// The front-door roles on the host (they choose the modules).
    pub roles: BTreeSet<Role>,
    pub tls: Option<tls::TlsFiles>,
    /// Paths two roles claim under one name: the first role keeps each, the second's
    /// route is left out rather than render a vhost that sends one path two ways
    /// (validation refuses this before it is applied; this is the controller's guard).
    pub clashes: Vec<Clash>,
}

/// The front door of `node` with `roles`, or `None` when no role of it is behind Apache.
pub(super) fn front_door(
    desired: &Desired,
    node: &Node,
    roles: &BTreeSet<Role>,
) -> Option<FrontDoor> {
    let spec = &desired.spec;
    let address = node.spec.address.as_str();
    let on_host: Vec<Role> = front_door::ROLES
        .into_iter()
        .filter(|r| roles.contains(r))
        .collect();
    if on_host.is_empty() {
        return None;
    }
    let clashes = front_door::clashes(spec, address, &on_host);
    let mut by_name: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for &role in &on_host {
        let name = front_door::server_name(spec, role, address);
        for &path in front_door::paths(role) {
            let lost = clashes
                .iter()
                .any(|c| c.second == role && c.path == path && c.server_name == name);
            if lost {
                continue;
            }
            by_name.entry(name.to_owned()).or_default().push(Route {
                role,
                path,
                target: target(desired, role, path),
            });
        }
    }
    let vhosts = by_name
        .into_iter()
        .map(|(name, routes)| VHost { name, routes })
        .collect();
    Some(FrontDoor {
        vhosts,
        roles: on_host.into_iter().collect(),
        tls: tls::files(desired).ok().flatten(),
        clashes,
    })
}

/// Where a role's path goes on the host. Galaxy answers on localhost (the runbook's
/// `localhost:8080`); the editor's Galaxy runs with the `/galaxy` prefix, so the prefix is
/// kept; the registry and the monitor's services listen on 127.0.0.1.
fn target(desired: &Desired, role: Role, path: &str) -> String {
    let p = &desired.spec.ports;
    match (role, path) {
        (Role::Editor, _) => format!("http://localhost:{}/galaxy", p.galaxy),
        (Role::Registry, _) => format!("http://127.0.0.1:{}/v2", p.registry),
        (Role::Monitor, "/prometheus/") => {
            format!("http://127.0.0.1:{}/prometheus/", p.prometheus)
        }
        (Role::Monitor, _) => format!("http://127.0.0.1:{}/", p.grafana),
        _ => format!("http://localhost:{}/", p.galaxy),
    }
}

impl FrontDoor {
    /// The certificate and key, the modules, the site, and the default site's removal, in
    /// the order the agent must apply them: each Apache file is checked against the whole
    /// config as it stands (`apache2 -t`), so a module's `.load` must be in place before a
    /// site using its directives, and the certificate and key before a site naming them.
    /// The key is planned here, in this slice, and not by the credentials controller: the
    /// agent applies one slice's files in order, but the order between slices is the
    /// merge's (by controller name), which nothing promises, and a site refused for a
    /// missing key stays refused until the plan changes.
    pub fn files(&self) -> Vec<FileSpec> {
        let mut files = Vec::new();
        if let Some(t) = &self.tls {
            files.extend(t.files());
        }
        files.extend(
            modules::modules(&self.roles, self.tls.is_some())
                .into_iter()
                .map(|m| {
                    checked(file(
                        format!("/etc/apache2/mods-enabled/{m}.load"),
                        format!("LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"),
                    ))
                }),
        );
        files.push(checked(file(
            APACHE_SITE,
            site::render(&self.vhosts, self.tls.as_ref()),
        )));
        files.push(absent_file(APACHE_DEFAULT_SITE));
        files
    }
}

fn checked(mut f: FileSpec) -> FileSpec {
    f.validate = Some(VALIDATE_APACHE.to_owned());
    f
}
