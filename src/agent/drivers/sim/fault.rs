//! The sim host's faults as data, so a host in another process (`omtd agent --driver sim
//! --sim-api`, served by the sim world's machine API) can take them over HTTP. Each variant is one of
//! [`SimHost`]'s fault or setup methods; `inject` calls it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SimHost;

/// One thing done to a sim host from outside its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// The service's process dies.
    KillService {
        name: String,
    },
    /// The running service hangs: still active, doing nothing until its next start.
    HangService {
        name: String,
    },
    /// Someone starts a service by hand, unmasking it first.
    StartStray {
        name: String,
    },
    /// Every start of the service dies at once (or no longer does).
    CrashOnStart {
        name: String,
        crash: bool,
    },
    /// Someone writes a file by hand.
    EditFile {
        path: String,
        content: String,
    },
    ChmodFile {
        path: String,
        mode: u32,
    },
    RemoveFile {
        path: String,
    },
    /// A blank disk is attached.
    AddDevice {
        path: String,
        size: u64,
    },
    /// Every free extent of a volume group is taken.
    FillDisk {
        vg: String,
    },
    /// pvmove runs in `steps` steps of `step_ms` each.
    PvmovePace {
        steps: u32,
        step_ms: u64,
    },
    /// The next pvmove dies once it has copied this percent.
    InterruptPvmoveAt {
        percent: u8,
    },
    Unmount {
        target: String,
    },
    StopContainer {
        name: String,
        remove: bool,
    },
    DockerDown {
        down: bool,
    },
}

impl SimHost {
    /// Does what `fault` says to this host.
    pub fn inject(&self, fault: &Fault) {
        match fault {
            Fault::KillService { name } => self.kill_service(name),
            Fault::HangService { name } => self.hang_service(name),
            Fault::StartStray { name } => self.start_stray(name),
            Fault::CrashOnStart { name, crash } => self.set_crash_on_start(name, *crash),
            Fault::EditFile { path, content } => self.edit_file(path, content.as_bytes()),
            Fault::ChmodFile { path, mode } => self.chmod_file(path, *mode),
            Fault::RemoveFile { path } => self.remove_file(path),
            Fault::AddDevice { path, size } => self.add_device(path, *size),
            Fault::FillDisk { vg } => self.fill_disk(vg),
            Fault::PvmovePace { steps, step_ms } => {
                self.set_pvmove_pace(*steps, Duration::from_millis(*step_ms))
            }
            Fault::InterruptPvmoveAt { percent } => self.interrupt_pvmove_at(*percent),
            Fault::Unmount { target } => self.unmount(target),
            Fault::StopContainer { name, remove } => self.stop_container(name, *remove),
            Fault::DockerDown { down } => self.set_docker_down(*down),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_survives_json_and_does_what_it_names() {
        let host = SimHost::new();
        host.install_service("mesos-master");
        let json = r#"{"fault":"start_stray","name":"mesos-master"}"#;
        let fault: Fault = serde_json::from_str(json).expect("parses");
        host.inject(&fault);
        let svc = host.service("mesos-master").expect("installed");
        assert!(svc.running && !svc.masked);
        assert_eq!(serde_json::to_string(&fault).expect("serializes"), json);
    }

    #[test]
    fn a_hung_service_keeps_running_until_its_next_start() {
        use crate::agent::drivers::Services;
        let mut host = SimHost::new();
        host.install_service("mesos-slave");
        host.inject(&Fault::HangService {
            name: "mesos-slave".into(),
        });
        // Not running: nothing to hang.
        assert!(!host.service("mesos-slave").expect("installed").hung);
        host.start("mesos-slave").expect("starts");
        host.inject(&Fault::HangService {
            name: "mesos-slave".into(),
        });
        let svc = host.service("mesos-slave").expect("installed");
        assert!(svc.running && svc.hung, "{svc:?}");
        host.restart("mesos-slave").expect("restarts");
        let svc = host.service("mesos-slave").expect("installed");
        assert!(svc.running && !svc.hung, "{svc:?}");
    }
}
