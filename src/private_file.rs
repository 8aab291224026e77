//! Writing a file that holds a key (the PKI's, the secrets key files): through a temporary
//! file in the same directory, created with its final mode before the first byte is
//! written (never readable by others, even briefly), synced, renamed into place, and the
//! directory synced, so a crash leaves the old file or the new one, never half a key.
//!
//! (The agent's `drivers::linux::atomic` does the same for host files, with owners and
//! validation; this is the small version for omtd's own files.)

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to `path` with `mode`. Without `replace` an existing file is never
/// clobbered: the error is `ErrorKind::AlreadyExists`.
pub fn write(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".omtd-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_its_mode_and_never_clobbers_unless_asked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        write(&p, b"one", 0o600, false).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write(&p, b"two", 0o600, false).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write(&p, b"two", 0o600, true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
