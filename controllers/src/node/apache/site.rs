//! omtd's Apache site: the vhosts of [`super::FrontDoor`] as Apache config.

use omtd_crds::Role;

use super::tls::TlsFiles;
use super::{Route, VHost};
use crate::paths::REGISTRY_HTPASSWD;

/// The site file. With TLS each vhost is on `*:443` and each name also gets a `*:80`
/// vhost that redirects to it. No HSTS: a header browsers remember for months is a choice
/// for whoever owns the names, off until someone makes it.
pub fn render(vhosts: &[VHost], tls: Option<&TlsFiles>) -> String {
    let mut out =
        String::from("# Managed by omtd (node controller). Changes here are overwritten.\n");
    for v in vhosts {
        out.push_str(&vhost(v, tls));
    }
    if tls.is_some() {
        for v in vhosts {
            out.push_str(&format!(
                "<VirtualHost *:80>\n\
                 \x20   ServerName {name}\n\
                 \x20   Redirect permanent / https://{name}/\n\
                 </VirtualHost>\n",
                name = v.name
            ));
        }
    }
    out
}

fn vhost(v: &VHost, tls: Option<&TlsFiles>) -> String {
    let mut body = format!("    ServerName {}\n", v.name);
    let port = match tls {
        Some(t) => {
            body.push_str(&format!(
                "    SSLEngine on\n\
                 \x20   SSLCertificateFile {}\n\
                 \x20   SSLCertificateKeyFile {}\n",
                t.certificate_path(),
                t.key_path()
            ));
            443
        }
        None => 80,
    };
    body.push_str("    ProxyPreserveHost On\n    ProxyRequests Off\n");
    // Apache takes the first ProxyPass that matches: the longest paths go first, so `/`
    // does not swallow `/galaxy` or `/v2` on a shared vhost.
    let mut routes: Vec<&Route> = v.routes.iter().collect();
    routes.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.path.cmp(b.path)));
    for r in routes {
        if r.role == Role::Registry {
            body.push_str(&registry_guard(r.path, tls.is_some()));
        }
        body.push_str(&format!(
            "    ProxyPass {path} {target}\n\
             \x20   ProxyPassReverse {path} {target}\n",
            path = r.path,
            target = r.target
        ));
    }
    format!("<VirtualHost *:{port}>\n{body}</VirtualHost>\n")
}

/// Basic auth in front of the registry (Apache checks the htpasswd the credentials
/// controller plans), and the header Docker clients look for. Behind TLS the registry
/// must know the client spoke HTTPS, or the upload URLs it hands out say `http://`.
fn registry_guard(path: &str, tls: bool) -> String {
    let proto = if tls {
        "        RequestHeader set X-Forwarded-Proto \"https\"\n"
    } else {
        ""
    };
    format!(
        "    <Location {path}>\n\
         \x20       AuthType Basic\n\
         \x20       AuthName \"Docker Registry\"\n\
         \x20       AuthUserFile {REGISTRY_HTPASSWD}\n\
         \x20       Require valid-user\n\
         \x20       Header always set \"Docker-Distribution-Api-Version\" \"registry/2.0\"\n\
         {proto}\
         \x20   </Location>\n"
    )
}
