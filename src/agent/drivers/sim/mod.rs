//! The sim host: an in-memory machine with the same semantics as the linux drivers, and a
//! fault-injection API (kill a service, edit a file, start a stray mesos-master, fill a
//! disk). The demo, scale benchmarks and chaos tests run agents on it; it never replaces a
//! test of a real driver where the real thing runs on this machine.
//!
//! A `SimHost` is a cheap handle (clone it freely): the agent drives one clone through the
//! driver traits while a test or the demo injects faults through another. Every fault pokes
//! the drift signal, as inotify or a systemd signal would on a real host.

mod containers;
mod exports;
mod fault;
mod files;
mod lvm;
mod mounts;
mod services;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{ContainerStatus, FileState, Host};

pub use fault::Fault;
pub use lvm::EXTENT_SIZE;

/// A service on the sim host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimService {
    pub installed: bool,
    pub running: bool,
    pub enabled: bool,
    pub masked: bool,
    /// Dies right after every start (a crash loop).
    pub crash_on_start: bool,
    /// Hung: the process runs (systemd sees it active) but does nothing, e.g. a
    /// mesos-slave that no longer talks to the master. The next start clears it.
    #[serde(default)]
    pub hung: bool,
    /// How many times it was started or restarted.
    pub starts: u64,
    /// Changes at every start, like a real pid.
    pub pid: u64,
}

/// A block device (a disk, or an LV at `/dev/VG/LV`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDevice {
    pub size: u64,
    /// `LVM2_member`, `ext4`, ... as blkid would say; `None`: blank.
    pub signature: Option<String>,
    pub uuid: Option<String>,
    /// Size of the filesystem on it, when it has one.
    pub fs_size: u64,
}

/// A volume group: its PVs (extent counts) and LVs (extents per PV).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimVg {
    pub pvs: BTreeMap<String, u64>,
    pub lvs: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Everything on the sim host. Public so tests can look at it directly.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SimState {
    pub files: BTreeMap<String, FileState>,
    pub dirs: BTreeSet<String>,
    pub services: BTreeMap<String, SimService>,
    pub devices: BTreeMap<String, SimDevice>,
    pub vgs: BTreeMap<String, SimVg>,
    pub fstab_owned: Vec<String>,
    pub fstab_foreign: Vec<String>,
    pub mounted: BTreeSet<String>,
    pub exports_owned: Vec<String>,
    pub exports_reloads: u64,
    pub containers: BTreeMap<String, ContainerStatus>,
    /// Docker is down: every container call fails.
    pub docker_down: bool,
    /// Every change the agent made, in order (`start chronos`, `write /etc/mesos/zk`).
    pub log: Vec<String>,
    /// How a pvmove advances: in this many steps, pausing this long after each.
    pub pvmove_pace: PvmovePace,
    /// Moves started and not finished: device → extents it held when the move began
    /// (lvm2 keeps its `pvmove0` LV in the metadata, so a re-run resumes the same move).
    pub pvmoves_in_flight: BTreeMap<String, u64>,
    /// Fault: the next pvmove dies (as if killed) once it has copied this percent.
    pub pvmove_interrupt_at: Option<u8>,
    next_id: u64,
}

/// The pace of a sim pvmove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvmovePace {
    pub steps: u32,
    pub step_delay: std::time::Duration,
}

impl Default for PvmovePace {
    /// Four instant steps: progress is reported, nothing waits.
    fn default() -> Self {
        PvmovePace {
            steps: 4,
            step_delay: std::time::Duration::ZERO,
        }
    }
}

impl SimState {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A handle on one sim host.
#[derive(Clone, Default)]
pub struct SimHost {
    state: Arc<Mutex<SimState>>,
    drift: Arc<Notify>,
}

impl SimHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// The drivers for an agent.
    pub fn host(&self) -> Host {
        Host {
            files: Box::new(self.clone()),
            services: Box::new(self.clone()),
            storage: Box::new(self.clone()),
            mounts: Box::new(self.clone()),
            exports: Box::new(self.clone()),
            containers: Box::new(self.clone()),
        }
    }

    /// Notified whenever a fault is injected (the agent's drift signal).
    pub fn drift_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.drift)
    }

    /// The state, locked. A poisoned lock (a panicking test thread) still yields the state:
    /// the sim has no invariant a panic could break halfway.
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole state: how a mirror of a host in another process (the sim world's
    /// remote hosts, above this driver) takes the state that process serves. No drift signal: nothing drives a
    /// mirror.
    pub fn replace_state(&self, new: SimState) {
        *self.state() = new;
    }

    fn fault(&self, f: impl FnOnce(&mut SimState)) {
        f(&mut self.state());
        self.drift.notify_one();
    }

    // ---- setup (no drift signal: this is how the host was before the agent came) ----

    /// A service installed (stopped, disabled).
    pub fn install_service(&self, name: &str) {
        self.state()
            .services
            .entry(name.to_owned())
            .or_default()
            .installed = true;
    }

    /// A blank disk of `size` bytes.
    pub fn add_device(&self, path: &str, size: u64) {
        self.state().devices.insert(
            path.to_owned(),
            SimDevice {
                size,
                ..Default::default()
            },
        );
    }

    /// A disk that already carries a signature (a filesystem blkid would find).
    pub fn add_device_with_signature(&self, path: &str, size: u64, signature: &str) {
        let mut st = self.state();
        let id = st.next_id();
        st.devices.insert(
            path.to_owned(),
            SimDevice {
                size,
                signature: Some(signature.to_owned()),
                uuid: Some(format!("sim-uuid-{id}")),
                fs_size: size,
            },
        );
    }

    /// Make every pvmove take `steps` steps of `step_delay` each (a slow disk).
    pub fn set_pvmove_pace(&self, steps: u32, step_delay: std::time::Duration) {
        self.state().pvmove_pace = PvmovePace {
            steps: steps.max(1),
            step_delay,
        };
    }

    // ---- faults ----

    /// The service's process dies.
    pub fn kill_service(&self, name: &str) {
        self.fault(|s| {
            if let Some(svc) = s.services.get_mut(name) {
                svc.running = false;
            }
        });
    }

    /// Every start of the service dies at once.
    pub fn set_crash_on_start(&self, name: &str, crash: bool) {
        self.fault(|s| {
            let svc = s.services.entry(name.to_owned()).or_default();
            svc.installed = true;
            svc.crash_on_start = crash;
            if crash {
                svc.running = false;
            }
        });
    }

    /// The service's running process hangs: still active, doing nothing until restarted.
    pub fn hang_service(&self, name: &str) {
        self.fault(|s| {
            if let Some(svc) = s.services.get_mut(name).filter(|svc| svc.running) {
                svc.hung = true;
            }
        });
    }

    /// Someone starts a service by hand (a stray mesos-master on a worker), even a masked
    /// one (unmasking it first, as a careless admin would).
    pub fn start_stray(&self, name: &str) {
        self.fault(|s| {
            let id = s.next_id();
            let svc = s.services.entry(name.to_owned()).or_default();
            svc.installed = true;
            svc.masked = false;
            svc.running = true;
            svc.pid = id;
        });
    }

    /// Someone edits a file by hand.
    pub fn edit_file(&self, path: &str, content: &[u8]) {
        self.fault(|s| {
            let f = s.files.entry(path.to_owned()).or_insert_with(|| FileState {
                content: Vec::new(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
            });
            f.content = content.to_vec();
        });
    }

    /// Someone changes a file's mode.
    pub fn chmod_file(&self, path: &str, mode: u32) {
        self.fault(|s| {
            if let Some(f) = s.files.get_mut(path) {
                f.mode = mode;
            }
        });
    }

    pub fn remove_file(&self, path: &str) {
        self.fault(|s| {
            s.files.remove(path);
        });
    }

    /// Fill every free extent of a volume group (an LV `filler` takes them), so that a PV
    /// removal has nowhere to move its data.
    pub fn fill_disk(&self, vg: &str) {
        self.fault(|s| lvm::fill(s, vg));
    }

    /// The next pvmove is killed once it has copied `percent` (a crash mid-move): the
    /// extents copied so far stay moved, the rest stay on the PV, and the move is left in
    /// flight for a re-run to resume.
    pub fn interrupt_pvmove_at(&self, percent: u8) {
        // No drift signal: nothing changed yet; the fault fires inside the next move.
        self.state().pvmove_interrupt_at = Some(percent);
    }

    /// Someone unmounts a mount point.
    pub fn unmount(&self, target: &str) {
        self.fault(|s| {
            s.mounted.remove(target);
        });
    }

    /// A container stops (or is removed with `remove`).
    pub fn stop_container(&self, name: &str, remove: bool) {
        self.fault(|s| {
            if remove {
                s.containers.remove(name);
            } else if let Some(c) = s.containers.get_mut(name) {
                c.running = false;
            }
        });
    }

    pub fn set_docker_down(&self, down: bool) {
        self.fault(|s| s.docker_down = down);
    }

    // ---- looking ----

    pub fn file(&self, path: &str) -> Option<FileState> {
        self.state().files.get(path).cloned()
    }

    pub fn service(&self, name: &str) -> Option<SimService> {
        self.state().services.get(name).cloned()
    }

    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    /// The rendered fstab: foreign lines, then omtd's.
    pub fn fstab(&self) -> String {
        let st = self.state();
        let mut s = String::new();
        for l in st.fstab_foreign.iter().chain(st.fstab_owned.iter()) {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// Extents: (total, free) of one PV.
    pub fn pv_extents(&self, device: &str) -> Option<(u64, u64)> {
        let st = self.state();
        st.vgs.values().find_map(|vg| {
            vg.pvs
                .get(device)
                .map(|&total| (total, total - lvm::used_on(vg, device)))
        })
    }
}
