//! What the agent may do to a host, as traits: one per kind of resource. Each has a real
//! implementation (`linux`) and an in-memory one (`sim`) with the same semantics, so the
//! agent's loop and apply pass are the same code whatever host they drive.
//!
//! Drivers are synchronous: they run short commands (`systemctl`, `pvs`, `docker inspect`)
//! and small file I/O. The agent calls them from a blocking task, never from the async loop.

pub mod linux;
pub mod sim;

use std::path::PathBuf;

use omtd_crds::plan::{
    ContainerSpec, FileSpec, FilesystemSpec, LogicalVolumeSpec, PhysicalVolumeSpec,
};

pub type Result<T, E = DriverError> = std::result::Result<T, E>;

/// Why a driver could not do what it was asked. Messages name paths, units and commands,
/// never file contents: a file may hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("path {0:?} is not absolute and normalised")]
    BadPath(String),
    #[error("path {0:?} escapes the agent's root directory")]
    EscapesRoot(String),
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("`{command}` could not be run: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {secs} s and was killed")]
    Timeout { command: String, secs: u64 },
    #[error("the candidate for {path} failed validation, the live file was kept: {message}")]
    Invalid { path: String, message: String },
    #[error("unknown {what} {name:?}")]
    UnknownOwner { what: &'static str, name: String },
    #[error("service {0} is not installed on this host")]
    NoSuchService(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
}

impl DriverError {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A file as found on the host.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileState {
    pub content: Vec<u8>,
    /// Permission bits only (`& 0o7777`).
    pub mode: u32,
    /// Owner and group names (numeric ids when the name is unknown).
    pub owner: String,
    pub group: String,
}

// Hand-written: the content may be a secret.
impl std::fmt::Debug for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileState")
            .field("len", &self.content.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .finish()
    }
}

/// Plain files with exact bytes.
pub trait Files: Send {
    /// The file at `path` (a plan path), or `None` when it does not exist.
    fn read(&mut self, path: &str) -> Result<Option<FileState>>;
    /// Replace the file atomically with the spec's bytes, mode and owner. When the spec has a
    /// `validate` command the candidate is checked first and the live file kept on failure.
    fn write(&mut self, spec: &FileSpec, mode: u32) -> Result<()>;
    /// Remove the file; a missing file is not an error.
    fn remove(&mut self, path: &str) -> Result<()>;
    /// Whether owner and group are enforced (only root can chown).
    fn enforces_ownership(&self) -> bool;
    /// Where a plan path lives on the real filesystem, for inotify (`None` on a sim host).
    fn host_path(&self, path: &str) -> Option<PathBuf>;
}

/// A service as found on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStatus {
    pub installed: bool,
    /// Up, or on its way up (see `starting`).
    pub running: bool,
    pub enabled: bool,
    pub masked: bool,
    /// Started but not up yet (systemd's `activating`: a unit whose start, or its
    /// `ExecStartPost` readiness wait, has not finished).
    pub starting: bool,
}

/// System services: systemd units or SysV init scripts.
pub trait Services: Send {
    fn status(&mut self, name: &str) -> Result<ServiceStatus>;
    fn start(&mut self, name: &str) -> Result<()>;
    fn stop(&mut self, name: &str) -> Result<()>;
    fn restart(&mut self, name: &str) -> Result<()>;
    /// Start (`restart`: restart) without waiting for the service to be up: for a
    /// `slowStart` service, whose `status` says `starting` meanwhile. Where the manager
    /// cannot do that, as `start` and `restart`.
    fn start_no_wait(&mut self, name: &str, restart: bool) -> Result<()> {
        if restart {
            self.restart(name)
        } else {
            self.start(name)
        }
    }
    fn enable(&mut self, name: &str) -> Result<()>;
    fn disable(&mut self, name: &str) -> Result<()>;
    fn mask(&mut self, name: &str) -> Result<()>;
    fn unmask(&mut self, name: &str) -> Result<()>;
    /// Whether the host knows masking (systemd). SysV does not: there a masked service is
    /// kept stopped and disabled.
    fn can_mask(&self) -> bool;
    /// Makes the service manager re-read its unit files (`systemctl daemon-reload`): a
    /// changed unit is otherwise started and restarted from its old definition.
    fn reload_units(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The outcome of one storage step, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOutcome {
    /// Already as planned; `observed` carries facts for the controllers (`pv_free`, `uuid`).
    Unchanged { observed: Vec<(String, String)> },
    /// The driver changed the host (`what` says how, e.g. "pvcreate /dev/vdd").
    Changed {
        what: String,
        observed: Vec<(String, String)>,
    },
    /// A long step is under way (pvmove).
    Progressing { percent: u8, message: String },
    /// The driver will not do it because data could be lost.
    Refused { reason: String },
}

/// LVM and filesystems. Every step is level-triggered and idempotent: called again after a
/// crash it picks up where the host is.
pub trait Storage: Send {
    /// Make the device a PV of its group (`present`), or move its extents away and remove it
    /// (`absent`). `may_destroy` is false while the agent has lost the store: removals wait.
    /// A removal that moves data calls `progress` with the whole percent copied so far, as
    /// the move advances (the agent reports it while the step runs).
    fn ensure_pv(
        &mut self,
        spec: &PhysicalVolumeSpec,
        may_destroy: bool,
        progress: &mut (dyn FnMut(u8) + Send),
    ) -> Result<StorageOutcome>;
    /// Make the LV exist and, when asked, fill its group (lvextend + filesystem grow).
    fn ensure_lv(&mut self, spec: &LogicalVolumeSpec) -> Result<StorageOutcome>;
    /// Make a filesystem on the device, only when the device carries no signature at all.
    fn ensure_filesystem(&mut self, spec: &FilesystemSpec) -> Result<StorageOutcome>;
    /// The filesystem UUID on a device (for fstab), `None` when it has none.
    fn device_uuid(&mut self, device: &str) -> Result<Option<String>>;
}

/// fstab entries owned by omtd and the mount table.
pub trait Mounts: Send {
    /// The fstab lines omtd owns, as written.
    fn owned_entries(&mut self) -> Result<Vec<String>>;
    /// Make the owned lines exactly `lines`, keeping every foreign line byte for byte.
    fn write_owned_entries(&mut self, lines: &[String]) -> Result<()>;
    fn is_mounted(&mut self, target: &str) -> Result<bool>;
    /// Create the mount point if missing and mount it from fstab.
    fn mount(&mut self, target: &str) -> Result<()>;
    fn unmount(&mut self, target: &str) -> Result<()>;
    /// Files whose edits are drift (fstab), for inotify.
    fn watch_paths(&self) -> Vec<PathBuf>;
}

/// `/etc/exports` lines owned by omtd.
pub trait Exports: Send {
    fn owned_lines(&mut self) -> Result<Vec<String>>;
    /// Make the owned lines exactly `lines` (foreign lines kept) and reload the export table.
    fn write_owned_lines(&mut self, lines: &[String]) -> Result<()>;
    /// Reload when an earlier reload failed (the file is right but the kernel table is not).
    fn reload_if_pending(&mut self) -> Result<bool>;
    fn watch_paths(&self) -> Vec<PathBuf>;
}

/// A container as found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerStatus {
    pub image: String,
    pub running: bool,
    /// Normalised `host_ip:host_port:container_port` (host_ip empty when unbound).
    pub ports: Vec<String>,
    /// `host:container[:mode]` as given to `-v`.
    pub volumes: Vec<String>,
}

/// Docker containers.
pub trait Containers: Send {
    fn inspect(&mut self, name: &str) -> Result<Option<ContainerStatus>>;
    /// Create and start the container (`docker run -d --restart unless-stopped`).
    fn run(&mut self, spec: &ContainerSpec) -> Result<()>;
    fn start(&mut self, name: &str) -> Result<()>;
    /// Stop and remove; a missing container is not an error.
    fn remove(&mut self, name: &str) -> Result<()>;
}

/// Normalise a `-p` spec to `host_ip:host_port:container_port` so a plan and what Docker
/// reports compare equal (`8080:8080` → `:8080:8080`, a `/tcp` suffix dropped).
pub fn normalise_port(spec: &str) -> String {
    let spec = spec.strip_suffix("/tcp").unwrap_or(spec);
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [host, container] => format!(":{host}:{container}"),
        [container] => format!("::{container}"),
        _ => spec.to_owned(),
    }
}

/// Everything the agent drives on one host.
pub struct Host {
    pub files: Box<dyn Files>,
    pub services: Box<dyn Services>,
    pub storage: Box<dyn Storage>,
    pub mounts: Box<dyn Mounts>,
    pub exports: Box<dyn Exports>,
    pub containers: Box<dyn Containers>,
}

impl Host {
    /// Every real file whose edits count as drift besides the managed files themselves.
    pub fn extra_watch_paths(&self) -> Vec<PathBuf> {
        let mut v = self.mounts.watch_paths();
        v.extend(self.exports.watch_paths());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_port;

    #[test]
    fn ports_normalise() {
        assert_eq!(normalise_port("127.0.0.1:5000:5000"), "127.0.0.1:5000:5000");
        assert_eq!(normalise_port("8080:8080"), ":8080:8080");
        assert_eq!(normalise_port("8080:8080/tcp"), ":8080:8080");
    }
}
