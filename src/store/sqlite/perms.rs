//! The store file's permissions: it holds every secret of the cluster, so only its owner may
//! read it. SQLite creates the `-wal` and `-shm` files with the main file's mode, so making
//! the main file 0600 before SQLite first opens it covers all three.

use std::fs::{OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

/// The mode of the store file and its WAL and shared-memory files.
pub(super) const FILE_MODE: u32 = 0o600;

/// The store file and the two files SQLite keeps beside it in WAL mode.
fn store_files(path: &Path) -> [PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with_suffix("-wal"), with_suffix("-shm")]
}

/// Creates the store file empty with mode 0600 if it is missing (SQLite takes an empty file
/// as a new database), so it is never readable by others, whatever the umask.
pub(super) fn create_private(path: &Path) -> Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Someone (another process, or an earlier run) made it: `tighten` checks its mode.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "cannot create SQLite store {}: {e}; check that its directory exists and is writable",
            path.display()
        ))),
    }
}

/// Takes group and other permissions away from an existing store file and its `-wal` and
/// `-shm` files, warning with the path. Tightening, not refusing: a file left 0644 by an
/// older omtd (or a umask) should not stop the cluster on upgrade, and its owner, the only
/// user omtd needs, keeps access. A file we cannot tighten (not its owner) is refused:
/// opening it would mean using a store whose secrets others can read.
pub(super) fn tighten(path: &Path) -> Result<()> {
    for file in store_files(path) {
        let meta = match std::fs::metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(StoreError::Config(format!(
                    "cannot read the permissions of {}: {e}",
                    file.display()
                )))
            }
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        std::fs::set_permissions(&file, Permissions::from_mode(mode & 0o700)).map_err(|e| {
            StoreError::Config(format!(
                "{} is readable by other users (mode {mode:o}) and cannot be made private: {e}; \
                 run `chmod 600 {}` as its owner",
                file.display(),
                file.display()
            ))
        })?;
        tracing::warn!(
            path = %file.display(),
            was = format!("{mode:o}"),
            now = format!("{:o}", mode & 0o700),
            "the store file was readable by other users; took their permissions away"
        );
    }
    Ok(())
}
