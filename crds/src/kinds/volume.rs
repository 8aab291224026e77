//! `Volume`: one block device on a node, as a physical volume of a volume group or as a
//! plain filesystem.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A block device on a node. With `volumeGroup` it is an LVM physical volume of that group
/// ("add disk space" when present, "reduce disk space" when absent); with `logicalVolume`,
/// `filesystem` and `mountPoint` the group's logical volume is formatted and mounted. Without
/// `volumeGroup`, the device itself carries the filesystem ("mount a volume").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    /// Name of the Node the device is attached to.
    pub node: String,
    /// Absolute device path, e.g. `/dev/vdb`.
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
    /// Absolute, normalised mount point, e.g. `/srv/executor/database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<String>,
    #[serde(default)]
    pub state: VolumeState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Ext4,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeState {
    /// The device is in use (in its volume group / mounted).
    #[default]
    Present,
    /// The device is to be taken out (pvmove, vgreduce, pvremove), never losing data.
    Absent,
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VolumeState::Present => "present",
            VolumeState::Absent => "absent",
        })
    }
}
