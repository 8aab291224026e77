//! The Apache site and modules of a node, from what its roles put behind Apache.

use omtd_crds::plan::{FileSpec, VALIDATE_APACHE};

use crate::paths::{APACHE_DEFAULT_SITE, APACHE_SITE, REGISTRY_HTPASSWD};
use crate::render::file;

/// What Apache proxies on a node, from its roles.
#[derive(Default)]
pub(super) struct WebSite {
    /// `/` → this local port (Galaxy, or Grafana on the monitor).
    pub root: Option<u16>,
    /// `/v2` → the registry on this port, behind basic auth.
    pub registry: Option<u16>,
    /// `/prometheus/` → Prometheus on this port.
    pub prometheus: Option<u16>,
}

impl WebSite {
    pub fn is_empty(&self) -> bool {
        self.root.is_none() && self.registry.is_none() && self.prometheus.is_none()
    }

    fn modules(&self) -> Vec<(&'static str, &'static str)> {
        let mut m = vec![
            (
                "proxy",
                "proxy_module /usr/lib/apache2/modules/mod_proxy.so",
            ),
            (
                "proxy_http",
                "proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so",
            ),
        ];
        if self.root.is_some() {
            m.push((
                "rewrite",
                "rewrite_module /usr/lib/apache2/modules/mod_rewrite.so",
            ));
        }
        if self.registry.is_some() {
            m.extend([
                (
                    "headers",
                    "headers_module /usr/lib/apache2/modules/mod_headers.so",
                ),
                (
                    "auth_basic",
                    "auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so",
                ),
                (
                    "authn_core",
                    "authn_core_module /usr/lib/apache2/modules/mod_authn_core.so",
                ),
                (
                    "authn_file",
                    "authn_file_module /usr/lib/apache2/modules/mod_authn_file.so",
                ),
                (
                    "authz_core",
                    "authz_core_module /usr/lib/apache2/modules/mod_authz_core.so",
                ),
                (
                    "authz_user",
                    "authz_user_module /usr/lib/apache2/modules/mod_authz_user.so",
                ),
            ]);
        }
        m
    }

    fn site(&self) -> String {
        let mut body = String::new();
        if let Some(port) = self.registry {
            body.push_str(&format!(
                "    <Location /v2>\n\
                 \x20       AuthType Basic\n\
                 \x20       AuthName \"Docker Registry\"\n\
                 \x20       AuthUserFile {htpasswd}\n\
                 \x20       Require valid-user\n\
                 \x20   </Location>\n\
                 \x20   Header always set \"Docker-Distribution-Api-Version\" \"registry/2.0\"\n\
                 \x20   ProxyPass /v2 http://127.0.0.1:{port}/v2\n\
                 \x20   ProxyPassReverse /v2 http://127.0.0.1:{port}/v2\n",
                htpasswd = REGISTRY_HTPASSWD,
            ));
        }
        if let Some(port) = self.prometheus {
            body.push_str(&format!(
                "    ProxyPass /prometheus/ http://127.0.0.1:{port}/prometheus/\n\
                 \x20   ProxyPassReverse /prometheus/ http://127.0.0.1:{port}/prometheus/\n"
            ));
        }
        if let Some(port) = self.root {
            body.push_str(&format!(
                "    ProxyPass / http://localhost:{port}/\n\
                 \x20   ProxyPassReverse / http://localhost:{port}/\n"
            ));
        }
        format!(
            "# Managed by omtd (node controller). Changes here are overwritten.\n\
             <VirtualHost *:80>\n\
             \x20   ProxyPreserveHost On\n\
             \x20   ProxyRequests Off\n\
             {body}\
             </VirtualHost>\n"
        )
    }

    /// The site and its modules, each checked by the agent against the whole Apache config
    /// before it goes live (a refused one leaves the running site alone). Modules come
    /// first: a site using a new module's directive (`Header`) passes its check only once
    /// the module's `.load` is in place.
    pub fn files(&self) -> Vec<FileSpec> {
        let mut files: Vec<FileSpec> = self
            .modules()
            .into_iter()
            .map(|(module, load)| {
                checked(file(
                    format!("/etc/apache2/mods-enabled/{module}.load"),
                    format!("LoadModule {load}\n"),
                ))
            })
            .collect();
        files.push(checked(file(APACHE_SITE, self.site())));
        files.push(crate::render::absent_file(APACHE_DEFAULT_SITE));
        files
    }
}

fn checked(mut f: FileSpec) -> FileSpec {
    f.validate = Some(VALIDATE_APACHE.to_owned());
    f
}
