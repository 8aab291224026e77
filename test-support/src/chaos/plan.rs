//! What the chaos run asks of each host, version by version, and how to recognise every
//! byte it may legitimately find there.
//!
//! Each version `v` of a node's plan has two files whose content is a deterministic
//! function of (node, path, v), so a reader can tell a whole version from a torn one by
//! its first line alone; one export and one fstab mount every version wants (the "stable"
//! lines: never removed while wanted), and one of each that moves with the version.

use std::collections::BTreeMap;
use std::sync::Arc;

use omtd::resources::{epoch, Keys};
use omtd::store::{Op, Store, Txn};
use omtd_crds::plan::{Ensure, ExportSpec, MountSpec, PlanSlice};
use omtd_crds::plan_manifest::{PlanManifest, MANIFEST_KEY};

use crate::agent::file;

/// The one controller the chaos planner writes as.
pub const CONTROLLER: &str = "node";
pub const FILES: [&str; 2] = ["/etc/chaos/app.conf", "/etc/chaos/big.bin"];
pub const FSTAB_FOREIGN: &str = "# /etc/fstab\nUUID=0b4c-root / ext4 errors=remount-ro 0 1\n";
pub const EXPORTS_FOREIGN: &str = "# /etc/exports\n/srv/other 10.0.0.99(ro,sync)\n";
/// Lines every version wants: their absence at any moment after the first convergence
/// is an unsafe step.
pub const STABLE_EXPORT: &str = "/srv/data 10.0.0.21(rw,sync,no_subtree_check)";
pub const STABLE_MOUNT: &str = "10.0.0.5:/srv/data /mnt/data nfs defaults 0 0";

/// The content of `path` on `node` in version `v`: a header naming them, then filler (the
/// big file is 256 KiB, so that a write takes long enough for a kill to land inside it).
pub fn content(node: &str, path: &str, v: u64) -> String {
    let header = format!("chaos {node} {path} v{v}\n");
    let size = if path.ends_with(".bin") {
        256 * 1024
    } else {
        512
    };
    let mut s = header;
    let mut x = v.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while s.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(char::from(b'a' + (x % 26) as u8));
    }
    s
}

/// Whether `bytes` is exactly some version's content of `path` on `node`.
pub fn is_whole(node: &str, path: &str, bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let prefix = format!("chaos {node} {path} v");
    let Some(v) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    content(node, path, v) == text
}

fn moving_export(v: u64) -> String {
    format!("/srv/v{} 10.0.0.22(ro,sync)", v % 3)
}

fn moving_mount(v: u64) -> (String, String) {
    (
        format!("10.0.0.5:/srv/v{}", v % 3),
        format!("/mnt/v{}", v % 3),
    )
}

/// Whether an exports line is one some version may write (or the foreign one).
pub fn known_export_line(line: &str) -> bool {
    line == STABLE_EXPORT || (0..3).any(|v| moving_export(v) == line)
}

/// Whether an fstab line is one some version may write.
pub fn known_mount_line(line: &str) -> bool {
    line == STABLE_MOUNT
        || (0..3).any(|v| {
            let (s, t) = moving_mount(v);
            line == format!("{s} {t} nfs defaults 0 0")
        })
}

pub fn slice(node: &str, v: u64, token: i64) -> PlanSlice {
    let (ms, mt) = moving_mount(v);
    let mount = |source: &str, target: &str| MountSpec {
        source: source.into(),
        target: target.into(),
        fstype: "nfs".into(),
        options: "defaults".into(),
        dump: 0,
        pass: 0,
        ensure: Ensure::Present,
    };
    let export = |line: &str| {
        let (path, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (client, options) = rest.split_once('(').unwrap_or((rest, ")"));
        ExportSpec {
            path: path.into(),
            client: client.into(),
            options: options.trim_end_matches(')').into(),
        }
    };
    PlanSlice {
        controller: CONTROLLER.into(),
        fencing_token: token,
        files: FILES
            .iter()
            .map(|p| file(p, &content(node, p, v), 0o644))
            .collect(),
        mounts: vec![mount("10.0.0.5:/srv/data", "/mnt/data"), mount(&ms, &mt)],
        exports: vec![export(STABLE_EXPORT), export(&moving_export(v))],
        ..Default::default()
    }
}

/// The operator's part, played by the harness: writes each node's slice and its manifest
/// in one transaction under a fencing token that only grows, in the store's current epoch.
pub struct Planner {
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub version: u64,
    pub token: i64,
    /// Per node: the digest of the slice last written (what a converged report names).
    pub digests: BTreeMap<String, String>,
}

impl Planner {
    /// Writes version `self.version` for every node; false when the store did not take it
    /// (down): the caller writes again once it is back.
    pub async fn write(&mut self, nodes: &[String]) -> bool {
        let epoch = match epoch::current(self.store.as_ref(), &self.keys).await {
            Ok(e) => e.unwrap_or_default(),
            Err(_) => return false,
        };
        self.token += 1;
        for node in nodes {
            let s = slice(node, self.version, self.token);
            let mut manifest = PlanManifest {
                epoch: epoch.clone(),
                fencing_token: self.token,
                ..Default::default()
            };
            manifest.controllers.insert(CONTROLLER.into());
            manifest.decide(CONTROLLER, Some(&s));
            let (Ok(sv), Ok(mv)) = (serde_json::to_vec(&s), serde_json::to_vec(&manifest)) else {
                return false;
            };
            let txn = Txn::new()
                .then(Op::put(self.keys.plan(node, CONTROLLER), sv))
                .then(Op::put(self.keys.plan(node, MANIFEST_KEY), mv));
            match self.store.txn(txn).await {
                Ok(r) if r.succeeded => {
                    self.digests.insert(node.clone(), s.digest());
                }
                _ => return false,
            }
        }
        true
    }
}
