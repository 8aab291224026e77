//! The PKI's files: its private directory, reading, and writing through
//! [`crate::private_file`] (atomic, mode set before the first byte).

use std::os::unix::fs::DirBuilderExt;
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

/// Writes `path` atomically ([`crate::private_file`]), replacing an existing file only when
/// `replace`.
pub fn write(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), PkiError> {
    crate::private_file::write(path, bytes, mode, replace).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists(path.to_owned())
        } else {
            PkiError::Write {
                path: path.to_owned(),
                error,
            }
        }
    })
}
