//! The agent's apply pass on the sim host: dependency order, idempotence, repairs of every
//! injected fault, restarts on file change and token, crash-loop backoff, refusals that
//! change nothing, and no destructive step while the store is lost.

use std::collections::BTreeMap;
use std::time::Duration;

use omtd::agent::apply::{self, PassOutcome, Scope};
use omtd::agent::drivers::sim::SimHost;
use omtd::agent::drivers::Host;
use omtd::agent::memory::Memory;
use omtd::agent::merge::{MergedPlan, Merger};
use omtd::agent::repair_limit::RepairPolicy;
use omtd_crds::plan::*;
use omtd_crds::plan_manifest::{PlanManifest, MANIFEST_KEY};

const GIB: u64 = 1024 * 1024 * 1024;

fn file(path: &str, content: &str) -> FileSpec {
    FileSpec::plain(path, content)
}

fn service(name: &str, state: ServiceState) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        state,
        enabled: state == ServiceState::Running,
        restart_on: vec![],
        restart_token: None,
        after: vec![],
        slow_start: false,
    }
}

/// A worker-like plan: files, services, an NFS mount, an LVM volume with ext4 mounted by
/// UUID, an export, a container.
fn worker_slice() -> PlanSlice {
    let mut secret = file(
        "/etc/mesos-slave/store/credentials.json",
        r#"{"principal":"node1.omtd","secret":"hunter2"}"#,
    );
    secret.secret = true;
    let mut agent = service("mesos-slave", ServiceState::Running);
    agent.restart_on = vec!["/etc/mesos/zk".into(), secret.path.clone()];
    agent.after = vec!["docker".into()];
    PlanSlice {
        controller: "node".into(),
        fencing_token: 1,
        files: vec![file("/etc/mesos/zk", "zk://10.0.0.5:2181/mesos"), secret],
        services: vec![
            agent,
            service("docker", ServiceState::Running),
            service("mesos-master", ServiceState::Masked),
        ],
        physical_volumes: vec![PhysicalVolumeSpec {
            device: "/dev/vdb".into(),
            volume_group: "nfsstore".into(),
            ensure: Ensure::Present,
        }],
        logical_volumes: vec![LogicalVolumeSpec {
            volume_group: "nfsstore".into(),
            name: "nfs_logical".into(),
            grow_to_fill: true,
        }],
        filesystems: vec![FilesystemSpec {
            device: "/dev/nfsstore/nfs_logical".into(),
            fstype: "ext4".into(),
        }],
        mounts: vec![
            MountSpec {
                source: "10.0.0.5:/srv/executor/database".into(),
                target: "/srv/executor/database".into(),
                fstype: "nfs".into(),
                options: "defaults".into(),
                dump: 0,
                pass: 0,
                ensure: Ensure::Present,
            },
            MountSpec {
                source: "/dev/nfsstore/nfs_logical".into(),
                target: "/srv/nfs".into(),
                fstype: "ext4".into(),
                options: "defaults".into(),
                dump: 0,
                pass: 2,
                ensure: Ensure::Present,
            },
        ],
        exports: vec![ExportSpec {
            path: "/srv/nfs".into(),
            client: "10.0.0.21".into(),
            options: "rw,sync,no_subtree_check,no_root_squash".into(),
        }],
        containers: vec![ContainerSpec {
            name: "cadvisor".into(),
            image: "google/cadvisor:latest".into(),
            ports: vec!["8080:8080".into()],
            volumes: vec!["/:/rootfs:ro".into()],
            ensure: Ensure::Present,
        }],
    }
}

/// The slices merged as an agent sees them in the store: with the manifest naming them.
fn merge(slices: &[&PlanSlice]) -> MergedPlan {
    let mut raw: BTreeMap<String, Vec<u8>> = slices
        .iter()
        .map(|s| (s.controller.clone(), serde_json::to_vec(s).unwrap()))
        .collect();
    let manifest = PlanManifest::naming(slices.iter().copied());
    raw.insert(MANIFEST_KEY.into(), serde_json::to_vec(&manifest).unwrap());
    Merger::new(0).merge(&raw)
}

struct Rig {
    sim: SimHost,
    host: Host,
    mem: Memory,
}

impl Rig {
    fn new(policy: RepairPolicy) -> Rig {
        let sim = SimHost::new();
        for s in ["mesos-slave", "docker", "mesos-master"] {
            sim.install_service(s);
        }
        sim.add_device("/dev/vdb", GIB);
        sim.add_device("/dev/vdc", GIB);
        Rig {
            host: sim.host(),
            sim,
            mem: Memory::new(policy),
        }
    }

    fn pass(&mut self, plan: &MergedPlan, scope: Scope) -> PassOutcome {
        apply::run(&mut self.host, &mut self.mem, plan, scope, true)
    }

    fn state_of(out: &PassOutcome, id: &str) -> ResourceReport {
        out.resources
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {:?}", out.resources))
    }
}

#[test]
fn converges_in_dependency_order_then_does_nothing() {
    let mut rig = Rig::new(RepairPolicy::default());
    let plan = merge(&[&worker_slice()]);
    let out = rig.pass(&plan, Scope::Full);
    let bad: Vec<_> = out
        .resources
        .iter()
        .filter(|r| r.state != ResourceState::Converged)
        .collect();
    assert!(bad.is_empty(), "not converged: {bad:?}");
    let log = rig.sim.log();
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} not in {log:?}"))
    };
    // volumes → filesystems → mounts → files → exports → services → containers
    assert!(pos("pvcreate") < pos("lvcreate"));
    assert!(pos("lvcreate") < pos("mkfs.ext4"));
    assert!(pos("mkfs.ext4") < pos("write /etc/fstab"));
    assert!(pos("mount /srv/nfs") < pos("write /etc/mesos/zk"));
    assert!(pos("write /etc/mesos/zk") < pos("exportfs -ra"));
    assert!(pos("exportfs -ra") < pos("start docker"));
    assert!(
        pos("start docker") < pos("start mesos-slave"),
        "after: docker first"
    );
    assert!(pos("start mesos-slave") < pos("docker run cadvisor"));
    // Device mounts go to fstab by UUID.
    assert!(
        rig.sim.fstab().contains("UUID=sim-uuid-"),
        "{}",
        rig.sim.fstab()
    );
    // Secrets are 0600, bytes exact, no trailing newline.
    let cred = rig
        .sim
        .file("/etc/mesos-slave/store/credentials.json")
        .unwrap();
    assert_eq!(cred.mode, 0o600);
    assert!(!cred.content.ends_with(b"\n"));
    // The masked master is masked (installed, never started).
    let m = rig.sim.service("mesos-master").unwrap();
    assert!(m.masked && !m.running && m.starts == 0);
    assert_eq!(rig.mem.corrective, 0);
    assert!(rig.mem.intentional >= 10);
    // Nothing in the report carries the secret.
    assert!(!format!("{:?}", out.resources).contains("hunter2"));

    let before = rig.sim.log().len();
    let again = rig.pass(&plan, Scope::Full);
    assert_eq!(again.changes, 0);
    assert_eq!(rig.sim.log().len(), before, "second pass touched the host");
    // The first report saw vdb's extents before the LV took them; from now on the report
    // is the same pass after pass: nothing to write.
    let third = rig.pass(&plan, Scope::Full);
    assert_eq!(third.resources, again.resources);
    let light = rig.pass(&plan, Scope::Light);
    assert_eq!(light.resources, again.resources);
}

#[test]
fn every_fault_is_repaired_and_counted_as_corrective() {
    let mut rig = Rig::new(RepairPolicy::default());
    let plan = merge(&[&worker_slice()]);
    rig.pass(&plan, Scope::Full);
    let intentional = rig.mem.intentional;

    rig.sim.kill_service("docker");
    rig.sim
        .edit_file("/etc/mesos/zk", b"zk://localhost:2181/mesos\n");
    rig.sim.start_stray("mesos-master");
    rig.sim.unmount("/srv/executor/database");
    rig.sim.stop_container("cadvisor", true);
    let out = rig.pass(&plan, Scope::Light);
    assert!(out
        .resources
        .iter()
        .all(|r| r.state == ResourceState::Converged));
    assert!(rig.sim.service("docker").unwrap().running);
    assert_eq!(
        rig.sim.file("/etc/mesos/zk").unwrap().content,
        b"zk://10.0.0.5:2181/mesos"
    );
    let m = rig.sim.service("mesos-master").unwrap();
    assert!(!m.running && m.masked);
    assert!(rig.sim.state().mounted.contains("/srv/executor/database"));
    assert!(rig.sim.state().containers["cadvisor"].running);
    assert_eq!(rig.mem.intentional, intentional);
    // docker, zk file, the master, the mount, the container — and mesos-slave, restarted
    // because /etc/mesos/zk (in its restart_on) was rewritten.
    assert_eq!(rig.mem.corrective, 6);
    assert_eq!(rig.sim.service("mesos-slave").unwrap().starts, 2);
}

#[test]
fn restart_on_file_change_and_token_restart_once() {
    let mut rig = Rig::new(RepairPolicy::default());
    let mut slice = worker_slice();
    rig.pass(&merge(&[&slice]), Scope::Full);
    let starts = |rig: &Rig| rig.sim.service("mesos-slave").unwrap().starts;
    assert_eq!(starts(&rig), 1);

    // The plan changes the zk file: mesos-slave restarts once.
    slice.files[0].content = "zk://10.0.0.6:2181/mesos".into();
    let plan = merge(&[&slice]);
    rig.pass(&plan, Scope::Full);
    assert_eq!(starts(&rig), 2);
    rig.pass(&plan, Scope::Full);
    assert_eq!(starts(&rig), 2, "no restart when nothing changed");

    // A restart token: one restart, then none while the token stays.
    slice.services[0].restart_token = Some("t1".into());
    let plan = merge(&[&slice]);
    let out = rig.pass(&plan, Scope::Full);
    assert_eq!(starts(&rig), 3);
    assert_eq!(
        Rig::state_of(&out, "service:mesos-slave")
            .observed
            .get("restartToken")
            .map(String::as_str),
        Some("t1")
    );
    rig.pass(&plan, Scope::Full);
    assert_eq!(starts(&rig), 3);
    // An unchanged file rewritten by nobody does not restart anything.
    rig.pass(&plan, Scope::Light);
    assert_eq!(starts(&rig), 3);
}

#[test]
fn a_crash_looping_service_is_backed_off() {
    let policy = RepairPolicy {
        burst: 3,
        window: Duration::from_secs(30),
        base: Duration::from_millis(400),
        max: Duration::from_secs(5),
    };
    let mut rig = Rig::new(policy);
    let plan = merge(&[&worker_slice()]);
    rig.pass(&plan, Scope::Full);
    rig.sim.set_crash_on_start("docker", true);
    // Checked every 20 ms for 1.5 s.
    let mut last = None;
    for _ in 0..75 {
        last = Some(rig.pass(&plan, Scope::Light));
        std::thread::sleep(Duration::from_millis(20));
    }
    let starts = rig.sim.service("docker").unwrap().starts;
    // 1 start + 3 quick restarts, then one after 400 ms and one after 800 ms more.
    assert!((4..=7).contains(&starts), "bounded restarts, got {starts}");
    let r = Rig::state_of(&last.unwrap(), "service:docker");
    assert_eq!(r.state, ResourceState::CrashLooping, "{r:?}");
    // It recovers: the next allowed start sticks, and once it stays up it settles.
    rig.sim.set_crash_on_start("docker", false);
    std::thread::sleep(Duration::from_secs(2));
    rig.pass(&plan, Scope::Light);
    assert!(rig.sim.service("docker").unwrap().running);
}

#[test]
fn pv_removal_without_room_is_refused_and_changes_nothing() {
    let mut rig = Rig::new(RepairPolicy::default());
    let mut slice = worker_slice();
    slice.physical_volumes.push(PhysicalVolumeSpec {
        device: "/dev/vdc".into(),
        volume_group: "nfsstore".into(),
        ensure: Ensure::Present,
    });
    rig.pass(&merge(&[&slice]), Scope::Full);
    // The LV filled both PVs (PFree 0 everywhere): removing vdc must be refused.
    slice.physical_volumes[1].ensure = Ensure::Absent;
    let vgs = rig.sim.state().vgs.clone();
    let out = rig.pass(&merge(&[&slice]), Scope::Full);
    let r = Rig::state_of(&out, "pv:/dev/vdc");
    assert_eq!(r.state, ResourceState::Refused);
    assert!(r.message.contains("no extents available"), "{}", r.message);
    assert_eq!(rig.sim.state().vgs, vgs);
}

#[test]
fn no_destructive_step_while_the_store_is_lost() {
    let mut rig = Rig::new(RepairPolicy::default());
    let mut slice = worker_slice();
    slice.logical_volumes.clear();
    slice.filesystems.clear();
    slice.mounts.truncate(1);
    slice.physical_volumes.push(PhysicalVolumeSpec {
        device: "/dev/vdc".into(),
        volume_group: "nfsstore".into(),
        ensure: Ensure::Present,
    });
    rig.pass(&merge(&[&slice]), Scope::Full);
    slice.physical_volumes[1].ensure = Ensure::Absent;
    slice.mounts[0].ensure = Ensure::Absent;
    let plan = merge(&[&slice]);
    let out = apply::run(&mut rig.host, &mut rig.mem, &plan, Scope::Full, false);
    assert_eq!(
        Rig::state_of(&out, "pv:/dev/vdc").state,
        ResourceState::Progressing
    );
    assert_eq!(
        Rig::state_of(&out, "mount:/srv/executor/database").state,
        ResourceState::Progressing
    );
    assert!(rig.sim.pv_extents("/dev/vdc").is_some());
    assert!(rig.sim.state().mounted.contains("/srv/executor/database"));
    // Back in touch: both happen.
    rig.pass(&plan, Scope::Full);
    assert!(rig.sim.pv_extents("/dev/vdc").is_none());
    assert!(!rig.sim.state().mounted.contains("/srv/executor/database"));
}

#[test]
fn a_conflict_leaves_the_host_alone_and_keeps_owned_lines() {
    let mut rig = Rig::new(RepairPolicy::default());
    let slice = worker_slice();
    rig.pass(&merge(&[&slice]), Scope::Full);
    let fstab = rig.sim.fstab();
    // Another controller claims the NFS mount and the zk file with other values.
    let mut other = PlanSlice {
        controller: "storage".into(),
        fencing_token: 1,
        ..Default::default()
    };
    other.mounts.push(MountSpec {
        source: "10.9.9.9:/x".into(),
        ..slice.mounts[0].clone()
    });
    other
        .files
        .push(file("/etc/mesos/zk", "zk://other:2181/mesos"));
    let out = rig.pass(&merge(&[&slice, &other]), Scope::Full);
    for id in ["mount:/srv/executor/database", "file:/etc/mesos/zk"] {
        assert_eq!(Rig::state_of(&out, id).state, ResourceState::Conflict);
    }
    assert_eq!(
        rig.sim.fstab(),
        fstab,
        "owned fstab lines kept during a conflict"
    );
    assert_eq!(
        rig.sim.file("/etc/mesos/zk").unwrap().content,
        b"zk://10.0.0.5:2181/mesos"
    );
}
