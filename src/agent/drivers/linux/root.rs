//! Mapping plan paths (absolute, as on the real host) to where they live: the same path on a
//! real host, or the path under `--root DIR` in tests. A path that could escape the root
//! (`..`, or a symlink inside the root pointing out of it) is refused.

use std::path::{Component, Path, PathBuf};

use crate::agent::drivers::{DriverError, Result};

#[derive(Debug, Clone)]
pub struct Root {
    /// The canonical root directory, when confined.
    dir: Option<PathBuf>,
}

impl Root {
    pub fn new(dir: Option<PathBuf>) -> Result<Self> {
        let dir = match dir {
            None => None,
            Some(d) => Some(
                d.canonicalize()
                    .map_err(|e| DriverError::io(d.display().to_string(), e))?,
            ),
        };
        Ok(Root { dir })
    }

    pub fn is_confined(&self) -> bool {
        self.dir.is_some()
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The host path of a plan path. The plan path must be absolute and normalised.
    pub fn map(&self, path: &str) -> Result<PathBuf> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(DriverError::BadPath(path.to_owned()));
        }
        let mut rel = PathBuf::new();
        for c in p.components() {
            match c {
                Component::RootDir => {}
                Component::Normal(n) => rel.push(n),
                Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                    return Err(DriverError::BadPath(path.to_owned()))
                }
            }
        }
        let Some(root) = &self.dir else {
            return Ok(p.to_path_buf());
        };
        let mapped = root.join(&rel);
        // A symlink inside the root may point anywhere: resolve the deepest existing
        // ancestor and check it is still inside.
        let mut probe = mapped.as_path();
        loop {
            match probe.canonicalize() {
                Ok(real) => {
                    if real.starts_with(root) {
                        return Ok(mapped);
                    }
                    return Err(DriverError::EscapesRoot(path.to_owned()));
                }
                Err(_) => match probe.parent() {
                    Some(parent) => probe = parent,
                    None => return Err(DriverError::EscapesRoot(path.to_owned())),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfined_paths_are_themselves() {
        let r = Root::new(None).unwrap();
        assert_eq!(r.map("/etc/fstab").unwrap(), PathBuf::from("/etc/fstab"));
        assert!(r.map("etc/fstab").is_err());
        assert!(r.map("/etc/../x").is_err());
    }

    #[test]
    fn confined_paths_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(Some(d.path().to_path_buf())).unwrap();
        let real = d.path().canonicalize().unwrap();
        assert_eq!(r.map("/etc/mesos/zk").unwrap(), real.join("etc/mesos/zk"));
        assert!(matches!(r.map("/../etc"), Err(DriverError::BadPath(_))));
        std::os::unix::fs::symlink("/etc", d.path().join("evil")).unwrap();
        assert!(matches!(
            r.map("/evil/passwd"),
            Err(DriverError::EscapesRoot(_))
        ));
    }
}
