//! Plans and reports: the contract between the controllers (which write what a host should
//! look like) and the agent on that host (which makes it so and says what it saw).
//!
//! - A controller writes one [`PlanSlice`] per node it has something to say about, under
//!   `plans/<node>/<controller>`. Each slice carries the leader's fencing token so an agent
//!   can ignore a slice written by a deposed operator.
//! - The agent merges every slice of its node; two slices owning the same resource (same file
//!   path, service name, mount target, export, volume device or container name) is a
//!   conflict the agent reports and does not resolve by picking one.
//! - The agent writes a [`Report`] under `reports/<node>` only when something changed.
//!
//! Secrets travel inside file contents (the credentials files are what omtd writes); a file
//! marked `secret` is written with mode 0600 and its content is never logged or shown
//! unless asked for.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What one controller wants on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanSlice {
    /// The controller that owns this slice (`node`, `storage`, `credentials`, `leader-guard`).
    pub controller: String,
    /// The leader's fencing token (create revision of the leader key) when it was written.
    /// An agent ignores a slice whose token is lower than the highest it has seen.
    pub fencing_token: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub physical_volumes: Vec<PhysicalVolumeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logical_volumes: Vec<LogicalVolumeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<FilesystemSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerSpec>,
}

impl PlanSlice {
    /// A short digest of the slice as stored: what an agent's report names to say which
    /// slice it describes ([`Report::slices`]), so a report of the plan before is never
    /// taken for a report of this one.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serializing a struct of Vecs and Strings cannot fail; the fallback only keeps
        // this total.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&bytes)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Present or absent: every resource in a plan can be asked to go away.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Ensure {
    #[default]
    Present,
    Absent,
}

/// A file with exact bytes. One-line flag files (Mesos, Chronos) carry no trailing newline:
/// the content is written exactly as given.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path on the host (under `--root` when the agent runs confined).
    pub path: String,
    #[serde(default)]
    pub ensure: Ensure,
    /// Exact content (UTF-8; every file omtd manages is text).
    #[serde(default)]
    pub content: String,
    /// Permission bits, e.g. 0o644. Secrets are forced to 0o600.
    #[serde(default = "default_mode")]
    pub mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Holds a secret: mode 0600, content never logged or shown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// A command that checks a candidate file before it replaces the live one; `{}` is the
    /// candidate's path (e.g. `promtool check config {}`), or [`VALIDATE_APACHE`] for the
    /// agent's built-in Apache check. The last good file is kept on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<String>,
    /// The agent makes the file from `content` rather than writing it as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<FileRender>,
}

/// How the agent makes a file from its plan content ([`FileSpec::render`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, tag = "kind")]
pub enum FileRender {
    /// Apache's htpasswd with bcrypt: the content is `principal:secret` lines, and the file
    /// gets `principal:$2y$<cost>$...` with a random salt drawn on the host. A line already
    /// in the file that still verifies is kept, so the file changes only when a user or a
    /// secret does. (A pure controller cannot draw a salt; one derived from the secret
    /// would let anyone who reads the file test guesses without paying for bcrypt.)
    Htpasswd { cost: u32 },
    /// The user's YAML file with omtd's blocks in it ([`crate::yaml_blocks`]): each block
    /// replaces what stands between its markers, or goes under its key when the file has
    /// none; the rest of the file is the user's and stays. `content` is the file the
    /// blocks go into when the host has none yet.
    YamlBlocks {
        blocks: Vec<crate::yaml_blocks::YamlBlock>,
    },
    /// Keys this plan owns in an INI file someone else owns (Galaxy's `galaxy.ini`). The
    /// contract for the agent: read the live file (none: empty text), make the file
    /// [`crate::ini::set_keys`]`(live, section, keys)` and write it only if that differs,
    /// as any other file (mode, owner, validation, `restart_on` see the made content).
    /// `content` is unused and empty. The keys' values are not secret. The agent never
    /// removes the file for this entry (`ensure: absent` is refused: the file is the
    /// user's), and dropping the entry from the plan leaves the keys as last set.
    IniKeys {
        section: String,
        keys: BTreeMap<String, String>,
    },
}

/// `FileSpec::validate` for a file under `/etc/apache2` (a site, a module's `.load`): the
/// agent checks the whole Apache config with the candidate in the file's place (`apache2
/// -t`), since a site alone is not a config. Not a command: no program has this name.
pub const VALIDATE_APACHE: &str = "omtd:apache2-configtest";

fn default_mode() -> u32 {
    0o644
}

impl FileSpec {
    /// A present, non-secret file with mode 0644 and exactly `content` (a one-line flag
    /// file must be given without a trailing newline).
    pub fn plain(path: impl Into<String>, content: impl Into<String>) -> Self {
        FileSpec {
            path: path.into(),
            ensure: Ensure::Present,
            content: content.into(),
            mode: default_mode(),
            owner: None,
            group: None,
            secret: false,
            validate: None,
            render: None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl fmt::Debug for FileSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content = if self.secret {
            crate::secret::REDACTED.to_owned()
        } else {
            format!("{:?}", self.content)
        };
        f.debug_struct("FileSpec")
            .field("path", &self.path)
            .field("ensure", &self.ensure)
            .field("content", &content)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("secret", &self.secret)
            .field("validate", &self.validate)
            .field("render", &self.render)
            .finish()
    }
}

/// The state a service should be in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    #[default]
    Running,
    Stopped,
    /// Stopped, disabled and masked, so nothing can start it (a stray mesos-master).
    Masked,
}

/// A system service (systemd unit or SysV script).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unit or script name without `.service`, e.g. `mesos-master`.
    pub name: String,
    #[serde(default)]
    pub state: ServiceState,
    /// Start at boot. Ignored for `masked`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Restart when one of these files (paths in this node's merged plan) changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<String>,
    /// An imperative restart: the agent restarts once when this differs from the last token
    /// it applied for the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_token: Option<String>,
    /// Services (on this node) to bring up before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Its start may take minutes (Galaxy's `run.sh` migrating its database): the agent asks
    /// the service manager to start it without waiting, so one slow service does not hold
    /// the host's other repairs, and reports it `Progressing` ("starting") until it is up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slow_start: bool,
}

fn default_true() -> bool {
    true
}

/// A block device as an LVM physical volume of a volume group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhysicalVolumeSpec {
    pub device: String,
    pub volume_group: String,
    /// `absent`: move its extents away (pvmove), vgreduce, pvremove, refused when the other
    /// PVs lack room.
    #[serde(default)]
    pub ensure: Ensure,
}

/// A logical volume that takes all of its group's free space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogicalVolumeSpec {
    pub volume_group: String,
    pub name: String,
    /// Grow to use every free extent of the group (`lvextend -l +100%FREE`), then grow the
    /// filesystem on it online.
    #[serde(default = "default_true")]
    pub grow_to_fill: bool,
}

/// A filesystem on a device: created only when the device has no signature at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilesystemSpec {
    /// Device path, e.g. `/dev/nfsstore/nfs_logical` or `/dev/vdb`.
    pub device: String,
    /// `ext4`.
    pub fstype: String,
}

/// A mount, kept in `/etc/fstab` and mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountSpec {
    /// What to mount: a device (`/dev/vdb`; the agent writes it to fstab as `UUID=...`),
    /// or an NFS share `host:/path`.
    pub source: String,
    /// Mount point (created if missing).
    pub target: String,
    /// `ext4`, `nfs`.
    pub fstype: String,
    /// fstab options, e.g. `defaults` or `errors=remount-ro`.
    #[serde(default = "default_options")]
    pub options: String,
    #[serde(default)]
    pub dump: u8,
    #[serde(default)]
    pub pass: u8,
    #[serde(default)]
    pub ensure: Ensure,
}

fn default_options() -> String {
    "defaults".to_owned()
}

/// One `/etc/exports` line: `path client(options)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportSpec {
    pub path: String,
    /// Client address or host name.
    pub client: String,
    /// e.g. `rw,sync,no_subtree_check,no_root_squash`.
    pub options: String,
}

impl ExportSpec {
    /// The exports(5) line, with no space between client and options.
    pub fn line(&self) -> String {
        format!("{} {}({})", self.path, self.client, self.options)
    }
}

/// A Docker container (the registry, cAdvisor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `host_ip:host_port:container_port` or `host_port:container_port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `host_path:container_path[:ro]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub ensure: Ensure,
}

/// How one resource on a host stands, as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceState {
    /// As planned.
    Converged,
    /// Being changed now (a pvmove in progress, say).
    Progressing,
    /// Not as planned and the agent could not fix it (see message).
    Failed,
    /// The agent will not do it because it could lose data (see message).
    Refused,
    /// Two slices own it: nothing was applied until the controllers agree.
    Conflict,
    /// A service that keeps dying: restarts are backed off.
    CrashLooping,
}

/// One resource in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReport {
    /// `file:/etc/exports`, `service:nfs-server`, `pv:/dev/vdd`, ...
    pub id: String,
    pub state: ResourceState,
    /// Why it is not converged; never holds a secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Progress of a long step (pvmove), 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Observed facts a controller needs (e.g. `pv_free`, `uuid`, `size`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observed: BTreeMap<String, String>,
}

/// What the agent on a node saw and did, under `reports/<node>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub node: String,
    /// The cluster epoch of the plan the agent follows (see `plan_manifest::newer_epoch`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Per controller: the fencing token of the slice last applied.
    #[serde(default)]
    pub applied: BTreeMap<String, i64>,
    /// Per controller: the [`PlanSlice::digest`] of the slice this report is about.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slices: BTreeMap<String, String>,
    /// True when every resource is converged.
    pub converged: bool,
    #[serde(default)]
    pub resources: Vec<ResourceReport>,
    /// Repairs of drift (someone or something changed the host).
    #[serde(default)]
    pub corrective_changes: u64,
    /// Changes because the plan changed.
    #[serde(default)]
    pub intentional_changes: u64,
    /// What the agent found on the host that omtd does not manage and leaves alone, e.g. a
    /// leftover Apache site (`/etc/apache2/sites-enabled/old-galaxy.conf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_line_has_no_space_before_options() {
        let e = ExportSpec {
            path: "/srv/executor/database".into(),
            client: "10.0.0.21".into(),
            options: "rw,sync".into(),
        };
        assert_eq!(e.line(), "/srv/executor/database 10.0.0.21(rw,sync)");
    }

    #[test]
    fn secret_file_content_is_not_debug_printed() {
        let f = FileSpec {
            path: "/etc/mesos-slave/store/credentials.json".into(),
            ensure: Ensure::Present,
            content: "{\"principal\":\"n\",\"secret\":\"hunter2\"}".into(),
            mode: 0o600,
            owner: None,
            group: None,
            secret: true,
            validate: None,
            render: None,
        };
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    #[test]
    fn slice_round_trips_and_rejects_unknown_fields() {
        let s = PlanSlice {
            controller: "storage".into(),
            fencing_token: 7,
            ..Default::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PlanSlice>(&json).unwrap(), s);
        assert!(serde_json::from_str::<PlanSlice>(
            r#"{"controller":"x","fencingToken":1,"bogus":1}"#
        )
        .is_err());
    }
}
