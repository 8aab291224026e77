//! The Apache modules each front-door role needs (the runbook's lists per host).

use std::collections::BTreeSet;

use omtd_crds::Role;

/// Every module omtd may enable, in the order they are planned: each after the modules it
/// depends on (`proxy_http` needs `proxy`'s symbols, `authz_groupfile` `authz_core`), since
/// the agent checks each `.load` against the config as it stands.
const ORDER: [&str; 14] = [
    "authn_core",
    "authn_file",
    "authz_core",
    "authz_user",
    "authz_groupfile",
    "auth_basic",
    "access_compat",
    "headers",
    "rewrite",
    "proxy",
    "proxy_http",
    "socache_shmcb",
    "ssl",
    "alias",
];

/// The modules of a host with these front-door roles, in [`ORDER`].
///
/// With TLS: `ssl`, and `socache_shmcb`, which Debian's `ssl.load` lists as a dependency
/// (`a2enmod ssl` enables it). Debian's `ssl.conf` is not enabled, so no `SSLSessionCache`
/// is set and mod_ssl runs without a session cache (it logs a hint at start): fine for a
/// few users, and what keeps omtd off a file it does not own. `Listen 443` needs nothing
/// more: Debian's `ports.conf` holds it inside `<IfModule ssl_module>`. `alias` carries
/// the port-80 `Redirect` (Debian enables it by default; planned so it cannot be missing).
pub fn modules(roles: &BTreeSet<Role>, tls: bool) -> Vec<&'static str> {
    let mut want: BTreeSet<&str> = BTreeSet::new();
    if [Role::Executor, Role::Editor, Role::Monitor]
        .iter()
        .any(|r| roles.contains(r))
    {
        want.extend(["rewrite", "proxy", "proxy_http"]);
    }
    if roles.contains(&Role::Registry) {
        want.extend([
            "authn_file",
            "authn_core",
            "authz_groupfile",
            "authz_user",
            "authz_core",
            "auth_basic",
            "access_compat",
            "headers",
            "proxy",
            "proxy_http",
        ]);
    }
    if tls && !want.is_empty() {
        want.extend(["ssl", "socache_shmcb", "alias"]);
    }
    ORDER.into_iter().filter(|m| want.contains(m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_is_in_the_order() {
        let all: BTreeSet<Role> = Role::ALL.into_iter().collect();
        assert_eq!(modules(&all, true).len(), ORDER.len());
    }
}
