//! The agent and the storage and node controllers on real Debian hosts: two VMs under QEMU
//! (systemd, lvm2 with device-mapper, ext4, nfsd), the freshly built `omtd agent` on each
//! as the systemd unit `deploy/` ships, a real etcd and the operator on this machine.
//! Every scenario is checked inside the VM with the host's own tools (`pvs`, `lvs`, `df`,
//! `exportfs -v`, `findmnt`, `systemctl`, `sha256sum`), and every repair is timed from
//! this machine. One test, scenarios in sequence, so the two VMs boot once.
//!
//! Run alone: `cargo test --test vm_hosts -- --nocapture` (docs/testing.md).

use std::time::{Duration, Instant};

use omtd_crds::ConditionStatus::{False, True};
use omtd_test_support::ports::free_udp_port;
use omtd_test_support::vm::image::{self, Source};
use omtd_test_support::vm::machine::{Disk, PeerLink, Vm, VmSpec};
use omtd_test_support::vm::steps::Steps;
use omtd_test_support::vm::{install_agent, prepare_share, Rig};

#[path = "vm_hosts/front_doors.rs"]
mod front_doors;
#[path = "vm_hosts/galaxy_start.rs"]
mod galaxy_start;
#[path = "vm_hosts/removal.rs"]
mod removal;

const EXECUTOR: &str = "executor.omtd";
const WORKER: &str = "node1.omtd";
const DB: &str = "/srv/executor/database";
const DATA: &str = "/srv/executor/database/written-on-worker.bin";

const BOOT: Duration = Duration::from_secs(240);
const CONVERGE: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(240);
const REPAIR: Duration = Duration::from_secs(60);

/// Each extra disk of the executor, MiB. Small, so pvmove under emulation takes seconds.
const DISK_MIB: u64 = 256;
/// Write cap on the disk the crash scenario moves onto: its pvmove then lasts ~16 s.
const SLOW_DISK_BPS: u64 = 16 * 1024 * 1024;

/// The runbook's cluster cut to what the two VMs are: one worker, and one host for every
/// service role — the executor (with the NFS store on /dev/vdb and /dev/vdc), the editor,
/// the manager (real ZooKeeper; Mesos master and Chronos are stand-ins), the registry and
/// the monitor, each front door under a name of its own.
const CLUSTER_YAML: &str = r#"apiVersion: omtd/v1
kind: Cluster
metadata: {name: omtd}
spec:
  paths: {executor: /srv/executor, editor: /srv/editor}
  frontDoors: {names: {executor: executor.omtd, editor: editor.omtd, registry: registry.omtd, monitor: monitor.omtd}, registryPull: registry-user}
---
apiVersion: omtd/v1
kind: Node
metadata: {name: executor.omtd}
spec: {address: 10.0.0.10, roles: [executor, editor, manager, registry, monitor]}
---
apiVersion: omtd/v1
kind: Node
metadata: {name: node1.omtd}
spec: {address: 10.0.0.21, roles: [worker], credential: node1.omtd}
---
apiVersion: omtd/v1
kind: Credential
metadata: {name: node1.omtd}
spec: {principal: node1.omtd, secret: {value: "n1-Xq7vL2pR9s"}, use: mesos-agent}
---
apiVersion: omtd/v1
kind: Credential
metadata: {name: chronos-framework}
spec: {principal: chronos.omtd, secret: {value: "ch-Pw2eR7uT4v"}, use: chronos-framework}
---
apiVersion: omtd/v1
kind: Credential
metadata: {name: chronos-http}
spec: {principal: galaxy, secret: {value: "gx-Lk9aS3dF6g"}, use: chronos-http}
---
apiVersion: omtd/v1
kind: Credential
metadata: {name: registry-user}
spec: {principal: omtd-push, secret: {value: "rg-Hq4wT8zK2m"}, use: registry}
"#;

/// A Volume of the executor's `nfsstore` group.
fn volume(name: &str, device: &str, state: &str) -> String {
    format!(
        "apiVersion: omtd/v1\nkind: Volume\nmetadata: {{name: {name}}}\nspec:\n  node: executor.omtd\n  \
         device: {device}\n  volumeGroup: nfsstore\n  logicalVolume: nfs_logical\n  filesystem: ext4\n  \
         mountPoint: /srv/executor/database\n  state: {state}\n"
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The file system's size in bytes as `df` sees it on `vm`.
async fn df_size(vm: &Vm) -> u64 {
    vm.run(&format!("df -B1 --output=size {DB} | tail -1"))
        .await
        .trim()
        .parse()
        .expect("df size")
}

async fn checksum(vm: &Vm) -> String {
    vm.run(&format!("sha256sum {DATA} | cut -d' ' -f1"))
        .await
        .trim()
        .to_owned()
}

/// PVs of the VG and the LV's size, in bytes: "nothing on disk changed" compares these.
async fn lvm_layout(vm: &Vm) -> String {
    vm.run(
        "pvs --noheadings --units b -o pv_name,vg_name,pv_size,pv_free,pv_used && \
         lvs --noheadings --units b -o lv_name,lv_size nfsstore",
    )
    .await
}

async fn pvs_of_nfsstore(vm: &Vm) -> Vec<String> {
    let out = vm
        .run("pvs --noheadings -o pv_name --select vg_name=nfsstore")
        .await;
    let mut v: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    v.sort();
    v
}

/// Polls `check` on `vm` after a fault was made; returns the repair latency (from the
/// fault's command returning to the first check that passes).
async fn repaired(vm: &Vm, what: &str, check: &str) -> Duration {
    vm.wait_until(what, check, REPAIR).await
}

/// Waits until `node`'s agent reports at least `n` repairs of drift: the host was put
/// right by the agent (and says so), not by something else.
async fn wait_repairs(rig: &Rig, node: &str, n: u64) {
    let start = Instant::now();
    loop {
        let now = rig.report(node).await.map_or(0, |r| r.corrective_changes);
        if now >= n {
            return;
        }
        assert!(
            start.elapsed() < REPAIR,
            "{node}: the agent reports {now} repairs of drift, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debian_vms_run_the_agent_and_the_storage_procedures() {
    let steps = Steps::new();

    // ---- The image: built once per recipe, then cached. ----
    let (image, source, took) = image::ensure();
    let how = match source {
        Source::Built => "built",
        Source::Cached => "reused from the cache",
    };
    steps.record(
        &format!("image {how}"),
        took,
        &image.dir.display().to_string(),
    );

    // ---- The host side: etcd, the share with this build's omtd, the operator. ----
    let keep = omtd_test_support::vm::machine::keep_vms();
    let run = tempfile::Builder::new()
        .prefix("omtd-vm-")
        .tempdir()
        .expect("run dir");
    // Kept VMs keep their folder (disks, console logs, ssh socket), even after a failure.
    let (run_dir, _run_guard) = if keep {
        (run.keep(), None)
    } else {
        (run.path().to_owned(), Some(run))
    };
    let mut rig = Rig::start(&run_dir).await;
    let share = prepare_share(&run_dir, rig.etcd_port());

    // ---- Two VMs, booted in parallel, joined by a second NIC. ----
    let (a, b) = (free_udp_port(), free_udp_port());
    let disk = |write_bps| Disk {
        size_mib: DISK_MIB,
        write_bps,
    };
    let start = Instant::now();
    let mut executor = Vm::boot(
        &image,
        &VmSpec {
            node: EXECUTOR.into(),
            peer_addr: "10.0.0.10/24".into(),
            peer_mac: 0x10,
            link: PeerLink {
                local_port: a,
                remote_port: b,
            },
            // vdb, vdc: the store; vdd: added; vde: room for removing vdd; vdf (slow): room
            // for removing vdc while the agent is killed.
            disks: vec![
                disk(None),
                disk(None),
                disk(None),
                disk(None),
                disk(Some(SLOW_DISK_BPS)),
            ],
            // Prometheus, ZooKeeper's JVM and the registry's Docker besides the rest.
            memory_mib: 1536,
            forward: vec![2181],
        },
        &run_dir.join("executor"),
        &share,
    );
    let mut worker = Vm::boot(
        &image,
        &VmSpec {
            node: WORKER.into(),
            peer_addr: "10.0.0.21/24".into(),
            peer_mac: 0x21,
            link: PeerLink {
                local_port: b,
                remote_port: a,
            },
            disks: vec![],
            memory_mib: 1024,
            forward: vec![],
        },
        &run_dir.join("worker"),
        &share,
    );
    let (te, tw) = tokio::join!(executor.wait_ssh(BOOT), worker.wait_ssh(BOOT));
    steps.record(
        "boot two VMs in parallel (ssh up)",
        start.elapsed(),
        &format!("executor {}, worker {}", secs(te), secs(tw)),
    );

    // ---- Apply the cluster; the agents come up as systemd units. ----
    front_doors::name_hosts(&[&executor, &worker]).await;
    rig.start_operator().await;
    let start = Instant::now();
    let mut cluster = CLUSTER_YAML.to_owned();
    for (name, dev) in [("nfsstore-vdb", "/dev/vdb"), ("nfsstore-vdc", "/dev/vdc")] {
        cluster.push_str("---\n");
        cluster.push_str(&volume(name, dev, "present"));
    }
    let out = rig.apply("cluster.yaml", &cluster).await;
    assert!(out.contains("volume/nfsstore-vdb created"), "{out}");
    // The worker's cAdvisor container needs its image, and no registry is reachable from
    // here: a stand-in image (busybox's httpd on 8080) under the real image's name, made on
    // the worker's real Docker before its agent starts. Everything about the container
    // (run, ports, volumes, restart policy) is then the agent's real work.
    let cadvisor = omtd_controllers::Settings::default().cadvisor_image;
    let worker_up = async {
        let start = Instant::now();
        worker
            .run(&format!(
                "tar -C /usr/local/share/omtd-vm/cadvisor-standin -c . | docker import \
                 --change 'ENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]' \
                 - {cadvisor} >/dev/null"
            ))
            .await;
        let imported = start.elapsed();
        install_agent(&rig, &worker).await;
        imported
    };
    let executor_up = async {
        // Galaxy's installation holds its tools folder, which omtd exports to the editor
        // (here the same host): the stand-in Galaxy has none of its own.
        executor
            .run("install -d -o galaxy /srv/executor/tools")
            .await;
        front_doors::import_registry_image(&executor).await;
        install_agent(&rig, &executor).await;
    };
    let (_, imported) = tokio::join!(executor_up, worker_up);
    steps.record(
        "worker: stand-in cAdvisor image imported (beside the executor's start)",
        imported,
        &cadvisor,
    );
    let took = rig.wait_converged(&[EXECUTOR, WORKER], CONVERGE).await;
    steps.record(
        "apply the cluster: both agents converged",
        start.elapsed(),
        &format!("(after the agents started: {})", secs(took)),
    );

    // Checked on the executor with its own tools.
    assert_eq!(
        pvs_of_nfsstore(&executor).await,
        ["/dev/vdb", "/dev/vdc"],
        "nfsstore on two disks"
    );
    let lvs = executor.run("lvs --noheadings -o lv_name nfsstore").await;
    assert_eq!(lvs.trim(), "nfs_logical");
    let mounted = executor
        .run(&format!("findmnt -n -o SOURCE,FSTYPE {DB}"))
        .await;
    assert_eq!(
        mounted.split_whitespace().collect::<Vec<_>>(),
        ["/dev/mapper/nfsstore-nfs_logical", "ext4"],
        "the LV is mounted: {mounted}"
    );
    executor
        .run(&format!(
            "grep -Eq '^UUID=[0-9a-f-]+ {DB} ext4 ' /etc/fstab"
        ))
        .await;
    let exports = executor.run("exportfs -v").await;
    let flat = exports.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("{DB} 10.0.0.21(")) && flat.contains("no_root_squash"),
        "exported to the worker: {exports}"
    );
    executor
        .run("systemctl is-active nfs-server apache2 galaxy")
        .await;
    // Galaxy runs from the unit omtd wrote, which systemd re-read (the image's stand-in
    // unit was loaded at boot): no reload pending.
    let unit = executor
        .run("systemctl show -p FragmentPath -p NeedDaemonReload galaxy")
        .await;
    assert!(
        unit.contains("FragmentPath=/etc/systemd/system/galaxy.service")
            && unit.contains("NeedDaemonReload=no"),
        "{unit}"
    );
    // ... and on the worker.
    let mounted = worker
        .run(&format!("findmnt -n -o SOURCE,FSTYPE {DB}"))
        .await;
    let mounted: Vec<&str> = mounted.split_whitespace().collect();
    assert_eq!(
        mounted[0], "10.0.0.10:/srv/executor/database",
        "{mounted:?}"
    );
    assert!(mounted[1].starts_with("nfs"), "{mounted:?}");
    worker
        .run("systemctl is-active mesos-slave prometheus-node-exporter docker")
        .await;
    assert_eq!(
        worker
            .ssh("systemctl is-enabled mesos-master")
            .await
            .stdout
            .trim(),
        "masked"
    );
    let containers = worker
        .run("docker ps --format '{{.Names}} {{.Image}}'")
        .await;
    assert!(
        containers.contains(&format!("cadvisor {cadvisor}")),
        "{containers}"
    );

    // A file written on the worker, over NFS, is read back on the executor.
    let start = Instant::now();
    let written = worker
        .run(&format!(
            "head -c 16M /dev/urandom > {DATA} && sync && sha256sum {DATA} | cut -d' ' -f1"
        ))
        .await
        .trim()
        .to_owned();
    let read = checksum(&executor).await;
    assert_eq!(read, written, "the executor reads what the worker wrote");
    steps.record(
        "16 MiB written on the worker, same sha256 on the executor",
        start.elapsed(),
        &format!("sha256 {}…", &written[..12]),
    );

    // ---- Drift. ----
    let corrective_before = rig
        .report(EXECUTOR)
        .await
        .map_or(0, |r| r.corrective_changes);
    // The agent can see the unit deactivating and queue its start before the stop job ends;
    // systemd then cancels our stop ("Job for nfs-server.service canceled"). That is the
    // agent repairing early, not a failed drift: inject the stop again until it takes.
    for attempt in 1..=5 {
        let out = executor.ssh("systemctl stop nfs-server").await;
        if out.code == 0 {
            break;
        }
        assert!(
            out.stderr.contains("canceled") && attempt < 5,
            "executor: `systemctl stop nfs-server` exited {}: {}",
            out.code,
            out.stderr
        );
    }
    let took = repaired(
        &executor,
        "nfs-server running again",
        "systemctl is-active -q nfs-server",
    )
    .await;
    steps.record(
        "drift: nfs-server stopped -> running",
        took,
        "systemctl is-active",
    );

    let exports_file = executor.run("sha256sum /etc/exports").await;
    executor
        .run("sed -i 's/no_root_squash/root_squash/' /etc/exports")
        .await;
    let took = repaired(
        &executor,
        "/etc/exports restored",
        &format!(
            "[ \"$(sha256sum /etc/exports)\" = '{}' ] && exportfs -v | grep -q no_root_squash",
            exports_file.trim()
        ),
    )
    .await;
    steps.record(
        "drift: /etc/exports edited -> restored",
        took,
        "sha256 of the file, exportfs -v",
    );
    wait_repairs(&rig, EXECUTOR, corrective_before + 2).await;

    let worker_repairs = rig.report(WORKER).await.map_or(0, |r| r.corrective_changes);
    // The agent sees the unmask (a unit change) and may mask the unit again before the
    // start: that is the repair racing the fault, so the fault is retried until it lands.
    worker
        .run(
            "for i in $(seq 30); do \
               systemctl unmask -q mesos-master && systemctl start mesos-master 2>/dev/null \
                 && exit 0; sleep 0.2; done; exit 1",
        )
        .await;
    let took = repaired(
        &worker,
        "the stray mesos-master stopped and masked",
        "! systemctl is-active -q mesos-master && [ \"$(systemctl is-enabled mesos-master)\" = masked ]",
    )
    .await;
    steps.record(
        "drift: mesos-master started on the worker -> stopped, masked",
        took,
        "systemctl is-active / is-enabled",
    );
    wait_repairs(&rig, WORKER, worker_repairs + 1).await;

    // ---- Add disk space: pvcreate, vgextend, lvextend, online resize2fs. ----
    let size_before = df_size(&executor).await;
    let worker_size_before = df_size(&worker).await;
    let start = Instant::now();
    rig.apply("vdd.yaml", &volume("nfsstore-vdd", "/dev/vdd", "present"))
        .await;
    rig.wait_volume("nfsstore-vdd", True, "Ready", STEP).await;
    let took = start.elapsed();
    rig.wait_converged(&[EXECUTOR], CONVERGE).await;
    assert_eq!(
        pvs_of_nfsstore(&executor).await,
        ["/dev/vdb", "/dev/vdc", "/dev/vdd"]
    );
    let size_after = df_size(&executor).await;
    assert!(
        // A 256 MiB disk is 63 extents of 4 MiB; ext4 keeps some of it for its own tables.
        size_after > size_before + DISK_MIB * 3 / 4 * 1024 * 1024,
        "df grew by about a disk: {size_before} -> {size_after}"
    );
    assert!(
        df_size(&worker).await > worker_size_before,
        "the worker's NFS mount sees the bigger file system"
    );
    assert_eq!(checksum(&executor).await, written, "data intact");
    assert_eq!(checksum(&worker).await, written, "data intact over NFS");
    steps.record(
        "add disk space: vdd in nfsstore, ext4 grown online",
        took,
        &format!(
            "df {} -> {} MiB, sha256 same",
            size_before >> 20,
            size_after >> 20
        ),
    );

    // ---- Reduce disk space: refused while the other PVs lack room. ----
    let layout = lvm_layout(&executor).await;
    let start = Instant::now();
    rig.apply(
        "vdd-absent.yaml",
        &volume("nfsstore-vdd", "/dev/vdd", "absent"),
    )
    .await;
    let why = rig
        .wait_volume("nfsstore-vdd", False, "RemovalRefused", STEP)
        .await;
    let took = start.elapsed();
    assert!(
        why.contains("cannot remove /dev/vdd") && why.contains("VFree 0"),
        "{why}"
    );
    let described = rig.omtd(&["describe", "volume", "nfsstore-vdd"]).await;
    assert!(described.contains("RemovalRefused"), "{described}");
    rig.wait_converged(&[EXECUTOR], CONVERGE).await;
    assert_eq!(
        lvm_layout(&executor).await,
        layout,
        "a refused removal changed nothing on disk"
    );
    assert_eq!(df_size(&executor).await, size_after);
    assert_eq!(checksum(&executor).await, written);
    steps.record(
        "reduce disk space without room: refused, nothing changed",
        took,
        "pvs/lvs identical, RemovalRefused (VFree 0)",
    );

    // ... allowed once a disk adds room: pvmove, vgreduce, pvremove.
    let start = Instant::now();
    rig.apply("vde.yaml", &volume("nfsstore-vde", "/dev/vde", "present"))
        .await;
    rig.wait_volume("nfsstore-vdd", True, "Removed", STEP).await;
    let took = start.elapsed();
    rig.wait_converged(&[EXECUTOR], CONVERGE).await;
    assert_eq!(
        pvs_of_nfsstore(&executor).await,
        ["/dev/vdb", "/dev/vdc", "/dev/vde"]
    );
    let label = executor.ssh("pvs /dev/vdd").await;
    assert_ne!(
        label.code, 0,
        "pvremove wiped vdd's label: {}",
        label.stdout
    );
    assert_eq!(df_size(&executor).await, size_after, "the LV kept its size");
    assert_eq!(checksum(&executor).await, written, "data intact");
    assert_eq!(checksum(&worker).await, written, "data intact over NFS");
    steps.record(
        "reduce disk space with room: pvmove, vgreduce, pvremove",
        took,
        "vdd out, sha256 same",
    );

    // ---- Crash: SIGKILL the agent in the middle of a pvmove. ----
    let unit = format!("omtd-agent@{EXECUTOR}");
    let start = Instant::now();
    let mut removal = volume("nfsstore-vdc", "/dev/vdc", "absent");
    removal.push_str("---\n");
    removal.push_str(&volume("nfsstore-vdf", "/dev/vdf", "present"));
    rig.apply("vdc-absent.yaml", &removal).await;
    executor
        .wait_until(
            "a pvmove off vdc under way",
            "lvs -a --noheadings -o lv_name nfsstore | grep -q pvmove",
            STEP,
        )
        .await;
    let moving_after = start.elapsed();
    let old_pid = executor
        .run(&format!("systemctl show -p MainPID --value {unit}"))
        .await
        .trim()
        .to_owned();
    let copied = executor
        .run(
            &format!("lvs -a --noheadings -o copy_percent nfsstore | tr -d ' ' | grep . | head -1; kill -9 {old_pid}"),
        )
        .await;
    let killed_at = Instant::now();
    eprintln!(
        "[vm] killed the agent (pid {old_pid}) with the pvmove at {}%",
        copied.trim()
    );
    let restarted = executor
        .wait_until(
            "systemd restarted the agent",
            &format!(
                "pid=$(systemctl show -p MainPID --value {unit}); [ \"$pid\" != 0 ] && [ \"$pid\" != {old_pid} ]"
            ),
            REPAIR,
        )
        .await;
    let restarts = executor
        .run(&format!("systemctl show -p NRestarts --value {unit}"))
        .await;
    assert!(
        restarts.trim().parse::<u32>().unwrap_or(0) >= 1,
        "{restarts}"
    );
    rig.wait_volume("nfsstore-vdc", True, "Removed", STEP).await;
    let done = killed_at.elapsed();
    rig.wait_converged(&[EXECUTOR, WORKER], CONVERGE).await;
    assert_eq!(
        pvs_of_nfsstore(&executor).await,
        ["/dev/vdb", "/dev/vde", "/dev/vdf"]
    );
    assert_eq!(df_size(&executor).await, size_after, "the LV kept its size");
    assert_eq!(checksum(&executor).await, written, "data intact");
    assert_eq!(checksum(&worker).await, written, "data intact over NFS");
    steps.record(
        "crash: agent SIGKILLed during pvmove -> restarted by systemd",
        restarted,
        &format!(
            "killed at {}% copied, {} after the apply",
            copied.trim(),
            secs(moving_after)
        ),
    );
    steps.record(
        "crash: move completed after the kill, vdc out, data intact",
        done,
        "pvs, df, sha256 on both VMs",
    );

    // ---- The front doors, with the real programs. ----
    let start = Instant::now();
    front_doors::http_front_doors(&worker).await;
    let scraped = front_doors::prometheus_scrapes(&worker, "http", "").await;
    steps.record(
        "front doors over HTTP: /v2/ 401/200, Galaxy, Grafana; Prometheus scrapes the worker",
        start.elapsed(),
        &format!("node exporter target up after {}", secs(scraped)),
    );
    let start = Instant::now();
    front_doors::zookeeper_probe(&executor).await;
    steps.record(
        "ZooKeeper from omtd's config, read by omtd's probe",
        start.elapsed(),
        "myid 1, a master entry read back",
    );
    let start = Instant::now();
    front_doors::debug_override(&rig, &executor).await;
    steps.record(
        "omtd debug editor --ui-access: galaxy.ini False on the host, --off: True",
        start.elapsed(),
        "the user's other keys kept",
    );
    let (seen, up) = galaxy_start::slow_start(&rig, &executor, EXECUTOR).await;
    steps.record(
        "Galaxy's slow start: activating, reported starting, then converged",
        up,
        &format!("starting reported after {}", secs(seen)),
    );
    let (tls_yaml, ca) = front_doors::tls_records(&rig, CLUSTER_YAML).await;
    let start = Instant::now();
    front_doors::tls_refused_then_live(&rig, &executor, &worker, &tls_yaml).await;
    steps.record(
        "TLS on with its certificate unwritable: apache2 -t refuses, old site serves; then live",
        start.elapsed(),
        "Refused, /v2/ 401 over HTTP meanwhile",
    );
    let start = Instant::now();
    front_doors::https_front_doors(&worker).await;
    front_doors::prometheus_scrapes(
        &worker,
        "https",
        "--cacert /etc/docker/certs.d/registry.omtd/ca.crt",
    )
    .await;
    front_doors::docker_push_pull(&worker, &executor, &ca).await;
    steps.record(
        "HTTPS front doors; docker login, push (worker), pull (executor)",
        start.elapsed(),
        "cluster CA only; 301 from :80",
    );

    // ---- Remove the worker: drained (Mesos a stand-in), retired, its targets gone. ----
    let (took, left) = removal::remove_the_worker(&mut rig, &executor, &worker).await;
    steps.record(
        "remove the worker: omtd delete node -> released once Prometheus dropped its targets",
        took,
        &format!("targets left: {left}"),
    );

    // ---- Done: stop the operator; the VMs go with their guards. ----
    rig.stop().await;
    drop((executor, worker));
    if keep {
        eprintln!("[vm] run folder kept: {}", run_dir.display());
    }
}
