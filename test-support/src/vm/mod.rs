//! The VM test rig: a real etcd and `omtd operator` (in-process) on this machine, two Debian
//! VMs each running the freshly built `omtd agent` under systemd, reaching the etcd at
//! 10.0.2.2 (QEMU's address for the host), and the `omtd` binary for every user action.
//! See `docs/testing.md`.

pub mod image;
pub mod machine;
pub mod steps;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use omtd::operator::Options;
use omtd::resources::{Keys, Repo};
use omtd::runtime::RuntimeConfig;
use omtd::store::Store;
use omtd_crds::plan::{Report, ResourceState};
use omtd_crds::{ConditionStatus, Kind};
use tokio_util::sync::CancellationToken;

use crate::etcd::EtcdServer;
use machine::Vm;

pub const CLUSTER: &str = "vm";

/// The host: etcd, the operator, the store client, the run's folder.
pub struct Rig {
    pub etcd: EtcdServer,
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub dir: PathBuf,
    operator_stop: CancellationToken,
    operator: Option<tokio::task::JoinHandle<()>>,
}

impl Rig {
    pub async fn start(dir: &Path) -> Rig {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // TLS with client certificates, as in production (docs/security.md): each VM's
        // agent gets its own certificate, and `omtd store secure` its role.
        let etcd = EtcdServer::start_tls();
        let store = etcd.store().await;
        Rig {
            etcd,
            store,
            keys: Keys::for_cluster(CLUSTER),
            dir: dir.to_owned(),
            operator_stop: CancellationToken::new(),
            operator: None,
        }
    }

    /// etcd's client port, which the guests reach at 10.0.2.2.
    pub fn etcd_port(&self) -> u16 {
        self.etcd
            .endpoint()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("etcd endpoint port")
    }

    /// `omtd operator` in this process, without probes (no Mesos runs in the rig), with
    /// the operator's own certificate.
    pub async fn start_operator(&mut self) {
        self.start_operator_with(None).await;
    }

    /// Stops the operator and starts a new one whose probe answers come from `probes` (a
    /// new term: it takes over from the store, as after a failover).
    pub async fn restart_operator_with(
        &mut self,
        probes: Arc<dyn omtd::operator::probes::ProbeSource>,
    ) {
        self.operator_stop.cancel();
        if let Some(op) = self.operator.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), op).await;
        }
        self.operator_stop = CancellationToken::new();
        self.start_operator_with(Some(probes)).await;
    }

    async fn start_operator_with(
        &mut self,
        probes: Option<Arc<dyn omtd::operator::probes::ProbeSource>>,
    ) {
        let pki = self.etcd.pki().expect("the rig's etcd speaks TLS");
        let tls = pki.tls(Some(&pki.operator()));
        let store: Arc<dyn Store> = Arc::new(
            omtd::store::etcd::EtcdStore::connect_with(&self.etcd.endpoints(), Some(&tls))
                .await
                .expect("the operator connects with its certificate"),
        );
        let repo = Repo::new(store, self.keys.clone());
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
        let mut options = Options::new(
            addr,
            RuntimeConfig {
                identity: "vm-rig-operator".into(),
                ..RuntimeConfig::default()
            },
        );
        // bcrypt at cost 10 takes ~0.2 s per hash in a debug build; the format is the same.
        options.settings.bcrypt_cost = 4;
        if let Some(probes) = probes {
            options.probes = Some(probes);
            options.probe_interval = Duration::from_secs(1);
        }
        let stop = self.operator_stop.clone();
        self.operator = Some(tokio::spawn(async move {
            if let Err(e) = omtd::operator::run_until(&repo, options, stop).await {
                panic!("operator failed: {e}");
            }
        }));
    }

    pub async fn stop(mut self) {
        self.operator_stop.cancel();
        if let Some(op) = self.operator.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), op).await;
        }
    }

    /// Runs the `omtd` binary against the rig's store; panics unless it exits 0.
    pub async fn omtd(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(crate::omtd_bin())
            .envs(self.etcd.client_env("admin"))
            .env("OMTD_CLUSTER", CLUSTER)
            .current_dir(&self.dir)
            .args(args)
            .output()
            .await
            .expect("run omtd");
        assert!(
            out.status.success(),
            "omtd {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a manifest into the run's folder and applies it.
    pub async fn apply(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, yaml).expect("write manifest");
        self.omtd(&["apply", "-f", &path.display().to_string()])
            .await
    }

    pub async fn report(&self, node: &str) -> Option<Report> {
        let kv = self.store.get(&self.keys.report(node)).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Why `node`'s agent does not report converged (`None`: it does).
    pub async fn not_converged(&self, node: &str) -> Option<String> {
        let Some(report) = self.report(node).await else {
            return Some("no report yet".into());
        };
        if report.converged {
            return None;
        }
        let bad: Vec<String> = report
            .resources
            .iter()
            .filter(|r| r.state != ResourceState::Converged)
            .map(|r| format!("{} {:?} {}", r.id, r.state, r.message))
            .collect();
        Some(bad.join("; "))
    }

    /// Waits until every one of `nodes` reports converged. The manager is a record without
    /// a VM, so the whole cluster never converges: each VM's own report is what counts.
    pub async fn wait_converged(&self, nodes: &[&str], timeout: Duration) -> Duration {
        crate::poll::within(timeout)
            .every(Duration::from_millis(100))
            .until_ok(|| async {
                let mut pending = Vec::new();
                for n in nodes {
                    if let Some(why) = self.not_converged(n).await {
                        pending.push(format!("{n}: {why}"));
                    }
                }
                if pending.is_empty() {
                    Ok(())
                } else {
                    Err(pending)
                }
            })
            .await
            .map(|((), took)| took)
            .unwrap_or_else(|pending| {
                panic!(
                    "not converged within {timeout:?}:\n  {}",
                    pending.join("\n  ")
                )
            })
    }

    /// A Volume's `Ready` condition: (status, reason, message).
    pub async fn volume_ready(&self, name: &str) -> Option<(ConditionStatus, String, String)> {
        let kv = self
            .store
            .get(&self.keys.status(Kind::Volume, name))
            .await
            .ok()??;
        let s: omtd_crds::Status = serde_json::from_slice(&kv.value).ok()?;
        s.condition("Ready")
            .map(|c| (c.status, c.reason.clone(), c.message.clone()))
    }

    /// Waits until a Volume's `Ready` has this status and reason; returns its message.
    pub async fn wait_volume(
        &self,
        name: &str,
        status: ConditionStatus,
        reason: &str,
        timeout: Duration,
    ) -> String {
        crate::poll::within(timeout)
            .every(Duration::from_millis(100))
            .until_ok(|| async {
                match self.volume_ready(name).await {
                    Some((s, r, m)) if s == status && r == reason => Ok(m),
                    last => Err(last),
                }
            })
            .await
            .map(|(m, _)| m)
            .unwrap_or_else(|c| {
                panic!(
                    "volume/{name}: Ready never {status:?}/{reason} within {timeout:?}; last {c:?}"
                )
            })
    }
}

/// Where a VM keeps its store certificates (the share's `omtd.env` names them).
const VM_PKI: &str = "/etc/omtd/pki";

/// Installs the run's omtd binary, its environment file and the agent unit from `deploy/`
/// on a VM, with the node's own certificate (issued here, its role made by `omtd store
/// secure`), and starts `omtd-agent@NODE`.
pub async fn install_agent(rig: &Rig, vm: &Vm) {
    let pki = rig.etcd.pki().expect("the rig's etcd speaks TLS");
    let agent = pki.agent(&vm.node);
    rig.omtd(&["store", "secure", "--node", &vm.node]).await;
    vm.copy_in(&pki.ca(), &format!("{VM_PKI}/ca.crt"), "0644")
        .await;
    vm.copy_in(
        &pki.file(&agent, "crt"),
        &format!("{VM_PKI}/agent.crt"),
        "0644",
    )
    .await;
    vm.copy_in(
        &pki.file(&agent, "key"),
        &format!("{VM_PKI}/agent.key"),
        "0600",
    )
    .await;
    vm.run(&format!(
        "set -e
         install -m 0755 /mnt/omtd/omtd /usr/local/bin/omtd
         install -D -m 0600 /mnt/omtd/omtd.env /etc/omtd/omtd.env
         install -m 0644 /mnt/omtd/omtd-agent@.service /etc/systemd/system/
         systemctl daemon-reload
         systemctl enable --now omtd-agent@{}",
        vm.node
    ))
    .await;
}

/// The run's share folder (read-only in every VM at /mnt/omtd): the omtd binary this test
/// was built with (debug symbols stripped: 250 MB over virtfs would cost the boot), the
/// agent's environment file, and the agent's systemd unit as shipped in `deploy/`. No key:
/// every VM reads the share; each gets its own key from [`install_agent`].
pub fn prepare_share(dir: &Path, etcd_port: u16) -> PathBuf {
    let share = dir.join("share");
    std::fs::create_dir_all(&share).expect("share dir");
    let bin = share.join("omtd");
    let out = std::process::Command::new("strip")
        .args(["--strip-debug", "-o"])
        .arg(&bin)
        .arg(crate::omtd_bin())
        .output()
        .expect("run strip (binutils)");
    assert!(
        out.status.success(),
        "strip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        share.join("omtd.env"),
        format!(
            "OMTD_STORE=etcd+tls://10.0.2.2:{etcd_port}\n\
             OMTD_STORE_CA={VM_PKI}/ca.crt\n\
             OMTD_STORE_CERT={VM_PKI}/agent.crt\n\
             OMTD_STORE_KEY={VM_PKI}/agent.key\n\
             OMTD_CLUSTER={CLUSTER}\n\
             OMTD_AGENT_ARGS=--driver linux\n"
        ),
    )
    .expect("env file");
    std::fs::copy(
        crate::repo_file("deploy/systemd/omtd-agent@.service"),
        share.join("omtd-agent@.service"),
    )
    .expect("copy the agent unit");
    share
}
