//! Writing the PKI's files: atomically (a crash never leaves half a key), with their mode
//! set before the first byte is written (a key is never readable by others, even briefly).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0} exists: pass --renew to replace its certificate and key")]
    Exists(PathBuf),
    #[error("an etcd server certificate needs at least one --san (the host names or IP addresses clients dial, e.g. --san 127.0.0.1)")]
    NoSan,
    #[error("cannot read {what} at {path}: {error}")]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a usable PEM certificate or key: {error}")]
    Parse { path: PathBuf, error: rcgen::Error },
    #[error("cannot make the key or certificate: {0}")]
    Generate(rcgen::Error),
}

/// The PKI directory, created 0700 (it holds the CA key).
pub fn private_dir(dir: &Path) -> Result<(), PkiError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| PkiError::Write {
            path: dir.to_owned(),
            error,
        })
}

pub fn read(path: &Path, what: &'static str) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|error| PkiError::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

/// Writes a file that must not exist yet.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    write(path, bytes, mode, false)
}

/// Writes `path` through a temporary file in the same directory, renamed into place
/// (replacing an existing file only when `replace`).
pub fn write(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), PkiError> {
    let fail = |error: std::io::Error| PkiError::Write {
        path: path.to_owned(),
        error,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".omtd-pki-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    if replace {
        tmp.persist(path).map_err(|e| fail(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists(path.to_owned())
            } else {
                fail(e.error)
            }
        })?;
    }
    Ok(())
}
