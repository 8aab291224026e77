//! The certificates of a TLS etcd under test, made the way an operator makes them:
//! with `omtd pki` (docs/security.md, "Bootstrap").

use std::path::{Path, PathBuf};

/// A PKI directory: the CA, etcd's server certificate (for 127.0.0.1) and the admin's.
#[derive(Debug, Clone)]
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    /// `omtd pki init`, then the etcd server's and the admin's certificates.
    pub fn new(dir: &Path) -> TestPki {
        let pki = TestPki {
            dir: dir.to_owned(),
        };
        pki.pki(&["init"]);
        // 10.0.2.2: the host as the VM rig's guests dial it (QEMU user networking).
        pki.pki(&[
            "issue",
            "etcd-server",
            "--san",
            "127.0.0.1",
            "--san",
            "10.0.2.2",
        ]);
        pki.pki(&["issue", "admin"]);
        pki
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `omtd pki --dir DIR ARGS`; panics with its output unless it succeeds.
    pub fn pki(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(crate::omtd_bin())
            .arg("pki")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run omtd pki: {e}"));
        assert!(out.status.success(), "omtd pki {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The certificate of a node's agent (issued on first use).
    pub fn agent(&self, node: &str) -> String {
        let stem = format!("agent-{node}");
        if !self.file(&stem, "crt").exists() {
            self.pki(&["issue", "agent", node]);
        }
        stem
    }

    /// The operator's certificate (issued on first use).
    pub fn operator(&self) -> String {
        if !self.file("operator", "crt").exists() {
            self.pki(&["issue", "operator"]);
        }
        "operator".into()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `NAME.crt` or `NAME.key`.
    pub fn file(&self, stem: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{stem}.{ext}"))
    }

    /// The TLS files for `omtd` of identity `stem` (`None`: the CA only, no certificate).
    pub fn env(&self, stem: Option<&str>) -> Vec<(String, String)> {
        let mut env = vec![("OMTD_STORE_CA".into(), path(&self.ca()))];
        if let Some(stem) = stem {
            env.push(("OMTD_STORE_CERT".into(), path(&self.file(stem, "crt"))));
            env.push(("OMTD_STORE_KEY".into(), path(&self.file(stem, "key"))));
        }
        env
    }

    /// `EtcdTls` of identity `stem`, for a client in the test process.
    pub fn tls(&self, stem: Option<&str>) -> omtd::store::etcd::EtcdTls {
        omtd::store::etcd::EtcdTls {
            ca: self.ca(),
            identity: stem.map(|s| (self.file(s, "crt"), self.file(s, "key"))),
        }
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
