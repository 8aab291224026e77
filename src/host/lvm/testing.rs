//! Helpers for unit tests with [`RecordingRunner`]: the exact report command lines and
//! JSON answers in lvm2's shape (every value a string; zeros padded as `"0 "`, as some
//! lvm2 versions print them).

use std::sync::Arc;

use super::{Lvm, LvmOptions, ReportFormat};
use crate::host::command::{Output, RecordingRunner};

pub const PVS: &str = "pvs --reportformat json --units b --nosuffix -o \
    pv_name,vg_name,pv_size,pv_free,pv_used,pv_pe_count,pv_pe_alloc_count,pv_attr";
pub const VGS: &str = "vgs --reportformat json --units b --nosuffix -o \
    vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count";
pub const LVS: &str =
    "lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size,lv_path,lv_attr";
pub const SEGMENTS: &str =
    "lvs -a --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_attr,devices";

pub const MIB4: u64 = 4 << 20;

fn n(v: u64) -> String {
    if v == 0 {
        "0 ".to_owned()
    } else {
        v.to_string()
    }
}

/// `(device, vg or "", pe_count, pe_alloc_count)` with 4 MiB extents.
pub fn pvs_json(rows: &[(&str, &str, u64, u64)]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|(dev, vg, count, alloc)| {
            format!(
                r#"{{"pv_name":"{dev}", "vg_name":"{vg}", "pv_size":"{}", "pv_free":"{}", "pv_used":"{}", "pv_pe_count":"{}", "pv_pe_alloc_count":"{}", "pv_attr":"{}"}}"#,
                n(count * MIB4),
                n((count - alloc) * MIB4),
                n(alloc * MIB4),
                n(*count),
                n(*alloc),
                if vg.is_empty() { "---" } else { "a--" },
            )
        })
        .collect();
    format!(
        "  {{\n  \"report\": [{{\"pv\": [{}]}}]}}\n",
        items.join(",\n")
    )
}

/// `(vg, extent_count, free_count)` with 4 MiB extents.
pub fn vgs_json(rows: &[(&str, u64, u64)]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|(vg, count, free)| {
            format!(
                r#"{{"vg_name":"{vg}", "vg_size":"{}", "vg_free":"{}", "vg_extent_size":"{MIB4}", "vg_extent_count":"{}", "vg_free_count":"{}"}}"#,
                n(count * MIB4),
                n(free * MIB4),
                n(*count),
                n(*free),
            )
        })
        .collect();
    format!("{{\"report\": [{{\"vg\": [{}]}}]}}\n", items.join(","))
}

/// `(vg, lv, extents)`.
pub fn lvs_json(rows: &[(&str, &str, u64)]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|(vg, lv, extents)| {
            format!(
                r#"{{"vg_name":"{vg}", "lv_name":"{lv}", "lv_size":"{}", "lv_path":"/dev/{vg}/{lv}", "lv_attr":"-wi-ao----"}}"#,
                n(extents * MIB4)
            )
        })
        .collect();
    format!("{{\"report\": [{{\"lv\": [{}]}}]}}\n", items.join(","))
}

/// `(vg, lv, attr, devices)`.
pub fn segments_json(rows: &[(&str, &str, &str, &str)]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|(vg, lv, attr, devices)| {
            format!(
                r#"{{"vg_name":"{vg}", "lv_name":"{lv}", "lv_attr":"{attr}", "devices":"{devices}"}}"#
            )
        })
        .collect();
    format!("{{\"report\": [{{\"lv\": [{}]}}]}}\n", items.join(","))
}

/// A driver on a fake runner, JSON format known (no detection commands).
pub fn fake_lvm() -> (Arc<RecordingRunner>, Lvm) {
    let r = Arc::new(RecordingRunner::new());
    let lvm = Lvm::new(
        r.clone(),
        LvmOptions {
            format: Some(ReportFormat::Json),
            ..Default::default()
        },
    );
    (r, lvm)
}

/// The runbook's nfsstore after "add disk space": vdb 380 GiB, vdc 320 GiB, vdd 200 GiB,
/// 4 MiB extents, every PV full (PFree 0).
pub fn runbook_full(r: &RecordingRunner) {
    r.on(
        PVS,
        Output::ok(pvs_json(&[
            ("/dev/vdb", "nfsstore", 97280, 97280),
            ("/dev/vdc", "nfsstore", 81920, 81920),
            ("/dev/vdd", "nfsstore", 51200, 51200),
        ])),
    );
    r.on(VGS, Output::ok(vgs_json(&[("nfsstore", 230400, 0)])));
}

/// Lines that change the host (everything but reports and probes).
pub fn changes(r: &RecordingRunner) -> Vec<String> {
    r.lines()
        .into_iter()
        .filter(|l| {
            !["pvs ", "vgs ", "lvs ", "blkid ", "wipefs ", "lvm version"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

/// Scripts both signature probes of `dev` to find nothing.
pub fn blank(r: &RecordingRunner, dev: &str) {
    r.on(&format!("blkid -p {dev}"), Output::exit(2))
        .on(&format!("wipefs -n {dev}"), Output::ok(""));
}

/// Fails if any command ran with a force or assume-yes flag.
pub fn never_forced(r: &RecordingRunner) {
    for c in r.calls() {
        for a in &c.args {
            assert!(
                !["-y", "--yes", "-f", "-ff", "--force", "-F"].contains(&a.as_str()),
                "forced: {}",
                c.line()
            );
        }
    }
}
