//! LVM errors: failures, and refusals that say why and what would make the step possible.

use super::report::ReportError;
use crate::host::command::CommandError;
use crate::host::fs::FsError;

#[derive(Debug, thiserror::Error)]
pub enum LvmError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Fs(#[from] FsError),

    #[error(
        "refusing to pvcreate {device}: it is not blank ({found}); it may hold data. \
         If it does not, wipe it by hand after checking (`wipefs -a {device}`) and omtd \
         will continue"
    )]
    PvcreateRefused { device: String, found: String },

    #[error(
        "{device} is a PV of volume group {other}, not {vg}; omtd does not move PVs between \
         groups: remove it from {other} first (or put {other} in the plan)"
    )]
    InOtherVg {
        device: String,
        vg: String,
        other: String,
    },

    #[error("volume group {vg} already exists without {device}: extend it instead (vgextend)")]
    VgExists { vg: String, device: String },

    #[error("volume group {vg} does not exist: create it first (vgcreate {vg} DEVICE)")]
    VgNotFound { vg: String },

    #[error("logical volume {vg}/{lv} does not exist: create it first (lvcreate)")]
    LvNotFound { vg: String, lv: String },

    #[error(
        "volume group {vg} has no free extents for a new logical volume: add a disk to it first"
    )]
    NoFreeExtents { vg: String },

    #[error(
        "cannot remove {device} from {vg}: it holds {allocated} extents and the other PVs \
         have {others_free} free; add a disk of at least {need} (plus about 1 MiB for LVM \
         metadata) to {vg} first, or shrink the filesystem and its LV (ext4 shrinks only \
         unmounted)"
    )]
    RemovalNoRoom {
        device: String,
        vg: String,
        allocated: u64,
        others_free: u64,
        /// The room missing, as text (`200 GiB`).
        need: String,
    },

    #[error(
        "cannot remove {device} from {vg}: it is the group's last PV (lvm2 cannot remove \
         the final PV); omtd does not delete volume groups: remove the group by hand if \
         that is what you want"
    )]
    FinalPv { device: String, vg: String },

    #[error(
        "refusing to vgreduce {vg} {device}: it still holds {allocated} extents after \
         pvmove; run `pvmove {device}` again (omtd retries) and check `pvs {device}`"
    )]
    StillAllocated {
        device: String,
        vg: String,
        allocated: u64,
    },
}

impl LvmError {
    /// True when omtd declined to act to keep data safe (report "Refused", not "Failed").
    /// Nothing on the host was changed by the call that returned it.
    pub fn is_refusal(&self) -> bool {
        match self {
            LvmError::PvcreateRefused { .. }
            | LvmError::InOtherVg { .. }
            | LvmError::RemovalNoRoom { .. }
            | LvmError::FinalPv { .. }
            | LvmError::StillAllocated { .. } => true,
            LvmError::Fs(e) => e.is_refusal(),
            _ => false,
        }
    }
}

/// Bytes as the smallest whole-ish unit, rounded UP (it says how much room is needed):
/// `200 GiB`, `1.50 GiB`, `60 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size {
            if bytes % size == 0 {
                return format!("{} {name}", bytes / size);
            }
            // Hundredths, rounded up, in integers (no float rounding surprises).
            let hundredths = (u128::from(bytes) * 100).div_ceil(u128::from(size));
            return format!("{}.{:02} {name}", hundredths / 100, hundredths % 100);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up() {
        assert_eq!(human_bytes(200 << 30), "200 GiB");
        assert_eq!(human_bytes((3 << 29) + 1), "1.51 GiB");
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
        assert_eq!(human_bytes(60 << 20), "60 MiB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
