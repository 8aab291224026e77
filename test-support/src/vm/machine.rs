//! One Debian VM under QEMU (TCG: this machine's kernel cannot run a guest under KVM): a
//! throwaway qcow2 overlay over the cached image, extra virtio disks, ssh on a forwarded
//! loopback port, a second NIC on a UDP socket shared with the other VM, and the run's
//! share folder (the omtd binary) over virtfs.
//!
//! Dropping a `Vm` kills its QEMU, unless `OMTD_VM_KEEP=1` asks to keep it up for
//! debugging; then it prints how to log in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::image::Image;
use crate::ports::free_port;

/// MAC of the first NIC (QEMU's user network), matched by the image's network script.
const SLIRP_MAC: &str = "52:54:00:00:00:02";

/// An extra virtio disk.
pub struct Disk {
    pub size_mib: u64,
    /// Cap on write bandwidth (bytes/s): makes a pvmove onto this disk last long enough to
    /// crash the agent in the middle of it.
    pub write_bps: Option<u64>,
}

/// The VM link between the two machines: UDP on loopback, one port each way.
#[derive(Clone, Copy)]
pub struct PeerLink {
    pub local_port: u16,
    pub remote_port: u16,
}

pub struct VmSpec {
    /// The Node record's name; also the VM's hostname.
    pub node: String,
    /// Address on the VM link, with prefix length (`10.0.0.10/24`).
    pub peer_addr: String,
    /// Last byte of the VM-link NIC's MAC (52:54:00:00:01:xx).
    pub peer_mac: u8,
    pub link: PeerLink,
    /// Extra disks: /dev/vdb, /dev/vdc, ... in this order.
    pub disks: Vec<Disk>,
    pub memory_mib: u64,
    /// Guest TCP ports this machine reaches on loopback (QEMU hostfwd), e.g. 443 for the
    /// test's own HTTPS checks and 2181 for the ZooKeeper probe: [`Vm::forwarded`].
    pub forward: Vec<u16>,
}

/// What one ssh command did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Vm {
    pub node: String,
    pub ssh_port: u16,
    /// Guest port → the loopback port that reaches it.
    pub forwarded: std::collections::BTreeMap<u16, u16>,
    pub key: PathBuf,
    pub dir: PathBuf,
    child: Option<Child>,
    started: Instant,
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Vm {
    /// Creates the VM's disks under `dir` and starts QEMU. Returns at once: the guest boots
    /// in the background (see [`Vm::wait_ssh`]).
    pub fn boot(image: &Image, spec: &VmSpec, dir: &Path, share: &Path) -> Vm {
        std::fs::create_dir_all(dir).expect("VM dir");
        let overlay = dir.join("root.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            &image.root.display().to_string(),
            &overlay.display().to_string(),
        ]);
        let ssh_port = free_port();
        let forwarded: std::collections::BTreeMap<u16, u16> =
            spec.forward.iter().map(|&g| (g, free_port())).collect();
        let mut user_net = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22");
        for (guest, host) in &forwarded {
            user_net.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2"])
            .args(["-m", &spec.memory_mib.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-kernel", &image.kernel.display().to_string()])
            .args(["-initrd", &image.initrd.display().to_string()])
            .args([
                "-append",
                &format!(
                    "root=/dev/vda rw console=ttyS0 loglevel=4 systemd.hostname={} omtd.peer={}",
                    spec.node, spec.peer_addr
                ),
            ])
            .args([
                "-drive",
                &format!("file={},if=virtio,format=qcow2", overlay.display()),
            ]);
        for (i, disk) in spec.disks.iter().enumerate() {
            let path = dir.join(format!("disk{i}.qcow2"));
            qemu_img(&[
                "create",
                "-q",
                "-f",
                "qcow2",
                &path.display().to_string(),
                &format!("{}M", disk.size_mib),
            ]);
            let mut drive = format!("file={},if=virtio,format=qcow2", path.display());
            if let Some(bps) = disk.write_bps {
                drive.push_str(&format!(",throttling.bps-write={bps}"));
            }
            cmd.args(["-drive", &drive]);
        }
        cmd.args([
            "-netdev",
            &user_net,
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={SLIRP_MAC}"),
            "-netdev",
            &format!(
                "socket,id=n1,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
                spec.link.remote_port, spec.link.local_port
            ),
            "-device",
            &format!(
                "virtio-net-pci,netdev=n1,mac=52:54:00:00:01:{:02x}",
                spec.peer_mac
            ),
            "-virtfs",
            &format!(
                "local,path={},mount_tag=omtd,security_model=none,readonly=on",
                share.display()
            ),
            "-serial",
            &format!("file:{}", dir.join("console.log").display()),
        ]);
        let log = std::fs::File::create(dir.join("qemu.log")).expect("qemu log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("qemu log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start qemu-system-x86_64: {e}\n{}",
                    super::image::INSTALL_HINT
                )
            });
        Vm {
            node: spec.node.clone(),
            ssh_port,
            forwarded,
            key: image.key.clone(),
            dir: dir.to_owned(),
            child: Some(child),
            started: Instant::now(),
        }
    }

    /// The ssh command line to log in (printed when the VMs are kept).
    pub fn login_line(&self) -> String {
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1",
            self.key.display(),
            self.ssh_port
        )
    }

    /// ssh to the guest with the rig's key, through the master connection when one is up
    /// (a fresh handshake costs the emulated guest hundreds of milliseconds, which would
    /// blur every latency measured over ssh).
    fn ssh_base(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(["-i", &self.key.display().to_string()])
            .args(["-p", &self.ssh_port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg("-o")
            .arg(format!("ControlPath={}/ssh.sock", self.dir.display()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    fn ssh_command(&self, script: &str) -> tokio::process::Command {
        let mut c = self.ssh_base();
        c.args(["-o", "ControlMaster=no", "root@127.0.0.1", script]);
        c
    }

    /// Starts the master connection, in the background, with no stdio of ours: a master
    /// started by a command whose output is captured would hold that pipe open.
    async fn start_master(&self) -> bool {
        let mut c = self.ssh_base();
        c.args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=yes",
            "-N",
            "-f",
            "root@127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        matches!(c.status().await, Ok(s) if s.success())
    }

    /// An ssh tunnel from `127.0.0.1:local` here to `to` as the VM sees it (its own
    /// loopback services, e.g. Prometheus on `127.0.0.1:9090`); closed when dropped.
    pub fn tunnel(&self, local: u16, to: &str) -> tokio::process::Child {
        let mut cmd = self.ssh_base();
        cmd.args([
            "-o",
            "ControlMaster=no",
            "-o",
            "ExitOnForwardFailure=yes",
            "-N",
            "-L",
        ])
        .arg(format!("127.0.0.1:{local}:{to}"))
        .arg("root@127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        cmd.spawn()
            .expect("run ssh (apt-get install openssh-client)")
    }

    /// Runs a shell command in the VM as root.
    pub async fn ssh(&self, script: &str) -> Out {
        let out = self
            .ssh_command(script)
            .output()
            .await
            .expect("run ssh (apt-get install openssh-client)");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Copies a local file into the VM at `to` with `mode`, through ssh's stdin: a key
    /// never appears in a command line, nor in the share every VM can read.
    pub async fn copy_in(&self, from: &Path, to: &str, mode: &str) {
        use tokio::io::AsyncWriteExt;
        let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let mut child = self
            .ssh_command(&format!("install -D -m {mode} /dev/stdin {to}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ssh (apt-get install openssh-client)");
        let mut stdin = child.stdin.take().expect("ssh stdin");
        stdin.write_all(&bytes).await.expect("write to ssh");
        drop(stdin);
        let out = child.wait_with_output().await.expect("ssh");
        assert!(
            out.status.success(),
            "{}: copy {} to {to}: {}",
            self.node,
            from.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a shell command in the VM; panics unless it exits 0. Returns its stdout.
    pub async fn run(&self, script: &str) -> String {
        let out = self.ssh(script).await;
        assert_eq!(
            out.code, 0,
            "{}: `{script}` exited {}:\n{}{}",
            self.node, out.code, out.stdout, out.stderr
        );
        out.stdout
    }

    /// Waits until ssh answers; returns the time since QEMU started.
    pub async fn wait_ssh(&mut self, timeout: Duration) -> Duration {
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{}: qemu exited ({status}) during boot:\n{}\n--- console ---\n{}",
                        self.node,
                        std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default(),
                        self.console_tail(40)
                    );
                }
            }
            if self.start_master().await && self.ssh("true").await.code == 0 {
                return self.started.elapsed();
            }
            assert!(
                self.started.elapsed() < timeout,
                "{}: no ssh within {timeout:?}; console:\n{}",
                self.node,
                self.console_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The last `n` lines the guest printed on its serial console.
    pub fn console_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Polls `check` (a shell command) until it exits 0; returns the time it took.
    pub async fn wait_until(&self, what: &str, check: &str, timeout: Duration) -> Duration {
        crate::poll::within(timeout)
            .every(Duration::from_millis(100))
            .until_ok(|| async move {
                let out = self.ssh(check).await;
                if out.code == 0 {
                    Ok(())
                } else {
                    Err(out)
                }
            })
            .await
            .map(|((), took)| took)
            .unwrap_or_else(|out| {
                panic!(
                    "{}: {what}: not within {timeout:?}; last check `{check}`:\n{}{}",
                    self.node, out.stdout, out.stderr
                )
            })
    }
}

/// `OMTD_VM_KEEP=1`: leave the VMs running after the test, to log in and look.
pub fn keep_vms() -> bool {
    std::env::var("OMTD_VM_KEEP").is_ok_and(|v| v == "1")
}

impl Drop for Vm {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if std::thread::panicking() {
            // The agent's own account is what explains most failures: show it.
            let journal = Command::new("ssh")
                .args(["-i", &self.key.display().to_string()])
                .args(["-p", &self.ssh_port.to_string()])
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                ])
                .args([
                    "-o",
                    "LogLevel=ERROR",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ConnectTimeout=5",
                ])
                .arg("root@127.0.0.1")
                .arg(format!(
                    "journalctl -u omtd-agent@{} -n 60 --no-pager -o short-monotonic",
                    self.node
                ))
                .stdin(Stdio::null())
                .output();
            if let Ok(j) = journal {
                eprintln!(
                    "[vm] {}: last agent log lines:\n{}",
                    self.node,
                    String::from_utf8_lossy(&j.stdout)
                );
            }
        }
        if keep_vms() {
            eprintln!(
                "[vm] kept {} (qemu pid {}): {}",
                self.node,
                child.id(),
                self.login_line()
            );
            return;
        }
        let _ = child.kill();
        let _ = child.wait();
        // The ssh master would notice the guest gone anyway; stop it now.
        let _ = Command::new("ssh")
            .arg("-o")
            .arg(format!("ControlPath={}/ssh.sock", self.dir.display()))
            .args(["-O", "exit", "root@127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
