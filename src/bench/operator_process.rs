//! The bench's operator: the `omtd operator` binary in its own process, as it runs on a
//! cluster, so that its CPU and memory are its own and not the sim agents' (which share the
//! bench's process). Its probes reach the sim world's Mesos master and Prometheus over
//! loopback HTTP; ZooKeeper is not probed (the sim has none to offer a separate process),
//! so the leader guard reads who leads from the master's state.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

/// How to start the operator: the binary and the store it shares with the bench.
#[derive(Debug, Clone)]
pub struct OperatorCommand {
    /// The `omtd` binary (the bench's own executable).
    pub bin: PathBuf,
    /// `OMTD_STORE`, `OMTD_CLUSTER` and the TLS and secrets-key files, as the bench has them.
    pub env: Vec<(String, String)>,
}

/// Where the operator's probes look.
pub struct ProbeUrls {
    /// With the probe principal's credentials in it: passed in the environment only.
    pub mesos: String,
    pub prometheus: String,
}

/// A running `omtd operator`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct OperatorProcess {
    child: Child,
    pub metrics: SocketAddr,
    log: PathBuf,
}

impl OperatorProcess {
    /// Starts it serving `/metrics` on `metrics`, logging to `log`.
    pub fn spawn(
        cmd: &OperatorCommand,
        metrics: SocketAddr,
        probes: &ProbeUrls,
        log: &Path,
    ) -> Result<OperatorProcess, BenchError> {
        let file = std::fs::File::create(log).map_err(|source| BenchError::Io {
            what: format!("create the operator's log {}", log.display()),
            source,
        })?;
        let child = Command::new(&cmd.bin)
            .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // In the environment, not the arguments: `ps` shows arguments to everyone.
            .env("OMTD_MESOS_URL", &probes.mesos)
            .env("OMTD_PROMETHEUS_URL", &probes.prometheus)
            .env_remove("OMTD_ZOOKEEPER")
            .arg("operator")
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .args(["--identity", &format!("omtd-bench/{}", std::process::id())])
            .args(["--probe-interval", "1s", "--probe-timeout", "5s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                bin: cmd.bin.display().to_string(),
                source,
            })?;
        Ok(OperatorProcess {
            child,
            metrics,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/metrics` answers (the operator is up and has its store).
    pub async fn wait_up(
        &mut self,
        http: &reqwest::Client,
        within: Duration,
    ) -> Result<(), BenchError> {
        let url = format!("http://{}/metrics", self.metrics);
        let deadline = Instant::now() + within;
        loop {
            self.check()?;
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::OperatorNotUp {
                    url,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An error if the operator has exited.
    pub fn check(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::OperatorExited {
                status: status.to_string(),
                log: self.log_tail(),
            }),
            _ => Ok(()),
        }
    }

    /// The last lines of its log (for an error message; the operator logs no secret).
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        format!("{} (last lines):\n{}", self.log.display(), tail.join("\n"))
    }

    /// SIGTERM (it resigns and drains), then SIGKILL after 15 s.
    pub async fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
