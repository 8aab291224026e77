//! The real host: files, systemd or SysV services, fstab and mount, `/etc/exports` and
//! `exportfs`, docker containers, and (through the host library, `crate::host`) LVM and
//! filesystems.
//!
//! `--root DIR` confines every path under DIR for tests; under a root, the parts that would
//! touch the machine beyond files are replaced by test hooks (documented on each driver):
//! services are the scripts in `DIR/etc/init.d`, mounts are recorded in
//! `DIR/run/omtd/mounts` instead of being mounted, and the exports reload command is only
//! run when one is configured.

pub mod atomic;
pub mod block;
pub mod containers;
pub mod exec;
pub mod exports;
pub mod files;
pub mod fstab;
pub mod mounts;
pub mod root;
pub mod services;
pub mod storage;

use std::path::PathBuf;

use super::Host;
use crate::host::command::SystemRunner;
use root::Root;
use std::sync::Arc;

/// How to build the linux host.
#[derive(Debug, Clone, Default)]
pub struct LinuxOptions {
    /// Confine every path under this directory (tests).
    pub root: Option<PathBuf>,
    /// The command run after `/etc/exports` changed. `None` means the default: `exportfs -ra`
    /// on a real host, nothing under a root (there is no nfsd to talk to).
    pub exports_reload: Option<Vec<String>>,
}

/// A host driven by the real linux drivers.
pub fn host(opts: &LinuxOptions) -> Result<Host, super::DriverError> {
    let root = Root::new(opts.root.clone())?;
    let reload = match (&opts.exports_reload, root.is_confined()) {
        (Some(cmd), _) => Some(cmd.clone()),
        (None, false) => Some(vec!["exportfs".to_owned(), "-ra".to_owned()]),
        (None, true) => None,
    };
    Ok(Host {
        files: Box::new(files::LinuxFiles::new(
            root.clone(),
            Arc::new(SystemRunner::for_drivers()),
        )),
        services: Box::new(services::LinuxServices::detect(
            root.clone(),
            Arc::new(SystemRunner::for_drivers()),
        )),
        storage: Box::new(storage::LinuxStorage::new(root.clone())),
        mounts: Box::new(mounts::LinuxMounts::new(
            root.clone(),
            Arc::new(SystemRunner::for_drivers()),
        )),
        exports: Box::new(exports::LinuxExports::new(
            root,
            reload,
            Arc::new(SystemRunner::for_drivers()),
        )),
        containers: Box::new(containers::LinuxContainers::new(Arc::new(
            SystemRunner::for_drivers(),
        ))),
    })
}
