//! The web front doors: which paths each role serves through Apache, under which
//! `ServerName`, and when two roles on one host would collide. Shared by validation (which
//! refuses a clash before it is applied) and the node controller (which never renders one).

use std::fmt;

use crate::kinds::{ClusterSpec, Role};

/// The roles that have a vhost, in the order their routes are claimed on a shared host.
pub const ROLES: [Role; 4] = [Role::Executor, Role::Editor, Role::Registry, Role::Monitor];

/// The URL paths a role serves. The editor lives under `/galaxy` (the runbook's
/// `https://<fqdn>/galaxy`; its Galaxy is configured with that prefix); the monitor serves
/// Grafana at `/` and Prometheus at `/prometheus/`.
pub fn paths(role: Role) -> &'static [&'static str] {
    match role {
        Role::Executor => &["/"],
        Role::Editor => &["/galaxy"],
        Role::Registry => &["/v2"],
        Role::Monitor => &["/", "/prometheus/"],
        Role::Manager | Role::Worker => &[],
    }
}

/// The `ServerName` of `role`'s vhost on a node at `address`: the Cluster's
/// `frontDoors.names.<role>`, or the address.
pub fn server_name<'a>(spec: &'a ClusterSpec, role: Role, address: &'a str) -> &'a str {
    spec.front_doors
        .as_ref()
        .and_then(|f| f.names.get(role))
        .unwrap_or(address)
}

/// Two roles on one host claiming one path under one name: one vhost cannot route it to
/// both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub server_name: String,
    pub path: &'static str,
    /// The role that claimed the path first (in [`ROLES`] order): it keeps it.
    pub first: Role,
    /// The role that loses it.
    pub second: Role,
}

impl Clash {
    /// How to resolve it.
    pub fn fix(&self) -> String {
        format!(
            "set spec.frontDoors.names.{} on the Cluster to a name of its own",
            self.second
        )
    }
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} and the {} both serve {} under the name {}, and one vhost cannot send \
             it to both",
            self.first, self.second, self.path, self.server_name
        )
    }
}

/// Every clash among the front-door roles of one host at `address`.
pub fn clashes(spec: &ClusterSpec, address: &str, roles: &[Role]) -> Vec<Clash> {
    let mut claimed: Vec<(&str, &'static str, Role)> = Vec::new();
    let mut out = Vec::new();
    for role in ROLES.into_iter().filter(|r| roles.contains(r)) {
        let name = server_name(spec, role, address);
        for path in paths(role) {
            match claimed.iter().find(|(n, p, _)| *n == name && p == path) {
                Some((_, _, first)) => out.push(Clash {
                    server_name: name.to_owned(),
                    path,
                    first: *first,
                    second: role,
                }),
                None => claimed.push((name, path, role)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::FrontDoors;

    #[test]
    fn executor_and_monitor_on_one_name_clash_on_the_root() {
        let spec = ClusterSpec::default();
        let c = clashes(&spec, "10.0.0.10", &[Role::Executor, Role::Monitor]);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].path, c[0].first, c[0].second),
            ("/", Role::Executor, Role::Monitor)
        );
        assert_eq!(
            c[0].fix(),
            "set spec.frontDoors.names.monitor on the Cluster to a name of its own"
        );
        // Executor, editor and registry share one name without a clash.
        let all = [Role::Executor, Role::Editor, Role::Registry];
        assert!(clashes(&spec, "10.0.0.10", &all).is_empty());
    }

    #[test]
    fn a_name_of_its_own_resolves_the_clash() {
        let mut spec = ClusterSpec::default();
        let mut doors = FrontDoors::default();
        doors.names.monitor = Some("monitor.example.org".into());
        spec.front_doors = Some(Box::new(doors));
        let roles = [Role::Executor, Role::Editor, Role::Registry, Role::Monitor];
        assert!(clashes(&spec, "10.0.0.10", &roles).is_empty());
        assert_eq!(
            server_name(&spec, Role::Monitor, "10.0.0.10"),
            "monitor.example.org"
        );
        assert_eq!(server_name(&spec, Role::Executor, "10.0.0.10"), "10.0.0.10");
    }
}
