//! A real ZooKeeper (Debian's `zookeeper`, 3.8) for integration tests.
//!
//! `ZooKeeperServer::start()` runs a standalone server on a free loopback port with a
//! temporary data dir, without systemd (`java ... QuorumPeerMain zoo.cfg`), and returns once
//! it serves sessions (`srvr` reports its mode); dropping it kills the process and removes the dir.
//!
//! A missing `java` or ZooKeeper jar is a hard failure, never a silent skip: a suite that
//! skips the real server would pass while testing nothing.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

const INSTALL_HINT: &str = "apt-get update && apt-get install -y zookeeper";

/// Where Debian's package puts the server jar (its manifest names the dependencies).
const JAR: &str = "/usr/share/java/zookeeper.jar";

/// A fresh server is ready in 0.3–1.6 s here; the slack is for a loaded machine.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A lost race for the free port (another process bound it before ZooKeeper) is retried.
const START_ATTEMPTS: usize = 3;

pub struct ZooKeeperServer {
    port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    // After `child` so the process dies before its data dir is removed.
    _dir: tempfile::TempDir,
}

impl ZooKeeperServer {
    /// Start a standalone server and wait until it answers. Panics with install
    /// instructions if java or the jar is missing, with the server's log if it cannot start.
    pub fn start() -> ZooKeeperServer {
        if !Path::new(JAR).exists() {
            panic!(
                "{JAR} not found: the ZooKeeper probe tests need a real ZooKeeper. \
                 Install it with `{INSTALL_HINT}`."
            );
        }
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut server = spawn();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("ZooKeeper did not answer within {READY_DEADLINE:?}:\n{log}"),
            }
        }
        panic!("ZooKeeper could not bind a free port after {START_ATTEMPTS} attempts:\n{last_log}");
    }

    /// `127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zk://127.0.0.1:PORT{path}`, the form of `/etc/mesos/zk`.
    pub fn zk_url(&self, path: &str) -> String {
        format!("zk://{}{path}", self.endpoint())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exited early ({status}):\n{}", self.log()));
            }
            if serving(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("---- last lines of the ZooKeeper log ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn() -> ZooKeeperServer {
    let dir = tempfile::Builder::new()
        .prefix("omtd-zk-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("create a temp dir for ZooKeeper: {e}"));
    let port = free_port();
    let conf = dir.path().join("conf");
    let data = dir.path().join("data");
    for d in [&conf, &data] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    }
    let cfg = format!(
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
         clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
         4lw.commands.whitelist=srvr\n",
        data.display()
    );
    write(&conf.join("zoo.cfg"), &cfg);
    // The conf dir is on the classpath: this keeps logback from logging at DEBUG.
    write(
        &conf.join("logback.xml"),
        "<configuration><appender name=\"C\" class=\"ch.qos.logback.core.ConsoleAppender\">\
         <encoder><pattern>%d %-5level %logger{20} - %msg%n</pattern></encoder></appender>\
         <root level=\"INFO\"><appender-ref ref=\"C\"/></root></configuration>\n",
    );
    let log_path = dir.path().join("zookeeper.log");
    let log = File::create(&log_path).unwrap_or_else(|e| panic!("create the log file: {e}"));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("dup log file handle: {e}"));
    let mut cmd = Command::new("java");
    cmd.arg("-Xmx256m")
        .arg("-cp")
        .arg(format!("{}:{JAR}", conf.display()))
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(conf.join("zoo.cfg"))
        // A file, not a pipe: nobody reads a pipe during the test, and a full one blocks.
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`java` was not found: the ZooKeeper probe tests need a real ZooKeeper. \
             Install it with `{INSTALL_HINT}` (it brings a JRE)."
        ),
        Err(e) => panic!("cannot start java: {e}. Install ZooKeeper with `{INSTALL_HINT}`."),
    };
    ZooKeeperServer {
        port,
        child: Some(child),
        log_path,
        _dir: dir,
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The four-letter `srvr`: a server ready for sessions reports its mode. (`ruok` is not
/// enough: it says `imok` before the server accepts sessions, and a client connecting in
/// that window is disconnected.)
fn serving(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_err()
        || stream.write_all(b"srvr").is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("Mode: standalone")
}
