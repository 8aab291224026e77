//! `/etc/fstab` lines: rendering a mount as a line, and adopting a foreign line for the same
//! mount point (the playbooks' own NFS lines) when omtd takes the mount over.

use omtd_crds::plan::MountSpec;

use super::block::Foreign;

/// The fstab line for a mount. A device source (a path) goes in as `UUID=<uuid>` so the
/// mount survives device renames; `uuid` is `None` for NFS and other non-path sources.
pub fn line(spec: &MountSpec, uuid: Option<&str>) -> String {
    let source = match uuid {
        Some(u) => format!("UUID={u}"),
        None => spec.source.clone(),
    };
    format!(
        "{} {} {} {} {} {}",
        escape(&source),
        escape(&spec.target),
        spec.fstype,
        spec.options,
        spec.dump,
        spec.pass
    )
}

/// Whether a mount's source is a block device (so it goes to fstab by UUID).
pub fn is_device(source: &str) -> bool {
    source.starts_with('/')
}

/// The mount point of an fstab line (unescaped), if it has one.
pub fn target(line: &str) -> Option<String> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    l.split_whitespace().nth(1).map(unescape)
}

/// A foreign line for a target omtd now owns is dropped (adopted).
pub fn adopt(owned_targets: &[String]) -> impl Fn(&str) -> Foreign + '_ {
    move |l| match target(l) {
        Some(t) if owned_targets.contains(&t) => Foreign::Drop,
        _ => Foreign::Keep,
    }
}

/// fstab escapes blanks as octal (`\040`).
fn escape(s: &str) -> String {
    s.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
}

pub fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;
    use omtd_crds::plan::Ensure;

    #[test]
    fn nfs_and_device_lines() {
        let nfs = MountSpec {
            source: "10.0.0.5:/srv/executor/database".into(),
            target: "/srv/executor/database".into(),
            fstype: "nfs".into(),
            options: "defaults".into(),
            dump: 0,
            pass: 0,
            ensure: Ensure::Present,
        };
        assert_eq!(
            line(&nfs, None),
            "10.0.0.5:/srv/executor/database /srv/executor/database nfs defaults 0 0"
        );
        let dev = MountSpec {
            source: "/dev/vdb".into(),
            target: "/mnt/my data".into(),
            fstype: "ext4".into(),
            options: "errors=remount-ro".into(),
            dump: 0,
            pass: 2,
            ensure: Ensure::Present,
        };
        assert_eq!(
            line(&dev, Some("abcd")),
            "UUID=abcd /mnt/my\\040data ext4 errors=remount-ro 0 2"
        );
        assert_eq!(
            target(&line(&dev, Some("abcd"))).as_deref(),
            Some("/mnt/my data")
        );
    }
}
