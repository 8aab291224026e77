//! Small constructors for plan entries, so the controllers read as lists of what a host
//! should have.

use omtd_crds::plan::{ContainerSpec, Ensure, FileSpec, ServiceSpec, ServiceState};

/// A plain file, mode 0644. `content` is written byte for byte: a one-line flag file must
/// be given without a trailing newline.
pub fn file(path: impl Into<String>, content: impl Into<String>) -> FileSpec {
    FileSpec::plain(path, content)
}

/// A file holding a secret: mode 0600, never shown.
pub fn secret_file(path: impl Into<String>, content: impl Into<String>) -> FileSpec {
    FileSpec {
        mode: 0o600,
        secret: true,
        ..file(path, content)
    }
}

/// A file that must not exist.
pub fn absent_file(path: impl Into<String>) -> FileSpec {
    FileSpec {
        ensure: Ensure::Absent,
        ..file(path, "")
    }
}

/// A service in `state`, enabled unless stopped-and-disabled is asked with [`disabled`].
pub fn service(name: &str, state: ServiceState) -> ServiceSpec {
    ServiceSpec {
        name: name.to_owned(),
        state,
        enabled: state != ServiceState::Stopped,
        restart_on: Vec::new(),
        restart_token: None,
        after: Vec::new(),
        slow_start: false,
    }
}

pub fn running(name: &str) -> ServiceSpec {
    service(name, ServiceState::Running)
}

/// Stopped and not started at boot.
pub fn disabled(name: &str) -> ServiceSpec {
    service(name, ServiceState::Stopped)
}

pub fn masked(name: &str) -> ServiceSpec {
    service(name, ServiceState::Masked)
}

/// A container.
pub fn container(name: &str, image: &str, ports: &[&str], volumes: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.to_owned(),
        image: image.to_owned(),
        ports: ports.iter().map(|p| (*p).to_owned()).collect(),
        volumes: volumes.iter().map(|v| (*v).to_owned()).collect(),
        ensure: Ensure::Present,
    }
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A Prometheus label name from any key: invalid characters become `_`.
pub fn prometheus_label(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// Bytes in the unit `pvs -o+pv_used` would print (`200.00g`-like, binary units).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_every_special_character() {
        assert_eq!(
            xml_escape(r#"a&b<c>"d"'e"#),
            "a&amp;b&lt;c&gt;&quot;d&quot;&apos;e"
        );
    }

    #[test]
    fn prometheus_labels_are_valid() {
        assert_eq!(prometheus_label("tier"), "tier");
        assert_eq!(
            prometheus_label("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(prometheus_label("1x"), "_1x");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(200 * 1024 * 1024 * 1024), "200.00 GiB");
    }

    #[test]
    fn secret_files_are_0600() {
        let f = secret_file("/x", "s");
        assert_eq!((f.mode, f.secret), (0o600, true));
        assert!(!disabled("zookeeper").enabled);
        assert!(running("docker").enabled);
    }
}
